"""The registry itself: where `@action` puts each action. Kept apart from the package's
`registry()`, which imports every action module, so an action module imports only this."""


from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_type_hints

from pydantic import BaseModel


@dataclass(frozen=True)
class ActionSpec:
    name: str
    func: Callable[..., Any]
    params: type[BaseModel]
    # It only reads what a person needs to know and returns it as advice (what to do, with the
    # facts it gathered); it changes nothing, so its attempt ends told, not fixed or given up.
    tells: bool = False


REGISTRY: dict[str, ActionSpec] = {}


def action(func: Callable[..., Any] | None = None, *, tells: bool = False) -> Any:
    """Register `func` under its name; its first parameter's annotation is the params model.
    `@action(tells=True)`: an action that only gathers facts for a message and returns its advice."""
    if func is None:
        return lambda f: _register(f, tells)
    return _register(func, tells)


def _register(func: Callable[..., Any], tells: bool) -> Callable[..., Any]:
    hints = get_type_hints(func)
    first = next(iter(inspect.signature(func).parameters))
    model = hints.get(first)
    if not (inspect.isclass(model) and issubclass(model, BaseModel)):
        raise TypeError(f"action {func.__name__}: first parameter must be a pydantic model")
    if func.__name__ in REGISTRY:
        raise ValueError(f"action {func.__name__} registered twice")
    REGISTRY[func.__name__] = ActionSpec(func.__name__, func, model, tells)
    return func
