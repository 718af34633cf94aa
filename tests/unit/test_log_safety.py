"""The agent's own log is safe to read in a terminal: text from logs is escaped (no NUL, no
terminal escapes, no line breaks), so every entry is one line, in both formats."""

from __future__ import annotations

import io
import json
import logging

import pytest

from agent import logs
from agent.events import TRACEBACK, Event, ExceptionInfo
from agent.redact import Redactor
from agent.state import State
from agent.unknown.tracker import UnknownTracker

HOSTILE = ("evil\x00nul \x1b[31mred\x1b[0m \x1b]0;title\x07 \x9b2J \r\n2026-01-01 forged entry"
           "\u2028sep \x7f\x08")


@pytest.fixture(params=["text", "json"])
def captured(request):
    stream = io.StringIO()
    logs.setup(request.param, Redactor(["s3cret-pass"]), stream=stream)
    yield request.param, stream
    logging.getLogger().handlers.clear()


def entries(fmt: str, stream: io.StringIO) -> list[str]:
    text = stream.getvalue()
    assert text.endswith("\n")
    lines = text[:-1].split("\n")
    for line in lines:
        assert all(c == "\t" or (c >= " " and not 0x7F <= ord(c) <= 0x9F) for c in line), repr(line)
        assert "\u2028" not in line and "\u2029" not in line
        if fmt == "json":
            json.loads(line)
    return lines


def test_log_text_is_escaped_one_line_per_entry(captured):
    fmt, stream = captured
    line = f"2026-11-29 01:49:32,002 - services.x - ERROR - {HOSTILE} s3cret-pass"
    report = UnknownTracker(State(":memory:"), Redactor()).observe  # logs an error no rule knows
    report(Event("hummingbot-api", "stderr", "line", [line], 1, 1))
    tb = Event("hummingbot-api", "stderr", TRACEBACK, ["Traceback (most recent call last):", HOSTILE], 2, 3,
               exceptions=[ExceptionInfo("ValueError", HOSTILE)])
    report(tb)
    try:
        raise RuntimeError(HOSTILE)
    except RuntimeError:
        logging.getLogger("agent").exception("handler failed on %r", HOSTILE)
    lines = entries(fmt, stream)
    assert len(lines) == 3
    text = stream.getvalue()
    assert "s3cret-pass" not in text
    assert "\\x1b[31m" in text or "\\\\x1b[31m" in text  # shown, not obeyed
    assert "RuntimeError" in lines[2]
