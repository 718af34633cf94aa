"""Genuine Python tracebacks for tests, made by raising for real.

The unit tests format them in this interpreter; tests/raiser.py raises them
inside a container, so the engine carries exactly what Python prints.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from functools import partial


def _fail_open(path: str) -> None:
    with open(path) as fh:  # raises FileNotFoundError
        fh.read()


def _lookup(data: dict, key: str) -> object:
    return data["items"][key]


def _plain() -> None:
    _fail_open("bots/credentials/client_sharp/conf_client.yml")


def _carets() -> None:
    _lookup({"items": {}}, "x" * 3)


def _cause() -> None:
    try:
        _fail_open("/nonexistent/a")
    except FileNotFoundError as inner:
        raise RuntimeError("could not load the profile") from inner


def _context() -> None:
    try:
        {}["missing"]
    except KeyError:
        int("not a number")


def _group() -> None:
    errors = []
    for i, exc_type in enumerate((ValueError, TypeError)):
        try:
            raise exc_type(f"task {i} failed")
        except Exception as e:
            errors.append(e)
    raise ExceptionGroup("several tasks failed", errors)


def _multiline() -> None:
    raise ConnectionError('password authentication failed for user "hbot"\n'
                          "(Background on this error at: https://sqlalche.me/e/21/dbapi)")


RAISERS: dict[str, tuple[Callable[[], None], list[str]]] = {
    "plain": (_plain, ["FileNotFoundError"]),
    "carets": (_carets, ["KeyError"]),
    "cause": (_cause, ["FileNotFoundError", "RuntimeError"]),
    "context": (_context, ["KeyError", "ValueError"]),
    "group": (_group, ["ValueError", "TypeError", "ExceptionGroup"]),
    "multiline": (_multiline, ["ConnectionError"]),
}


def exception(name: str) -> BaseException:
    try:
        RAISERS[name][0]()
    except BaseException as exc:
        return exc
    raise AssertionError(f"{name} did not raise")


def text(name: str) -> str:
    return "".join(traceback.format_exception(exception(name)))


SHAPES = {name: (partial(text, name), types) for name, (_, types) in RAISERS.items()}
plain = SHAPES["plain"][0]
with_carets = SHAPES["carets"][0]
chained_cause = SHAPES["cause"][0]
multiline_message = SHAPES["multiline"][0]


def record(message: str, tb: str, logger: str = "root", ts: str = "2026-06-29 14:03:07,515") -> list[str]:
    """A log record with its traceback, as logging prints it in hummingbot-api's format."""
    return [f"{ts} - {logger} - ERROR - {message}", *tb.rstrip("\n").split("\n")]
