"""Incidents: from a match to a fix, verified, with the deploy retried; never a loop.

One incident per (rule, key) at a time. A new match of an open incident only
counts; an event already handled (replayed after a restart) joins its incident
and never opens another, whatever the cooldown. A failed attempt is tried again
after a growing backoff, up to the rule's attempt limit; a closed one is left
alone for the rule's cooldown, unless a different deploy failed since. An
attempt that cannot reach hummingbot-api or the Docker engine is not a failed
attempt: the incident waits for it (up to a day) and goes on when it answers.
One incident retries every failed deploy it owns (each recorded failure of its
profile), each once. A global budget of fix attempts per hour stops everything
(a circuit breaker). In observe mode (global or per rule) the agent records and
reports what it would have done. An event from long ago (replayed after
downtime) is reported, not acted on. Every decision and every action goes to
the audit trail, with secrets masked. Fixes run on a few worker threads, each
incident on one at a time and one deploy of an instance name at a time, so the
pipeline never waits for a fix and a storm's fixes do not queue behind each
other's settle times.
"""

from __future__ import annotations

import copy
import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import ValidationError

from agent import templates
from agent.actions import registry
from agent.actions.base import ActionContext, ActionError, NeedsHuman
from agent.events import RESPONSE, Event, spoken_duration
from agent.match import captures as capture_check
from agent.match.loader import params_of, unresolved
from agent.match.matcher import Result
from agent.match.model import Capture, Rule
from agent.names import DEFAULT_STACK, base_name, protected_profile
from agent.records import PENDING, Deploy, Incident
from agent.redact import Redactor
from agent.remedy import intent as intents
from agent.remedy.outage import outage_of, reachable
from agent.remedy.retry import already_deployed, retry_deploy
from agent.state import State, StateUnwritable

log = logging.getLogger(__name__)
Notify = Callable[[Incident, str, str], None]
DEPLOY_VALUE = Capture(type="name", max_length=128)
DEPLOY_PROFILE = Capture(type="profile", max_length=64)
# Closed incidents whose key then rests for the rule's cooldown: an observed one too, or an
# observe-only rule would open (and tell) a new incident for every repeat of its error.
COOLING = ("resolved", "gave-up", "observed")
WAITING_TTL = 86400.0  # a `waiting` incident nobody finished stops blocking its key after this
OUTAGE_MAX = 86400.0  # how long an incident waits for hummingbot-api or the engine to answer
OUTAGE_LOOK = 3.0  # seconds between two looks at something that does not answer
EVENTS_KEPT = 2 * 86400.0  # how long a handled event is remembered (no replay reaches back further)
CLIENT_WAIT = 30.0  # how long a retry waits for a client's own deploy of that name to be answered
# "Detected, fixing" waits this long: an attempt that ends sooner (a person is needed at once, or
# the fix took no time) is told in one message, not two a few milliseconds apart.
ACTING_HOLD = 1.0
OWNED_WINDOW = 600.0  # an incident this recent owns the failed deploys of its profile or instance
# hummingbot-api logs the failure of a call hb-medic made (an add-credential it refused): that line,
# of another rule, belongs to the acting incident, up to this long after its attempt ended.
OWN_ECHO = 10.0
OWN_SEND_WAIT = 20.0  # after a re-send cut off by a kill, how long its bot may take to show
MAX_INTERRUPTED = 20  # restarts during an incident's attempts before it gives up
EVIDENCE_WAIT = 3.0  # a log line of a rule that also reads the recorder waits this long for its answer
QUIET_DEFAULT = 600.0  # an ongoing condition whose rule is gone ends after this
WORKERS = 8  # incidents worked on side by side (a retried bot must live its settle time)


class _Refused(Exception):
    """A value from evidence the agent must never act on (a protected profile): no attempt helps."""


class _Waiting(Exception):
    """The fix needs something only a human can give (usually the deploy body)."""


# An incident step's log level: INFO while things go as they should, WARNING where a person
# should look, ERROR where the agent failed.
STEP_LEVELS = {"failed": logging.WARNING, "refused": logging.WARNING, "stale": logging.WARNING,
               "waiting": logging.WARNING, "gave-up": logging.ERROR}


def log_step(inc: Incident, step: str, text: str, show_stack: bool = False) -> None:
    """Each incident step as one line of the agent's log (beside its notification)."""
    where = f"stack {inc.stack}: " if show_stack else ""
    log.log(STEP_LEVELS.get(step, logging.INFO), "%sincident %s [%s] %s: %s", where, inc.id, inc.rule, step,
            text)


def finish_command(inc: Incident) -> str:
    profile = inc.captures.get("profile", "<profile>")
    body = {"instance_name": inc.captures.get("instance", "<instance name>"), "credentials_profile": profile}
    return f"hb-medic retry-deploy {inc.id} --body '{json.dumps(body)}'"


def unconfirmed(inc: Incident, intent: dict) -> str:
    """A body read from log text is never re-sent by itself: anyone who reaches hummingbot-api can
    print a line, so a person looks at it first."""
    return ("fixed, but the failed deploy's request was read from hummingbot-api's log, which proves"
            " nothing about who sent it, so it was not re-sent. If it is yours: hb-medic retry-deploy"
            f" {inc.id} (sends {json.dumps(intent['body'], sort_keys=True)})")


class Remedy:
    def __init__(self, store: State, rules: Callable[[], dict[str, Rule]],
                 context: Callable[[], ActionContext], *, notify: Notify | None = None,
                 mode: str = "enforce", budget: int = 100, stale_after: float = 900.0,
                 bots_dir: Path | None = None, recorder: bool = False,
                 redactor: Redactor | None = None, stack: str = DEFAULT_STACK) -> None:
        """One Remedy per stack: its own worker, budget and incidents, so a slow fix on one stack
        never queues another stack's fix behind it."""
        self.redactor = redactor or Redactor()
        self.stack = stack
        self.store = store
        self.rules = rules
        self.context = context
        self.notify = notify or log_step
        self.mode = mode
        self.budget = budget
        self.stale_after = stale_after
        self.bots_dir = bots_dir
        self.recorder = recorder
        self.actions = registry()
        self._queue: queue.Queue[str | None] = queue.Queue()
        own = "" if stack == DEFAULT_STACK else f"-{stack}"
        self._thread = threading.Thread(target=self._dispatch, name=f"remedy{own}", daemon=True)
        self._workers = [threading.Thread(target=self._work, name=f"remedy{own}-{n}", daemon=True)
                         for n in range(WORKERS)]
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # decisions on matches (submit)
        self._busy: set[str] = set()  # incidents queued or being worked on
        self._busy_lock = threading.Lock()
        self._acting: dict[str, tuple[str, float]] = {}  # profile -> (incident acting on it, until)
        self._budget_lock = threading.Lock()  # the budget is checked and used as one step
        self._names: dict[str, threading.Lock] = {}  # one deploy of an instance name at a time
        self._cut_short: set[str] = set()
        self._forgot = 0.0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.recover()
        for worker in self._workers:
            worker.start()
        self._thread.start()

    def recover(self) -> None:
        """Attempts cut short by a stop or a kill are tried again at once. The cut attempt is
        not counted (the agent's end is not the fix failing), but an incident cut short
        MAX_INTERRUPTED times gives up: a fix that takes the agent down must not loop."""
        for inc in self.store.incidents.recent(limit=200, stack=self.stack):
            if inc.state in ("detected", "acting", "verifying", "retrying"):
                self._interrupted(inc, "interrupted by a restart of the agent")

    def _interrupted(self, inc: Incident, why: str) -> None:
        cut = sum(1 for a in self.store.incidents.audit_trail(inc.id) if a["name"] == "interrupted") + 1
        if cut >= MAX_INTERRUPTED:
            self.store.incidents.audit(inc.id, "decision", "interrupted", result=why)
            self._close(inc, "gave-up", f"{why}, the {cut}th time: not trying again; please look")
            return
        if inc.state != "detected":  # an attempt was running: it is neither counted nor budgeted
            inc.attempts = max(0, inc.attempts - 1)
            self.store.incidents.audit(inc.id, "refund", "attempt not counted", result=why)
        inc.state, inc.next_attempt, inc.detail = "failed", time.time(), why
        self.store.incidents.save(inc)
        self.store.incidents.audit(inc.id, "decision", "interrupted", result=why)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        for _ in self._workers:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in (self._thread, *self._workers):
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    # -- from the pipeline: decide, quickly ----------------------------------------------------
    def submit(self, res: Result) -> Incident | None:
        rule, event = res.rule, res.event
        if self.recorder and rule.source == "any" and event.kind != RESPONSE and not res.held:
            # The log line and the recorder's answer tell one failure; the answer says more (the
            # connector of a credential upload): it goes first, the line then joins its incident.
            res.held = True
            timer = threading.Timer(EVIDENCE_WAIT, self._submit_held, args=(res,))
            timer.daemon = True
            timer.start()
            return None
        if res.below_threshold and rule.incident.quiet is None:
            return None
        key = self.redactor.text(res.text(rule.incident.key)) or rule.id
        keys = event_keys(event, self.stack)
        now = time.time()
        if res.below_threshold:  # below the threshold, a line still keeps an ongoing condition going
            with self._lock:
                current = self.store.incidents.latest(rule.id, key, self.stack)
                if current is not None and current.state == "ongoing" \
                        and self.store.incidents.of_event(keys) is None:
                    self.store.incidents.count_event(current.id, keys)
            return None
        with self._lock:
            self._forget_old_events(now)
            handled = self.store.incidents.of_event(keys)
            if handled is not None:  # replayed after a restart: that incident has it already
                self.store.incidents.audit(handled, "decision", "replayed event already handled: no action",
                                           event.where())
                return self.store.incidents.get(handled)
            current = self.store.incidents.latest(rule.id, key, self.stack)
            if current is not None and current.state == "waiting" and now - current.updated > WAITING_TTL:
                self._close(current, "gave-up", "nobody finished the deploy within a day: closed")
                current = self.store.incidents.latest(rule.id, key, self.stack)
            if current is not None and current.open:
                self.store.incidents.count_event(current.id, keys)
                return current
            if current is not None and current.closed and current.state in COOLING \
                    and now - current.closed < rule.incident.cooldown:
                fresh = self._new_failed_deploy(current) if rule.retry_deploy else None
                if fresh is None:
                    self.store.incidents.count_event(current.id, keys)
                    self.store.incidents.audit(current.id, "decision", "event during cooldown: no action",
                                               {"fingerprint": event.fingerprint})
                    return current
                log.info("incident %s is closed, but deploy %s failed since: a new incident", current.id,
                         fresh)
            own = self._own_call(res)
            if own is not None:  # it would open an incident: unless it is the echo of our own call
                self.store.incidents.count_event(own.id, keys)
                self.store.incidents.audit(own.id, "decision",
                                           "hummingbot-api's log of hb-medic's own call: no new incident",
                                           {"rule": rule.id, **event.where()})
                return own
            inc = Incident(
                id=secrets.token_hex(4), rule=rule.id, key=key, state="detected", severity=rule.severity,
                container=event.container, summary=self.redactor.text(_summary(res)),
                fingerprint=event.fingerprint, captures=_stored(res, self.redactor),
                opened_by=templates.event_values(event, self.redactor.text),
                deploy=_carried_deploy(res), stack=self.stack)
            self.store.incidents.create(inc, keys)
        self.store.incidents.audit(inc.id, "decision", "detected",
                                   self.redactor.data({"captures": res.captures, **event.where()}),
                                   result=inc.summary)
        age = now - event.ts / 1e9 if event.ts else 0.0
        if res.refused:
            return self._close(inc, "refused", f"not acting: {res.refused}")
        if age > self.stale_after:
            return self._close(inc, "stale", f"event is {age:.0f} s old (replayed after downtime):"
                                             " reported, not acted on")
        plan = self._plan(rule, res)
        if rule.incident.quiet is not None and not plan:  # it only tells: its start now, its end later
            inc.state = "ongoing"
            self.store.incidents.save(inc)
            self.store.incidents.audit(inc.id, "decision", "ongoing",
                                       result=f"ends once no such line came for {rule.incident.quiet:g} s")
            self.notify(inc, "detected", inc.summary)
            return inc
        self.notify(inc, "detected", inc.summary)
        if not plan:  # observed or not, a rule that only tells has told
            return self._close(inc, "resolved", "notified; this rule runs no action")
        if self.mode == "observe" or rule.observe_only:
            self.store.incidents.audit(inc.id, "decision", "observe", {"would_run": plan})
            return self._close(inc, "observed", "would have run: " + " -> ".join(plan))
        self._enqueue(inc.id)
        return inc

    def _submit_held(self, res: Result) -> None:
        try:
            if not self._stopping.is_set():
                self.submit(res)
        except Exception:
            log.exception("a held match of %s failed", res.rule.id)

    def _forget_old_events(self, now: float) -> None:
        if now - self._forgot > 3600:
            self._forgot = now
            self.store.incidents.forget_events(now - EVENTS_KEPT)

    def _new_failed_deploy(self, closed: Incident) -> str | None:
        """A deploy of the closed incident's profile (or instance) that failed, or is still
        waiting for its answer, since it closed, and that no incident retried: a new failure,
        which the cooldown must not hide. Its instance name, if there is one."""
        since = (closed.closed or closed.updated) - 2
        mine = {r["deploy_id"] for r in self.store.incidents.deploys(closed.id)}
        found = [d for d in self._recorded(closed, since)
                 if (d.retryable or d.state == PENDING) and d.id not in mine]
        done = self.store.incidents.deploys_done([d.id for d in found])
        fresh = [d for d in found if d.id not in done]
        return (fresh[0].instance or f"record {fresh[0].id}") if fresh else None

    def _own_call(self, res: Result) -> Incident | None:
        """The incident acting on this profile, when the match is hummingbot-api's log line of a
        call hb-medic made for it (another rule's, naming the same account): not a new failure."""
        if res.event.kind == RESPONSE:  # the recorder's answers are clients' calls, never ours
            return None
        profile = res.captures.get("account") or res.captures.get("profile")
        acting = self._acting.get(profile) if isinstance(profile, str) else None
        if acting is None or acting[1] < time.time():
            return None
        inc = self.store.incidents.get(acting[0])
        return inc if inc is not None and inc.rule != res.rule.id else None

    def owns_deploy(self, event: Event) -> bool:
        """Does an incident of the last minutes own this failed deploy (the same credentials
        profile or instance)? Then its answer, seen by the recorder, is that incident's failure
        and no error of its own."""
        request = (event.data or {}).get("request") or {}
        profile, instance = request.get("credentials_profile"), request.get("instance_name")
        names = {instance, base_name(instance)} if isinstance(instance, str) and instance else set()
        since = (event.ts / 1e9 if event.ts else time.time()) - OWNED_WINDOW
        for inc in self.store.incidents.recent(50, stack=self.stack):
            if inc.updated < since:
                continue
            if (profile and inc.captures.get("profile") == profile) or inc.captures.get("instance") in names:
                return True
        return False

    def _recorded(self, inc: Incident, since: float) -> list[Deploy]:
        instance = inc.captures.get("instance")
        names = tuple({instance, base_name(instance)}) if instance else ()
        return self.store.deploys.of(profile=inc.captures.get("profile"), instances=names, since=since,
                                     stack=self.stack)

    def _plan(self, rule: Rule, res: Result) -> list[str]:
        steps = [f"{name}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
                 for name, params, _ in res.action_params()]
        steps += [f"verify {c.action}" for c in rule.calls(res.values, "verify")]
        return [*steps, "retry_deploy"] if rule.retry_deploy else steps

    def _close(self, inc: Incident, state: str, detail: str, step: str | None = None) -> Incident:
        """`step`: what the message says, when not the state itself ("needs-you": a person is
        needed now, and trying again would not help)."""
        detail = self.redactor.text(detail)
        inc.state, inc.detail, inc.closed = state, detail, time.time()
        self.store.incidents.save(inc)
        self.store.incidents.audit(inc.id, "decision", state, result=detail)
        self.notify(inc, step or state, detail)
        return inc

    # -- the workers: act, verify, retry --------------------------------------------------------
    def _enqueue(self, inc_id: str) -> None:
        with self._busy_lock:
            if inc_id in self._busy:
                return
            self._busy.add(inc_id)
        self._queue.put(inc_id)

    def _dispatch(self) -> None:
        """Every second: incidents whose next attempt (or next look at an outage) is due."""
        while not self._stopping.wait(1.0):
            try:
                if self._cut_short and self.store.file.write_problem is None:
                    self._resume_cut_short()
                for inc in self.store.incidents.due(time.time(), self.stack):
                    self._enqueue(inc.id)
                self._end_quiet(time.time())
            except StateUnwritable:
                pass  # the store said so once
            except Exception:
                log.exception("remedy dispatcher failed")

    def _end_quiet(self, now: float) -> None:
        """Ongoing conditions whose lines stopped: over, said once."""
        for inc in self.store.incidents.ongoing(self.stack):
            rule = self.rules().get(inc.rule)
            quiet = rule.incident.quiet if rule is not None and rule.incident.quiet else QUIET_DEFAULT
            if now - inc.updated < quiet:
                continue
            with self._lock:  # a line counted meanwhile keeps it going
                inc = self.store.incidents.get(inc.id)
                if inc is None or inc.state != "ongoing" or now - inc.updated < quiet:
                    continue
                lasted = max(0.0, inc.updated - inc.created)
                detail = (f"no such line for {spoken_duration(quiet)}: over after {spoken_duration(lasted)}"
                          f" ({inc.events} line{'s' if inc.events != 1 else ''} counted)")
                inc.state, inc.detail, inc.closed = "resolved", detail, now
                self.store.incidents.save(inc)
                self.store.incidents.audit(inc.id, "decision", "ended", result=detail)
            self.notify(inc, "ended", detail)

    def _work(self) -> None:
        """One of WORKERS: incidents are worked on side by side, each by one worker at a time."""
        while True:
            inc_id = self._queue.get()
            if inc_id is None:
                return
            try:
                inc = self.store.incidents.get(inc_id)
                if inc is not None and inc.state == "outage":
                    self._look_again(inc)
                elif inc is not None and inc.state in ("detected", "failed"):
                    self.attempt(inc)
            except StateUnwritable:
                with self._busy_lock:
                    self._cut_short.add(inc_id)  # the store said so once; resumed when it heals
            except Exception:
                log.exception("remedy worker failed on incident %s", inc_id)
            finally:
                with self._busy_lock:
                    self._busy.discard(inc_id)

    def _resume_cut_short(self) -> None:
        """Attempts cut short by an unwritable state file are tried again once it heals."""
        with self._busy_lock:
            cut, self._cut_short = sorted(self._cut_short), set()
        for inc_id in cut:
            inc = self.store.incidents.get(inc_id)
            if inc is not None and inc.state in ("detected", "acting", "verifying", "retrying"):
                self._interrupted(inc, "cut short: the state file could not be written")

    def _look_again(self, inc: Incident) -> None:
        """An incident waiting out an outage: go on if what it waits for answers again."""
        now = time.time()
        if now - (inc.outage_since or now) > OUTAGE_MAX:
            self._close(inc, "gave-up", f"{inc.outage} did not answer for a day: gave up; please look")
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
        self.attempt(inc)

    def attempt(self, inc: Incident) -> None:
        rule = self.rules().get(inc.rule)
        if rule is None:
            self._close(inc, "gave-up", f"rule {inc.rule} is no longer loaded")
            return
        with self._budget_lock:
            used = self.store.incidents.attempts_since(time.time() - 3600, self.stack)
            if used >= self.budget:
                self._close(inc, "gave-up", f"action budget exhausted ({used} fix attempts in the last hour,"
                                            f" limit {self.budget}): not acting; please look")
                return
            if not self.store.incidents.claim(inc.id, ("detected", "failed", "outage"), "acting"):
                return  # someone else (hb-medic retry-deploy) took it
            resumed = inc.outage is not None
            inc.attempts += 1
            inc.state, inc.outage, inc.outage_since = "acting", None, None
            self.store.incidents.save(inc)
            self.store.incidents.audit(inc.id, "attempt",
                                       f"attempt {inc.attempts} of {rule.incident.max_attempts}")
        started = time.monotonic()
        values = templates.incident_values(inc)
        calls, checks = rule.calls(values), rule.calls(values, "verify")
        steps = [c.action for c in calls] + [f"verify {c.action}" for c in checks]
        steps += ["retry_deploy"] if rule.retry_deploy else []
        acting = _Held(self.notify, copy.copy(inc), "acting", f"running {' -> '.join(steps)}"
                       f" (attempt {inc.attempts} of {rule.incident.max_attempts})")
        if not resumed:  # after an outage the "waiting" message said it would go on
            acting.start(ACTING_HOLD)
        profile = inc.captures.get("profile") or (inc.deploy or {}).get("body", {}).get("credentials_profile")
        if isinstance(profile, str) and profile:
            self._acting[profile] = (inc.id, float("inf"))
        try:
            self._attempt_steps(inc, rule, values, calls, checks, acting, started)
        finally:
            acting.cancel()
            if isinstance(profile, str) and profile:
                self._acting[profile] = (inc.id, time.time() + EVIDENCE_WAIT + OWN_ECHO)

    def _attempt_steps(self, inc: Incident, rule: Rule, values: dict, calls: list, checks: list,
                       acting: _Held, started: float) -> None:
        """One attempt's actions, checks and deploy retries, and how it ends."""
        try:
            ctx = self.context()
            todo: list[dict] = []
            if rule.retry_deploy or any(n.startswith("deploy.") for c in calls
                                        for n in _templates(c.params)):
                todo = self._deploys_to_retry(inc)
                values.update(templates.deploy_values(todo[0]["body"] if todo else {}))
            for call in calls:
                self._run(inc, ctx, "action", call, values)
            inc.state = "verifying"
            self.store.incidents.save(inc)
            for call in checks:
                self._run(inc, ctx, "verify", call, values)
            if rule.retry_deploy:
                if not todo and not self._owned(inc):
                    raise _Waiting(
                        "fixed, but the failed deploy's request is not known (no recorder record, no"
                        " logged body), so it was not guessed. To finish: " + finish_command(inc))
                from_log = next((t for t in todo if t.get("source") == "log"), None)
                if from_log is not None:
                    raise _Waiting(unconfirmed(inc, from_log))
                inc.state = "retrying"
                self.store.incidents.save(inc)
                self._retry_all(inc, ctx, todo)
        except StateUnwritable:
            raise
        except _Refused as refused:
            acting.cancel()
            self._close(inc, "refused", str(refused))
            return
        except _Waiting as waiting:
            acting.cancel()
            inc.state, inc.detail = "waiting", str(waiting)
            self.store.incidents.save(inc)
            self.store.incidents.audit(inc.id, "decision", "waiting", result=inc.detail)
            self.notify(inc, "waiting", inc.detail)
            return
        except Exception as exc:  # ActionError, validation, HTTP, Docker: all end the attempt
            what = outage_of(exc)
            if what is not None:
                self._outage(inc, what, exc)
                return
            detail = self.redactor.text(f"{type(exc).__name__}: {exc}" if not isinstance(exc, ActionError)
                                       else str(exc))
            acting.cancel()
            if isinstance(exc, NeedsHuman):  # another attempt would not help: say what to do
                self._close(inc, "gave-up", detail, step="needs-you")
            elif inc.attempts >= rule.incident.max_attempts:
                self._close(inc, "gave-up", f"{detail} (after {inc.attempts} attempts)")
            else:
                inc.state, inc.detail = "failed", detail
                inc.next_attempt = time.time() + rule.incident.backoff * 2 ** (inc.attempts - 1)
                self.store.incidents.save(inc)
                self.store.incidents.audit(inc.id, "decision", "failed", result=detail)
                self.notify(inc, "failed", f"{detail}; next attempt in "
                                           f"{inc.next_attempt - time.time():.0f} s")
            return
        acting.cancel()
        took = time.monotonic() - started
        self._close(inc, "resolved", f"fixed in {took:.1f} s")

    def _outage(self, inc: Incident, what: str, exc: BaseException) -> None:
        """Nothing could be done because `what` does not answer: wait for it, attempt not used up."""
        now = time.time()
        first = inc.outage is None
        inc.attempts -= 1
        inc.outage, inc.outage_since = what, inc.outage_since or now
        inc.state, inc.next_attempt = "outage", now + OUTAGE_LOOK
        inc.detail = self.redactor.text(
            f"{what} does not answer ({_short(exc)}): waiting for it, up to a day, then going on; this"
            " does not use up an attempt")
        self.store.incidents.save(inc)
        self.store.incidents.audit(inc.id, "refund", "attempt not counted", result=f"{what} does not answer")
        self.store.incidents.audit(inc.id, "decision", f"waiting for {what}", result=inc.detail)
        if first:
            self.notify(inc, "outage", inc.detail)

    # -- the deploys an incident retries ---------------------------------------------------------
    def _deploys_to_retry(self, inc: Incident, *, wait: bool = True) -> list[dict]:
        """Every failed deploy this incident owns and has not retried yet, one per instance name
        (its latest request): the recorder's records of its profile or instance from a while
        before it opened until now, waiting a moment for answers still on their way; without
        such records, the one request the event carried or the log or bots folder gave."""
        if inc.deploy and inc.deploy.get("deploy_id") is not None and inc.deploy.get("source") in (
                "recorder", "bot") and not inc.captures.get("profile") and not inc.captures.get("instance"):
            # A recorder rule's own exchange (e.g. an image to pull), or the deploy of a bot that died.
            found = self._intent(inc)
            return [self._one(found, inc)] if found and not self._owned(inc, done_only=True) else []
        since = inc.created - 300
        deadline = time.monotonic() + (5.0 if wait and self.recorder else 0.0)
        while True:
            records = self._recorded(inc, since)
            if not any(d.state == PENDING and d.at >= inc.created - 60 for d in records) \
                    or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        failed = [d for d in records if d.retryable and d.body() is not None]
        if not failed:
            if self._owned(inc):
                return []
            found = self._intent(inc) if wait else None
            return [self._one(found, inc)] if found else []
        done = self.store.incidents.deploys_done([d.id for d in failed])
        groups: dict[str, list[Deploy]] = {}
        for d in failed:
            groups.setdefault(base_name(d.instance or d.body().get("instance_name", "")), []).append(d)
        todo = []
        for base, group in groups.items():
            if all(d.id in done for d in group):
                continue
            latest = group[-1]
            todo.append({"route": latest.route, "body": latest.body(), "raw": latest.request_body,
                         "source": "recorder", "deploy_id": latest.id, "base": base,
                         "ids": [d.id for d in group], "at": group[0].at})
        if todo and wait:
            inc.deploy = {k: todo[0][k] for k in ("route", "body", "raw", "source", "deploy_id")}
            self.store.incidents.save(inc)
            self.store.incidents.audit(inc.id, "decision", "deploy requests found" if len(todo) > 1
                                       else "deploy request found",
                                       self.redactor.data({"source": "recorder", "route": todo[0]["route"],
                                                           "instances": [t["base"] for t in todo],
                                                           "body": todo[0]["body"]}))
        return todo

    def _intent(self, inc: Incident) -> dict | None:
        """The one request the event carried, a log or the bots folder gave (or the recorder's
        latest record): the evidence when there is no list of recorded failures."""
        found = intents.resolve(self.store, self.bots_dir, deploy=inc.deploy, captures=inc.captures,
                                at=inc.created, wait=3.0 if self.recorder else 0.0, stack=self.stack)
        if found is not None:
            inc.deploy = {k: found[k] for k in ("route", "body", "raw", "source", "deploy_id") if k in found}
            self.store.incidents.save(inc)
            self.store.incidents.audit(inc.id, "decision", "deploy request found",
                                       self.redactor.data({"source": found.get("source"),
                                                           "route": found.get("route"),
                                                           "body": found.get("body")}))
        return found

    def _one(self, found: dict, inc: Incident) -> dict:
        body = found["body"]
        deploy_id = found.get("deploy_id") or 0
        return {**found, "base": base_name(str(body.get("instance_name", ""))),
                "ids": [deploy_id], "at": inc.created}

    def _owned(self, inc: Incident, done_only: bool = False) -> bool:
        """Has this incident retried deploys already (so none left is not "unknown")?"""
        return any(not done_only or r["state"] == "done" for r in self.store.incidents.deploys(inc.id))

    def _retry_all(self, inc: Incident, ctx: ActionContext, todo: list[dict]) -> None:
        """Re-send each, side by side (each bot then has to live its settle time); deploys that
        fail meanwhile (sent before the fix took) are taken too."""
        failures: list[str] = []
        outage: BaseException | None = None
        human = False  # one of them needs a person (another attempt would not help it)
        tried: set[str] = set()
        for _round in range(5):
            tried.update(t["base"] for t in todo)
            with ThreadPoolExecutor(max_workers=min(len(todo), WORKERS),
                                    thread_name_prefix=f"retry-{inc.id}") as pool:
                results = [(t, pool.submit(self._retry, inc, ctx, t)) for t in todo]
            for intent, future in results:
                exc = future.exception()
                if isinstance(exc, StateUnwritable):
                    raise exc
                if exc is not None and outage_of(exc) is not None:
                    outage = exc
                elif exc is not None:
                    human = human or isinstance(exc, NeedsHuman)
                    failures.append(f"{intent['base']}: {exc}" if len(todo) > 1 else str(exc))
            if outage is not None:
                raise outage
            todo = [t for t in self._deploys_to_retry(inc, wait=False) if t["base"] not in tried]
            if not todo:
                break
        if failures:
            raise (NeedsHuman if human else ActionError)("; ".join(failures))

    def _run(self, inc: Incident, ctx: ActionContext, kind: str, call, values: dict) -> None:
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
            raise _Waiting(f"{call.action} needs {', '.join(missing)}, which no evidence gives. "
                           "To finish: " + finish_command(inc))
        for key, raw in call.params.items():
            # Values from a recorded or logged request body are client text: names only, and never
            # a protected profile. Trying again would not change them: the incident is refused.
            if isinstance(raw, str) and "{deploy." in raw:
                reason = capture_check.check(DEPLOY_PROFILE if key == "profile" else DEPLOY_VALUE,
                                             str(params[key]))
                if reason:
                    value = capture_check.shown(str(params[key]))
                    raise _Refused(f"not acting: {call.action}: {key}={value} {reason}")
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
        except Exception as exc:
            self.store.incidents.audit(inc.id, kind, call.action, shown, False, ctx.redactor.text(str(exc)),
                                       (time.monotonic() - started) * 1000)
            raise
        self.store.incidents.audit(inc.id, kind, call.action, shown, True, ctx.redactor.text(str(result)),
                                   (time.monotonic() - started) * 1000)

    def _retry(self, inc: Incident, ctx: ActionContext, intent: dict) -> str:
        started = time.monotonic()
        body, base, ids = intent["body"], intent.get("base") or base_name(intent["body"]["instance_name"]), \
            intent.get("ids") or [0]
        raw = intent.get("raw") or json.dumps(body)
        since = intent.get("at") or inc.created
        params = {"route": intent["route"], "body": ctx.redactor.data(body), "source": intent.get("source")}
        try:
            with self._name_lock(base):  # whichever incident it is, one deploy of a name at a time
                self._wait_for_earlier_sends(inc, ctx, base, since)
                self._wait_for_clients(base, exclude=set(ids))
                for deploy_id in ids:  # written ahead: a kill while it is out never sends a second one
                    self.store.incidents.mark_deploy(inc.id, deploy_id, base, "sending", sent_at=time.time())
                result = retry_deploy(ctx, intent["route"], raw, body, since=since)
        except StateUnwritable:
            raise
        except Exception as exc:
            reason = ctx.redactor.text(str(exc))
            for deploy_id in ids:
                self.store.incidents.mark_deploy(inc.id, deploy_id, base, "failed", reason)
            self.store.incidents.audit(inc.id, "retry", "retry_deploy", params, False, reason,
                                       (time.monotonic() - started) * 1000)
            raise
        for deploy_id in ids:
            self.store.incidents.mark_deploy(inc.id, deploy_id, base, "done", result)
        self.store.incidents.audit(inc.id, "retry", "retry_deploy", params, True, result,
                                   (time.monotonic() - started) * 1000)
        return result

    def _name_lock(self, base: str) -> threading.Lock:
        with self._busy_lock:
            return self._names.setdefault(base, threading.Lock())

    def _wait_for_earlier_sends(self, inc: Incident, ctx: ActionContext, base: str, since: float) -> None:
        """This incident sent it before and was cut off (a kill) before it knew the answer: give
        the bot time to show up before sending again."""
        sent = [r["sent_at"] or 0.0 for r in self.store.incidents.deploys(inc.id)
                if r["base"] == base and r["state"] == "sending"]
        if not sent:
            return
        until = max(sent) + OWN_SEND_WAIT
        while time.time() < until:
            if already_deployed(ctx, base, since):
                return  # retry_deploy sees it too and does not send again
            time.sleep(0.5)

    def _wait_for_clients(self, base: str, exclude: set[int]) -> None:
        """A client's own deploy of this name still on its way through the recorder: wait for
        hummingbot-api's answer (if it deployed the bot, the retry sees it and sends nothing)."""
        deadline = time.monotonic() + CLIENT_WAIT
        while True:
            flying = [d for d in self.store.deploys.in_flight(base, stack=self.stack) if d.id not in exclude]
            if not flying:
                return
            if time.monotonic() >= deadline:
                raise ActionError(f"a deploy of {base} from a client is still waiting for hummingbot-api's"
                                  " answer: not sending a second one now")
            time.sleep(0.2)

    # -- `hb-medic retry-deploy` ---------------------------------------------------------------------
    def finish(self, inc: Incident, route: str | None, body: dict | None) -> str:
        """Finish a deploy retry by hand, through the same checks."""
        rule = self.rules().get(inc.rule)
        if rule is None or not rule.retry_deploy:
            raise ActionError(f"incident {inc.id} ({inc.rule}) has no deploy to retry")
        if inc.state != "waiting":
            raise ActionError(f"incident {inc.id} is {inc.state}: retry-deploy finishes only"
                              " waiting incidents")
        if body is None:
            found = self._intent(inc)
            if found is None:
                raise ActionError("the failed request is still unknown: give it with --body '<json>'")
            route, body, raw = found["route"], found["body"], found.get("raw") or json.dumps(found["body"])
        else:
            route = route or (inc.deploy or {}).get("route") or "deploy-v2-script"
            raw = json.dumps(body)
            problem = intents.check_body(route, body, self.context().allowed_images)
            if problem:
                raise ActionError(f"will not send this body: {problem}")
            inc.deploy = {"route": route, "body": body, "raw": raw, "source": "operator"}
        if not self.store.incidents.claim(inc.id, ("waiting",), "retrying"):
            raise ActionError(f"incident {inc.id} is no longer waiting (the agent or another command has it)")
        ctx = self.context()
        self.store.incidents.audit(inc.id, "decision", "retry-deploy by hand", {"route": route})
        try:
            result = self._retry(inc, ctx, {"route": route, "body": body, "raw": raw, "source": "operator",
                                            "ids": [0], "at": inc.created,
                                            "base": base_name(str(body.get("instance_name", "")))})
        except Exception:
            self.store.incidents.claim(inc.id, ("retrying",), "waiting")
            raise
        self._close(inc, "resolved", result)
        return result


def half_made_profile(ctx: ActionContext) -> str | None:
    """The only listed profile whose credentials folder is missing, if exactly one is."""
    found = [a for a in ctx.api.accounts()
             if not protected_profile(a) and ctx.api.account_credentials(a) is None]
    return found[0] if len(found) == 1 else None


def _templates(params: dict) -> list[str]:
    from agent.match.loader import TEMPLATE

    return [m[1] for v in params.values() if isinstance(v, str) for m in TEMPLATE.finditer(v)]


def _summary(res: Result) -> str:
    e = res.event
    return f"{res.rule.id} in {e.container}: {e.excerpt}"


def _stored(res: Result, redactor: Redactor) -> dict:
    """Captures as kept in the state file: free text, and anything refused, redacted (no action
    ever takes them); names stay exact, as actions need them."""
    if res.refused:
        return redactor.data(dict(res.captures))
    return {k: redactor.text(v) if (spec := res.rule.captures.get(k)) is not None and spec.type == "text"
            else v for k, v in res.captures.items()}


def _carried_deploy(res: Result) -> dict | None:
    if not res.deploy:
        return None
    if res.deploy.get("source") == "bot":  # the request that created a bot that died (see fate)
        return dict(res.deploy)
    data = res.event.data or {}
    if data.get("deploy_id") is not None:
        return {**res.deploy, "deploy_id": data["deploy_id"], "source": "recorder"}
    return {**res.deploy, "source": "log"}


def event_keys(e: Event, stack: str = DEFAULT_STACK) -> tuple[str, ...]:
    """What identifies an event across re-reads: where it is (in which stack), and what it is
    when. Events without a timestamp have no identity to trust (they are never deduplicated)."""
    if not e.ts:
        return ()
    where = e.container if stack == DEFAULT_STACK else f"{stack}:{e.container}"
    return (f"at:{where}/{e.stream}/{e.first_pos}@{e.ts}", f"fp:{where}/{e.fingerprint}@{e.ts}")


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


class _Held:
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
