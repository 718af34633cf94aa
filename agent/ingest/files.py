"""Follow a bot's log files like `tail -F`: errors.log and logs_*.log in its logs/ folder.

One thread polls every followed file: new bytes are read from the open file,
so a file renamed away by rotation is read to its end before the new one under
the same name is opened; a file that shrank was truncated and is read again
from its start; new files appear within a few seconds. Each line's position is
the byte offset of its start, and each file has its own checkpoint (device,
inode, offset) in the state file: a restart resumes exactly there while the
file is the same one.

Lines go to the sink; a file's position is stored once the sink acknowledged the
lines before it.

A bot writes its last words (the failure before its logging is set up) to
errors.log just before it exits: `drain` reads everything that is there, at
once, so the death that follows is told with them.

The bots folder itself (MEDIC_BOTS_DIR) is looked at on every poll: when it is gone
(removed, renamed away, a volume not mounted) the bots' log files cannot be read, which is
said once in the agent's log and in /healthz while it lasts, and once more when it is back.
A folder put back in its place may be another one holding copies of the same files: a file
whose first bytes and the bytes before the position read are the ones already read is the
same log, followed on from there, so nothing old is read again as new.

A bot owns its logs/ folder and runs user scripts: nothing is read there but regular files of
its own (`confined`: no link is followed from the bots folder down, no open blocks). A name that is
refused (a link to a key file or to another bot's log, a FIFO, a hard link) is said once in the
agent's log, by its escaped name, and never read.

One thread does every open and read; the others only hand it bots to watch, forget or drain and
wait for a drain within a bound, so a file system that hangs holds up nobody else, and a pass that
has not completed for `stuck_after` seconds is said in /healthz, naming what it was reading.

A line's time is when the bot wrote it, not when it was read: a record's own
`YYYY-MM-DD HH:MM:SS,mmm` (the bot's local time, turned into UTC by the file's
clock offset, learned from its newest record and its modification time), and a
traceback's lines take their record's time. A check that begins after a line
was written never counts it, however late the poll read it (a file of an earlier
run of the same bot, say).
"""

from __future__ import annotations

import calendar
import contextlib
import logging
import os
import re
import stat
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO

from agent.component import Loop
from agent.events import BOT, ERRORS, LOG, Origin
from agent.ingest import confined
from agent.ingest.assemble import Item
from agent.ingest.source import Ack, Close, Lines, Sink
from agent.state import Checkpoints

log = logging.getLogger(__name__)
FILE = "file"  # the checkpoints' source name
LOG_FILE = re.compile(r"^(?:errors\.log|logs_[A-Za-z0-9_.-]+\.log)$")
READ_SIZE = 256 * 1024
MAX_READ = 4 * 1024 * 1024  # per file and poll: one noisy file cannot starve the others
FIRST_READ = 1024 * 1024  # a file met for the first time is replayed from at most this far back
ASCTIME = re.compile(rb"^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d),(\d{3}) ")
ZONE_STEP = 900 * 10**9  # time zones are whole quarter hours from UTC
CLOCK_TAIL = 64 * 1024  # how much of a file's end is read to learn its clock
SAME = 4096  # bytes compared at a file's start and before the position read, to know a copy
DRAIN_WAIT = 5.0  # how long a bot's end waits for the reading of its files' last lines


@dataclass
class _File:
    path: Path
    origin: Origin
    fh: BinaryIO
    dev: int
    ino: int
    offset: int  # where the next read starts
    ts: int = 0  # ns; lines of a catch-up read get the file's mtime, live ones the time read
    buf: bytes = b""  # an unfinished last line
    clock: int | None = None  # ns to add to a record's local time to make it UTC (None: not known yet)
    last: int = 0  # the time of the latest record read (its traceback lines share it)
    ack: Ack | None = None  # stores the position in this very file, once the sink handled it


@dataclass
class _Bot:
    name: str
    folder: Path
    stack: str
    fresh: bool  # created after the agent started: every file from its start
    files: dict[str, _File] = field(default_factory=dict)
    scanned: float = 0.0
    refused: dict[str, str] = field(default_factory=dict)  # name ("" the folder) -> why, said once


class LogFiles:
    def __init__(self, sink: Sink, *, checkpoints: Checkpoints | None = None,
                 catchup_window: float = 600.0, max_line: int = 64 * 1024, interval: float = 1.0,
                 scan_every: float = 5.0, root: Path | None = None, stuck_after: float | None = None) -> None:
        """`root`: the bots folder the bots' folders are in, watched for going away; nothing below
        it is reached through a link. `stuck_after`: seconds a pass may take before /healthz says so."""
        self.name = "bot-log-files"
        self.root = root
        self.gone: tuple[float, str] | None = None  # since (monotonic), and why: the root is gone
        self._root_id: tuple[int, int] | None = None
        self.sink = sink
        self.checkpoints = checkpoints
        self.catchup_window = catchup_window
        self.max_line = max_line
        self.interval = interval
        self.scan_every = scan_every
        self.lines = 0
        self.stuck_after = stuck_after if stuck_after is not None else max(30.0, 10 * interval)
        # Guards only the lists below, never held during I/O: every open and read is the loop's
        # (or, before the loop runs and after it stopped, the caller's).
        self._lock = threading.Lock()
        self._bots: dict[str, _Bot] = {}
        self._drains: dict[str, threading.Event] = {}  # bots whose files the next pass reads to the end
        self._retired: list[_Bot] = []  # unwatched while the loop runs: their files closed by it
        self._pass: float | None = None  # when the running pass began (monotonic)
        self._at = ""  # what the running pass is reading
        self._loop = Loop(self.name, self.poll_once, every=interval)

    # -- control (any thread) -------------------------------------------------------------------
    def watch(self, bot: str, folder: Path, *, fresh: bool, stack: str) -> None:
        with self._lock:
            if bot in self._bots:
                return
            b = self._bots[bot] = _Bot(bot, folder, stack, fresh)
        if self._loop.alive:
            self._loop.wake()  # its first pass opens the files
        else:
            self._poll(b, time.monotonic(), scan=True)

    def drain(self, bot: str, timeout: float = DRAIN_WAIT) -> bool:
        """Read what the bot's files hold now, its unfinished last line too (it has stopped).
        Waits for the loop's pass at most `timeout` seconds; whether it was read."""
        with self._lock:
            b = self._bots.get(bot)
            if b is None:
                return True
            done = self._drains.setdefault(bot, threading.Event()) if self._loop.alive else None
        if done is None:
            self._poll(b, time.monotonic(), scan=True, final=True)
            return True
        self._loop.wake()
        if done.wait(timeout):
            return True
        log.warning("the log files of bot %s were not read to their end within %.0f s (the reading is"
                    " stuck at %s): its end is told without them", bot, timeout, self._at or "?")
        return False

    def unwatch(self, bot: str) -> None:
        with self._lock:
            b = self._bots.pop(bot, None)
            if b is not None and self._loop.alive:
                self._retired.append(b)
                return
        if b is not None:
            _close(b)

    def watched(self) -> list[str]:
        with self._lock:
            return list(self._bots)

    def health(self) -> list[str]:
        """The bots folder gone, or a pass stuck: no bot's failure written to its log files can be seen."""
        problems = []
        gone, began = self.gone, self._pass
        if gone is not None:
            problems.append(f"bots folder {self.root} is gone for {time.monotonic() - gone[0]:.0f} s"
                            f" ({gone[1]}): the bots' log files cannot be read")
        if began is not None and time.monotonic() - began > self.stuck_after:
            problems.append(f"source {self.name} is stuck: a pass over the bots' log files has not completed"
                            f" for {time.monotonic() - began:.0f} s (reading {self._at or '?'}): failures"
                            " written there go unseen")
        return problems

    def start(self) -> None:
        self._loop.start()

    def stop(self, deadline: float) -> None:
        self._loop.stop(deadline)
        for bot in self.watched():
            self.unwatch(bot)
        if not self._loop.alive:
            with self._lock:
                retired, self._retired = self._retired, []
            for b in retired:
                _close(b)

    # -- the loop ---------------------------------------------------------------------------------
    def poll_once(self) -> None:
        """Read what is new in every followed file (and look for new files when it is time)."""
        now = self._pass = time.monotonic()
        self._at = "the bots folder"
        try:
            self._look_at_root(now)
            with self._lock:
                bots = list(self._bots.values())
                drains, self._drains = self._drains, {}
                retired, self._retired = self._retired, []
            for b in retired:
                _close(b)
            for b in bots:
                final = b.name in drains
                try:
                    self._poll(b, now, scan=final or now - b.scanned >= self.scan_every, final=final)
                except Exception:
                    log.exception("following the log files of %s failed", b.name)
            for done in drains.values():
                done.set()
        finally:
            self._pass, self._at = None, ""

    def _look_at_root(self, now: float) -> None:
        """Is the bots folder there? Each change is said once."""
        if self.root is None:
            return
        try:
            st = os.stat(self.root)
            problem = None if stat.S_ISDIR(st.st_mode) else "not a folder"
        except OSError as exc:
            problem = exc.strerror or type(exc).__name__
        if problem is not None:
            if self.gone is None:
                self.gone = (now, problem)
                log.warning("bots folder %s is gone (%s): the bots' log files cannot be read, so failures"
                            " they write there go unseen until it is back (their consoles are still"
                            " followed)", self.root, problem)
            return
        ident = (st.st_dev, st.st_ino)
        if self.gone is not None:
            other = self._root_id is not None and ident != self._root_id
            log.warning("bots folder %s is back after %.0f s%s: following the bots' log files again",
                        self.root, now - self.gone[0], " (another folder: each file followed on from"
                        " where it was when it is the same log)" if other else "")
            self.gone = None
        self._root_id = ident

    def _poll(self, b: _Bot, now: float, *, scan: bool, final: bool = False) -> None:
        self._at = f"{b.name} logs/"
        try:
            folder = confined.open_folder(self.root, b.folder)
        except confined.Refused as exc:
            self._refuse(b, "", str(exc))
            folder = None
        except OSError:
            folder = None
        else:
            b.refused.pop("", None)
        try:
            if scan and folder is not None:
                b.scanned = now
                try:
                    names = [e.name for e in os.scandir(folder) if LOG_FILE.fullmatch(e.name)]
                except OSError:
                    names = []
                for name in names:
                    if name not in b.files:
                        self._open(b, folder, name)
            for name, f in list(b.files.items()):
                self._at = f"{b.name} logs/{name}"
                self._read(f, final)
                if folder is not None:
                    self._follow_name(b, folder, name, f, final)
        finally:
            if folder is not None:
                os.close(folder)

    def _refuse(self, b: _Bot, name: str, why: str) -> None:
        """Said once for each name and reason; nothing of it is read."""
        if b.refused.get(name) == why:
            return
        b.refused[name] = why
        what = f"the file {name!a} in" if name else "the folder"
        log.warning("bot %s: %s its logs/ is refused, %s: nothing of it is read (a bot's log files"
                    " must be regular files of its own logs/ folder)", b.name, what, why)

    def _open(self, b: _Bot, folder: int, name: str, *, from_start: bool = False) -> None:
        path = b.folder / name
        try:
            fh, st = confined.open_file(folder, name)
        except confined.Refused as exc:
            self._refuse(b, name, str(exc))
            return
        except OSError:
            return
        b.refused.pop(name, None)
        channel = ERRORS if name == "errors.log" else LOG
        origin = Origin(b.name, channel, BOT, b.stack, file=name)
        offset, ts, mid_line = 0, 0, False
        cp = self.checkpoints.get(FILE, str(path)) if self.checkpoints is not None else None
        if from_start or b.fresh:
            pass
        elif cp is not None and (cp["dev"], cp["ino"]) == (st.st_dev, st.st_ino) \
                and cp["offset"] <= st.st_size:
            offset = cp["offset"]
        elif time.time() - st.st_mtime > self.catchup_window:
            offset = st.st_size  # nothing recent in it: only what comes next
        else:
            offset, ts = max(0, st.st_size - FIRST_READ), st.st_mtime_ns
            mid_line = offset > 0
        fh.seek(offset)
        if mid_line:  # a read that starts in the middle of a file starts at its next whole line
            offset += len(fh.readline())
        ack = partial(self._handled, str(path), b.name, st.st_dev, st.st_ino) \
            if self.checkpoints is not None else None
        b.files[name] = _File(path, origin, fh, st.st_dev, st.st_ino, offset, ts,
                              clock=_clock(fh, st), ack=ack)

    def _handled(self, path: str, container: str, dev: int, ino: int, offset: int) -> None:
        """The sink's acknowledgement (in its thread): lines before `offset` of that file are handled."""
        assert self.checkpoints is not None
        self.checkpoints.put(FILE, path, {"container": container, "dev": dev, "ino": ino, "offset": offset})

    def _read(self, f: _File, final: bool) -> None:
        got = 0
        while got < MAX_READ:
            try:
                chunk = f.fh.read(READ_SIZE)
            except OSError:
                break
            if not chunk:
                break
            got += len(chunk)
            self._lines(f, chunk)
        f.ts = 0  # a catch-up read is done: what comes next is live
        if final and f.buf:
            self._emit(f, [self._item(f, f.offset - len(f.buf), f.buf)], f.offset)
            f.buf = b""

    def _lines(self, f: _File, chunk: bytes) -> None:
        data = f.buf + chunk
        start = f.offset - len(f.buf)  # where data starts in the file
        f.offset += len(chunk)
        cut = data.rfind(b"\n")
        if cut < 0:
            f.buf = data
            if len(data) > self.max_line * 2:  # a runaway line: what is there is one line
                self._emit(f, [self._item(f, start, data)], f.offset)
                f.buf = b""
            return
        items: list[Item] = []
        pos = start
        for raw in data[:cut].split(b"\n"):
            items.append(self._item(f, pos, raw))
            pos += len(raw) + 1
        f.buf = data[cut + 1:]
        self._emit(f, items, pos)

    def _item(self, f: _File, pos: int, raw: bytes) -> Item:
        body = raw[:-1] if raw.endswith(b"\r") else raw
        text = body[: self.max_line].decode("utf-8", "replace")
        if len(body) > self.max_line:
            text += f" …[truncated {len(body) - self.max_line} bytes]"
        read = f.ts or time.time_ns()
        local = _local_ns(body)
        if local is not None:
            if f.clock is None:  # a file that was empty when opened: its first record, just written
                f.clock = _zone(read - local)
            f.last = min(local + f.clock, read)
        return (pos, f.last or read, text)

    def _emit(self, f: _File, items: list[Item], next_offset: int) -> None:
        self.lines += len(items)
        self.sink.put(Lines(f.origin.container, f.origin.channel, f.origin, items, next_offset, f.ack))

    def _follow_name(self, b: _Bot, folder: int, name: str, f: _File, final: bool) -> None:
        """The name may now be another file (rotation) or a shorter one (truncation)."""
        try:
            st = os.stat(name, dir_fd=folder, follow_symlinks=False)
        except OSError:
            return  # gone for now: what was open has been read; the name may come back
        if (st.st_dev, st.st_ino) != (f.dev, f.ino):
            self._read(f, final=False)  # the rest of the old file
            if self._continued(b, folder, name, f, st):
                self._read(f, final)
                return
            self._read(f, final=True)  # its unfinished last line, then the new one from its start
            with contextlib.suppress(OSError):
                f.fh.close()
            del b.files[name]
            self.sink.put(Close(f.origin.container, f.origin))
            self._open(b, folder, name, from_start=True)
            new = b.files.get(name)
            if new is not None:
                self._read(new, final)
        elif st.st_size < f.offset:
            self.sink.put(Close(f.origin.container, f.origin))
            f.fh.seek(0)
            f.offset, f.buf, f.ts = 0, b"", 0
            self._read(f, final)


    def _continued(self, b: _Bot, folder: int, name: str, f: _File, st: os.stat_result) -> bool:
        """The name is now a copy of the file read so far (its folder replaced by another holding
        the same files): follow the copy on from the same offset."""
        if f.offset == 0 or st.st_size < f.offset or not stat.S_ISREG(st.st_mode):
            return False
        try:
            fh, _ = confined.open_file(folder, name)
        except (confined.Refused, OSError):
            return False  # said, if refused, when it is opened as a new file
        try:
            new = os.fstat(fh.fileno())
            n = min(SAME, f.offset)
            same = (new.st_dev, new.st_ino) == (st.st_dev, st.st_ino) and all(
                os.pread(fh.fileno(), n, at) == os.pread(f.fh.fileno(), n, at) for at in (0, f.offset - n))
        except OSError:
            same = False
        if not same:
            fh.close()
            return False
        with contextlib.suppress(OSError):
            f.fh.close()
        fh.seek(f.offset)
        f.fh, f.dev, f.ino = fh, new.st_dev, new.st_ino
        f.ack = partial(self._handled, str(f.path), b.name, new.st_dev, new.st_ino) \
            if self.checkpoints is not None else None
        log.info("%s is another file with the same content (its folder was replaced): followed on from"
                 " byte %d", f.path, f.offset)
        return True


def _close(b: _Bot) -> None:
    for f in b.files.values():
        with contextlib.suppress(OSError):
            f.fh.close()


def _local_ns(line: bytes) -> int | None:
    """A record's own time (the bot's local clock, in ns as if it were UTC), if it starts with one."""
    m = ASCTIME.match(line)
    if m is None:
        return None
    try:
        y, mo, d, h, mi, sec, ms = (int(x) for x in m.groups())
        return (calendar.timegm((y, mo, d, h, mi, sec)) * 1000 + ms) * 10**6
    except (ValueError, OverflowError):
        return None


def _zone(diff_ns: int) -> int:
    return round(diff_ns / ZONE_STEP) * ZONE_STEP


def _clock(fh: BinaryIO, st: os.stat_result) -> int | None:
    """The file's clock offset: its newest record was written when the file was last modified."""
    if st.st_size == 0:
        return None
    try:
        tail = os.pread(fh.fileno(), CLOCK_TAIL, max(0, st.st_size - CLOCK_TAIL))
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        local = _local_ns(line)
        if local is not None:
            return _zone(st.st_mtime_ns - local)
    return None
