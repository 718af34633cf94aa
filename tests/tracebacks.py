"""Genuine Python tracebacks for tests, made by raising for real in this interpreter."""

from __future__ import annotations

import logging
import traceback


def _fail_open(path: str) -> None:
    with open(path) as fh:  # raises FileNotFoundError
        fh.read()


def _lookup(data: dict, key: str) -> object:
    return data["items"][key]


def plain() -> str:
    try:
        _fail_open("bots/credentials/client_sharp/conf_client.yml")
    except OSError as exc:
        return "".join(traceback.format_exception(exc))
    raise AssertionError


def with_carets() -> str:
    try:
        _lookup({"items": {}}, "x" * 3)
    except KeyError as exc:
        return "".join(traceback.format_exception(exc))
    raise AssertionError


def chained_cause() -> str:
    try:
        try:
            _fail_open("/nonexistent/a")
        except FileNotFoundError as inner:
            raise RuntimeError("could not load the profile") from inner
    except RuntimeError as exc:
        return "".join(traceback.format_exception(exc))
    raise AssertionError


def chained_context() -> str:
    try:
        try:
            {}["missing"]
        except KeyError:
            int("not a number")
    except ValueError as exc:
        return "".join(traceback.format_exception(exc))
    raise AssertionError


def group() -> str:
    try:
        errors = []
        for i, exc_type in enumerate((ValueError, TypeError)):
            try:
                raise exc_type(f"task {i} failed")
            except Exception as e:
                errors.append(e)
        raise ExceptionGroup("several tasks failed", errors)
    except ExceptionGroup as exc:
        return "".join(traceback.format_exception(exc))
    raise AssertionError


def multiline_message() -> str:
    try:
        raise ConnectionError('password authentication failed for user "hbot"\n'
                              "(Background on this error at: https://sqlalche.me/e/21/dbapi)")
    except ConnectionError as exc:
        return "".join(traceback.format_exception(exc))
    raise AssertionError


SHAPES = {
    "plain": (plain, ["FileNotFoundError"]),
    "carets": (with_carets, ["KeyError"]),
    "cause": (chained_cause, ["FileNotFoundError", "RuntimeError"]),
    "context": (chained_context, ["KeyError", "ValueError"]),
    "group": (group, ["ValueError", "TypeError", "ExceptionGroup"]),
    "multiline": (multiline_message, ["ConnectionError"]),
}


def record(message: str, tb: str, logger: str = "root", ts: str = "2026-06-29 14:03:07,515") -> list[str]:
    """A log record with its traceback, as logging prints it in hummingbot-api's format."""
    return [f"{ts} - {logger} - ERROR - {message}", *tb.rstrip("\n").split("\n")]


def logging_format(message: str, exc: BaseException) -> str:
    fmt = logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s")
    rec = logging.LogRecord("root", logging.ERROR, __file__, 1, message, None,
                            (type(exc), exc, exc.__traceback__))
    return fmt.format(rec)
