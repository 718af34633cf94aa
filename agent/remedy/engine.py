"""Incidents: from a match to a fix, verified, with the deploy retried; never a loop.

One Remedy per stack, built from its parts: the intake decides what a match does
(agent.remedy.intake, over the pure agent.remedy.decisions), the pool runs attempts on
its workers within the action budget (agent.remedy.pool), an attempt runs the actions,
their checks and the deploy retry (agent.remedy.attempt, agent.remedy.resend), and the
journal saves, audits and tells each step (agent.remedy.journal).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent.actions.base import ActionContext, ActionError
from agent.component import Component, by
from agent.events import Event, spoken_duration
from agent.match.matcher import Result
from agent.match.model import Rule
from agent.names import DEFAULT_STACK
from agent.preflight.checks import DeployRequest, Finding
from agent.records import Incident, IncidentState
from agent.redact import Redactor
from agent.remedy.attempt import Acting, Attempts
from agent.remedy.intake import Intake
from agent.remedy.journal import Journal, Notify, log_step
from agent.remedy.pool import Budget, NameLocks, Pool
from agent.remedy.prevent import Cutoff, Preventions, Verdict
from agent.remedy.resend import Resends
from agent.state import State


class Remedy(Component):
    """The stack runtime's view of the remedy. Its metrics (actions run, incidents open) are
    the state file's counts, which the service reads for every stack at once."""

    name = "remedy"

    def __init__(self, store: State, rules: Callable[[], dict[str, Rule]],
                 context: Callable[[], ActionContext], *, notify: Notify | None = None,
                 mode: str = "act", budget: int = 100, stale_after: float = 900.0,
                 approval_ttl: float = 3600.0,
                 bots_dir: Path | None = None, recorder: bool = False,
                 redactor: Redactor | None = None, stack: str = DEFAULT_STACK) -> None:
        """One Remedy per stack: its own workers, budget and incidents, so a slow fix on one stack
        never queues another stack's fix behind it."""
        self.store = store
        self.rules = rules
        # Set when the agent stops: every wait inside a fix (a bot's settle time, a heartbeat, a
        # backoff) ends at once, and the attempt is saved where it stands for the next start.
        self.stopping = threading.Event()
        self._make_context = context
        self.journal = Journal(store, notify or log_step, redactor or Redactor())
        own = "" if stack == DEFAULT_STACK else f"-{stack}"
        self.pool = Pool(f"remedy{own}", self._work, self._tick)
        acting = Acting()
        self.resends = Resends(store, self.context, self.journal.redactor, NameLocks(), bots_dir=bots_dir,
                               recorder=recorder, stack=stack, stopping=self.stopping)
        self.attempts = Attempts(store, rules, self.context, self.journal, Budget(store, budget, stack),
                                 self.resends, acting, stack)
        self.intake = Intake(store, rules, self.journal, self.resends, acting, self.pool.enqueue,
                             lambda: self.pool.stopping, mode=mode, stale_after=stale_after,
                             recorder=recorder, stack=stack, approval_ttl=approval_ttl)
        self.preventions = Preventions(store, rules, self.journal, self.attempts,
                                       {n for n, spec in self.attempts.actions.items() if spec.tells}, stack,
                                       approval_ttl=approval_ttl)
        self.approval_ttl = approval_ttl
        self._tokens_forgotten = 0.0
        self.stack = stack

    # -- the Component protocol ------------------------------------------------------------------
    def start(self) -> None:
        self.recover()
        self.pool.start()

    def halt(self) -> None:
        """The first step of a stop, at once: the waits inside running fixes end, and no new
        attempt begins."""
        self.stopping.set()
        self.pool.halt()

    def stop(self, deadline: float | None = None) -> None:
        """By the deadline (time.monotonic()). An attempt in progress ends its waits at once and
        saves where its incident stands; one still busy at the deadline (a request that does not
        answer) is tried again at the next start."""
        self.halt()
        self.pool.stop(by(deadline))

    def context(self) -> ActionContext:
        """What actions work with, their waits tied to this remedy's stop."""
        ctx = self._make_context()
        ctx.stopping = self.stopping
        return ctx

    def health(self) -> list[str]:
        if self.pool.any_cut_short:
            return ["fix attempts were cut short: the state file cannot be written; they go on once it"
                    " can"]
        return []

    def threads(self) -> dict[str, threading.Thread | None]:
        """The dispatcher ("remedy") and the workers."""
        return self.pool.threads()

    # -- the pipeline's side ---------------------------------------------------------------------
    def submit(self, res: Result) -> Incident | None:
        """Decide what a match does, quickly: the fix itself runs on a worker."""
        return self.intake.submit(res)

    def owns_deploy(self, event: Event) -> bool:
        return self.intake.owns_deploy(event)

    # -- the workers' side -----------------------------------------------------------------------
    def recover(self) -> None:
        self.attempts.recover()

    def attempt(self, inc: Incident) -> None:
        self.attempts.run(inc)

    def _work(self, inc_id: str) -> None:
        inc = self.store.incidents.get(inc_id)
        if inc is not None and inc.state == IncidentState.OUTAGE:
            self.attempts.look_again(inc)
        elif inc is not None and inc.state in (IncidentState.DETECTED, IncidentState.FAILED):
            self.attempt(inc)
        elif inc is not None and inc.state == IncidentState.WARNED:  # its Fix now (ask mode)
            instead = self.preventions.fix_now(inc_id)
            if instead is not None:
                self.wake(instead)

    def _tick(self) -> None:
        """Every second: incidents whose next attempt (or next look at an outage) is due."""
        if self.pool.any_cut_short and self.store.file.write_problem is None:
            self.attempts.resume(self.pool.cut_short())
        for inc in self.store.incidents.due(time.time(), self.stack):
            self.pool.enqueue(inc.id)
        self.intake.end_quiet(time.time())
        self._approvals(time.time())

    # -- ask mode --------------------------------------------------------------------------------
    def _approvals(self, now: float) -> None:
        """Approvals given (here, by another process, or before a kill) begin their attempt;
        approvals nobody gave in time expire, doing nothing."""
        for inc_id in self.store.approvals.approved(self.stack):
            self.wake(inc_id)
        if now - self._tokens_forgotten > 3600:  # buttons past their time to live say "expired" anyway
            self._tokens_forgotten = now
            self.store.approvals.forget(now - 2 * self.approval_ttl)
        for inc_id in self.store.approvals.expiring(now, self.stack):
            inc = self.store.incidents.get(inc_id)
            if inc is not None and inc.state == IncidentState.WARNED:  # a warning's unpressed Fix now
                if self.store.approvals.drop(inc_id, "approved IS NULL"):
                    self.store.incidents.audit(inc_id, "decision", "fix now expired",
                                               result=f"nobody pressed Fix now within"
                                                      f" {spoken_duration(self.approval_ttl)}")
                continue
            if self.store.approvals.expire(inc_id, now):
                inc = self.store.incidents.get(inc_id)
                if inc is not None:
                    self.journal.close(inc, IncidentState.EXPIRED,
                                       f"nobody approved it within {spoken_duration(self.approval_ttl)}:"
                                       " nothing was done")

    def wake(self, inc_id: str) -> None:
        """An incident a person moved on (approved, retried) is worked on now, not at the next
        tick. An approved one becomes a detected one, and its attempt is exactly act mode's."""
        if self.store.approvals.start(inc_id):
            self.store.incidents.audit(inc_id, "decision", "approved", result="the plan runs now")
            self.pool.enqueue(inc_id)
            return
        inc = self.store.incidents.get(inc_id)
        if inc is not None and inc.state == IncidentState.WARNED:  # a warning's Fix now: the worker claims it
            approval = self.store.approvals.get(inc_id)
            if approval is not None and approval.approved is not None:
                self.pool.enqueue(inc_id)
            return
        if inc is not None and inc.state == IncidentState.FAILED and inc.next_attempt <= time.time():
            self.pool.enqueue(inc_id)

    # -- the recorder's side (preflight) ----------------------------------------------------------
    def prevent(self, req: DeployRequest, findings: list[Finding], *, fix: bool, why_not: str,
                cutoff: Cutoff, container: str, ask: bool = False) -> Verdict:
        """A deploy's failures foreseen before it is forwarded: fixed first (`fix`: the request
        carries hummingbot-api's login and MEDIC_PREFLIGHT=fix) with their rules' actions, or told
        at once (`ask`: with the fix offered as the chat's Fix now). Blocking (actions run here):
        called off the recorder's event loop."""
        return self.preventions.handle(req, findings, fix=fix, why_not=why_not, cutoff=cutoff,
                                       container=container, ask=ask)

    # -- `hb-medic retry-deploy` -----------------------------------------------------------------
    def finish(self, inc: Incident, route: str | None, body: dict | None) -> str:
        """Finish a waiting incident's deploy retry by hand, through the same checks."""
        rule = self.rules().get(inc.rule)
        if rule is None or not rule.retry_deploy:
            raise ActionError(f"incident {inc.id} ({inc.rule}) has no deploy to retry")
        result = self.resends.by_hand(inc, route, body)
        self.journal.close(inc, IncidentState.RESOLVED, result)
        return result
