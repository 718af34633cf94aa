"""Assemble: lines to events, per container and stream.

A Python traceback becomes one event together with the record line that
introduced it (``... - ERROR - ...`` or uvicorn's ``ERROR:    Exception in ASGI
application``), its frames, caret lines, multi-line exception messages, chained
exceptions and exception groups. It closes on structure: the final exception
line followed by anything that cannot continue it; only when the input pauses
right after an exception line does a short grace (tens of ms) decide.

A Node.js crash (the gateway's, before its logger starts) is one event too: the
``/path/file.js:NN`` line Node prints first, the source line and its caret, the
``Error: ...`` line, its ``    at ...`` frames, the error's properties block
(``{ errno: -2, code: 'ENOENT', ... }``, kept as part of its message) and the
closing ``Node.js vNN`` line, which ends it.

Every other line is a one-line event. A WARNING or higher record is held for
the same grace, because a traceback or a continuation of its message (such as
SQLAlchemy's ``(Background on this error at: ...)``) may follow.

A line without a header goes on with a record's (or an exception's) message only
where the format continues: it is indented, it is one of SQLAlchemy's trailer
lines, the message left a bracket open (``... configuration (``) or is pydantic's
``N validation errors for Model`` listing. Anything else after a record (plain
text, a run of NUL or undecodable bytes) is no part of it: it would hide the
record from the rules, so it becomes a line of its own.

Where stdout and stderr arrive merged (file replay), request lines of the other
stream (uvicorn access lines, logfire lines) can land inside a traceback; they
become events of their own and do not break it.

Memory is bounded: an event keeps at most ``max_lines`` lines (head and tail,
counting what was left out) and ``max_line_chars`` characters a line.
"""

from __future__ import annotations

import re
from collections import deque

from agent.events import LINE, TRACEBACK, Event, ExceptionInfo, Origin

Item = tuple[int, int, str]  # (position, ts_ns, text)

GROUP_START = "Exception Group Traceback (most recent call last):"
CHAIN = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
# A level prefix that may stand before "Traceback" (uvicorn's lifespan failure).
_TB_LINE = re.compile(r"^(?:[A-Z]+:\s+)?Traceback \(most recent call last\):$")
_EXC = re.compile(r"^([A-Za-z_][\w.]*)(?::\s?(.*))?$", re.S)
_UVICORN_PREFIX = re.compile(r"^(?:TRACE|DEBUG|INFO|WARNING|ERROR|CRITICAL):\s")
_APP_RECORD = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - "  # hummingbot-api's record format, a bot's log files
    r"|^(?:DEBUG|INFO|WARNING|ERROR|CRITICAL):[\w.]+:"  # logging's default format
    r"|^\d\d:\d\d:\d\d - \S+ - "  # a bot's console
    r"|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \| (?:debug|info|warn|error) \| "  # the gateway's records
)
_FOREIGN = re.compile(
    r'^(?:INFO|WARNING|ERROR):\s+\S+ - "[A-Z]+ \S+ HTTP/[\d.]+" \d{3}'  # uvicorn access
    r"|^\d\d:\d\d:\d\d\.\d{3} (?:GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS) "  # logfire
)
_HOLD = re.compile(r" - (?:WARNING|ERROR|CRITICAL|NETWORK) - ")
_GROUP_LINE = re.compile(r"^\s*[|+]")
_CONTEXT_FRAME = re.compile(r'^  File "[^"]+", line \d+, in \S+$')  # FastAPI's endpoint context
# What a message's next line looks like where the format continues it (see `continues`).
_GOES_ON = re.compile(r"^(?:\s|\(Background on this error at: |\[(?:SQL|parameters|cached since)\b)")
_LISTING = re.compile(r"\b\d+ validation errors? for [\w.]+$", re.M)  # pydantic's, then its fields
_NOT_TEXT = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\ufffd]")  # control characters, undecodable bytes
_GROUP_PREFIX = re.compile(r"^(\s*)(?:\| ?|\+[-+]*.*$)")

# A Node.js crash: where it was thrown (`/home/gateway/dist/https.js:13`, `node:internal/...:70`),
# the error line (`Error: ...`, `TypeError [ERR_X]: ...`), frames, and the runtime's last word.
_NODE_HEAD = re.compile(r"^(?:/|node:|[A-Za-z]:\\)\S*:\d+$")
_NODE_EXC = re.compile(r"^([A-Za-z_$][\w$.]*)(?: \[[\w.]+\])?: (.*)$"
                       r"|^([A-Za-z_$][\w$.]*(?:Error|Exception))$")
_NODE_AT = re.compile(r"^\s+at \S")
_NODE_END = re.compile(r"^Node\.js v\d+")
NODE_STATES = ("node_src", "node_exc", "node_frames", "node_props", "node_tail")

MAX_CONTINUATION = 50
MAX_FOREIGN_RUN = 200


def _cut(text: str, limit: int) -> str:
    return text[:limit] + f" …[truncated {len(text) - limit} chars]"


def is_header(text: str) -> bool:
    """A line that starts a log record of its own (never part of a traceback body)."""
    return bool(_APP_RECORD.match(text) or _UVICORN_PREFIX.match(text) or _FOREIGN.match(text))


def _depth(text: str) -> int:
    """Brackets a line opens and leaves open (negative: it closes more than it opens)."""
    return sum(map(text.count, "([{")) - sum(map(text.count, ")]}"))


class _Builder:
    """A traceback or held record being put together."""

    __slots__ = (
        "continuation",
        "depth_exc",
        "exceptions",
        "first_pos",
        "foreign_run",
        "frame_lines",
        "head",
        "interleaved",
        "kind",
        "last_pos",
        "last_ts",
        "listing",
        "max_chars",
        "max_lines",
        "omitted",
        "open",
        "state",
        "tail",
        "ts",
    )

    def __init__(self, kind: str, pos: int, ts: int, max_lines: int, max_chars: int) -> None:
        self.kind = kind
        self.first_pos = self.last_pos = pos
        self.ts = self.last_ts = ts
        self.head: list[str] = []
        self.tail: deque[str] = deque(maxlen=max_lines - max_lines // 2)
        self.max_lines = max_lines
        self.max_chars = max_chars
        self.omitted = 0
        self.exceptions: list[ExceptionInfo] = []
        self.depth_exc: list[int] = []
        self.frame_lines: list[tuple[str, str]] = []
        self.state = "held"  # held | frames | after_exc | blank | chain | group
        self.foreign_run = 0
        self.continuation = 0
        self.open = 0  # brackets the message being continued left open
        self.listing = False  # the message is pydantic's listing of errors
        self.interleaved: list[Event] = []

    def message_starts(self, text: str) -> None:
        """A record line or an exception line: its message may be continued from here."""
        self.continuation = 0
        self.open = max(0, _depth(text))
        self.listing = bool(_LISTING.search(text))

    def continues(self, text: str) -> bool:
        """Whether a line without a header goes on with the message (see the module's docstring)."""
        if self.continuation >= MAX_CONTINUATION or _NOT_TEXT.search(text):
            return False
        if not (self.open > 0 or self.listing or _GOES_ON.match(text)):
            return False
        self.open = max(0, self.open + _depth(text))
        return True

    def add(self, pos: int, ts: int, text: str) -> None:
        if len(text) > self.max_chars:
            text = _cut(text, self.max_chars)
        if text.strip():  # an event ends on its last line with text (a lone blank line is no event)
            self.last_pos, self.last_ts = pos, ts
        if len(self.head) < self.max_lines // 2:
            self.head.append(text)
        else:
            if len(self.tail) == self.tail.maxlen:
                self.omitted += 1
            self.tail.append(text)

    def add_exception(self, text: str, depth: int) -> None:
        m = _EXC.match(text)
        if m and len(self.exceptions) < 64:
            self.exceptions.append(ExceptionInfo(m[1], m[2] or ""))
            self.depth_exc.append(depth)

    def continue_message(self, text: str) -> None:
        """A line that continues the last exception's (or record's) message."""
        self.continuation += 1
        if self.exceptions:
            last = self.exceptions[-1]
            if len(last.message) < 8192:
                self.exceptions[-1] = ExceptionInfo(last.type, f"{last.message}\n{text}")

    def event(self, container: str, stream: str, origin: Origin | None = None) -> Event:
        lines = self.head
        if self.tail:
            if self.omitted:
                lines = [*lines, f"…[{self.omitted} lines omitted]…"]
            lines = [*lines, *self.tail]
        end = len(lines)
        while end > 1 and not lines[end - 1].strip():
            end -= 1  # the blank line a chained exception would have followed
        lines = lines[:end]
        exceptions = self.exceptions
        if self.kind == TRACEBACK and exceptions:
            # Outermost: the last one printed at the top level (depth 0, or the
            # group's own exception at depth 1); keep it last in the list.
            top = max((i for i, d in enumerate(self.depth_exc) if d <= 1), default=len(exceptions) - 1)
            if top != len(exceptions) - 1:
                exceptions = [*exceptions[:top], *exceptions[top + 1:], exceptions[top]]
        return Event(container, stream, self.kind, lines, self.first_pos, self.last_pos, self.ts,
                     exceptions, self.frame_lines, self.omitted, last_ts=self.last_ts, origin=origin)


class _StreamState:
    __slots__ = ("builder", "container", "deadline", "last_pos", "origin", "stream")

    def __init__(self, container: str, stream: str, origin: Origin | None) -> None:
        self.builder: _Builder | None = None
        self.deadline = 0.0
        self.last_pos = -1
        self.container = container
        self.stream = stream
        self.origin = origin


class Assembler:
    """Stateful per (container, stream), or per origin when one is given (a bot's several log
    files are apart); feed lines, get events back."""

    def __init__(self, *, grace: float = 0.03, merged: bool = False, max_lines: int = 400,
                 max_line_chars: int = 8192, stall: float = 5.0) -> None:
        self.grace = grace
        self.merged = merged
        self.max_lines = max_lines
        self.max_chars = max_line_chars
        self.stall = stall
        self._streams: dict[tuple[str, str] | Origin, _StreamState] = {}

    # -- public ---------------------------------------------------------------------
    def feed(self, container: str, stream: str, items: list[Item], now: float = 0.0,
             origin: Origin | None = None) -> list[Event]:
        """Process lines of one stream; return the events they completed."""
        key = origin or (container, stream)
        st = self._streams.get(key)
        if st is None:
            st = self._streams[key] = _StreamState(container, stream, origin)
        out: list[Event] = []
        append = out.append
        line = self._line
        hold = _HOLD.search
        for pos, ts, text in items:
            st.last_pos = pos
            if st.builder is None:
                # The hot path: most lines are plain one-line events.
                if not text or text.isspace():
                    continue
                if text[-1] != ":" and not text.startswith("ERROR:") and not hold(text) \
                        and not (text[-1].isdigit() and _NODE_HEAD.match(text)):
                    if len(text) > self.max_chars:
                        text = _cut(text, self.max_chars)
                    append(Event(container, stream, LINE, [text], pos, pos, ts, origin=origin))
                    continue
            line(container, stream, st, pos, ts, text, append)
        if st.builder is not None:
            ongoing = st.builder.state == "frames" or st.builder.state in NODE_STATES[:4]
            st.deadline = now + (self.stall if ongoing else self.grace)
        return out

    def _line(self, container, stream, st: _StreamState, pos, ts, text, append) -> None:
        """One line, whatever the state."""
        if st.builder is not None:
            self._step(container, stream, st, pos, ts, text, append)
        elif not text or text.isspace():
            return
        elif text[-1] == ":" and text.endswith("(most recent call last):"):
            self._start_tb(st, pos, ts, text)
            if self._is_group_start(text):
                st.builder.state = "group"
        elif _NODE_HEAD.match(text):
            b = st.builder = _Builder(TRACEBACK, pos, ts, self.max_lines, self.max_chars)
            b.add(pos, ts, text)
            b.state = "node_src"
        elif _HOLD.search(text) or text.startswith("ERROR:"):
            b = st.builder = _Builder(LINE, pos, ts, self.max_lines, self.max_chars)
            b.add(pos, ts, text)
            b.message_starts(text)
        else:
            if len(text) > self.max_chars:
                text = _cut(text, self.max_chars)
            append(Event(container, stream, LINE, [text], pos, pos, ts, origin=st.origin))

    def due(self, now: float) -> list[Event]:
        """Close what waited past its grace (call when the input pauses)."""
        out = []
        for st in self._streams.values():
            if st.builder is not None and now >= st.deadline:
                self._close(st.container, st.stream, st, out.append)
        return out

    def next_deadline(self) -> float | None:
        deadlines = [st.deadline for st in self._streams.values() if st.builder is not None]
        return min(deadlines) if deadlines else None

    def flush(self, container: str | None = None) -> list[Event]:
        """Close everything still open (end of input, shutdown, stream detached)."""
        out = []
        for st in self._streams.values():
            if st.builder is not None and (container is None or st.container == container):
                self._close(st.container, st.stream, st, out.append)
        return out

    def flush_origin(self, origin: Origin) -> list[Event]:
        """Close what is open of one source (a followed file that was truncated or replaced)."""
        out: list[Event] = []
        st = self._streams.get(origin)
        if st is not None and st.builder is not None:
            self._close(st.container, st.stream, st, out.append)
        return out

    def forget(self, container: str) -> None:
        """Drop the state of a container that is gone for good (a removed bot)."""
        for key in [k for k, st in self._streams.items() if st.container == container]:
            del self._streams[key]

    def pending_first_pos(self, container: str, stream: str, origin: Origin | None = None) -> int | None:
        """First position of a line not yet part of an emitted event, if any is held."""
        st = self._streams.get(origin or (container, stream))
        return st.builder.first_pos if st is not None and st.builder is not None else None

    # -- the state machine ----------------------------------------------------------
    def _start_tb(self, st: _StreamState, pos: int, ts: int, text: str, header: _Builder | None = None):
        b = header or _Builder(TRACEBACK, pos, ts, self.max_lines, self.max_chars)
        b.kind = TRACEBACK
        b.state = "frames"
        b.add(pos, ts, text)
        st.builder = b

    def _close(self, container: str, stream: str, st: _StreamState, append) -> None:
        """Emit the event being built, then the records that were interleaved in it."""
        b = st.builder
        st.builder = None
        assert b is not None
        if b.state in ("node_src", "node_exc"):  # a `file.js:NN` line no Node.js error followed
            for n, text in enumerate(b.head):
                if text.strip():
                    append(Event(container, stream, LINE, [text], b.first_pos + n, b.first_pos + n, b.ts,
                                 origin=st.origin))
            return
        append(b.event(container, stream, st.origin))
        for event in b.interleaved:
            append(event)

    def _step(self, container, stream, st: _StreamState, pos, ts, text, append) -> None:
        b = st.builder
        state = b.state
        if self.merged and _FOREIGN.match(text):
            # A request line of the other stream landed inside: an event of its own.
            append(Event(container, stream, LINE, [text], pos, pos, ts, origin=st.origin))
            b.foreign_run += 1
            if b.foreign_run > MAX_FOREIGN_RUN:
                self._close(container, stream, st, append)
            return
        b.foreign_run = 0

        if state in NODE_STATES:
            self._node_step(container, stream, st, pos, ts, text, append)
            return

        if state == "held":
            if _TB_LINE.match(text):
                self._start_tb(st, pos, ts, text, header=b)
            elif self._is_group_start(text):
                self._start_tb(st, pos, ts, text, header=b)
                b.state = "group"
            elif text and not text.isspace() and not is_header(text) and b.continues(text):
                b.add(pos, ts, text)  # the record's message goes on
                b.continuation += 1
            else:
                self._close(container, stream, st, append)
                self._line(container, stream, st, pos, ts, text, append)  # a fresh start
            return

        if state == "frames":
            if text.startswith(" "):
                self._frame_line(b, pos, ts, text)
            elif not text:
                b.add(pos, ts, text)
            elif _TB_LINE.match(text) and not b.frame_lines and len(b.head) <= 2:
                b.add(pos, ts, text)  # "ERROR:    Traceback" after its record: same block
            elif is_header(text) or not _EXC.match(text):
                # Cannot be this traceback's exception line: another record
                # interleaved (merged streams, another thread) or a cut-off traceback.
                event = Event(container, stream, LINE, [text], pos, pos, ts, origin=st.origin)
                if self.merged or len(b.interleaved) >= MAX_FOREIGN_RUN:
                    append(event)
                else:
                    # Live: held until the traceback closes, so a checkpoint (which resumes
                    # at the traceback's first line) never re-reads an emitted line.
                    b.interleaved.append(event)
            else:
                b.add(pos, ts, text)
                b.add_exception(text, 0)
                b.state = "after_exc"
                b.message_starts(text)
            return

        if state == "group":
            if _GROUP_LINE.match(text) and not self._is_group_start(text):
                self._group_line(b, pos, ts, text)
                return
            state = "after_exc"  # the group block ended; what follows is like after an exception
            b.state = state
            b.message_starts("")

        if state == "after_exc":
            if not text:
                b.add(pos, ts, text)
                b.state = "blank"
            elif (is_header(text) or _TB_LINE.match(text) or self._is_group_start(text)
                  or not b.continues(text)):
                self._close(container, stream, st, append)
                self._line(container, stream, st, pos, ts, text, append)  # a fresh start
            else:
                b.add(pos, ts, text)
                b.continue_message(text)
            return

        if state == "blank":
            if _CONTEXT_FRAME.match(text) and b.exceptions:
                # FastAPI's request errors end their text with a blank line and the endpoint's place
                # (`  File ".../routers/x.py", line N, in f` and `    POST /path`): the message goes on.
                b.add(pos, ts, text)
                b.continue_message(text)
                b.state = "after_exc"
            elif text in CHAIN:
                b.add(pos, ts, text)
                b.state = "chain"
            elif not text:
                b.add(pos, ts, text)
            else:
                self._close(container, stream, st, append)
                self._line(container, stream, st, pos, ts, text, append)  # a fresh start
            return

        if state == "chain":
            if not text:
                b.add(pos, ts, text)
            elif _TB_LINE.match(text):
                b.add(pos, ts, text)
                b.state = "frames"
            elif self._is_group_start(text):
                b.add(pos, ts, text)
                b.state = "group"
            elif _EXC.match(text) and not is_header(text):
                b.add(pos, ts, text)  # a chained exception with no frames
                b.add_exception(text, 0)
                b.state = "after_exc"
                b.message_starts(text)
            else:
                self._close(container, stream, st, append)
                self._line(container, stream, st, pos, ts, text, append)  # a fresh start

    def _node_step(self, container, stream, st: _StreamState, pos, ts, text, append) -> None:
        """A Node.js crash: header, source and caret, error line, frames, properties, version."""
        b = st.builder
        state = b.state
        if state == "node_src":
            if not text.strip():
                b.state = "node_exc"
            b.add(pos, ts, text)  # the source line, its caret, the blank line before the error
            if len(b.head) > 4 and b.state == "node_src":
                b.state = "node_exc"  # no blank line: the error comes next, or this is no crash
            return
        if state == "node_exc":
            m = _NODE_EXC.match(text)
            if not text.strip():
                b.add(pos, ts, text)
            elif m is not None and not is_header(text):
                b.add(pos, ts, text)
                b.exceptions.append(ExceptionInfo(m[1] or m[3], m[2] or ""))
                b.depth_exc.append(0)
                b.state = "node_frames"
            else:
                self._close(container, stream, st, append)
                self._line(container, stream, st, pos, ts, text, append)
            return
        if state == "node_frames" and _NODE_AT.match(text):
            b.add(pos, ts, text)
            if len(b.frame_lines) < 256:
                b.frame_lines.append((text.removesuffix(" {"), ""))
            if text.endswith(" {"):
                b.state = "node_props"  # the error's own properties follow
            return
        if state == "node_frames" and text.strip().startswith("... ") and text.strip().endswith("..."):
            b.add(pos, ts, text)  # "... 2 lines matching cause stack trace ..."
            return
        if state == "node_props":
            b.add(pos, ts, text)
            if text.strip() == "}":
                b.state = "node_tail"
            elif b.continuation < MAX_CONTINUATION:
                b.continue_message(text)
            return
        if not text.strip():
            b.add(pos, ts, text)
            b.state = "node_tail"
        elif _NODE_END.match(text):
            b.add(pos, ts, text)
            self._close(container, stream, st, append)
        else:
            self._close(container, stream, st, append)
            self._line(container, stream, st, pos, ts, text, append)

    @staticmethod
    def _is_group_start(text: str) -> bool:
        return text.endswith(GROUP_START) and text.lstrip().startswith("+ ")

    @staticmethod
    def _frame_line(b: _Builder, pos: int, ts: int, text: str) -> None:
        b.add(pos, ts, text)
        _record_frame(b, text)

    def _group_line(self, b: _Builder, pos: int, ts: int, text: str) -> None:
        b.add(pos, ts, text)
        m = _GROUP_PREFIX.match(text)
        if m is None or text.lstrip().startswith("+"):
            return  # a separator such as "+-+---- 1 ----"
        inner = text[m.end():]
        if inner.startswith(" "):
            _record_frame(b, inner)
            return
        if not inner or inner in CHAIN or _TB_LINE.match(inner) or inner.endswith(GROUP_START):
            return
        if _EXC.match(inner):
            b.add_exception(inner, len(m[1]) // 2)


def _record_frame(b: _Builder, text: str) -> None:
    """Keep `File ...` lines with the code line under them (caret lines skipped)."""
    stripped = text.lstrip()
    if stripped.startswith('File "'):
        if len(b.frame_lines) < 256:
            b.frame_lines.append((text, ""))
    elif b.frame_lines and not b.frame_lines[-1][1] and not stripped.startswith(("^", "~")):
        b.frame_lines[-1] = (b.frame_lines[-1][0], text)
