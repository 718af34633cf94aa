"""The agent's own logs: human-readable by default, JSON lines with MEDIC_LOG_FORMAT=json,
always passed through the redactor, and safe to read in a terminal: whatever a watched
container printed (NUL, terminal escapes, line breaks) is shown escaped, never obeyed,
so every entry is one line."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

from agent.redact import Redactor
from agent.state import StateUnwritable

# C0 controls (but tab), DEL, C1 controls (0x9b is a one-byte CSI), Unicode line and
# paragraph separators: shown as escapes.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x20), *range(0x7F, 0xA0)) if c != 0x09}
_ESCAPES.update({0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def printable(text: str) -> str:
    """Text from a log, made safe for a terminal and for one-line-per-entry logs."""
    return text.translate(_ESCAPES)


class SafeFilter(logging.Filter):
    """Redacts secrets and escapes control characters in every record, its traceback too; a
    writer's report of the unwritable state file is left out (the store logs that once)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], StateUnwritable):
            return False  # the store said it once for all writers; /healthz says it until it heals
        record.msg = printable(self.redactor.text(record.getMessage()))
        record.args = None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = printable(self.redactor.text(record.exc_text))
        return True


class TextFormatter(logging.Formatter):
    """One line an entry: a traceback follows its message on the same line."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(self._with_time(record))
        return f"{line} | {record.exc_text}" if record.exc_text else line

    def _with_time(self, record: logging.LogRecord) -> logging.LogRecord:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        return record


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
               + f".{int(record.msecs):03d}Z",
               "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out)


def setup(fmt: str = "text", redactor: Redactor | None = None, level: int | str = logging.INFO,
          stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SafeFilter(redactor or Redactor()))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("docker").setLevel(logging.WARNING)
    logging.getLogger("apprise").setLevel(logging.CRITICAL + 1)  # it logs URLs with their tokens
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its request lines hold the Telegram bot token
    logging.getLogger("httpcore").setLevel(logging.WARNING)
