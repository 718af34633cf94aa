"""What an incident's steps leave behind: its state saved, a line of the audit trail, a message.

Every decision and every action goes to the audit trail, with secrets masked; each step
is also one line of the agent's log, beside its notification.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from agent.records import Incident, IncidentState
from agent.redact import Redactor
from agent.state import State

log = logging.getLogger("agent.remedy.engine")
Notify = Callable[[Incident, str, str], None]

# An incident step's log level: INFO while things go as they should, WARNING where a person
# should look, ERROR where the agent failed.
STEP_LEVELS = {IncidentState.FAILED: logging.WARNING, IncidentState.REFUSED: logging.WARNING,
               IncidentState.STALE: logging.WARNING, IncidentState.WAITING: logging.WARNING,
               IncidentState.WARNED: logging.WARNING,
               IncidentState.GAVE_UP: logging.ERROR}


def log_step(inc: Incident, step: str, text: str, show_stack: bool = False) -> None:
    """Each incident step as one line of the agent's log (beside its notification)."""
    where = f"stack {inc.stack}: " if show_stack else ""
    log.log(STEP_LEVELS.get(step, logging.INFO), "%sincident %s [%s] %s: %s", where, inc.id, inc.rule, step,
            text)


class Journal:
    """Ends and pauses of incidents, each saved, audited and told the same way."""

    def __init__(self, store: State, notify: Notify, redactor: Redactor) -> None:
        self.store = store
        self.notify = notify
        self.redactor = redactor

    def close(self, inc: Incident, state: IncidentState, detail: str, step: str | None = None) -> Incident:
        """`step`: what the message says, when not the state itself ("needs-you": a person is
        needed now, and trying again would not help)."""
        detail = self.redactor.text(detail)
        inc.state, inc.detail, inc.closed = state, detail, time.time()
        self.store.incidents.save(inc)
        self.store.incidents.audit(inc.id, "decision", state, result=detail)
        self.notify(inc, step or state, detail)
        return inc

    def wait(self, inc: Incident, detail: str) -> None:
        """Held until a person gives what only a person can (`hb-medic retry-deploy`)."""
        inc.state, inc.detail = IncidentState.WAITING, detail
        self.store.incidents.save(inc)
        self.store.incidents.audit(inc.id, "decision", IncidentState.WAITING, result=inc.detail)
        self.notify(inc, IncidentState.WAITING, inc.detail)


    def ask(self, inc: Incident, plan: list[str], expires: float) -> None:
        """Held until a person approves the plan (Fix now), ignores it, or it expires."""
        with self.store.file.transaction():
            inc.state = IncidentState.AWAITING_APPROVAL
            inc.detail = self.redactor.text("will run: " + " -> ".join(plan))
            self.store.incidents.save(inc)
            self.store.approvals.ask(inc.id, inc.stack, plan, expires)
        self.store.incidents.audit(inc.id, "decision", IncidentState.AWAITING_APPROVAL,
                                   {"would_run": plan, "expires": expires}, result=inc.detail)
        self.notify(inc, IncidentState.AWAITING_APPROVAL, inc.detail)


class Held:
    """A message that goes out after a moment, unless the moment is cut short first."""

    def __init__(self, notify: Notify, inc: Incident, step: str, text: str) -> None:
        self._send = lambda: notify(inc, step, text)
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self.sent = False

    def start(self, delay: float) -> None:
        self._timer = threading.Timer(delay, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:  # held while it is queued: whatever follows is queued after it
            if self._timer is None:
                return
            self._timer, self.sent = None, True
            self._send()

    def cancel(self) -> bool:
        """Stop it if it has not gone out; whether it had."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return self.sent
