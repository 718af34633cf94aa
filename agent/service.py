"""The running agent: wires ingest, assemble and what follows, and stops cleanly.

Until rules are in place the agent reports what it sees: every traceback and
every ERROR or CRITICAL record becomes one line in the agent's own log.
"""

from __future__ import annotations

import logging
import threading

from agent.assemble import Assembler
from agent.events import TRACEBACK, Event
from agent.ingest.follow import Ingest
from agent.pipeline import Pipeline
from agent.settings import Settings
from agent.store import Store

log = logging.getLogger("agent")


def report(event: Event) -> None:
    """Log an event worth a look: a traceback, or an ERROR/CRITICAL record."""
    if event.kind == TRACEBACK:
        exc = event.outermost
        chain = " <- ".join(e.type for e in reversed(event.exceptions))
        log.warning("traceback in %s (%s): %s: %s [%s] %s", event.container, event.stream,
                    exc.type if exc else "?", (exc.message if exc else "")[:300], chain,
                    event.fingerprint)
    elif event.level in ("ERROR", "CRITICAL"):
        log.warning("%s in %s (%s): %s %s", event.level, event.container, event.stream,
                    event.message[:300], event.fingerprint)


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings.state_db)
        self.pipeline = Pipeline(
            report, store=self.store, assembler=Assembler(grace=settings.grace_ms / 1000))
        self.ingest = Ingest(settings.containers, self.pipeline, checkpoints=self.store.checkpoint,
                             catchup_window=settings.catchup_window, max_line=settings.max_line_bytes)
        self._stopped = threading.Event()

    def start(self) -> None:
        self.pipeline.start()
        self.ingest.start()
        log.warning("hb-medic following %s; state in %s", ", ".join(self.settings.containers),
                    self.settings.state_db)

    def stop(self) -> None:
        """Detach from the engine, finish what is assembled, save the checkpoints."""
        self.ingest.stop()
        self.pipeline.stop()
        self.store.close()
        self._stopped.set()
        log.warning("hb-medic stopped")
