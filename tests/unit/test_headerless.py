"""Header-less bytes after a failure record (plain text, runs of NUL or 0xFF bytes) never hide
it from the rules; a message the format continues (SQLAlchemy's trailer, pydantic's listing, a
bracket left open, an indented line) still goes on. From the bytes Docker sends to the match."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from agent.events import LINE, TRACEBACK
from agent.ingest.assemble import Assembler
from agent.ingest.split import PARTIAL_SIZE, LineSplitter
from agent.match.loader import load_rules
from agent.match.matcher import Matcher

RULES = Path(__file__).resolve().parent.parent.parent / "rules"
MATCHER = Matcher(load_rules(RULES).rules)
TS = b"2026-11-29T01:49:26.373741147Z "
FAILURE = (b"2026-11-29 01:49:26,373 - root - ERROR - Error deploying V2 script: [Errno 2] No such file"
           b" or directory: 'bots/credentials/%s'")
LEGACY = [
    "ERROR:    Exception in ASGI application",
    "Traceback (most recent call last):",
    '  File "/hummingbot-api/services/docker_service.py", line 196, in create_hummingbot_instance',
    "    shutil.copytree(source_credentials_dir, destination_credentials_dir)",
    "FileNotFoundError: [Errno 2] No such file or directory: 'bots/credentials/%s'",
]
AFTER = {
    "plain text": b"plain text, no header",
    "NUL run": b"\x00" * 100_000,  # longer than Docker's 16 KiB entries and the 64 KiB line cap
    "0xFF run": b"\xff" * 40_000,
    "short binary": b"\x00\xff\x00",
    "tab-indented NULs": b"\t\x00\x00",
}


def docker_frames(line: bytes) -> bytes:
    """One line as Docker's multiplexed stream carries it: 16 KiB entries, each stamped."""
    body = line + b"\n"
    pieces = [body[i:i + PARTIAL_SIZE] for i in range(0, len(body), PARTIAL_SIZE)]
    return b"".join(struct.pack(">BxxxL", 2, len(TS) + len(p)) + TS + p for p in pieces)


def events_from_bytes(lines: list[bytes]) -> list:
    asm = Assembler()
    out: list = []
    n = [0]

    def sink(stream: str, got: list[tuple[int, str]]) -> None:
        items = [(n[0] + i, ts, text) for i, (ts, text) in enumerate(got)]
        n[0] += len(got)
        out.extend(asm.feed("hummingbot-api", stream, items))

    splitter = LineSplitter(sink)
    splitter.feed(b"".join(docker_frames(x) for x in lines))
    return out + asm.flush()


def matched(events) -> list[tuple[str, dict]]:
    return [(r.rule.id, r.captures) for e in events if (r := MATCHER.match(e)) is not None]


@pytest.mark.parametrize("after", AFTER.values(), ids=AFTER.keys())
def test_a_failure_record_then_headerless_bytes_is_matched(after):
    events = events_from_bytes([FAILURE % b"p1", after, FAILURE % b"p2", after, after])
    assert matched(events) == [("credentials-profile-missing", {"profile": "p1"}),
                               ("credentials-profile-missing", {"profile": "p2"})]
    assert all(len(e.lines) == 1 for e in events)


@pytest.mark.parametrize("after", AFTER.values(), ids=AFTER.keys())
def test_a_traceback_then_headerless_bytes_is_matched(after):
    lines = [x.encode() for x in LEGACY]
    lines[-1] = lines[-1] % b"p1"
    events = events_from_bytes([*lines, after])
    assert matched(events) == [("credentials-profile-missing", {"profile": "p1"})]
    (tb,) = [e for e in events if e.kind == TRACEBACK]
    assert tb.outermost.message.endswith("'bots/credentials/p1'")


def feed(lines: list[str]):
    asm = Assembler()
    return asm.feed("c", "stderr", [(i, 0, t) for i, t in enumerate(lines)]) + asm.flush()


RECORD = "2026-06-29 14:03:07,515 - database.connection - ERROR - Failed to create database tables: x"


@pytest.mark.parametrize("rest", [
    ["(Background on this error at: https://sqlalche.me/e/21/dbapi)"],  # SQLAlchemy's trailer
    ["[SQL: SELECT 1]", "[parameters: ()]", "(Background on this error at: https://sqlalche.me/e/21/dbapi)"],
    ["  indented: a pretty-printed value", "    more of it"],
])
def test_where_the_format_continues_the_record_goes_on(rest):
    events = feed([RECORD, *rest, "plain text after it"])
    assert [len(e.lines) for e in events] == [1 + len(rest), 1]
    assert events[1].lines == ["plain text after it"]


def test_a_bracket_left_open_and_pydantic_listing_continue_an_exception():
    events = feed([
        "Traceback (most recent call last):",
        '  File "/x.py", line 1, in <module>',
        "ConfigValidationError: There are errors in the client global configuration (",
        "mqtt_bridge.mqtt_port - Input should be a valid integer",
        "mqtt_bridge.mqtt_host - Field required)",
        "plain text after it",
    ])
    assert [e.kind for e in events] == [TRACEBACK, LINE]
    assert events[0].outermost.message.endswith("Field required)")
    events = feed([
        f"{RECORD[:-1]}settings: 2 validation errors for BrokerSettings",
        "port",
        "  Input should be a valid integer [type=int_parsing, input_value='x', input_type=str]",
        "host",
        "  Field required [type=missing, input_value={}, input_type=dict]",
    ])
    assert [len(e.lines) for e in events] == [5]


def test_a_continued_message_never_takes_binary_bytes():
    events = feed([RECORD, "(Background on this error at: https://sqlalche.me/e/21/dbapi)", "\x00" * 50,
                   "  \ufffd\ufffd"])
    assert [len(e.lines) for e in events] == [2, 1, 1]


def test_headerless_text_alone_is_no_failure_record():
    """The near miss: a header-less line that reads like the failure is no record of it."""
    events = events_from_bytes([
        b"2026-11-29 01:49:26,373 - root - ERROR - Error deploying V2 script: something else",
        b"[Errno 2] No such file or directory: 'bots/credentials/ghost'",
        b"Error deploying V2 script: [Errno 2] No such file or directory: 'bots/credentials/ghost'",
    ])
    assert matched(events) == []
