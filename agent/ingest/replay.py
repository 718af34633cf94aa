"""Replay saved ``docker logs`` output (with or without ``-t``) through the assembler.

stdout and stderr are merged in such a file, so the assembler runs in merged
mode. Positions are 1-based line numbers of the input as given. A bot's output
is replayed with its origin (role bot, channel console, errors or log); a
console was a terminal, so its escape sequences are taken out as when followed.
The replay is a source like the followed ones: it hands the same batches on.

What the agent sees besides lines can be saved too, one a line, in the form of the golden
samples: `RECORDED {json}` is a deploy exchange the recorder saw (route, status, request,
message) and `EXITED {json}` a bot's death from the engine's events (exit_code, lived,
oom_killed, memory_limit, terminal, headless, last_console, last_errors, last_log). `ENGINE
<text>` is a line the agent itself writes on the replayed container's `engine` channel (what
its environment says, a door its start-up try found open), as its own log shows it. They replay
as the ready-made events the agent makes of them, so a recorder or engine rule is tested like a
log rule; a line that only looks like one (its JSON does not parse or fit) stays a line.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator
from typing import IO

from agent.events import API, BOT, CONSOLE, LINE, Event, Origin, exit_event
from agent.ingest.assemble import Assembler, Item
from agent.ingest.environment import ENGINE as ENGINE_CHANNEL
from agent.ingest.source import Batch, Close, Ended, Lines, Ready
from agent.ingest.split import clean_terminal, parse_ts
from agent.recorder.events import event_from_exchange

_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z) ")
_NOTE = re.compile(r"^#(?: |$)")
MERGED = "merged"
BATCH = 4096
RECORDED, EXITED, ENGINE = "RECORDED ", "EXITED ", "ENGINE "


def detect_timestamps(first_lines: Iterable[str]) -> bool:
    """True when the output was saved with ``docker logs -t``: its first line of output, past
    blank lines and `# ` notes (a samples file's, or a person's above what they pasted)."""
    for line in first_lines:
        if line.strip() and not _NOTE.match(line):
            return bool(_TS.match(line))
    return False


class Replay:
    """Saved output as a source: its lines in batches of the pipeline's kind, then the end of
    its input. Positions are line numbers; a replay keeps none (it has nothing to resume)."""

    name = "replay"

    def __init__(self, lines: Iterable[str], container: str = "replay", origin: Origin | None = None,
                 exited_as: str | None = None) -> None:
        self.lines, self.container, self.origin = lines, container, origin
        # whose death an EXITED line tells: the bot replayed, else the name given, else "bot"
        self.exited_as = exited_as or (origin.container if origin is not None and origin.role == BOT
                                       else "bot")

    def batches(self) -> Iterator[Batch]:
        stream = self.origin.channel if self.origin is not None else MERGED
        terminal = stream == CONSOLE
        it = iter(self.lines)
        head: list[str] = []
        for line in it:
            head.append(line)
            if line.strip() and not _NOTE.match(line):
                break
        stamped = detect_timestamps(head)
        batch: list[Item] = []
        for n, raw in enumerate(_chain(head, it), start=1):
            text = raw.rstrip("\n").rstrip("\r")
            ts = 0
            if stamped:
                m = _TS.match(text)
                stamp = parse_ts(m[1].encode()) if m else None
                if stamp is not None:  # an impossible one leaves the line as it is
                    ts, text = stamp, text[m.end():]
            if terminal:
                text = clean_terminal(text)
            saved = self._saved(n, text)
            if saved is not None:
                if batch:
                    yield Lines(self.container, stream, self.origin, batch, n)
                    batch = []
                yield saved
                continue
            batch.append((n, ts, text))
            if len(batch) >= BATCH:
                yield Lines(self.container, stream, self.origin, batch, n + 1)
                batch = []
        if batch:
            yield Lines(self.container, stream, self.origin, batch, batch[-1][0] + 1)
        yield Close(self.container)


    def _saved(self, n: int, text: str) -> Ready | Ended | None:
        """The ready-made event a RECORDED, EXITED or ENGINE line stands for (its position: line n)."""
        if text.startswith(ENGINE) and text[len(ENGINE):].strip():
            role = self.origin.role if self.origin is not None else API
            where = Origin(self.container, ENGINE_CHANNEL, role)
            line = text[len(ENGINE):]
            event = Event(self.container, where.channel, LINE, [line], n, n, n, origin=where)
            return Ready(event, position=n)
        if not text.startswith((RECORDED, EXITED)):
            return None
        recorded = text.startswith(RECORDED)
        try:
            fields = json.loads(text[len(RECORDED if recorded else EXITED):])
            if not isinstance(fields, dict):
                return None
            if recorded:
                return Ready(event_from_exchange(n=n, **fields), position=n)
            return Ended(exit_event(self.exited_as, ts=n, **fields))
        except (ValueError, TypeError, AttributeError, KeyError):
            return None  # not one of ours after all: an ordinary line


class _Assembled:
    """A replay's sink: the assembler, in the caller's thread, its events taken as they complete."""

    def __init__(self, assembler: Assembler) -> None:
        self.assembler = assembler
        self.events: list[Event] = []

    def put(self, batch: Batch) -> None:
        if isinstance(batch, Lines):
            self.events += self.assembler.feed(batch.container, batch.channel, batch.items,
                                               origin=batch.origin)
        elif isinstance(batch, Close):
            self.events += self.assembler.flush(batch.container)
        elif isinstance(batch, Ready | Ended):
            self.events.append(batch.event)

    def take(self) -> list[Event]:
        events, self.events = self.events, []
        return events


def replay_lines(lines: Iterable[str], container: str = "replay",
                 assembler: Assembler | None = None, origin: Origin | None = None,
                 exited_as: str | None = None) -> Iterator[Event]:
    """Events from text lines (newlines stripped or not), in input order of completion."""
    sink = _Assembled(assembler or Assembler(merged=True))
    for batch in Replay(lines, container, origin, exited_as).batches():
        sink.put(batch)
        yield from sink.take()


def _chain(head: list[str], rest: Iterator[str]) -> Iterator[str]:
    yield from head
    yield from rest


def open_input(path: str) -> IO[str]:
    """A file, or ``-`` for stdin; undecodable bytes are replaced, never fatal."""
    if path == "-":
        return open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False)
    return open(path, encoding="utf-8", errors="replace", newline="")


def replay_file(path: str, container: str | None = None, origin: Origin | None = None) -> Iterator[Event]:
    with open_input(path) as fh:
        yield from replay_lines(fh, container or ("stdin" if path == "-" else path), origin=origin)
