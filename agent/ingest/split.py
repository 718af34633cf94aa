"""Bytes to lines: Docker's multiplexed log stream, TTY streams and timestamps.

Docker (json-file, local, journald drivers) stores a line longer than 16 KiB as
several partial entries; with ``timestamps=1`` each entry starts with its own
RFC 3339 timestamp. Partial entries are merged back here, ``\\r\\n`` of TTY
containers is trimmed, invalid UTF-8 is replaced (never fatal) and a line is
capped at ``max_line`` bytes with a marker saying how much was cut.

A TTY is a terminal: programs that think they draw on one (a legacy bot's
full-screen text UI) write escape sequences and carriage returns. Those are
taken out of TTY lines before anything matches them.
"""

from __future__ import annotations

import calendar
import logging
import re
import struct
import time
from collections.abc import Callable

log = logging.getLogger(__name__)
STDOUT, STDERR = "stdout", "stderr"
_STREAMS = {1: STDOUT, 2: STDERR}
_HEADER = struct.Struct(">BxxxL")
PARTIAL_SIZE = 16 * 1024  # Docker splits log entries at 16 KiB
MAX_FRAME = 1024 * 1024  # no log frame is this big: the stream is not what we think
DEFAULT_MAX_LINE = 64 * 1024
TRUNCATED = " …[truncated {} bytes]"

# (ts_ns, text)
Line = tuple[int, str]
Sink = Callable[[str, list[Line]], None]

# ECMA-48 escape sequences: CSI (colours, cursor moves, modes), OSC (titles), the string
# commands (DCS, SOS, PM, APC) and the two-byte forms.
_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?"
                     r"|[ -/]*[0-~])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_terminal(text: str) -> str:
    """What a terminal would show of one line: escape sequences and other control characters
    out, and text after a carriage return written over the start of the line."""
    if "\x1b" in text:
        text = _ESCAPE.sub("", text)
    text = text.rstrip("\r")
    if "\r" in text:
        shown = ""
        for part in text.split("\r"):
            shown = part + shown[len(part):]
        text = shown
    return _CONTROL.sub("", text)


_ts_cache: dict[bytes, int] = {}
_TS_RX = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z ")


def parse_ts(raw: bytes) -> int | None:
    """RFC 3339 UTC timestamp as Docker writes it (``...T01:49:26.373741147Z``) to ns;
    None when it is not a real instant (``2026-02-30T25:61:61Z``): such a line has no timestamp."""
    head = raw[:19]
    secs = _ts_cache.get(head)
    try:
        if secs is None:
            secs = calendar.timegm(time.strptime(head.decode("ascii"), "%Y-%m-%dT%H:%M:%S"))
            if len(_ts_cache) > 4096:
                _ts_cache.clear()
            _ts_cache[head] = secs
        if len(raw) == 30 and raw[19:20] == b".":  # the usual case: nine digits of fraction
            return secs * 1_000_000_000 + int(raw[20:29])
        frac = raw[20:-1] if len(raw) > 20 and raw[19:20] == b"." else b""
        if (frac and not frac.isdigit()) or raw[-1:] != b"Z":
            return None
        return secs * 1_000_000_000 + (int(frac.ljust(9, b"0")[:9]) if frac else 0)
    except (ValueError, OverflowError, UnicodeDecodeError):
        return None


def format_ts(ns: int) -> str:
    """ns to the form Docker's ``since`` parameter takes: ``seconds.nanoseconds``."""
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


class _Partial:
    """One stream's unfinished line: its first timestamp, pieces, and bytes cut."""

    __slots__ = ("cut", "parts", "size", "ts")

    def __init__(self) -> None:
        self.ts = 0
        self.parts: list[bytes] = []
        self.size = 0
        self.cut = 0


class LineSplitter:
    """Turns a Docker log response (timestamps on) into lines per stream.

    ``feed(chunk)`` accepts bytes exactly as read from the socket, in any chunk
    sizes; complete lines go to ``sink(stream, [(ts_ns, text), ...])`` once per
    chunk, so downstream work is batched.
    """

    def __init__(self, sink: Sink, *, tty: bool = False, max_line: int = DEFAULT_MAX_LINE) -> None:
        self.sink = sink
        self.tty = tty
        self.max_line = max_line
        self._buf = bytearray()
        self._partial = {STDOUT: _Partial(), STDERR: _Partial()}

    # -- entry points --------------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        if self.tty:
            self._feed_raw(chunk)
        else:
            self._feed_multiplexed(chunk)

    def close(self) -> None:
        """End of stream: an unfinished line is emitted as it is."""
        if self.tty and self._buf:
            self._entries(STDOUT, [bytes(self._buf) + b"\n"])
            self._buf.clear()
        for stream, part in self._partial.items():
            if part.parts:
                self.sink(stream, [self._finish(part, b"")])

    # -- multiplexed: 8-byte header (stream, size) per entry ------------------------
    def _feed_multiplexed(self, chunk: bytes) -> None:
        """The hot path: one pass over the frames, whole lines decoded straight from the chunk."""
        if self._buf:
            data = bytes(self._buf) + chunk
            self._buf.clear()
        else:
            data = chunk
        pos, end = 0, len(data)
        out: dict[str, list[Line]] = {STDOUT: [], STDERR: []}
        unpack = _HEADER.unpack_from
        cache = _ts_cache
        partial = self._partial
        max_line = self.max_line
        while end - pos >= 8:
            kind, size = unpack(data, pos)
            if size > MAX_FRAME:  # corrupt: drop what is buffered rather than grow
                log.warning("log stream out of step (a %d-byte frame): %d bytes dropped", size, end - pos)
                pos = end
                break
            start = pos + 8
            stop = start + size
            if stop > end:
                break
            pos = stop
            stream = _STREAMS.get(kind)
            if stream is None:
                continue
            secs = cache.get(data[start:start + 19])
            if (secs is not None and data[start + 30:start + 31] == b" " and data[stop - 1] == 10
                    and not partial[stream].parts and size - 31 <= max_line + 2):
                # A whole line with the usual nine-digit timestamp: no copies but the text.
                ts = secs * 1_000_000_000 + int(data[start + 20:start + 29])
                body_end = stop - 1
                while body_end > start + 31 and data[body_end - 1] == 13:
                    body_end -= 1  # "\r\n", and "\r\r\n" from a text layer that added one more
                if body_end - start - 31 > max_line:
                    out[stream].append(self._text_line(ts, data[start + 31:stop]))
                else:
                    out[stream].append((ts, data[start + 31:body_end].decode("utf-8", "replace")))
            else:
                self._entries(stream, [data[start:stop]], out[stream])
        if pos < end:
            self._buf += data[pos:]
        for stream, lines in out.items():
            if lines:
                self.sink(stream, lines)

    def _text_line(self, ts: int, body: bytes) -> Line:
        return (ts, self._text(body))

    # -- raw (TTY): entries separated by newlines only ------------------------------
    def _feed_raw(self, chunk: bytes) -> None:
        buf = self._buf
        buf += chunk
        cut = buf.rfind(b"\n")
        if cut < 0:
            if len(buf) > self.max_line + PARTIAL_SIZE:  # runaway line with no newline
                self._entries(STDOUT, [bytes(buf) + b"\n"])
                buf.clear()
            return
        data = bytes(buf[: cut + 1])
        del buf[: cut + 1]
        # Newlines only: a carriage return inside a terminal line does not end the entry.
        entries = [e + b"\n" for e in data[:-1].split(b"\n")]
        # A partial entry has no newline, so the next entry's timestamp sits
        # inside the line at the 16 KiB boundary: take it out.
        fixed = [self._unsplit_tty(e) if len(e) > PARTIAL_SIZE else e for e in entries]
        self._entries(STDOUT, fixed)

    @staticmethod
    def _unsplit_tty(entry: bytes) -> bytes:
        pos = entry.find(b" ") + 1
        out = bytearray(entry[:pos])
        while True:
            nxt = pos + PARTIAL_SIZE
            m = _TS_RX.match(entry, nxt) if nxt < len(entry) else None
            if m is None:
                out += entry[pos:]
                return bytes(out)
            out += entry[pos:nxt]
            pos = m.end()

    # -- shared -----------------------------------------------------------------------
    def _entries(self, stream: str, entries: list[bytes], into: list[Line] | None = None) -> None:
        lines: list[Line] = [] if into is None else into
        part = self._partial[stream]
        for entry in entries:
            sp = entry.find(b" ", 0, 40)
            stamp = parse_ts(entry[:sp]) if sp >= 20 and entry[sp - 1 : sp] == b"Z" else None
            if stamp is None:  # no timestamp (should not happen): the entry is all text
                ts, body = 0, entry
            else:
                ts, body = stamp, entry[sp + 1 :]
            # Only an entry of exactly 16 KiB without a newline is a piece of a longer line;
            # a shorter one is a last line its process never ended (it exited mid-write),
            # and must not run into the next start's first line.
            if body.endswith(b"\n") or len(body) != PARTIAL_SIZE:
                if part.parts:
                    lines.append(self._finish(part, body))
                else:
                    lines.append((ts, self._text(body)))
            else:  # partial entry: the line goes on in the next entry
                if not part.parts:
                    part.ts = ts
                self._add(part, body)
        if lines and into is None:
            self.sink(stream, lines)

    def _add(self, part: _Partial, body: bytes) -> None:
        room = self.max_line - part.size
        if room > 0:
            piece = body[:room]
            part.parts.append(piece)
            part.size += len(piece)
        part.cut += max(0, len(body) - max(room, 0))

    def _finish(self, part: _Partial, body: bytes) -> Line:
        self._add(part, body[:-1] if body.endswith(b"\n") else body)
        text = self._text(b"".join(part.parts), extra_cut=part.cut)
        line = (part.ts, text)
        part.parts, part.size, part.cut = [], 0, 0
        return line

    def _text(self, body: bytes, extra_cut: int = 0) -> str:
        if body.endswith(b"\n"):
            body = body[:-1]
        if body.endswith(b"\r"):
            body = body.rstrip(b"\r")
        cut = extra_cut
        if len(body) > self.max_line:
            cut += len(body) - self.max_line
            body = body[: self.max_line]
        text = body.decode("utf-8", "replace")
        if self.tty and ("\x1b" in text or "\r" in text or not text.isprintable()):
            text = clean_terminal(text)
        return text + TRUNCATED.format(cut) if cut else text


class Dechunker:
    """HTTP/1.1 chunked transfer decoding over large reads.

    The engine writes each log entry as its own HTTP chunk; reading chunk by chunk
    through http.client costs a Python call per line. Reading the socket's buffer in
    large blocks and decoding the framing here hands the splitter many lines at once.
    """

    def __init__(self) -> None:
        self._tail = b""
        self._remaining = 0
        self._crlf = False
        self.done = False

    def feed(self, data: bytes) -> bytes:
        if self._tail:
            data = self._tail + data
            self._tail = b""
        out: list[bytes] = []
        pos, n = 0, len(data)
        while pos < n:
            if self._remaining:
                take = min(self._remaining, n - pos)
                out.append(data[pos:pos + take])
                pos += take
                self._remaining -= take
                if self._remaining:
                    break
                self._crlf = True
            if self._crlf:
                if n - pos < 2:
                    break
                pos += 2
                self._crlf = False
            end = data.find(b"\r\n", pos)
            if end < 0:
                break
            size = int(data[pos:end].split(b";", 1)[0] or b"0", 16)
            pos = end + 2
            if size == 0:
                self.done = True
                break
            self._remaining = size
        if not self.done and pos < n:
            self._tail = data[pos:]
        return b"".join(out)
