"""One attempt at a fix: its actions, their checks, the deploy retry, and how it ends.

An attempt that cannot reach hummingbot-api or the Docker engine is not a failed
attempt: the incident waits for it (up to a day) and goes on when it answers. An
attempt cut short by a stop or a kill is tried again at once, not counted; an incident
cut short too often gives up.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

from pydantic import ValidationError

from agent import templates
from agent.actions import registry
from agent.actions.base import ActionContext, ActionError, NeedsHuman, Stopped
from agent.match import captures as capture_check
from agent.match.loader import params_of, unresolved
from agent.match.model import ActionCall, Capture, Rule
from agent.names import protected_profile
from agent.records import RUNNING_STATES, Incident, IncidentState
from agent.remedy import decisions
from agent.remedy.journal import Held, Journal
from agent.remedy.outage import outage_of, reachable
from agent.remedy.pool import Budget
from agent.remedy.resend import Resends, finish_command, unconfirmed
from agent.state import State, StateUnwritable

DEPLOY_VALUE = Capture(type="name", max_length=128)
DEPLOY_PROFILE = Capture(type="profile", max_length=64)
OUTAGE_MAX = 86400.0  # how long an incident waits for hummingbot-api or the engine to answer
OUTAGE_LOOK = 3.0  # seconds between two looks at something that does not answer
# "Detected, fixing" waits this long: an attempt that ends sooner (a person is needed at once, or
# the fix took no time) is told in one message, not two a few milliseconds apart.
ACTING_HOLD = 1.0
# hummingbot-api logs the failure of a call hb-medic made (an add-credential it refused): that line,
# of another rule, belongs to the acting incident, up to this long after its attempt ended.
OWN_ECHO = 10.0
EVIDENCE_WAIT = 3.0  # a log line of a rule that also reads the recorder waits this long for its answer


class Refused(Exception):
    """A value from evidence the agent must never act on (a protected profile): no attempt helps."""


class Waiting(Exception):
    """The fix needs something only a human can give (usually the deploy body)."""


class Told(Exception):
    """An attempt of telling actions ended: its advice for a person (what to do, with the facts
    gathered). Nothing was changed: the incident ends told, not fixed and not given up."""


class Acting:
    """Which incident acts on which credentials profile, and until when: hummingbot-api's log
    line of a call hb-medic made for it is that incident's, not a new failure."""

    def __init__(self) -> None:
        self._profiles: dict[str, tuple[str, float]] = {}

    def begin(self, profile: str, inc_id: str) -> None:
        self._profiles[profile] = (inc_id, float("inf"))

    def end(self, profile: str, inc_id: str) -> None:
        self._profiles[profile] = (inc_id, time.time() + EVIDENCE_WAIT + OWN_ECHO)

    def of(self, profile: str) -> str | None:
        acting = self._profiles.get(profile)
        return acting[0] if acting is not None and acting[1] >= time.time() else None


class Attempts:
    def __init__(self, store: State, rules: Callable[[], dict[str, Rule]],
                 context: Callable[[], ActionContext], journal: Journal, budget: Budget, resends: Resends,
                 acting: Acting, stack: str) -> None:
        self.store = store
        self.rules = rules
        self.context = context
        self.journal = journal
        self.budget = budget
        self.resends = resends
        self.acting = acting
        self.stack = stack
        self.actions = registry()

    # -- attempts cut short ------------------------------------------------------------------------
    def recover(self) -> None:
        """Attempts cut short by a stop or a kill are tried again at once. The cut attempt is
        not counted (the agent's end is not the fix failing), but an incident cut short
        MAX_INTERRUPTED times gives up: a fix that takes the agent down must not loop."""
        for inc in self.store.incidents.recent(limit=200, stack=self.stack):
            if inc.state in RUNNING_STATES and decisions.preflight(inc):
                # Its deploy was never forwarded (the client's connection ended with the process):
                # nothing to retry, and the next deploy is checked again.
                self.journal.close(inc, IncidentState.WARNED,
                                   "interrupted by a restart during the fix before forwarding: the deploy"
                                   " was not forwarded; what ran is in the audit trail, a new deploy is"
                                   " checked again")
            elif inc.state in RUNNING_STATES:
                self.interrupted(inc, "interrupted by a restart of the agent")

    def resume(self, cut: list[str]) -> None:
        """Attempts cut short by an unwritable state file are tried again once it heals."""
        for inc_id in cut:
            inc = self.store.incidents.get(inc_id)
            if inc is not None and inc.state in RUNNING_STATES:
                self.interrupted(inc, "cut short: the state file could not be written")

    def interrupted(self, inc: Incident, why: str) -> None:
        cut = sum(1 for a in self.store.incidents.audit_trail(inc.id) if a["name"] == "interrupted") + 1
        if decisions.gives_up_interrupted(cut):
            self.store.incidents.audit(inc.id, "decision", "interrupted", result=why)
            self.journal.close(inc, IncidentState.GAVE_UP, f"{why}, the {cut}th time: not trying again;"
                                                           " please look")
            return
        if inc.state != IncidentState.DETECTED:  # an attempt was running: neither counted nor budgeted
            inc.attempts = max(0, inc.attempts - 1)
            self.store.incidents.audit(inc.id, "refund", "attempt not counted", result=why)
        inc.state, inc.next_attempt, inc.detail = IncidentState.FAILED, time.time(), why
        self.store.incidents.save(inc)
        self.store.incidents.audit(inc.id, "decision", "interrupted", result=why)

    # -- one attempt -------------------------------------------------------------------------------
    def run(self, inc: Incident) -> None:
        rule = self.rules().get(inc.rule)
        if rule is None:
            self.journal.close(inc, IncidentState.GAVE_UP, f"rule {inc.rule} is no longer loaded")
            return
        with self.budget:
            used = self.budget.used(time.time())
            if used >= self.budget.limit:
                self.journal.close(inc, IncidentState.GAVE_UP,
                                   f"action budget exhausted ({used} fix attempts in the last hour,"
                                   f" limit {self.budget.limit}): not acting; please look")
                return
            if self.resends.stopping.is_set():
                return  # the agent stops: the incident stays due, for the next start
            if not self.store.incidents.claim(inc.id, (IncidentState.DETECTED, IncidentState.FAILED,
                                                       IncidentState.OUTAGE), IncidentState.ACTING):
                return  # someone else (hb-medic retry-deploy) took it
            resumed = inc.outage is not None
            inc.attempts += 1
            inc.state, inc.outage, inc.outage_since = IncidentState.ACTING, None, None
            self.store.incidents.save(inc)
            self.store.incidents.audit(inc.id, "attempt",
                                       f"attempt {inc.attempts} of {rule.incident.max_attempts}")
        started = time.monotonic()
        values = templates.incident_values(inc)
        steps = decisions.steps(rule, values, {n for n, spec in self.actions.items() if spec.tells})
        acting = Held(self.journal.notify, copy.copy(inc), IncidentState.ACTING,
                      f"running {' -> '.join(steps.names())} (attempt {inc.attempts} of"
                      f" {rule.incident.max_attempts})")
        # After an outage the "waiting" message said it would go on; an attempt that only tells
        # fixes nothing, and its one message is what it tells.
        if not resumed and not steps.told:
            acting.start(ACTING_HOLD)
        profile = inc.captures.get("profile") or (inc.deploy or {}).get("body", {}).get("credentials_profile")
        if isinstance(profile, str) and profile:
            self.acting.begin(profile, inc.id)
        try:
            self._steps(inc, rule, values, steps, acting, started)
        finally:
            acting.cancel()
            if isinstance(profile, str) and profile:
                self.acting.end(profile, inc.id)

    def _steps(self, inc: Incident, rule: Rule, values: dict, steps: decisions.Steps, acting: Held,
               started: float) -> None:
        """One attempt's actions, checks and deploy retries, and how it ends."""
        resent = ""
        try:
            ctx = self.context()
            if steps.told:  # facts for a person, gathered; nothing changes, nothing to verify
                advice = [self._action(inc, ctx, "tell", call, values) for call in steps.calls]
                raise Told(" ".join(a.strip() for a in advice if a.strip()))
            todo: list[dict] = []
            done_before = False  # every deploy was re-sent before a stop or a kill cut the attempt
            if steps.uses_deploy():
                todo = self.resends.todo(inc)
                done_before = steps.retries and not todo and self.resends.owned(inc, done_only=True)
                body = todo[0]["body"] if todo else (inc.deploy or {}).get("body") if done_before else None
                values.update(templates.deploy_values(body or {}))
            if done_before:  # the fix was verified before its deploys went out: straight to verification
                self.store.incidents.audit(inc.id, "decision", "deploys already re-sent",
                                           result="not running the fix again: verifying")
            else:
                for call in steps.calls:
                    self._action(inc, ctx, "action", call, values)
            inc.state = IncidentState.VERIFYING
            self.store.incidents.save(inc)
            for call in steps.checks:
                self._action(inc, ctx, "verify", call, values)
            if done_before:
                resent = self.resends.verify_done(inc, ctx)
            elif steps.retries:
                if not todo and not self.resends.owned(inc):
                    raise Waiting(
                        "fixed, but the failed deploy's request is not known (no recorder record, no"
                        " logged body), so it was not guessed. To finish: " + finish_command(inc))
                from_log = next((t for t in todo if t.get("source") == "log"), None)
                if from_log is not None:
                    raise Waiting(unconfirmed(inc, from_log))
                inc.state = IncidentState.RETRYING
                self.store.incidents.save(inc)
                self.resends.send_all(inc, ctx, todo)
        except StateUnwritable:
            raise
        except Stopped:
            acting.cancel()
            self.interrupted(inc, "interrupted by a stop of the agent")
            return
        except Refused as refused:
            acting.cancel()
            self.journal.close(inc, IncidentState.REFUSED, str(refused))
            return
        except Waiting as waiting:
            acting.cancel()
            self.journal.wait(inc, str(waiting))
            return
        except Told as told:  # told a person what to do: nothing was done, nothing failed
            acting.cancel()
            self.journal.close(inc, IncidentState.OBSERVED, str(told) or "told; nothing changed",
                               step="needs-you")
            return
        except Exception as exc:  # ActionError, validation, HTTP, Docker: all end the attempt
            what = outage_of(exc)
            if what is not None:
                self._outage(inc, what, exc)
                return
            acting.cancel()
            self._failed(inc, rule, exc)
            return
        acting.cancel()
        took = time.monotonic() - started
        self.journal.close(inc, IncidentState.RESOLVED,
                           f"fixed in {took:.1f} s" + (f"; {resent}" if resent else ""))

    def _failed(self, inc: Incident, rule: Rule, exc: Exception) -> None:
        detail = self.journal.redactor.text(f"{type(exc).__name__}: {exc}" if not isinstance(exc, ActionError)
                                            else str(exc))
        failed = decisions.after_failure(detail, needs_human=isinstance(exc, NeedsHuman),
                                         attempts=inc.attempts, rule=rule)
        if failed.state == IncidentState.GAVE_UP:
            self.journal.close(inc, failed.state, failed.detail, step=failed.step)
            return
        inc.state, inc.detail, inc.next_attempt = failed.state, failed.detail, failed.next_attempt
        self.store.incidents.save(inc)
        self.store.incidents.audit(inc.id, "decision", IncidentState.FAILED, result=detail)
        self.journal.notify(inc, IncidentState.FAILED, f"{detail}; next attempt in "
                                                      f"{inc.next_attempt - time.time():.0f} s")

    def _action(self, inc: Incident, ctx: ActionContext, kind: str, call: ActionCall, values: dict) -> str:
        """Run one call and audit it; what it returned, as text."""
        spec = self.actions[call.action]
        params = params_of(call, values)
        missing = [n for v in call.params.values() if isinstance(v, str) for n in unresolved(v, values)]
        if "deploy.credentials_profile" in missing:
            profile = half_made_profile(ctx)
            if profile is not None:
                values["deploy.credentials_profile"] = profile
                self.store.incidents.audit(inc.id, "decision", "half-made profile found through the API",
                                           {"profile": profile})
                params, missing = params_of(call, values), []
        if missing:
            raise Waiting(f"{call.action} needs {', '.join(missing)}, which no evidence gives. "
                          "To finish: " + finish_command(inc))
        for key, raw in call.params.items():
            # Values from a recorded or logged request body are client text: names only, and never
            # a protected profile. Trying again would not change them: the incident is refused.
            if isinstance(raw, str) and "{deploy." in raw:
                reason = capture_check.check(DEPLOY_PROFILE if key == "profile" else DEPLOY_VALUE,
                                             str(params[key]))
                if reason:
                    value = capture_check.shown(str(params[key]))
                    raise Refused(f"not acting: {call.action}: {key}={value} {reason}")
        shown = ctx.redactor.data(params)
        started = time.monotonic()
        try:
            typed = spec.params.model_validate(params)
        except ValidationError as exc:
            self.store.incidents.audit(inc.id, kind, call.action, shown, False,
                                       f"refused: {exc.errors()[0]['msg']}")
            raise ActionError(f"{call.action}: parameter refused: {exc.errors()[0]['msg']}") from None
        try:
            result = spec.func(typed, ctx)
        except Stopped:
            self.store.incidents.audit(inc.id, kind, call.action, shown, None, "cut short: the agent stopped",
                                       (time.monotonic() - started) * 1000)
            raise
        except Exception as exc:
            self.store.incidents.audit(inc.id, kind, call.action, shown, False, ctx.redactor.text(str(exc)),
                                       (time.monotonic() - started) * 1000)
            raise
        self.store.incidents.audit(inc.id, kind, call.action, shown, True, ctx.redactor.text(str(result)),
                                   (time.monotonic() - started) * 1000)
        return "" if result is None else str(result)

    # -- before a deploy is forwarded (agent.remedy.prevent) ----------------------------------------
    def budgeted(self, inc: Incident, rule: Rule, *, after: str = "") -> str | None:
        """Open a preflight incident as an attempt of the action budget (one unit, like any
        attempt): None, or why it may not act (the budget is spent). `after`: why a warned
        incident's fix runs after its deploy went out (its Fix now); it stays `warned`, so the
        failure, when it comes, still opens its own incident linked to it."""
        with self.budget:
            used = self.budget.used(time.time())
            if used >= self.budget.limit:
                return (f"action budget exhausted ({used} fix attempts in the last hour, limit"
                        f" {self.budget.limit}): not fixed first")
            inc.attempts = 1
            if not after:
                inc.state = IncidentState.ACTING
            self.store.incidents.save(inc)
            self.store.incidents.audit(inc.id, "attempt", f"attempt 1 of {rule.incident.max_attempts}",
                                       result=after or "before the deploy is forwarded")
        return None

    def before_deploy(self, inc: Incident, calls: list[ActionCall], checks: list[ActionCall],
                      values: dict, *, keep_state: bool = False) -> list[str]:
        """A rule's fix (its actions, then their checks) before the deploy it foresees failing is
        forwarded: each call run, audited and checked as in any attempt. What each returned;
        raises what the first that failed raised. `keep_state`: a warned incident's Fix now."""
        profile = inc.captures.get("profile")
        if isinstance(profile, str) and profile:
            self.acting.begin(profile, inc.id)
        try:
            ctx = self.context()
            done = [self._action(inc, ctx, "action", call, values) for call in calls]
            if not keep_state:
                inc.state = IncidentState.VERIFYING
                self.store.incidents.save(inc)
            for call in checks:
                self._action(inc, ctx, "verify", call, values)
            return done
        finally:
            if isinstance(profile, str) and profile:
                self.acting.end(profile, inc.id)

    # -- outages -----------------------------------------------------------------------------------
    def look_again(self, inc: Incident) -> None:
        """An incident waiting out an outage: go on if what it waits for answers again."""
        now = time.time()
        if now - (inc.outage_since or now) > OUTAGE_MAX:
            self.journal.close(inc, IncidentState.GAVE_UP,
                               f"{inc.outage} did not answer for a day: gave up; please look")
            return
        try:
            back = reachable(self.context(), inc.outage or "")
        except Exception as exc:  # the context itself may need the engine
            back = outage_of(exc) is None and not isinstance(exc, StateUnwritable)
        if not back:
            inc.next_attempt = now + OUTAGE_LOOK
            self.store.incidents.save(inc)
            return
        self.store.incidents.audit(inc.id, "decision", f"{inc.outage} answers again",
                                   result=f"after {now - (inc.outage_since or now):.0f} s: going on")
        self.run(inc)

    def _outage(self, inc: Incident, what: str, exc: BaseException) -> None:
        """Nothing could be done because `what` does not answer: wait for it, attempt not used up."""
        now = time.time()
        first = inc.outage is None
        inc.attempts -= 1
        inc.outage, inc.outage_since = what, inc.outage_since or now
        inc.state, inc.next_attempt = IncidentState.OUTAGE, now + OUTAGE_LOOK
        inc.detail = self.journal.redactor.text(
            f"{what} does not answer ({_short(exc)}): waiting for it, up to a day, then going on; this"
            " does not use up an attempt")
        self.store.incidents.save(inc)
        self.store.incidents.audit(inc.id, "refund", "attempt not counted", result=f"{what} does not answer")
        self.store.incidents.audit(inc.id, "decision", f"waiting for {what}", result=inc.detail)
        if first:
            self.journal.notify(inc, IncidentState.OUTAGE, inc.detail)


def half_made_profile(ctx: ActionContext) -> str | None:
    """The only listed profile whose credentials folder is missing, if exactly one is."""
    found = [a for a in ctx.api.accounts()
             if not protected_profile(a) and ctx.api.account_credentials(a) is None]
    return found[0] if len(found) == 1 else None


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
