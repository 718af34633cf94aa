"""Ask mode and the preflight, without an engine: a fixable warning carries Fix now / Ignore /
Silence 1 h; Fix now before the failure runs the warned fix once (same actions, budget, audit)
and the failure, when it comes, runs without asking again; Fix now after the failure approves the
failure's incident instead; the offer is used once, ignored, or expires; only a request with the
login, in warn mode, gets the offer."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent.actions.base import ActionContext
from agent.chat.decisions import Decisions
from agent.chat.transport import Who
from agent.hummingbot_api import HummingbotAPI
from agent.ingest.replay import replay_lines
from agent.match.loader import load_rules
from agent.match.matcher import Matcher
from agent.preflight.checks import Context, DeployRequest, profile_exists
from agent.recorder.preflight import WARN_MODE, Preflight
from agent.records import IncidentState
from agent.redact import Redactor
from agent.remedy.engine import Remedy
from agent.remedy.prevent import Cutoff
from agent.state import State
from tests.unit.test_prevent import REQ, RULE, api, finding  # noqa: F401  (api: a fixture)

ALICE = Who("telegram", "1001", "-500", "alice")
MALLORY = Who("telegram", "666", "-500", "mallory")
FAILURE = "2026-11-29 01:49:32,002 - services.x - ERROR - Error deploying V2 script: no thing t1"


@pytest.fixture
def stand(tmp_path, api):  # noqa: F811
    url, hits, _ = api
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "thing-missing.yml").write_text(RULE)
    loaded = load_rules(tmp_path / "rules")
    rules = {r.id: r for r in loaded.rules}
    ctx = ActionContext(docker=None, api=HummingbotAPI(url, "admin", "admin"))
    told: list[tuple[str, str, str]] = []
    remedy = Remedy(State(tmp_path / "s.db"), lambda: rules, lambda: ctx, budget=3, mode="ask",
                    approval_ttl=60, notify=lambda inc, step, text: told.append((inc.id, step, text)))
    woken: list[str] = []
    op = Decisions(remedy.store, lambda: rules, allowed={"telegram": ["1001"]}, ttl=60, redactor=Redactor(),
                   wake=lambda stack, inc: woken.append(inc))

    def fail():
        event = next(iter(replay_lines([FAILURE], "hummingbot-api")))
        return remedy.submit(Matcher(loaded.rules).match(event))

    def press(who: Who, inc: str, choice: str = "fix") -> str:
        data = next(b.data for b in op.buttons(inc) if b.data.startswith(choice + ":"))
        return op.press(who, data)

    return remedy, op, hits, told, woken, fail, press


def warn(remedy: Remedy, ask: bool = True) -> str:
    verdict = remedy.prevent(REQ, [finding()], fix=False, why_not=WARN_MODE, cutoff=Cutoff(),
                             container="hummingbot-api", ask=ask)
    return verdict.warned[0]


def test_a_fixable_warning_carries_the_buttons_only_in_ask(stand):
    remedy, op, hits, told, _, _, _ = stand
    w = warn(remedy)
    inc = remedy.store.incidents.get(w)
    assert inc.state == IncidentState.WARNED and hits == []
    assert [b.label for b in op.buttons(w)] == ["Fix now", "Ignore", "Silence 1 h"]
    assert "(ask mode: Fix now runs its fix: http_request(path='/make/t1')" in inc.detail, inc.detail
    assert told == [(w, "warned", inc.detail)]
    plain = remedy.prevent(REQ, [finding("t2")], fix=False, why_not=WARN_MODE, cutoff=Cutoff(),
                           container="hummingbot-api").warned[0]
    assert op.buttons(plain) == [] and "ask mode" not in remedy.store.incidents.get(plain).detail


def test_fix_now_before_the_failure_runs_the_fix_once_and_the_failure_then_runs_unasked(stand):
    remedy, op, hits, told, woken, fail, _ = stand
    w = warn(remedy)
    data = next(b.data for b in op.buttons(w) if b.data.startswith("fix:"))
    assert op.press(MALLORY, data) == "not allowed" and woken == []
    answer = op.press(ALICE, data)
    assert answer == f"Fixing incident {w} before its failure: http_request(path='/make/t1')", answer
    assert woken == [w] and op.buttons(w) == []
    assert "approved already by telegram user 1001" in op.press(ALICE, data)  # a replay: nothing
    assert op.command(ALICE, f"fix {w}").startswith("refused")
    remedy.wake(w)
    assert remedy.pool.queued() == 1
    remedy._work(w)
    remedy._work(w)  # a second run (a replay, a restart) finds the offer used: nothing
    assert hits == ["/make/t1"]
    inc = remedy.store.incidents.get(w)
    assert inc.state == IncidentState.WARNED and inc.attempts == 1
    assert inc.detail.startswith("Fixed now by telegram user 1001, after the warning: GET /make/t1 answered"
                                 " 200"), inc.detail
    trail = [(a["kind"], a["name"]) for a in remedy.store.incidents.audit_trail(w)]
    assert trail.index(("chat", "press fix")) < trail.index(("decision", "fix now")) \
        < trail.index(("attempt", "attempt 1 of 3")) < trail.index(("action", "http_request")) \
        < trail.index(("decision", "fixed now"))
    assert remedy.store.incidents.attempts_since(time.time() - 60) == 1
    assert told[-1] == (w, "resolved", inc.detail)  # told as Fixed
    # The failure comes: its incident is linked and runs its attempt (the deploy retry) unasked.
    f = fail()
    assert f.id != w and f.state == IncidentState.DETECTED and remedy.pool.queued() >= 1
    mine = remedy.store.incidents.audit_trail(f.id)
    approved = next(a for a in mine if a["name"] == "approved")
    assert approved["params"] == {"by": "telegram user 1001", "warned": w}
    assert not any(a["name"] == "awaiting-approval" for a in mine)


def test_fix_now_after_the_failure_approves_the_failures_incident(stand):
    remedy, op, hits, _, woken, fail, press = stand
    w = warn(remedy)
    f = fail()
    assert f.state == IncidentState.AWAITING_APPROVAL
    own = next(b.data for b in op.buttons(f.id) if b.data.startswith("fix:"))
    answer = press(ALICE, w)
    assert answer.startswith(f"Fixing incident {f.id}: http_request(path='/make/t1')"), answer
    assert woken == [f.id] and op.buttons(w) == [] and hits == []
    assert remedy.store.approvals.get(f.id).approved_by == "telegram user 1001"
    assert op.press(ALICE, own).startswith("refused")  # the failure's own button: approved already
    remedy._tick()
    assert remedy.store.incidents.get(f.id).state == IncidentState.DETECTED and remedy.pool.queued() == 1
    remedy._tick()
    assert remedy.pool.queued() == 1
    theirs = remedy.store.incidents.audit_trail(w)
    assert any(a["name"] == "fix now" and a["params"]["incident"] == f.id for a in theirs)


def test_the_failure_coming_between_the_press_and_the_fix_gets_the_approval(stand):
    remedy, _, hits, _, _, fail, press = stand
    w = warn(remedy)
    assert press(ALICE, w).startswith(f"Fixing incident {w} before")
    f = fail()  # the warned fix has not run yet: the failure asks, as usual
    assert f.state == IncidentState.AWAITING_APPROVAL
    remedy._work(w)  # the worker finds the failure's incident: approves it instead of fixing here
    assert hits == [] and remedy.store.incidents.get(f.id).state == IncidentState.DETECTED  # approved, woken
    assert [a["name"] for a in remedy.store.incidents.audit_trail(f.id)].count("approved") == 1
    assert any(a["name"] == "fix now" and a["params"] == {"by": "telegram user 1001", "incident": f.id}
               for a in remedy.store.incidents.audit_trail(w))


def test_an_offer_ignored_or_expired_ends_and_the_warning_stays(stand, tmp_path):
    remedy, op, hits, _, _, _, press = stand
    w = warn(remedy)
    assert press(ALICE, w, "ignore") == f"Ignored incident {w}: nothing was done"
    assert op.buttons(w) == [] and remedy.store.incidents.get(w).state == IncidentState.WARNED
    remedy.preventions.approval_ttl = 0.1
    w2 = remedy.prevent(REQ, [finding("t3")], fix=False, why_not=WARN_MODE, cutoff=Cutoff(),
                        container="hummingbot-api", ask=True).warned[0]
    data = next(b.data for b in op.buttons(w2) if b.data.startswith("fix:"))
    time.sleep(0.2)
    assert op.press(ALICE, data).startswith("expired")
    remedy._tick()
    assert remedy.store.approvals.get(w2) is None and op.buttons(w2) == []
    assert remedy.store.incidents.get(w2).state == IncidentState.WARNED and hits == []
    assert any(a["name"] == "fix now expired" for a in remedy.store.incidents.audit_trail(w2))


def test_preflight_offers_only_in_ask_warn_mode_with_the_login(tmp_path):
    calls = []

    def prevent(req, findings, *, fix, why_not, cutoff, container, ask=False):
        calls.append((fix, ask))

    ctx = Context(bots_dir=tmp_path)
    missing = DeployRequest("deploy-v2-script", {"instance_name": "b", "credentials_profile": "gone"})

    async def go():
        asking = Preflight("warn", 2.0, lambda: ctx, prevent=prevent, checks=(profile_exists,), ask=True)
        await asking.check(missing, True)
        await asking.check(missing, False)
        telling = Preflight("warn", 2.0, lambda: ctx, prevent=prevent, checks=(profile_exists,))
        await telling.check(missing, True)
        await Preflight("fix", 2.0, lambda: ctx, prevent=prevent, checks=(profile_exists,),
                        ask=True).check(missing, True)

    asyncio.run(go())
    assert calls == [(False, True), (False, False), (False, False), (True, False)]
