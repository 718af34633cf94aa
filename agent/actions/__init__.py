"""Actions: plain functions whose parameters are a pydantic model read from the signature.

Adding an action is one function in one module of this package::

    class StartParams(BaseModel):
        name: ContainerName

    @action
    def start_container(params: StartParams, ctx: ActionContext) -> str:
        ...

The rule loader validates a rule's action names and parameters against this
registry, so a rule can only name what exists, with parameters of the right type.
"""

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


REGISTRY: dict[str, ActionSpec] = {}


def action(func: Callable[..., Any]) -> Callable[..., Any]:
    """Register `func` under its name; its first parameter's annotation is the params model."""
    hints = get_type_hints(func)
    first = next(iter(inspect.signature(func).parameters))
    model = hints.get(first)
    if not (inspect.isclass(model) and issubclass(model, BaseModel)):
        raise TypeError(f"action {func.__name__}: first parameter must be a pydantic model")
    if func.__name__ in REGISTRY:
        raise ValueError(f"action {func.__name__} registered twice")
    REGISTRY[func.__name__] = ActionSpec(func.__name__, func, model)
    return func


def registry() -> dict[str, ActionSpec]:
    """All actions, with their modules imported (each registers itself)."""
    from agent.actions import bots, deploys, docker_actions, hummingbot  # noqa: F401

    return REGISTRY
