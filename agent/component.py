"""What every long-running part of the agent is, and the one thread life cycle they share.

A component (a source, the pipeline, the remedy, the notifier, the health server...) is
started once, stopped once by a common deadline, says what is wrong with it in words
(`health`), names its threads that must be alive (`threads`) and yields its Prometheus
metric families (`metrics`). The health server and the service know components only
through this protocol, never their insides. A class may subclass `Component` to inherit
the defaults (nothing wrong, no threads, no metrics).

`Loop` is the life cycle itself: one daemon thread running a body until asked to stop,
a stop flag the body waits on, and a stop that joins within a deadline. Nine hand-written
copies of it were one too many.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol, runtime_checkable

from prometheus_client.metrics_core import Metric


@runtime_checkable
class Component(Protocol):
    name: str

    def start(self) -> None:
        """Begin work; returns at once (the work runs in the component's own threads)."""

    def stop(self, deadline: float | None = None) -> None:
        """Finish and release everything by `deadline` (time.monotonic(); None: within
        PATIENCE seconds)."""

    def health(self) -> list[str]:
        """What is wrong now, in words a person can act on; empty when all is well."""
        return []

    def threads(self) -> dict[str, threading.Thread | None]:
        """Threads that must be alive while the component runs (None: not started yet, which
        the health check reports as stopped)."""
        return {}

    def metrics(self) -> Iterable[Metric]:
        """Prometheus metric families, read at scrape time."""
        return ()


PATIENCE = 5.0  # seconds a stop without a deadline may take


def by(deadline: float | None) -> float:
    """A deadline, or PATIENCE seconds from now."""
    return time.monotonic() + PATIENCE if deadline is None else deadline


def left(deadline: float, floor: float = 0.0) -> float:
    """Seconds until a monotonic deadline (at least `floor`)."""
    return max(floor, deadline - time.monotonic())


class Loop:
    """One daemon thread running `body` until `stop`. The body either loops on its own,
    checking `stopping` (or sleeping with `wait`), or is called again every `every` seconds
    until the stop flag is set. `wake` cuts a wait short without stopping."""

    def __init__(self, name: str, body: Callable[[], None], *, every: float | None = None,
                 on_stop: Callable[[], None] | None = None) -> None:
        self.name = name
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._body = body
        self._every = every
        self._on_stop = on_stop
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        if self._every is None:
            self._body()
            return
        while not self.stopping.is_set():
            self._body()
            self.wait(self._every)

    def start(self) -> None:
        self.thread.start()

    def wait(self, seconds: float | None) -> bool:
        """Sleep up to `seconds` (None: until woken); True once stopping."""
        if not self.stopping.is_set():
            self._wake.wait(seconds)
            self._wake.clear()
        return self.stopping.is_set()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, deadline: float | None = None) -> None:
        """Set the stop flag, wake the body, run `on_stop` (to unblock a read, say), and join
        until the deadline. A thread still busy then is left to die with the process: it is a
        daemon."""
        self.stopping.set()
        self._wake.set()
        if self._on_stop is not None:
            self._on_stop()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(left(by(deadline)))

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()


class OneLoop(Component):
    """A component whose work is one `Loop` (`self.loop`): its start, stop and thread come
    with it."""

    loop: Loop

    def start(self) -> None:
        self.loop.start()

    def stop(self, deadline: float | None = None) -> None:
        self.loop.stop(deadline)

    def threads(self) -> dict[str, threading.Thread | None]:
        return {self.loop.name: self.loop.thread}


def merged(families: Iterable[Metric]) -> list[Metric]:
    """Families of one name (one from each stack, say) as one: an exposition names each once."""
    out: dict[str, Metric] = {}
    for family in families:
        if family.name in out:
            out[family.name].samples.extend(family.samples)
        else:
            out[family.name] = family
    return list(out.values())
