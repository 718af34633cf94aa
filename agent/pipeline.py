"""The one consumer thread: lines from the followers to the assembler, events on.

It owns the assembler (no locks on the hot path), closes what waited past its
grace when input pauses, and writes each container's checkpoint: per stream,
the first position not yet part of an emitted event, so a restart neither
repeats a handled line nor loses one that was still being assembled.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable

from agent.assemble import Assembler, Item
from agent.events import Event
from agent.ingest.split import STDERR, STDOUT
from agent.store import Checkpoint, StateUnwritable, Store

log = logging.getLogger(__name__)
EventHandler = Callable[[Event], None]
UNSAVED_MAX = 10_000
PROBE_EVERY = 10.0  # seconds between checks that the state file can still be written


class Pipeline:
    def __init__(self, handler: EventHandler, *, store: Store | None = None,
                 assembler: Assembler | None = None, checkpoint_interval: float = 1.0) -> None:
        self.handler = handler
        self.store = store
        self.assembler = assembler or Assembler()
        self.checkpoint_interval = checkpoint_interval
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="pipeline", daemon=True)
        self._next: dict[str, dict[str, int]] = {}  # container -> stream -> last position + 1
        self._cid: dict[str, str] = {}
        self._dirty: set[str] = set()
        # Events whose handling found the state file unwritable, in order, until it can be written.
        self._unsaved: deque[Event] = deque(maxlen=UNSAVED_MAX)
        self.dropped = 0  # events that did not fit there (a long outage of the state file)
        self.last_loop = time.monotonic()

    # -- the sink followers call (any thread) ----------------------------------------------
    def lines(self, container: str, container_id: str, stream: str, items: list[Item]) -> None:
        self._queue.put((container, container_id, stream, items))

    def detached(self, container: str, container_id: str) -> None:
        self._queue.put((container, container_id, None, None))

    def event(self, event: Event) -> None:
        """A ready-made event (a recorded deploy exchange) for the same handler."""
        self._queue.put((None, None, "event", event))

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Drain what is queued, close what is open, save the checkpoints."""
        self._queue.put(None)
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
            if msg and msg[0] is None:
                self._emit([msg[3]])
            elif msg:
                container, cid, stream, items = msg
                if self._cid.get(container) not in (None, cid):
                    self._emit(asm.flush(container))  # a new container under the same name
                    self._next.pop(container, None)
                self._cid[container] = cid
                if stream is None:
                    self._emit(asm.flush(container))
                else:
                    self._emit(asm.feed(container, stream, items, now))
                    self._next.setdefault(container, {})[stream] = items[-1][0] + 1
                self._dirty.add(container)
            self._emit(asm.due(now))
            if now - last_save >= self.checkpoint_interval:
                if self.store is not None and (self.store.write_problem is not None
                                               or now - last_probe >= PROBE_EVERY):
                    # Even a quiet agent notices a state file it cannot write, and one that healed.
                    self.store.probe_write()
                    last_probe = now
                if self._unsaved:
                    self._handle_unsaved()
                if not self._unsaved:  # never a checkpoint past an event not yet handled
                    self._save()
                last_save = now

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
        if self.store is not None and self.store.write_problem is not None:
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
            return
        for container in self._dirty:
            nxt = self._next.get(container, {})
            resume = {}
            for stream in (STDOUT, STDERR):
                pending = None if all_done else self.assembler.pending_first_pos(container, stream)
                resume[stream] = pending if pending is not None else nxt.get(stream, 0)
            if not any(resume.values()):
                continue
            # A stream with nothing read yet resumes where the other one does.
            top = max(resume.values())
            cp = Checkpoint(container, self._cid[container],
                            resume[STDOUT] or top, resume[STDERR] or top)
            try:
                self.store.save_checkpoint(cp)
            except StateUnwritable:
                return  # said once by the store; the checkpoints stay dirty and are saved later
            except Exception:
                log.exception("saving the checkpoint of %s failed", container)
        self._dirty.clear()
