"""The event model: what the assembler makes of lines and the matcher consumes.

An event is one log line, or one whole Python traceback with the record line
that introduced it. Parsing of headers, frames and the fingerprint is done on
demand, so the 99 % of lines nobody looks at twice stay cheap.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from functools import cached_property

from agent.names import DEFAULT_STACK

LINE, TRACEBACK, RESPONSE, EXIT = "line", "traceback", "response", "exit"
FINGERPRINT_VERSION = "2"

# Roles of what the agent follows, and the channels lines come through.
API, BOT, SIBLING, GATEWAY = "hummingbot-api", "bot", "sibling", "gateway"
CONSOLE, ERRORS, LOG = "console", "errors", "log"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where lines come from: the stack, the part of it (role), the container and the channel.

    `file` tells apart the files of one channel (a bot writes several `logs_*.log`).
    """

    container: str
    channel: str
    role: str = API
    stack: str = DEFAULT_STACK
    file: str = ""


def role_of(container: str) -> str:
    """The role of a followed container that is not a bot: hummingbot-api, the gateway
    (hummingbot-api's `POST /gateway/start` names it `gateway`; a compose file's may be
    `<project>-gateway-1`), or a sibling."""
    if container.endswith("hummingbot-api"):
        return API
    return GATEWAY if _GATEWAY_NAME.search(container) else SIBLING


_GATEWAY_NAME = re.compile(r"(?:^|[-_])gateway(?:[-_]\d+)?$")


@dataclass(frozen=True, slots=True)
class ExceptionInfo:
    type: str
    message: str


@dataclass(frozen=True, slots=True)
class Frame:
    file: str
    line: int
    function: str
    code: str

    @property
    def in_app(self) -> bool:
        """Application code, as opposed to the interpreter's or an installed library's."""
        f = self.file
        return not ("site-packages" in f or "dist-packages" in f or "/lib/python" in f
                    or f.startswith(("<", "node:")) or "/node_modules/" in f)


@dataclass(frozen=True, slots=True)
class Header:
    """The parsed head of a log record line (a bot's console has no level: None)."""

    timestamp: str | None
    logger: str
    level: str | None
    message: str


_APP = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - (\S+) - (DEBUG|INFO|WARNING|ERROR|CRITICAL) - (.*)$", re.S
)
# A bot's log files: the same with the process id after the time (and Hummingbot's own
# NETWORK level, for connection trouble).
_BOT_FILE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - \d+ - (\S+) - (DEBUG|INFO|NETWORK|WARNING|ERROR|CRITICAL)"
    r" - (.*)$", re.S,
)
# A bot's console: time, short logger name, message.
_CONSOLE = re.compile(r"^(\d\d:\d\d:\d\d) - (\S+) - (.*)$", re.S)
_UVICORN = re.compile(r"^(TRACE|DEBUG|INFO|WARNING|ERROR|CRITICAL):\s+(.*)$", re.S)
_LOGFIRE = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) ((?:GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS) .*)$", re.S)
# The gateway's own records (Node, winston): local time, level, a tab, the message.
_GATEWAY = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \| (debug|info|warn|error) \| \t?(.*)$", re.S)
_GATEWAY_LEVELS = {"debug": "DEBUG", "info": "INFO", "warn": "WARNING", "error": "ERROR"}
_STDLIB = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL):([\w.]+):(.*)$", re.S)


def parse_header(line: str) -> Header | None:
    """Header of the record formats: hummingbot-api's records, uvicorn, logfire, stdlib, a
    bot's log files and console, and the gateway's (`2026-12-06 21:49:23 | info | \tmessage`:
    logger `gateway`, its level upper-cased, warn as WARNING)."""
    if m := _APP.match(line):
        return Header(m[1], m[2], m[3], m[4])
    if m := _BOT_FILE.match(line):
        return Header(m[1], m[2], m[3], m[4])
    if m := _CONSOLE.match(line):
        return Header(m[1], m[2], None, m[3])
    if m := _STDLIB.match(line):
        return Header(None, m[2], m[1], m[3])
    if m := _GATEWAY.match(line):
        return Header(m[1], GATEWAY, _GATEWAY_LEVELS[m[2]], m[3])
    if m := _UVICORN.match(line):
        return Header(None, "uvicorn", m[1], m[2])
    if m := _LOGFIRE.match(line):
        return Header(m[1], "logfire", "INFO", m[2])
    return None


_FRAME = re.compile(r'^\s*File "([^"]*)", line (\d+)(?:, in (.*))?$')
# A Node.js stack frame: `    at fn (/path/file.js:13:27)` or `    at /path/file.js:13:27`.
_NODE_FRAME = re.compile(r"^\s+at (?:(?:async )?(.+?) \((.+?):(\d+):\d+\)|(.+?):(\d+):\d+)$")

# Normalisation for fingerprints: values that change between occurrences of the
# same failure. Order matters: the specific forms first, bare numbers last.
_NORMALISE = [
    (re.compile(r"-\d{8}-\d{6}\b"), "-<ts>"),  # hummingbot-api's instance-name stamp
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),  # addresses: <object at 0x7f...>
    # ids: hex of 12+ characters, or 8+ with both a digit and a letter (container ids, hashes)
    (re.compile(r"\b(?:[0-9a-f]{12,}|(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,})\b", re.I), "<id>"),
    # long tokens mixing letters and digits (order ids, tokens)
    (re.compile(r"\b(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{16,}\b"), "<id>"),
    (re.compile(r"\d+"), "<n>"),  # everything else numeric: timestamps, ports, counts, line numbers
]
_TOP_TRACEBACK = re.compile(r"^(?:[A-Z]+:\s+)?Traceback \(most recent call last\):$")


def normalise(text: str) -> str:
    for rx, repl in _NORMALISE:
        text = rx.sub(repl, text)
    return text


def stamp(ts_ns: int) -> str:
    """Nanoseconds since the epoch as `docker logs -t` prints them (RFC 3339 with all nine digits
    of the fraction): 2026-06-29T14:03:07.515012340Z."""
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


class Event:
    """One line or one traceback from one container (and stream, the channel it came through).

    `origin` says where it came from (stack, role, channel); without one it is hummingbot-api's.
    """

    __slots__ = ("__dict__", "container", "data", "exceptions", "first_pos", "frame_lines", "kind",
                 "last_pos", "last_ts", "lines", "omitted", "origin", "stream", "ts")

    def __init__(
        self,
        container: str,
        stream: str,
        kind: str,
        lines: list[str],
        first_pos: int,
        last_pos: int,
        ts: int = 0,
        exceptions: list[ExceptionInfo] | None = None,
        frame_lines: list[tuple[str, str]] | None = None,
        omitted: int = 0,
        data: dict | None = None,
        last_ts: int = 0,
        origin: Origin | None = None,
    ) -> None:
        self.container = container
        self.stream = stream
        self.kind = kind
        self.lines = lines
        self.first_pos = first_pos
        self.last_pos = last_pos
        self.ts = ts
        self.exceptions = exceptions or []
        self.frame_lines = frame_lines or []  # (File line, code line) pairs, parsed on demand
        self.omitted = omitted
        self.data = data  # kind response: a recorded deploy exchange; kind exit: the bot's death
        self.last_ts = last_ts or ts  # the engine's timestamp of the last line (ns; 0: not known)
        self.origin = origin

    @property
    def channel(self) -> str:
        return self.stream

    @property
    def excerpt(self) -> str:
        """What a person reads of it: its key line, or a bot's death with its last lines."""
        if self.kind == EXIT:  # the headline, then the last lines (shortened from the end)
            text = "\n".join(self.lines)
            return text if len(text) <= 2000 else text[:2000] + "…"
        return self.key_line[:300]

    @property
    def role(self) -> str:
        return self.origin.role if self.origin is not None else API

    @property
    def stack(self) -> str:
        return self.origin.stack if self.origin is not None else DEFAULT_STACK

    def __repr__(self) -> str:
        head = self.lines[0][:80] if self.lines else ""
        span = f"{self.first_pos}-{self.last_pos}"
        return f"Event({self.kind}, {self.container}/{self.stream}, {span}, {head!r})"

    def where(self) -> dict:
        """Where a person finds the event: container, stream, and the log timestamps of its first
        and last line as `docker logs -t` prints them (positions are internal)."""
        out: dict = {"container": self.container, "stream": self.stream}
        if self.ts:
            out["first"], out["last"] = stamp(self.ts), stamp(self.last_ts)
        if self.data is not None and "deploy_id" in self.data:
            out["deploy_id"] = self.data["deploy_id"]  # the recorder's record of the exchange
        return out

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @cached_property
    def header(self) -> Header | None:
        """The record header of the first line (the introducing line of a traceback)."""
        if self.kind in (RESPONSE, EXIT) or not self.lines:
            return None
        return parse_header(self.lines[0])

    @property
    def message(self) -> str:
        """The record's message, or the whole line when it has no header."""
        if self.data is not None:
            return str(self.data.get("message", ""))
        h = self.header
        first = h.message if h is not None else (self.lines[0] if self.lines else "")
        if self.kind == LINE and len(self.lines) > 1:  # a record whose message goes on
            return "\n".join([first, *self.lines[1:]])
        return first

    @property
    def level(self) -> str | None:
        h = self.header
        if h is not None:
            return h.level
        return "ERROR" if self.kind == TRACEBACK else None

    @property
    def key_line(self) -> str:
        """The line that says what happened, never blank: a traceback's outermost exception as
        printed (`Type: message`, its first line), else the record line."""
        exc = self.outermost if self.kind == TRACEBACK else None
        if exc is not None:
            first = exc.message.split("\n", 1)[0]
            return f"{exc.type}: {first}" if first else exc.type
        return next((line for line in self.lines if line.strip()), "")

    @property
    def outermost(self) -> ExceptionInfo | None:
        """The exception actually raised last (printed last in a chain)."""
        return self.exceptions[-1] if self.exceptions else None

    @cached_property
    def frames(self) -> list[Frame]:
        out = []
        for file_line, code in self.frame_lines:
            m = _FRAME.match(file_line)
            if m:
                out.append(Frame(m[1], int(m[2]), m[3] or "", code.strip()))
            elif n := _NODE_FRAME.match(file_line):
                file, line = (n[2], n[3]) if n[2] else (n[4], n[5])
                out.append(Frame(file, int(line), n[1] or "", ""))
        return out

    @cached_property
    def fingerprint(self) -> str:
        """One recurring problem, one fingerprint: stable across timestamps, line numbers,
        ports, ids, hex addresses, instance-name stamps and other numbers.

        Tracebacks: the record's logger, the exception types, and where it was raised:
        the in-app frames (module, function, code line), or when every frame is a
        library's, the frames of the outermost traceback only, so the varying depth of
        a library's internals in the causes (a shared DNS lookup awaited by a second
        caller) does not split one problem in two. Lines: logger, level and the
        normalised message. Recorded deploy responses: route, status, and the message with
        the request's own values (instance name, profile...) and numbers normalised.
        """
        h = hashlib.blake2b(digest_size=8)
        h.update(FINGERPRINT_VERSION.encode())
        header = self.header
        if self.kind == TRACEBACK:
            if header is not None:
                h.update(f"\0H{header.logger}:{header.level}".encode())
            for exc in self.exceptions:
                h.update(b"\0E" + exc.type.encode())
            chosen = [f for f in self.frames if f.in_app] or self.outer_frames
            for f in chosen:
                module = f.file.rsplit("/", 1)[-1]
                h.update(f"\0F{module}:{f.function}:{normalise(f.code)}".encode())
            if not chosen and self.outermost is not None:
                h.update(b"\0M" + normalise(self.outermost.message).encode())
        elif self.kind == RESPONSE and self.data is not None:
            d = self.data
            message = str(d.get("message", ""))
            # The names the client chose (instance, profile, config) are not the problem.
            request = d.get("request") or {}
            for value in sorted((v for v in request.values() if isinstance(v, str) and len(v) >= 3),
                                key=len, reverse=True):
                message = message.replace(value, "<value>")
            h.update(f"\0R{d.get('route')}:{d.get('status')}:{normalise(message)}".encode())
        elif header is not None:
            h.update(f"\0L{header.logger}:{header.level}:{normalise(header.message)}".encode())
        else:
            h.update(b"\0T" + normalise(self.lines[0] if self.lines else "").encode())
        return f"v{FINGERPRINT_VERSION}:{h.hexdigest()}"

    @property
    def outer_frames(self) -> list[Frame]:
        """The frames of the last top-level traceback (the outermost exception's)."""
        start = 0
        for i, line in enumerate(self.lines):
            if _TOP_TRACEBACK.match(line):
                start = i
        out = []
        for line in self.lines[start:]:
            m = _FRAME.match(line)
            if m and not line.lstrip().startswith("|"):
                out.append(m)
        codes = {fl: code for fl, code in self.frame_lines}
        return [Frame(m[1], int(m[2]), m[3] or "", codes.get(m.string, "").strip()) for m in out]


def describe_exit(exit_code: int, lived: float | None, oom_killed: bool = False,
                  memory_limit: int | None = None) -> str:
    """How a bot ended, as the messages say it ("exited by itself with code 1 after 7.5 s")."""
    after = f" after {lived:.1f} s" if lived is not None else ""
    if oom_killed:
        # A cgroup's OOM kill means its usage reached the limit; without one, the host ran out.
        used = f"it used all of its memory limit of {mebibytes(memory_limit)}" if memory_limit \
            else "it had no memory limit: the host ran out of memory"
        return f"was killed by the kernel for lack of memory ({used}; exit code {exit_code}){after}"
    return f"exited by itself with code {exit_code}{after}"


def spoken_duration(seconds: float) -> str:
    """A duration as a message says it: 8 s, 10 min, 2.5 h."""
    if seconds < 120:
        return f"{round(seconds, 0 if seconds >= 10 else 1):g} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def mebibytes(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def exit_event(container: str, *, exit_code: int, ts: int, lived: float | None = None,
               oom_killed: bool = False, stack: str = DEFAULT_STACK, memory_limit: int | None = None,
               **data) -> Event:
    """A bot that died by itself (not stopped by a person or hummingbot-api), from the engine's
    life events: kind exit, channel engine; the pipeline adds the bot's last lines."""
    fate = describe_exit(exit_code, lived, oom_killed, memory_limit)
    info = {"exit_code": exit_code, "oom_killed": oom_killed, "lived_s": lived, "fate": fate,
            "memory_limit": memory_limit,
            "message": f"{container} {fate}", **data}
    origin = Origin(container, "engine", BOT, stack)
    return Event(container, "engine", EXIT, [f"{container} {fate}"], ts, ts, ts, data=info, origin=origin)
