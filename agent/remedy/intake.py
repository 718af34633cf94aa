"""From a match to an incident, decided quickly on the pipeline's thread.

One incident per (rule, key) at a time. A new match of an open incident only counts; an
event already handled (replayed after a restart) joins its incident and never opens
another, whatever the cooldown. A closed incident is left alone for the rule's cooldown,
unless a different deploy failed since. In observe mode (global or per rule) the agent
records and reports what it would have done; in ask mode (or for a rule that asks) it posts
its plan and waits for a person's approval; an event from long ago is reported, not
acted on. An ongoing condition's incident ends once its lines stop.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

from agent import templates
from agent.events import RESPONSE, Event, spoken_duration
from agent.match.matcher import Result
from agent.match.model import Rule
from agent.names import base_name
from agent.records import Incident, IncidentState
from agent.remedy import decisions
from agent.remedy.attempt import EVIDENCE_WAIT, Acting
from agent.remedy.decisions import Arrival, First, Match
from agent.remedy.journal import Journal, log
from agent.remedy.prevent import fixed_now_by
from agent.remedy.resend import Resends
from agent.state import State

EVENTS_KEPT = 2 * 86400.0  # how long a handled event is remembered (no replay reaches back further)
OWNED_WINDOW = 600.0  # an incident this recent owns the failed deploys of its profile or instance


class Intake:
    def __init__(self, store: State, rules: Callable[[], dict[str, Rule]], journal: Journal,
                 resends: Resends, acting: Acting, enqueue: Callable[[str], None],
                 stopping: Callable[[], bool], *, mode: str, stale_after: float, recorder: bool,
                 stack: str, approval_ttl: float = 3600.0) -> None:
        self.store = store
        self.rules = rules
        self.journal = journal
        self.resends = resends
        self.acting = acting
        self.enqueue = enqueue
        self.stopping = stopping
        self.mode = mode
        self.stale_after = stale_after
        self.approval_ttl = approval_ttl
        self.recorder = recorder
        self.stack = stack
        self._lock = threading.Lock()  # decisions on matches, and the end of ongoing conditions
        self._forgot = 0.0

    def submit(self, res: Result) -> Incident | None:
        rule, event, redactor = res.rule, res.event, self.journal.redactor
        arrival = decisions.arrival(res, self.recorder)
        if arrival == Arrival.HOLD:
            res.held = True
            timer = threading.Timer(EVIDENCE_WAIT, self._submit_held, args=(res,))
            timer.daemon = True
            timer.start()
            return None
        if arrival == Arrival.DROP:
            return None
        key = redactor.text(res.text(rule.incident.key)) or rule.id
        keys = decisions.event_keys(event, self.stack)
        now = time.time()
        if arrival == Arrival.KEEP:  # below the threshold, a line still keeps an ongoing condition going
            with self._lock:
                current = self.store.incidents.latest(rule.id, key, self.stack)
                if current is not None and current.state == IncidentState.ONGOING \
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
            if decisions.waiting_expired(current, now):
                self.journal.close(current, IncidentState.GAVE_UP,
                                   "nobody finished the deploy within a day: closed")
                current = self.store.incidents.latest(rule.id, key, self.stack)
            match = decisions.on_match(current, rule, now)
            if match == Match.COUNT:
                self.store.incidents.count_event(current.id, keys)
                return current
            if match == Match.COOLING:
                fresh = self.resends.new_failure(current) if rule.retry_deploy else None
                if fresh is None:
                    self.store.incidents.count_event(current.id, keys)
                    self.store.incidents.audit(current.id, "decision", "event during cooldown: no action",
                                               {"fingerprint": event.fingerprint})
                    return current
                log.info("incident %s is closed, but deploy %s failed since: a new incident", current.id,
                         fresh)
            foretold = decisions.foretold(current, now)
            own = self._own_call(res)
            if own is not None:  # it would open an incident: unless it is the echo of our own call
                self.store.incidents.count_event(own.id, keys)
                self.store.incidents.audit(own.id, "decision",
                                           "hummingbot-api's log of hb-medic's own call: no new incident",
                                           {"rule": rule.id, **event.where()})
                return own
            inc = Incident(
                id=secrets.token_hex(4), rule=rule.id, key=key, state=IncidentState.DETECTED,
                severity=rule.severity, container=event.container,
                summary=redactor.text(decisions.summary(res)), fingerprint=event.fingerprint,
                opened_by=templates.event_values(event, redactor.text),
                captures=decisions.stored(res, redactor), deploy=decisions.carried_deploy(res),
                stack=self.stack)
            self.store.incidents.create(inc, keys)
        self.store.incidents.audit(inc.id, "decision", IncidentState.DETECTED,
                                   redactor.data({"captures": res.captures, **event.where()}),
                                   result=inc.summary)
        if foretold is not None:  # the preflight told it before the deploy went out: linked both ways
            self.store.incidents.audit(inc.id, "decision", "foretold", {"warned": foretold.id},
                                       result=f"foretold by incident {foretold.id} before the deploy was"
                                              " forwarded")
            self.store.incidents.audit(foretold.id, "decision", "failed as foretold", {"incident": inc.id},
                                       result=f"the failure came: incident {inc.id}")
            log.info("incident %s: the failure incident %s foretold (warned) came", inc.id, foretold.id)
        return self._first(inc, res, now, foretold)

    def _first(self, inc: Incident, res: Result, now: float, foretold: Incident | None = None) -> Incident:
        """A new incident's first step. `foretold`: the preflight's warning of it, whose Fix now a
        person may have pressed already (ask mode): then it asks no second time."""
        rule, age, plan = res.rule, decisions.event_age(res.event, now), decisions.plan(res)
        first = decisions.first_step(res, plan, age=age, stale_after=self.stale_after,
                                     observe=self.mode == "observe", ask=self.mode == "ask")
        if first == First.REFUSE:
            return self.journal.close(inc, IncidentState.REFUSED, f"not acting: {res.refused}")
        if first == First.STALE:
            return self.journal.close(inc, IncidentState.STALE, f"event is {age:.0f} s old (replayed after"
                                                                " downtime): reported, not acted on")
        if first == First.ONGOING:  # it only tells: its start now, its end later
            inc.state = IncidentState.ONGOING
            self.store.incidents.save(inc)
            self.store.incidents.audit(inc.id, "decision", IncidentState.ONGOING,
                                       result=f"ends once no such line came for {rule.incident.quiet:g} s")
            self.journal.notify(inc, IncidentState.DETECTED, inc.summary)
            return inc
        self.journal.notify(inc, IncidentState.DETECTED, inc.summary)
        if first == First.TELL:  # observed or not, a rule that only tells has told
            return self.journal.close(inc, IncidentState.RESOLVED, "notified; this rule runs no action")
        if first == First.OBSERVE:
            self.store.incidents.audit(inc.id, "decision", "observe", {"would_run": plan})
            return self.journal.close(inc, IncidentState.OBSERVED, "would have run: " + " -> ".join(plan))
        by = fixed_now_by(self.store.incidents.audit_trail(foretold.id)) if foretold is not None else None
        if first == First.ASK and by is not None:  # approved on its warning: its attempt runs now
            self.store.incidents.audit(inc.id, "decision", "approved", {"by": by, "warned": foretold.id},
                                       result=f"approved beforehand: Fix now on warning {foretold.id}; the"
                                              " attempt runs now")
        elif first == First.ASK:  # what act would run now waits for a person (agent.chat)
            planned = decisions.plan_of(rule, templates.incident_values(inc))
            self.journal.ask(inc, planned, now + self.approval_ttl)
            return inc
        self.enqueue(inc.id)
        return inc

    def _submit_held(self, res: Result) -> None:
        try:
            if not self.stopping():
                self.submit(res)
        except Exception:
            log.exception("a held match of %s failed", res.rule.id)

    def _forget_old_events(self, now: float) -> None:
        if now - self._forgot > 3600:
            self._forgot = now
            self.store.incidents.forget_events(now - EVENTS_KEPT)

    def _own_call(self, res: Result) -> Incident | None:
        """The incident acting on this profile, when the match is hummingbot-api's log line of a
        call hb-medic made for it (another rule's, naming the same account): not a new failure."""
        if res.event.kind == RESPONSE:  # the recorder's answers are clients' calls, never ours
            return None
        profile = res.captures.get("account") or res.captures.get("profile")
        acting = self.acting.of(profile) if isinstance(profile, str) else None
        if acting is None:
            return None
        inc = self.store.incidents.get(acting)
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

    def end_quiet(self, now: float) -> None:
        """Ongoing conditions whose lines stopped: over, said once."""
        for inc in self.store.incidents.ongoing(self.stack):
            quiet = decisions.quiet_of(self.rules().get(inc.rule))
            if not decisions.quiet_over(inc, quiet, now):
                continue
            with self._lock:  # a line counted meanwhile keeps it going
                inc = self.store.incidents.get(inc.id)
                if inc is None or not decisions.quiet_over(inc, quiet, now):
                    continue
                lasted = max(0.0, inc.updated - inc.created)
                detail = (f"no such line for {spoken_duration(quiet)}: over after {spoken_duration(lasted)}"
                          f" ({inc.events} line{'s' if inc.events != 1 else ''} counted)")
                inc.state, inc.detail, inc.closed = IncidentState.RESOLVED, detail, now
                self.store.incidents.save(inc)
                self.store.incidents.audit(inc.id, "decision", "ended", result=detail)
            self.journal.notify(inc, "ended", detail)
