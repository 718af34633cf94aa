"""The remedy's decisions, from the state alone: no store, no threads, no Docker."""

from __future__ import annotations

import time

from agent.records import Incident, IncidentState
from agent.remedy import decisions
from agent.remedy.decisions import Arrival, First, Match
from tests.unit.test_remedy_decisions import RULES, result

RULE = RULES["credentials-profile-missing"]


def incident(state: IncidentState, *, closed: float | None = None, updated: float | None = None) -> Incident:
    inc = Incident(id="i", rule=RULE.id, key="k", state=state, severity="critical", container="c",
                   summary="s", fingerprint="f", captures={}, closed=closed)
    if updated is not None:
        inc.updated = updated
    return inc


def test_a_match_counts_on_an_open_incident_rests_in_a_cooldown_or_opens_one():
    now = time.time()
    assert decisions.on_match(None, RULE, now) == Match.NEW
    assert decisions.on_match(incident(IncidentState.FAILED), RULE, now) == Match.COUNT
    assert decisions.on_match(incident(IncidentState.RESOLVED, closed=now - 10), RULE, now) == Match.COOLING
    assert decisions.on_match(incident(IncidentState.RESOLVED, closed=now - 3600), RULE, now) == Match.NEW
    # Refused and stale incidents leave their key free: nothing was done, nothing to rest after.
    assert decisions.on_match(incident(IncidentState.REFUSED, closed=now - 10), RULE, now) == Match.NEW
    assert decisions.waiting_expired(incident(IncidentState.WAITING, updated=now - 2 * 86400), now)
    assert not decisions.waiting_expired(incident(IncidentState.WAITING, updated=now - 60), now)


def test_a_new_incident_first_step():
    res = result()
    plan = decisions.plan(res)
    assert plan == ["ensure_account(profile='client_sharp')", "provision_credentials(profile='client_sharp')",
                    "retry_deploy"]
    assert decisions.first_step(res, plan, age=0, stale_after=60, observe=False) == First.ACT
    assert decisions.first_step(res, plan, age=0, stale_after=60, observe=True) == First.OBSERVE
    assert decisions.first_step(res, plan, age=600, stale_after=60, observe=False) == First.STALE
    assert decisions.first_step(res, [], age=0, stale_after=60, observe=False) == First.TELL
    assert decisions.arrival(res, recorder=False) == Arrival.DECIDE


def test_steps_run_the_deploy_retry_last_and_a_failure_backs_off_then_gives_up():
    steps = decisions.steps(RULE, {"profile": "p"})
    assert steps.names() == ["ensure_account", "provision_credentials", "retry_deploy"]
    assert steps.retries and steps.uses_deploy()
    first = decisions.after_failure("boom", needs_human=False, attempts=1, rule=RULE, now=1000.0)
    assert (first.state, first.next_attempt) == (IncidentState.FAILED, 1000.0 + RULE.incident.backoff)
    spent = RULE.incident.max_attempts
    last = decisions.after_failure("boom", needs_human=False, attempts=spent, rule=RULE)
    assert last.state == IncidentState.GAVE_UP and last.detail == f"boom (after {spent} attempts)"
    human = decisions.after_failure("do this", needs_human=True, attempts=1, rule=RULE)
    assert (human.state, human.step) == (IncidentState.GAVE_UP, "needs-you")


def test_an_attempt_of_telling_actions_alone_ends_told():
    """Only an attempt whose every call tells (no fix, no check, no deploy retry) is told."""
    clock = decisions.steps(RULES["bot-clock-skew"], {"request_ms": "1796000005904", "server_ms": "1"},
                            {"clock_offset"})
    assert clock.told and clock.names() == ["clock_offset"]
    # The offset not quoted: no call at all, a rule that only tells (not an attempt).
    assert not decisions.steps(RULES["bot-clock-skew"], {}, {"clock_offset"}).told
    assert not decisions.steps(RULE, {"profile": "p"}, {"ensure_account", "provision_credentials"}).told
    assert not decisions.steps(RULES["disk-full"], {}, set()).told  # not registered as telling
