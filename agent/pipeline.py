"""The one consumer thread: lines from every source to the assembler, events on.

It owns the assembler (no locks on the hot path), closes what waited past its
grace when input pauses, and writes each source's checkpoint: per container
stream, or per followed file, the first position not yet part of an emitted
event, so a restart neither repeats a handled line nor loses one that was still
being assembled.

A bot's death (an exit event from the engine's life events) is handled after
every line the bot wrote before it: the bot's open events are closed first,
and the event carries the bot's last lines of each channel.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable

from agent.assemble import Assembler, Item
from agent.events import BOT, CONSOLE, ERRORS, LOG, Event, Origin
from agent.ingest.split import STDERR, STDOUT
from agent.names import DEFAULT_STACK
from agent.state import State, StateUnwritable

log = logging.getLogger(__name__)
EventHandler = Callable[[Event], None]
TAIL_LINES = 40  # a bot's last lines kept per channel: its death is matched with them
SHOWN_LINES = 6  # ... and the message shows the last few of each
TAIL_CHARS = 400
UNSAVED_MAX = 10_000
PROBE_EVERY = 10.0  # seconds between checks that the state file can still be written


class Pipeline:
    def __init__(self, handler: EventHandler, *, store: State | None = None,
                 assembler: Assembler | None = None, checkpoint_interval: float = 1.0,
                 tick: Callable[[float], None] | None = None, stack: str = DEFAULT_STACK,
                 max_queued: int = 0) -> None:
        """`max_queued`: batches that may wait (0: no bound); a source that gets ahead waits
        for the pipeline, so a flooding stack holds its own followers, never memory."""
        self.handler = handler
        self.stack = stack
        self.store = store
        self.assembler = assembler or Assembler()
        self.checkpoint_interval = checkpoint_interval
        self.tick = tick
        self._queue: queue.Queue = queue.Queue(max_queued)
        name = "pipeline" if stack == DEFAULT_STACK else f"pipeline-{stack}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._next: dict[str, dict[str, int]] = {}  # container -> stream -> last position + 1
        self._cid: dict[str, str] = {}
        self._origin: dict[tuple[str, str], Origin | None] = {}
        self._dirty: set[str] = set()
        self._files: dict[Origin, list] = {}  # origin -> [path, dev, ino, next offset]
        self._dirty_files: set[Origin] = set()
        self._tails: dict[tuple[str, str], deque[str]] = {}
        # Events whose handling found the state file unwritable, in order, until it can be written.
        self._unsaved: deque[Event] = deque(maxlen=UNSAVED_MAX)
        self.dropped = 0  # events that did not fit there (a long outage of the state file)
        self.last_loop = time.monotonic()

    # -- the sink sources call (any thread) --------------------------------------------------
    def lines(self, container: str, container_id: str, stream: str, items: list[Item],
              origin: Origin | None = None) -> None:
        self._queue.put(("lines", container, container_id, stream, items, origin))

    def detached(self, container: str, container_id: str) -> None:
        self._queue.put(("lines", container, container_id, None, None, None))

    def event(self, event: Event, on_handled: Callable[[], None] | None = None) -> None:
        """A ready-made event (a recorded deploy exchange) for the same handler; `on_handled` is
        called once it was (so its source may move its checkpoint past it)."""
        self._queue.put(("event", event, on_handled))

    def file_lines(self, origin: Origin, path: str, dev: int, ino: int, items: list[Item],
                   next_offset: int) -> None:
        """Lines of a followed file; positions are byte offsets of the lines' starts, and
        `next_offset` is where the next line starts."""
        self._queue.put(("file", origin, path, dev, ino, items, next_offset))

    def file_reset(self, origin: Origin) -> None:
        """The file was truncated or replaced: what was open of it is closed as it is."""
        self._queue.put(("reset", origin))

    def exit(self, event: Event) -> None:
        """A bot's death, after every line it wrote before it (queued before this)."""
        self._queue.put(("exit", event))

    def forget(self, container: str) -> None:
        """A bot that is gone for good: its state goes too."""
        self._queue.put(("forget", container))

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Drain what is queued, close what is open, save the checkpoints."""
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)

    # -- the loop ------------------------------------------------------------------------------
    def _run(self) -> None:
        asm = self.assembler
        last_save = last_probe = time.monotonic()
        while True:
            now = time.monotonic()
            self.last_loop = now
            deadline = asm.next_deadline()
            wait = self.checkpoint_interval if deadline is None else max(0.0, deadline - now)
            try:
                msg = self._queue.get(timeout=min(wait, self.checkpoint_interval))
            except queue.Empty:
                msg = ()
            now = time.monotonic()
            if msg is None:
                self._emit(asm.flush())
                if not self._unsaved:
                    self._save(all_done=True)
                return
            if msg:
                try:
                    self._message(msg, now)
                except Exception:
                    log.exception("pipeline failed on a %s message", msg[0])
            self._emit(asm.due(now))
            if self.tick is not None:
                try:
                    self.tick(now)
                except Exception:
                    log.exception("pipeline tick failed")
            if now - last_save >= self.checkpoint_interval:
                if self.store is not None and (self.store.file.write_problem is not None
                                               or now - last_probe >= PROBE_EVERY):
                    # Even a quiet agent notices a state file it cannot write, and one that healed.
                    self.store.file.probe_write()
                    last_probe = now
                if self._unsaved:
                    self._handle_unsaved()
                if not self._unsaved:  # never a checkpoint past an event not yet handled
                    self._save()
                last_save = now

    def _message(self, msg: tuple, now: float) -> None:
        asm = self.assembler
        kind = msg[0]
        if kind == "event":
            self._emit([msg[1]])
            if msg[2] is not None:
                msg[2]()
        elif kind == "lines":
            _, container, cid, stream, items, origin = msg
            if self._cid.get(container) not in (None, cid):
                self._emit(asm.flush(container))  # a new container under the same name
                self._next.pop(container, None)
            self._cid[container] = cid
            if stream is None:
                self._emit(asm.flush(container))
            else:
                channel = origin.channel if origin is not None else stream
                self._origin[(container, stream)] = origin
                self._emit(asm.feed(container, channel, items, now, origin))
                self._next.setdefault(container, {})[stream] = items[-1][0] + 1
                if origin is not None and origin.role == BOT:
                    self._keep_tail(container, channel, items)
            self._dirty.add(container)
        elif kind == "file":
            _, origin, path, dev, ino, items, next_offset = msg
            self._emit(asm.feed(origin.container, origin.channel, items, now, origin))
            self._files[origin] = [path, dev, ino, next_offset]
            self._dirty_files.add(origin)
            if origin.role == BOT:
                self._keep_tail(origin.container, origin.channel, items)
        elif kind == "reset":
            self._emit(asm.flush_origin(msg[1]))
        elif kind == "exit":
            event: Event = msg[1]
            self._emit(asm.flush(event.container))
            self._emit([self._with_tails(event)])
        elif kind == "forget":
            container = msg[1]
            self._emit(asm.flush(container))
            asm.forget(container)
            for key in [k for k in self._tails if k[0] == container]:
                del self._tails[key]
            for origin in [o for o in self._files if o.container == container]:
                del self._files[origin]
                self._dirty_files.discard(origin)
            for key in [k for k in self._origin if k[0] == container]:
                del self._origin[key]

    def _keep_tail(self, container: str, channel: str, items: list[Item]) -> None:
        tail = self._tails.get((container, channel))
        if tail is None:
            tail = self._tails[(container, channel)] = deque(maxlen=TAIL_LINES)
        for _, _, text in items[-TAIL_LINES:]:
            if text and not text.isspace():
                tail.append(text[:TAIL_CHARS])

    def _with_tails(self, event: Event) -> Event:
        """The death's event, with the last lines of each channel of the bot."""
        data = event.data if event.data is not None else {}
        sections = []
        for channel, title in ((ERRORS, "logs/errors.log"), (CONSOLE, "console"), (LOG, "logs/logs_*.log")):
            lines = list(self._tails.get((event.container, channel), ()))
            data[f"last_{channel}"] = lines
            if lines:
                sections += [f"-- the end of its {title}:", *(x[:200] for x in lines[-SHOWN_LINES:])]
        event.data = data
        event.lines = [*event.lines[:1], *sections]
        return event

    def _emit(self, events: list[Event]) -> None:
        for event in events:
            if self._unsaved:  # keep their order: behind the ones waiting for the state file
                self._keep(event)
                continue
            try:
                self.handler(event)
            except StateUnwritable:
                self._keep(event)  # the store said so once; handled when it can be written
            except Exception:
                log.exception("event handler failed on %r", event)

    def _keep(self, event: Event) -> None:
        if len(self._unsaved) == self._unsaved.maxlen:
            self.dropped += 1
        self._unsaved.append(event)

    def _handle_unsaved(self) -> None:
        """The state file could not be written: try the waiting events again, in order."""
        if self.store is not None and self.store.file.write_problem is not None:
            return
        while self._unsaved:
            event = self._unsaved[0]
            try:
                self.handler(event)
            except StateUnwritable:
                return
            except Exception:
                log.exception("event handler failed on %r", event)
            self._unsaved.popleft()

    def _save(self, all_done: bool = False) -> None:
        if self.store is None:
            self._dirty.clear()
            self._dirty_files.clear()
            return
        for container in self._dirty:
            nxt = self._next.get(container, {})
            resume = {}
            for stream in (STDOUT, STDERR):
                pending = None if all_done else self._pending(container, stream)
                resume[stream] = pending if pending is not None else nxt.get(stream, 0)
            if not any(resume.values()):
                continue
            # A stream with nothing read yet resumes where the other one does.
            top = max(resume.values())
            position = {"container_id": self._cid[container], "stdout": resume[STDOUT] or top,
                        "stderr": resume[STDERR] or top}
            try:
                self.store.checkpoints(self.stack).put("container", container, position)
            except StateUnwritable:
                return  # said once by the store; the checkpoints stay dirty and are saved later
            except Exception:
                log.exception("saving the checkpoint of %s failed", container)
        self._dirty.clear()
        for origin in self._dirty_files:
            path, dev, ino, nxt = self._files[origin]
            pending = None if all_done else self.assembler.pending_first_pos(
                origin.container, origin.channel, origin)
            try:
                self.store.checkpoints(self.stack).put("file", path, {
                    "container": origin.container, "dev": dev, "ino": ino,
                    "offset": pending if pending is not None else nxt})
            except StateUnwritable:
                return  # said once by the store; saved later
            except Exception:
                log.exception("saving the checkpoint of %s failed", path)
        self._dirty_files.clear()

    def _pending(self, container: str, stream: str) -> int | None:
        """A container stream's held lines (assembled under its origin, when it has one)."""
        origin = self._origin.get((container, stream))
        channel = origin.channel if origin is not None else stream
        return self.assembler.pending_first_pos(container, channel, origin)
