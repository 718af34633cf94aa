"""Recorded failed deploys to the pipeline, whether the recorder runs in this
process or in its own container writing to the same state file.

Deploys are read in the order their answers came (`seq`), not the order they were
requested: a slow deploy still in flight never holds back, or hides, the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from agent.events import Event
from agent.names import DEFAULT_STACK
from agent.recorder.events import event_from_deploy
from agent.state import State

log = logging.getLogger(__name__)
SOURCE = "deploys"  # its checkpoint: {"seq": the last deploy handled}
HANDLED_WAIT = 30.0  # seconds the feed waits for the pipeline to handle what it delivered


class DeployFeed(threading.Thread):
    def __init__(self, store: State, deliver: Callable[[Event, Callable[[], None]], None], *,
                 catchup_window: float, interval: float = 1.0, stack: str = DEFAULT_STACK) -> None:
        """`deliver(event, handled)`: hands a failed exchange on; `handled()` once it was. Each
        stack has its own feed (its own checkpoint): one whose pipeline is busy holds no other."""
        super().__init__(name="deploy-feed" if stack == DEFAULT_STACK else f"deploy-feed-{stack}",
                         daemon=True)
        self.stack = stack
        self.store, self.deliver = store, deliver
        self.catchup_window = catchup_window
        self.interval = interval
        self.wake = threading.Event()
        self._stopping = threading.Event()

    def notify(self, _deploy_id: int) -> None:
        """The in-process recorder stored an exchange: look now, not at the next poll."""
        self.wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self.wake.set()
        if self.is_alive():
            self.join(1.0)

    def run(self) -> None:
        checkpoints = self.store.checkpoints(self.stack)
        cp = checkpoints.get(SOURCE, "")
        last = cp["seq"] if cp else self._first_in_window()
        while not self._stopping.is_set():
            self.wake.wait(self.interval)
            self.wake.clear()
            try:
                rows = self.store.deploys.after(last, stack=self.stack)
                handled: list[threading.Event] = []
                for seq, d in rows:
                    if d.failed:
                        handled.append(threading.Event())
                        self.deliver(event_from_deploy(d, self.stack), handled[-1].set)
                    last = seq
                # The checkpoint moves only past what the pipeline handled: a kill in between
                # delivers it again (and an incident that has it already takes the replay).
                if rows and all(h.wait(HANDLED_WAIT) for h in handled):
                    checkpoints.put(SOURCE, "", {"seq": last})
            except Exception:  # one bad row or a locked database must not end the feed
                log.exception("reading recorded deploys failed; trying again")
                self._stopping.wait(1.0)

    def _first_in_window(self) -> int:
        """First start: exchanges older than the catch-up window are history."""
        return self.store.deploys.seq_until(time.time() - self.catchup_window, self.stack)
