"""Recorded failed deploys to the pipeline, whether the recorder runs in this
process or in its own container writing to the same state file.

Deploys are read in the order their answers came (`seq`), not the order they were
requested: a slow deploy still in flight never holds back, or hides, the others.
The feed's position moves only past what the pipeline acknowledged as handled.
"""

from __future__ import annotations

import logging
import threading
import time

from agent.component import Loop, OneLoop
from agent.ingest.source import Ready, Sink
from agent.names import DEFAULT_STACK
from agent.recorder.events import event_from_deploy
from agent.state import Checkpoints, State

log = logging.getLogger(__name__)
SOURCE = "deploys"  # the checkpoints' source name
HANDLED_WAIT = 30.0  # seconds the feed waits for the pipeline to handle what it delivered


class DeployFeed(OneLoop):
    def __init__(self, store: State, sink: Sink, *, checkpoints: Checkpoints, catchup_window: float,
                 interval: float = 1.0, stack: str = DEFAULT_STACK) -> None:
        """Each stack has its own feed (its own position): one whose pipeline is busy holds no
        other."""
        self.name = "deploy-feed" if stack == DEFAULT_STACK else f"deploy-feed-{stack}"
        self.stack = stack
        self.store, self.sink, self.checkpoints = store, sink, checkpoints
        self.catchup_window = catchup_window
        self.interval = interval
        self.loop = Loop(self.name, self._run)

    def notify(self, _deploy_id: int) -> None:
        """The in-process recorder stored an exchange: look now, not at the next poll."""
        self.loop.wake()

    def threads(self) -> dict[str, threading.Thread | None]:
        return {"deploy-feed": self.loop.thread}

    def _run(self) -> None:
        stored = self.checkpoints.get(SOURCE, "")
        last = int(stored["seq"]) if stored else self._first_in_window()
        while not self.loop.wait(self.interval):
            try:
                rows = self.store.deploys.after(last, stack=self.stack)
                handled: list[threading.Event] = []
                for seq, d in rows:
                    if d.failed:
                        done = threading.Event()
                        handled.append(done)
                        self.sink.put(Ready(event_from_deploy(d, self.stack),
                                            lambda _seq, e=done: e.set(), seq))
                    last = seq
                # The position moves only past what the pipeline handled: a kill in between
                # delivers it again (and an incident that has it already takes the replay).
                if rows and all(h.wait(HANDLED_WAIT) for h in handled):
                    self.checkpoints.put(SOURCE, "", {"seq": last})
            except Exception:  # one bad row or a locked database must not end the feed
                log.exception("reading recorded deploys failed; trying again")
                self.loop.stopping.wait(1.0)

    def _first_in_window(self) -> int:
        """First start: exchanges older than the catch-up window are history."""
        return self.store.deploys.seq_until(time.time() - self.catchup_window, self.stack)
