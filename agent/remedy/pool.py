"""Where fixes run: a few workers, a dispatcher, the action budget, one deploy of a name at a time.

Fixes run on a few worker threads, each incident on one at a time, so the pipeline never
waits for a fix and a storm's fixes do not queue behind each other's settle times (a
retried bot must live its settle time). A global budget of fix attempts per hour stops
everything (a circuit breaker); it is checked and used as one step.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from agent.actions.base import Stopped
from agent.component import Loop
from agent.remedy.journal import log
from agent.state import State, StateUnwritable

WORKERS = 8  # incidents worked on side by side (a retried bot must live its settle time)
STOP_GRACE = 2.0  # once the agent stops, how long side-by-side work may take to end its waits
T = TypeVar("T")
TICK = 1.0  # seconds between two looks for incidents whose next attempt is due


class Pool:
    """`work(incident id)` on WORKERS threads, each id queued once until it is done; `tick()`
    every TICK seconds on the dispatcher thread."""

    def __init__(self, name: str, work: Callable[[str], None], tick: Callable[[], None],
                 workers: int = WORKERS) -> None:
        self._work = work
        self._tick = tick
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._busy: set[str] = set()  # incidents queued or being worked on
        self._lock = threading.Lock()
        self._cut_short: set[str] = set()
        self.dispatcher = Loop(name, self._dispatch)
        self.workers = [Loop(f"{name}-{n}", self._serve) for n in range(workers)]

    def start(self) -> None:
        for worker in self.workers:
            worker.start()
        self.dispatcher.start()

    def halt(self) -> None:
        """Take nothing more from the queue (the incidents left in it are due at the next start)."""
        for loop in (self.dispatcher, *self.workers):
            loop.stopping.set()
        for _ in self.workers:
            self._queue.put(None)
        self.dispatcher.wake()

    def stop(self, deadline: float) -> None:
        """An attempt in progress is not waited for beyond the deadline: its incident is tried
        again at the next start."""
        self.halt()
        for loop in (self.dispatcher, *self.workers):
            loop.stop(deadline)

    @property
    def stopping(self) -> bool:
        return self.dispatcher.stopping.is_set()

    def threads(self) -> dict[str, threading.Thread | None]:
        return {"remedy": self.dispatcher.thread,
                **{f"remedy-{n}": w.thread for n, w in enumerate(self.workers)}}

    def enqueue(self, inc_id: str) -> None:
        with self._lock:
            if inc_id in self._busy:
                return
            self._busy.add(inc_id)
        self._queue.put(inc_id)

    def queued(self) -> int:
        return self._queue.qsize()

    def cut_short(self) -> list[str]:
        """Take the incidents whose attempt an unwritable state file cut short."""
        with self._lock:
            cut, self._cut_short = sorted(self._cut_short), set()
        return cut

    @property
    def any_cut_short(self) -> bool:
        return bool(self._cut_short)

    def _dispatch(self) -> None:
        while not self.dispatcher.wait(TICK):
            try:
                self._tick()
            except StateUnwritable:
                pass  # the store said so once
            except Exception:
                log.exception("remedy dispatcher failed")

    def _serve(self) -> None:
        while True:
            inc_id = self._queue.get()
            if inc_id is None or self.stopping:
                return
            try:
                self._work(inc_id)
            except StateUnwritable:
                with self._lock:
                    self._cut_short.add(inc_id)  # the store said so once; resumed when it heals
            except Exception:
                log.exception("remedy worker failed on incident %s", inc_id)
            finally:
                with self._lock:
                    self._busy.discard(inc_id)


def side_by_side(name: str, work: Callable[[T], object], items: Sequence[T], *,
                 stopping: threading.Event, workers: int = WORKERS) -> list[BaseException | None]:
    """`work(item)` for each item on up to `workers` threads; each item's exception (or None),
    in order. The threads are `Loop`s (daemons, which Python never waits for at exit). Once
    `stopping` is set they get STOP_GRACE seconds to end (their waits end at once); an item
    not begun, or still running then, is Stopped."""
    errors: list[BaseException | None] = [Stopped("the agent is stopping")] * len(items)
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(len(items)):
        pending.put(i)

    def serve() -> None:
        while not stopping.is_set():
            try:
                i = pending.get_nowait()
            except queue.Empty:
                return
            try:
                work(items[i])
                errors[i] = None
            except BaseException as exc:  # handed to the caller, whatever it is
                errors[i] = exc

    loops = [Loop(f"{name}-{n}", serve) for n in range(min(len(items), workers))]
    for loop in loops:
        loop.start()
    for loop in loops:
        while loop.alive and not stopping.is_set():
            loop.thread.join(0.2)
    if stopping.is_set():
        end = time.monotonic() + STOP_GRACE
        for loop in loops:
            loop.thread.join(max(0.0, end - time.monotonic()))
    return list(errors)


class Budget:
    """Fix attempts per hour across a stack's incidents. `with budget:` makes checking and
    using it one step, so two workers never both take the last attempt."""

    def __init__(self, store: State, limit: int, stack: str) -> None:
        self.store = store
        self.limit = limit
        self.stack = stack
        self._lock = threading.Lock()

    def __enter__(self) -> Budget:
        self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def used(self, now: float) -> int:
        """Fix attempts started in the hour before `now`."""
        return self.store.incidents.attempts_since(now - 3600, self.stack)


class NameLocks:
    """One deploy of an instance name at a time, whichever incident sends it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: dict[str, threading.Lock] = {}

    def of(self, base: str) -> threading.Lock:
        with self._lock:
            return self._names.setdefault(base, threading.Lock())
