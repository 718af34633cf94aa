"""The one consumer thread of a stack: every source's batches to the assembler, events on.

It owns the assembler (no locks on the hot path), closes what waited past its grace when
input pauses, and acknowledges to each source what is durably handled: for an input of
lines, the first position not yet part of an emitted event (so a restart neither repeats a
handled line nor loses one that was still being assembled), for a ready-made event, the
event once handled. What a source's position looks like is the source's business.

A bot's death (an exit event from the engine's life events) is handled after
every line the bot wrote before it: the bot's open events are closed first,
and the event carries the bot's last lines of each channel.

While the state file cannot be written (a full disk, say), events wait in memory, in order,
up to a bound, and are handled once it can be written again; what comes past the bound is
dropped, counted (hb_medic_events_dropped) and said once in the log and on /healthz.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from agent.component import Loop, left
from agent.events import BOT, CONSOLE, ERRORS, LOG, Event, Origin
from agent.ingest.assemble import Assembler, Item
from agent.ingest.source import Ack, Batch, Close, Ended, Gone, Lines, Ready
from agent.names import DEFAULT_STACK
from agent.state import State, StateUnwritable

log = logging.getLogger(__name__)
EventHandler = Callable[[Event], None]
TAIL_LINES = 40  # a bot's last lines kept per channel: its death is matched with them
SHOWN_LINES = 6  # ... and the message shows the last few of each
TAIL_CHARS = 400
UNSAVED_MAX = 10_000  # events that may wait for the state file
PROBE_EVERY = 10.0  # seconds between checks that the state file can still be written
LOOP_STALE = 15.0  # seconds without a loop: the pipeline is stuck
_IDLE = Gone("")  # what the loop takes when nothing came in time


@dataclass
class _Cursor:
    """An input the sink was given lines of: whom to acknowledge, and where the input goes on."""

    container: str
    channel: str
    origin: Origin | None
    ack: Ack
    next: int
    generation: str | None


class Pipeline:
    def __init__(self, handler: EventHandler, *, store: State | None = None,
                 assembler: Assembler | None = None, checkpoint_interval: float = 1.0,
                 tick: Callable[[float], None] | None = None, stack: str = DEFAULT_STACK,
                 max_queued: int = 0, max_unsaved: int = UNSAVED_MAX) -> None:
        """`max_queued`: batches that may wait (0: no bound); a source that gets ahead waits
        for the pipeline, so a flooding stack holds its own followers, never memory. `store`:
        whether the state file can be written (events wait while it cannot, `max_unsaved` at most)."""
        self.handler = handler
        self.stack = stack
        self.store = store
        self.assembler = assembler or Assembler()
        self.checkpoint_interval = checkpoint_interval
        self.tick = tick
        self._queue: queue.Queue[Batch | None] = queue.Queue(max_queued)
        self.name = "pipeline" if stack == DEFAULT_STACK else f"pipeline-{stack}"
        self._loop = Loop(self.name, self._run)
        self._cursors: dict[object, _Cursor] = {}  # by the assembler's key of the input
        self._dirty: set[object] = set()  # cursors to acknowledge at the next save
        self._gone: set[str] = set()  # containers whose cursors go once acknowledged
        self._generation: dict[str, str] = {}  # container -> id of the container now under the name
        self._tails: dict[tuple[str, str], deque[str]] = {}
        # Events whose handling found the state file unwritable, in order, until it can be written.
        self._unsaved: deque[tuple[Event, Ack | None, int]] = deque()
        self.max_unsaved = max_unsaved
        self.dropped = 0  # events that did not fit there (a long outage of the state file), ever
        self._dropped_now = 0  # ... since events began to wait this time
        self.last_loop = time.monotonic()

    # -- the sink (any thread) -----------------------------------------------------------------
    def put(self, batch: Batch) -> None:
        self._queue.put(batch)

    # -- the component ---------------------------------------------------------------------------
    def start(self) -> None:
        self._loop.start()

    def stop(self, deadline: float) -> None:
        """Drain what is queued, close what is open, acknowledge what was handled."""
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=left(deadline))
        self._loop.stop(deadline)

    def threads(self) -> dict[str, threading.Thread | None]:
        return {"pipeline": self._loop.thread}

    def health(self) -> list[str]:
        age = time.monotonic() - self.last_loop
        problems = [f"pipeline loop stalled for {age:.0f} s"] if age > LOOP_STALE else []
        waiting, dropped = len(self._unsaved), self._dropped_now
        if waiting or dropped:
            problems.append(f"{waiting} events wait for the state file to be written (at most"
                            f" {self.max_unsaved})" + (f"; {dropped} more were dropped" if dropped else ""))
        return problems

    def metrics(self) -> Iterable[Metric]:
        waiting = GaugeMetricFamily("hb_medic_events_waiting",
                                    "Events waiting in memory for the state file to be written",
                                    labels=["stack"])
        waiting.add_metric([self.stack], len(self._unsaved))
        dropped = CounterMetricFamily("hb_medic_events_dropped", "Events dropped because more than"
                                      " the bound waited for the state file to be written", labels=["stack"])
        dropped.add_metric([self.stack], self.dropped)
        return (waiting, dropped)

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
                batch = self._queue.get(timeout=min(wait, self.checkpoint_interval))
            except queue.Empty:
                batch = _IDLE
            now = time.monotonic()
            if batch is None:
                self._emit(asm.flush())
                if not self._unsaved:
                    self._save(all_done=True)
                return
            if batch is not _IDLE:
                try:
                    self._take(batch, now)
                except Exception:
                    log.exception("pipeline failed on a %s batch", type(batch).__name__)
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
                if not self._unsaved:  # never a position past an event not yet handled
                    self._save()
                last_save = now

    def _take(self, batch: Batch, now: float) -> None:
        asm = self.assembler
        match batch:
            case Lines(container, channel, origin, items, nxt, ack, generation):
                self._renewed(container, generation)
                self._emit(asm.feed(container, channel, items, now, origin))
                if ack is not None:
                    key = origin or (container, channel)
                    self._cursors[key] = _Cursor(container, channel, origin, ack, nxt, generation)
                    self._dirty.add(key)
                if origin is not None and origin.role == BOT:
                    self._keep_tail(container, channel, items)
            case Close(container, origin, generation):
                if origin is not None:
                    self._emit(asm.flush_origin(origin))
                    return
                self._renewed(container, generation)
                self._emit(asm.flush(container))
                self._dirty.update(k for k, c in self._cursors.items()
                                   if c.container == container and c.generation is not None)
            case Ready(event, ack, position):
                self._emit([event], ack, position)
            case Ended(event):
                self._emit(asm.flush(event.container))
                self._emit([self._with_tails(event)])
            case Gone(container):
                self._emit(asm.flush(container))
                asm.forget(container)
                for key in [k for k in self._tails if k[0] == container]:
                    del self._tails[key]
                self._dirty.update(k for k, c in self._cursors.items() if c.container == container)
                self._gone.add(container)

    def _renewed(self, container: str, generation: str | None) -> None:
        """A new container under the same name: what is open of the old one is closed, and
        where its streams were goes with it."""
        if generation is None:
            return
        if self._generation.get(container) not in (None, generation):
            self._emit(self.assembler.flush(container))
            for key in [k for k, c in self._cursors.items()
                        if c.container == container and c.generation not in (None, generation)]:
                del self._cursors[key]
                self._dirty.discard(key)
        self._generation[container] = generation

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

    def _emit(self, events: list[Event], ack: Ack | None = None, position: int = 0) -> None:
        for event in events:
            # While the state file cannot be written, and behind the ones already waiting for
            # it (in their order): what is handled now could not be kept.
            if self._unsaved or (self.store is not None and self.store.file.write_problem is not None):
                self._keep(event, ack, position)
                continue
            try:
                self.handler(event)
            except StateUnwritable:
                self._keep(event, ack, position)  # the store said so once; handled when it can be written
                continue
            except Exception:
                log.exception("event handler failed on %r", event)
            self._acknowledge(ack, position)

    def _keep(self, event: Event, ack: Ack | None, position: int) -> None:
        if len(self._unsaved) < self.max_unsaved:
            self._unsaved.append((event, ack, position))
            return
        self.dropped += 1
        self._dropped_now += 1
        if self._dropped_now == 1:
            log.error("%s: %d events wait for the state file to be written, the most kept in memory:"
                      " later ones are dropped until it can be written, counted in"
                      " hb_medic_events_dropped and on /healthz", self.name, self.max_unsaved)

    def _handle_unsaved(self) -> None:
        """The state file could not be written: try the waiting events again, in order."""
        if self.store is not None and self.store.file.write_problem is not None:
            return
        while self._unsaved:
            event, ack, position = self._unsaved[0]
            try:
                self.handler(event)
            except StateUnwritable:
                return
            except Exception:
                log.exception("event handler failed on %r", event)
            self._unsaved.popleft()
            self._acknowledge(ack, position)
        self._dropped_now = 0

    @staticmethod
    def _acknowledge(ack: Ack | None, position: int) -> None:
        if ack is None:
            return
        try:
            ack(position)
        except Exception:
            log.exception("acknowledging a handled event failed")

    def _save(self, all_done: bool = False) -> None:
        """Acknowledge every input with news: where it goes on (the first line still held by the
        assembler, else past its last line). One still holding lines is acknowledged again later."""
        for key in list(self._dirty):
            c = self._cursors.get(key)
            if c is None:
                self._dirty.discard(key)
                continue
            pending = None if all_done else self.assembler.pending_first_pos(c.container, c.channel, c.origin)
            try:
                c.ack(pending if pending is not None else c.next)
            except StateUnwritable:
                return  # said once by the store; the cursors stay dirty and are acknowledged later
            except Exception:
                log.exception("acknowledging the lines of %s failed", c.origin or c.container)
            if pending is None:
                self._dirty.discard(key)
        for key in [k for k, c in self._cursors.items() if c.container in self._gone]:
            if key not in self._dirty:
                del self._cursors[key]
        self._gone.clear()
