"""Ask mode in the remedy, without an engine: the incident waits with its plan instead of being
queued, matches of it only count, an approval queues it as a detected one (once), one nobody
gives expires and tells so, and a rule that asks does so in act mode too."""

from __future__ import annotations

import time

from agent.records import IncidentState
from agent.remedy.engine import Remedy
from agent.state import State
from tests.unit.test_remedy_decisions import RULES, no_context, result


def remedy(tmp_path, told: list, **options) -> Remedy:
    return Remedy(State(tmp_path / "s.db"), lambda: RULES, no_context, stale_after=60,
                  notify=lambda inc, step, text: told.append((inc.id, step, text)), **options)


def test_in_ask_mode_an_incident_waits_with_its_plan_and_an_approval_queues_it_once(tmp_path):
    told: list = []
    r = remedy(tmp_path, told, mode="ask")
    inc = r.submit(result())
    assert inc.state == IncidentState.AWAITING_APPROVAL and r.pool.queued() == 0
    plan = ["ensure_account(profile='client_sharp')", "provision_credentials(profile='client_sharp')",
            "retry_deploy"]
    assert r.store.approvals.get(inc.id).plan == plan
    assert inc.detail == "will run: " + " -> ".join(plan)
    assert [s for _, s, _ in told] == ["detected", "awaiting-approval"] and told[-1][2] == inc.detail
    assert r.submit(result()).id == inc.id and r.store.incidents.get(inc.id).events == 2  # it only counts
    r.wake(inc.id)  # not approved: nothing
    assert r.pool.queued() == 0
    assert r.store.approvals.approve(inc.id, "telegram user 1")
    r._tick()  # the dispatcher's second: the approval is taken (an approval from another process)
    assert r.store.incidents.get(inc.id).state == IncidentState.DETECTED and r.pool.queued() == 1
    assert r.store.approvals.get(inc.id) is None
    r.wake(inc.id)
    r._tick()
    assert r.pool.queued() == 1  # taken once
    names = [a["name"] for a in r.store.incidents.audit_trail(inc.id)]
    assert names.count("approved") == 1 and "awaiting-approval" in names


def test_an_approval_nobody_gives_expires_doing_nothing(tmp_path):
    told: list = []
    r = remedy(tmp_path, told, mode="ask", approval_ttl=0.2)
    inc = r.submit(result())
    time.sleep(0.3)
    r._tick()
    after = r.store.incidents.get(inc.id)
    assert after.state == IncidentState.EXPIRED and after.closed and r.pool.queued() == 0
    assert after.detail == "nobody approved it within 0.2 s: nothing was done"
    assert told[-1] == (inc.id, "expired", after.detail)
    assert not r.store.approvals.approve(inc.id, "late")
    # The key rests for the rule's cooldown, as after any incident that told and did nothing.
    assert r.submit(result()).id == inc.id


def test_a_rule_that_asks_asks_in_act_mode_and_observe_still_wins(tmp_path):
    rule = RULES["credentials-profile-missing"]
    rules = {**RULES, rule.id: rule.model_copy(update={"ask": True})}
    r = Remedy(State(tmp_path / "a.db"), lambda: rules, no_context, stale_after=60, mode="act")
    res = result()
    res.rule = rules["credentials-profile-missing"]
    assert r.submit(res).state == IncidentState.AWAITING_APPROVAL and r.pool.queued() == 0
    o = Remedy(State(tmp_path / "o.db"), lambda: rules, no_context, stale_after=60, mode="observe")
    res = result(profile="other")
    res.rule = rules["credentials-profile-missing"]
    assert o.submit(res).state == IncidentState.OBSERVED
