"""What the remedy does, decided from what it knows: pure functions, no store, no threads.

The remedy reads the state, asks these, and writes what they decided. One incident per
(rule, key) at a time: a new match of an open incident only counts; a closed one is left
alone for the rule's cooldown; a failed attempt is tried again after a growing backoff,
up to the rule's attempt limit; an event from long ago is reported, not acted on.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum

from agent.events import RESPONSE, Event
from agent.match.loader import TEMPLATE, params_of
from agent.match.matcher import Result
from agent.match.model import RETRY_DEPLOY, ActionCall, Rule
from agent.names import DEFAULT_STACK
from agent.records import Incident, IncidentState
from agent.redact import Redactor

# Closed incidents whose key then rests for the rule's cooldown: an observed one too, or an
# observe-only rule would open (and tell) a new incident for every repeat of its error.
# An expired approval too: nobody answered; the key rests before it asks again.
COOLING = (IncidentState.RESOLVED, IncidentState.GAVE_UP, IncidentState.OBSERVED, IncidentState.EXPIRED)
WAITING_TTL = 86400.0  # a `waiting` incident nobody finished stops blocking its key after this
QUIET_DEFAULT = 600.0  # an ongoing condition whose rule is gone ends after this
MAX_INTERRUPTED = 20  # restarts during an incident's attempts before it gives up
PREFLIGHT = "preflight"  # the `stream` an incident opened by the recorder's preflight names
WARNED_LINKS = 600.0  # a failure this soon after its warning is linked to it


def preflight(inc: Incident) -> bool:
    """Was this incident opened by a preflight (before the deploy was forwarded), not an event?"""
    return inc.opened_by.get("stream") == PREFLIGHT


def foretold(current: Incident | None, now: float) -> Incident | None:
    """The warned incident a failure of its key was foretold by (lately), if any."""
    warned = current is not None and current.state == IncidentState.WARNED
    return current if warned and now - current.created <= WARNED_LINKS else None


class Arrival(StrEnum):
    """What a match is, before any incident is looked at."""

    HOLD = "hold"  # a log line whose recorder answer says more: wait a moment for that first
    DROP = "drop"  # below the rule's threshold: nothing
    KEEP = "keep"  # below the threshold of an ongoing condition: it still keeps it going
    DECIDE = "decide"  # look at the incidents of its key


def arrival(res: Result, recorder: bool) -> Arrival:
    rule = res.rule
    if recorder and rule.source == "any" and res.event.kind != RESPONSE and not res.held:
        # The log line and the recorder's answer tell one failure; the answer says more (the
        # connector of a credential upload): it goes first, the line then joins its incident.
        return Arrival.HOLD
    if res.below_threshold:
        return Arrival.DROP if rule.incident.quiet is None else Arrival.KEEP
    return Arrival.DECIDE


def waiting_expired(current: Incident | None, now: float) -> bool:
    """A `waiting` incident nobody finished within a day: it stops blocking its key."""
    return current is not None and current.state == IncidentState.WAITING \
        and now - current.updated > WAITING_TTL


def cooling(inc: Incident, rule: Rule, now: float) -> bool:
    """Does this closed incident's key still rest (the rule's cooldown)?"""
    return bool(inc.closed) and inc.state in COOLING and now - inc.closed < rule.incident.cooldown


class Match(StrEnum):
    """What a new match of a rule's key does, given that key's latest incident."""

    COUNT = "count"  # that incident is open: the match only counts
    COOLING = "cooling"  # closed lately: no action, unless a deploy it would retry failed since
    NEW = "new"  # a new incident


def on_match(current: Incident | None, rule: Rule, now: float) -> Match:
    if current is not None and current.open:
        return Match.COUNT
    if current is not None and current.closed and cooling(current, rule, now):
        return Match.COOLING
    return Match.NEW


class First(StrEnum):
    """What a new incident does first."""

    REFUSE = "refuse"  # its captures were refused: no action helps
    STALE = "stale"  # an event from long ago (replayed after downtime): reported, not acted on
    ONGOING = "ongoing"  # a condition that only tells: its start now, its end later
    TELL = "tell"  # a rule that runs nothing has told
    OBSERVE = "observe"  # observe mode (global or the rule's): what would have run
    ASK = "ask"  # ask mode, or a rule that always asks: its plan waits for a person's approval
    ACT = "act"  # queued for an attempt


def first_step(res: Result, plan: list[str], *, age: float, stale_after: float, observe: bool,
               ask: bool = False) -> First:
    """Observe wins over ask (it never acts); `ask` is the mode, a rule's `ask: true` asks anyway."""
    rule = res.rule
    if res.refused:
        return First.REFUSE
    if age > stale_after:
        return First.STALE
    if rule.incident.quiet is not None and not plan:
        return First.ONGOING
    if not plan:
        return First.TELL
    if observe or rule.observe_only:
        return First.OBSERVE
    if ask or rule.ask:
        return First.ASK
    return First.ACT


def event_age(event: Event, now: float) -> float:
    return now - event.ts / 1e9 if event.ts else 0.0


@dataclass(frozen=True)
class Steps:
    """An attempt's steps for an incident's values: the fix, its checks, then the deploy retry."""

    calls: list[ActionCall]
    checks: list[ActionCall]
    retries: bool
    # Every call only gathers facts for a person (actions registered with tells=True): the attempt
    # changes nothing and ends told, with what they returned as its advice.
    told: bool = False

    def names(self) -> list[str]:
        return [c.action for c in self.calls] + [f"verify {c.action}" for c in self.checks] \
            + ([RETRY_DEPLOY] if self.retries else [])

    def uses_deploy(self) -> bool:
        """Does the attempt need the failed deploy (to retry it, or for a {deploy.*} value)?"""
        return self.retries or any(n.startswith("deploy.") for c in self.calls for n in templates(c.params))


def steps(rule: Rule, values: dict, telling: Collection[str] = ()) -> Steps:
    """`telling`: the names of the actions that only tell (see Steps.told)."""
    calls = rule.calls(values)
    fix = [c for c in calls if c.action != RETRY_DEPLOY]
    checks = rule.calls(values, "verify")
    retries = any(c.action == RETRY_DEPLOY for c in calls)
    told = bool(fix) and not checks and not retries and all(c.action in telling for c in fix)
    return Steps(fix, checks, retries, told)


def plan(res: Result) -> list[str]:
    """What would run, with its parameters, in the order it runs (told in observe mode)."""
    return plan_of(res.rule, res.values)


def plan_of(rule: Rule, values: dict) -> list[str]:
    """The same for a rule and an incident's values: what an approval runs, and whether the rule
    still plans the same when the approval comes."""
    shown = [f"{c.action}({', '.join(f'{k}={v!r}' for k, v in params_of(c, values).items())})"
             for c in rule.calls(values) if c.action != RETRY_DEPLOY]
    shown += [f"verify {c.action}" for c in rule.calls(values, "verify")]
    return [*shown, RETRY_DEPLOY] if rule.retry_deploy else shown


def templates(params: dict) -> list[str]:
    return [m[1] for v in params.values() if isinstance(v, str) for m in TEMPLATE.finditer(v)]


@dataclass(frozen=True)
class Failed:
    """How a failed attempt ends: given up (`step` "needs-you" when a person is needed now), or
    failed with the next attempt due at `next_attempt`."""

    state: IncidentState
    detail: str
    step: str | None = None
    next_attempt: float | None = None


def after_failure(detail: str, *, needs_human: bool, attempts: int, rule: Rule,
                  now: float | None = None) -> Failed:
    if needs_human:  # another attempt would not help: say what to do
        return Failed(IncidentState.GAVE_UP, detail, step="needs-you")
    if attempts >= rule.incident.max_attempts:
        return Failed(IncidentState.GAVE_UP, f"{detail} (after {attempts} attempts)")
    due = (time.time() if now is None else now) + rule.incident.backoff * 2 ** (attempts - 1)
    return Failed(IncidentState.FAILED, detail, next_attempt=due)


def gives_up_interrupted(cut: int) -> bool:
    """An incident cut short this many times gives up: a fix that takes the agent down must not
    loop."""
    return cut >= MAX_INTERRUPTED


def quiet_of(rule: Rule | None) -> float:
    return rule.incident.quiet if rule is not None and rule.incident.quiet else QUIET_DEFAULT


def quiet_over(inc: Incident, quiet: float, now: float) -> bool:
    """An ongoing condition whose lines stopped for its quiet time: over."""
    return inc.state == IncidentState.ONGOING and now - inc.updated >= quiet


def event_keys(e: Event, stack: str = DEFAULT_STACK) -> tuple[str, ...]:
    """What identifies an event across re-reads: where it is (in which stack), and what it is
    when. Events without a timestamp have no identity to trust (they are never deduplicated)."""
    if not e.ts:
        return ()
    where = e.container if stack == DEFAULT_STACK else f"{stack}:{e.container}"
    return (f"at:{where}/{e.stream}/{e.first_pos}@{e.ts}", f"fp:{where}/{e.fingerprint}@{e.ts}")


def summary(res: Result) -> str:
    e = res.event
    return f"{res.rule.id} in {e.container}: {e.excerpt}"


def stored(res: Result, redactor: Redactor) -> dict:
    """Captures as kept in the state file: free text, and anything refused, redacted (no action
    ever takes them); names stay exact, as actions need them."""
    return kept(res.rule, res.captures, redactor, refused=bool(res.refused))


def kept(rule: Rule, captures: Mapping[str, object], redactor: Redactor, *, refused: bool = False) -> dict:
    """A rule's captures as the state file keeps them, whoever found them (a match, a preflight)."""
    if refused:
        return redactor.data(dict(captures))
    return {k: redactor.text(v) if (spec := rule.captures.get(k)) is not None and spec.type == "text"
            and isinstance(v, str) else v for k, v in captures.items()}


def carried_deploy(res: Result) -> dict | None:
    """The deploy request the match carried, with where it came from."""
    if not res.deploy:
        return None
    if res.deploy.get("source") == "bot":  # the request that created a bot that died (see fate)
        return dict(res.deploy)
    data = res.event.data or {}
    if data.get("deploy_id") is not None:
        return {**res.deploy, "deploy_id": data["deploy_id"], "source": "recorder"}
    return {**res.deploy, "source": "log"}
