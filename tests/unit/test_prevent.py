"""A deploy's failures foreseen before it is forwarded (agent.remedy.prevent, the recorder's
preflight): fixed first through the remedy's own actions, budget and audit, or told at once;
the failure that then comes is linked to its warning; the deadline; the settings' defaults."""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.actions.base import ActionContext
from agent.hummingbot_api import HummingbotAPI
from agent.ingest.replay import replay_lines
from agent.match.loader import load_rules
from agent.match.matcher import Matcher
from agent.preflight.checks import Context, DeployRequest, Finding, profile_exists
from agent.recorder.preflight import NO_LOGIN, WARN_MODE, Preflight
from agent.records import IncidentState
from agent.remedy import decisions
from agent.remedy.engine import Remedy
from agent.remedy.prevent import Cutoff, past
from agent.settings import Settings
from agent.state import State

RULE = """\
id: thing-missing
description: a deploy failed because a thing was missing
severity: critical
match:
  - logger: services.x
    level: ERROR
    message: '^Error deploying V2 script: no thing (?P<profile>[a-z0-9_]+)$'
captures:
  profile: {type: profile, max_length: 64}
incident: {key: "{profile}", cooldown: 60}
actions:
  - {action: http_request, params: {path: "/make/{profile}"}}
  - {action: http_request, params: {path: "/bot/{deploy.instance_name}"}}
  - action: retry_deploy
notify: {title: "Deploy failed: thing {profile} did not exist", text: "a thing was missing"}
"""
REQ = DeployRequest("deploy-v2-script", {"instance_name": "sharp-bot", "credentials_profile": "p"})


def finding(thing: str = "t1", fixable: bool = True) -> Finding:
    return Finding("thing", False, f"thing {thing} does not exist", rule="thing-missing",
                   captures={"profile": thing}, fixable=fixable)


@pytest.fixture
def api():
    hits: list[str] = []
    status = {"code": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(status["code"])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits, status
    server.shutdown()
    server.server_close()


@pytest.fixture
def remedy(tmp_path, api):
    url, _, _ = api
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "thing-missing.yml").write_text(RULE)
    loaded = load_rules(tmp_path / "rules")
    assert not loaded.errors, loaded.errors
    rules = {r.id: r for r in loaded.rules}
    ctx = ActionContext(docker=None, api=HummingbotAPI(url, "admin", "admin"))
    told: list[tuple[str, str, str]] = []
    made = Remedy(State(tmp_path / "s.db"), lambda: rules, lambda: ctx, budget=3,
                  notify=lambda inc, step, text: told.append((inc.id, step, text)))
    made.told = told  # type: ignore[attr-defined]
    made.matcher = Matcher(loaded.rules)  # type: ignore[attr-defined]
    return made


def test_fixed_first_with_the_rules_actions_budget_and_audit(remedy, api):
    _, hits, _ = api
    verdict = remedy.prevent(REQ, [finding()], fix=True, why_not="", cutoff=Cutoff(), container="api")
    assert len(verdict.prevented) == 1 and not verdict.warned
    inc = remedy.store.incidents.get(verdict.prevented[0])
    assert inc.state == IncidentState.PREVENTED and inc.key == "t1"
    assert inc.detail.startswith("Prevented: the deploy of bot sharp-bot would have failed: thing t1 did not"
                                 " exist; GET /make/t1 answered 200")
    # the action naming the failed deploy, and retry_deploy, are skipped: no deploy failed
    assert hits == ["/make/t1"]
    trail = remedy.store.incidents.audit_trail(inc.id)
    assert [(a["kind"], a["name"], a["ok"]) for a in trail if a["kind"] in ("action", "attempt")] == [
        ("attempt", "attempt 1 of 3", None), ("action", "http_request", True)]
    assert remedy.store.incidents.attempts_since(time.time() - 60) == 1  # one unit of the budget
    assert [s for _, s, _ in remedy.told] == ["prevented"]


def test_warned_when_not_fixing_and_the_failure_then_linked(remedy, api):
    _, hits, _ = api
    verdict = remedy.prevent(REQ, [finding()], fix=False, why_not=NO_LOGIN, cutoff=Cutoff(),
                             container="hummingbot-api")
    warned = remedy.store.incidents.get(verdict.warned[0])
    assert warned.state == IncidentState.WARNED and hits == []
    assert warned.detail.startswith("Warned: the deploy of bot sharp-bot will fail: thing t1 does not exist;"
                                    " forwarded as is (the request did not carry hummingbot-api's login")
    assert "the incident of rule thing-missing is linked to this one" in warned.detail
    assert remedy.store.incidents.attempts_since(time.time() - 60) == 0  # nothing ran: no budget
    # The failure comes: the rule's own incident opens (and acts), linked both ways.
    line = "2026-11-29 01:49:32,002 - services.x - ERROR - Error deploying V2 script: no thing t1"
    res = remedy.matcher.match(next(iter(replay_lines([line], "hummingbot-api"))))
    failed = remedy.submit(res)
    assert failed.id != warned.id and failed.state == IncidentState.DETECTED
    mine = remedy.store.incidents.audit_trail(failed.id)
    assert any(a["name"] == "foretold" and a["params"] == {"warned": warned.id} for a in mine)
    theirs = remedy.store.incidents.audit_trail(warned.id)
    assert any(a["name"] == "failed as foretold" and a["params"] == {"incident": failed.id} for a in theirs)


def test_a_warning_is_told_once_per_key_however_many_deploys_repeat_it(remedy):
    first = remedy.prevent(REQ, [finding("r1")], fix=False, why_not=NO_LOGIN, cutoff=Cutoff(), container="c")
    for _ in range(5):
        again = remedy.prevent(REQ, [finding("r1")], fix=False, why_not=NO_LOGIN, cutoff=Cutoff(),
                               container="c")
        assert again.warned == first.warned
    assert [s for _, s, _ in remedy.told] == ["warned"]
    assert remedy.store.incidents.get(first.warned[0]).events == 6
    # a request that may be fixed is fixed, warning or not
    fixed = remedy.prevent(REQ, [finding("r1")], fix=True, why_not="", cutoff=Cutoff(), container="c")
    assert remedy.store.incidents.get(fixed.prevented[0]).state == IncidentState.PREVENTED


def test_unfixable_warn_mode_and_a_failed_fix_are_warned_with_what_is_left(remedy, api):
    _, hits, status = api
    v = remedy.prevent(REQ, [finding("t2", fixable=False)], fix=True, why_not="", cutoff=Cutoff(),
                       container="hummingbot-api")
    assert "(no fix before a deploy for it)" in remedy.store.incidents.get(v.warned[0]).detail
    v = remedy.prevent(REQ, [finding("t3")], fix=False, why_not=WARN_MODE, cutoff=Cutoff(),
                       container="hummingbot-api")
    assert "(MEDIC_PREFLIGHT=warn: told, not fixed)" in remedy.store.incidents.get(v.warned[0]).detail
    assert hits == []
    status["code"] = 500
    v = remedy.prevent(REQ, [finding("t4")], fix=True, why_not="", cutoff=Cutoff(), container="api")
    detail = remedy.store.incidents.get(v.warned[0]).detail
    assert "the fix before forwarding failed (GET /make/t4 answered 500); done: nothing; left: http_request" \
        in detail, detail


def test_a_hostile_or_protected_capture_is_never_acted_on(remedy, api):
    _, hits, _ = api
    v = remedy.prevent(REQ, [finding("../etc")], fix=True, why_not="", cutoff=Cutoff(),
                       container="hummingbot-api")
    inc = remedy.store.incidents.get(v.warned[0])
    assert "not acting: capture profile=" in inc.detail and hits == []


def test_two_deploys_of_one_missing_thing_fix_it_once(remedy, api):
    _, hits, _ = api
    results = []
    threads = [threading.Thread(target=lambda: results.append(remedy.prevent(
        REQ, [finding("t5")], fix=True, why_not="", cutoff=Cutoff(), container="hummingbot-api")))
        for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert hits == ["/make/t5"]
    assert [len(r.prevented) for r in results] == [1, 1]
    assert results[0].prevented == results[1].prevented


def test_a_restart_during_the_fix_ends_it_warned_never_retried(remedy, api):
    _, hits, _ = api
    inc_id = remedy.prevent(REQ, [finding("t6")], fix=True, why_not="", cutoff=Cutoff(),
                            container="hummingbot-api").prevented[0]
    inc = remedy.store.incidents.get(inc_id)
    inc.state, inc.closed = IncidentState.ACTING, None  # as a kill -9 in the middle leaves it
    remedy.store.incidents.save(inc)
    remedy.recover()
    after = remedy.store.incidents.get(inc_id)
    assert after.state == IncidentState.WARNED and "the deploy was not forwarded" in after.detail
    assert remedy.store.incidents.due(time.time() + 3600) == []
    assert hits == ["/make/t6"]


def test_budget_spent_is_warned(remedy, api):
    for n in range(3):
        remedy.prevent(REQ, [finding(f"b{n}")], fix=True, why_not="", cutoff=Cutoff(), container="c")
    v = remedy.prevent(REQ, [finding("b9")], fix=True, why_not="", cutoff=Cutoff(), container="c")
    assert "action budget exhausted" in remedy.store.incidents.get(v.warned[0]).detail


def test_fix_past_the_deadline_is_warned():
    cutoff = Cutoff()
    assert cutoff.expire() and cutoff.expired and not cutoff.finish()
    other = Cutoff()
    assert other.finish() and not other.expire() and not other.expired


def test_preflight_deadline_login_and_modes(tmp_path):
    (tmp_path / "credentials" / "here").mkdir(parents=True)
    calls = []

    def prevent(req, findings, *, fix, why_not, cutoff, container):
        calls.append((fix, why_not, [f.check for f in findings]))

    def slow(req, ctx):
        time.sleep(0.6)
        return None

    ctx = Context(bots_dir=tmp_path)
    missing = DeployRequest("deploy-v2-script", {"instance_name": "b", "credentials_profile": "gone"})
    present = DeployRequest("deploy-v2-script", {"instance_name": "b", "credentials_profile": "here"})

    async def go():
        fix = Preflight("fix", 2.0, lambda: ctx, prevent=prevent, checks=(profile_exists,))
        await fix.check(missing, True)
        await fix.check(missing, False)
        await fix.check(present, True)
        await Preflight("warn", 2.0, lambda: ctx, prevent=prevent).check(missing, True)
        await Preflight("off", 2.0, lambda: ctx, prevent=prevent).check(missing, True)
        late = Preflight("fix", 0.2, lambda: ctx, prevent=prevent, checks=(slow, profile_exists))
        started = time.monotonic()
        assert await late.check(missing, True) is None
        took = time.monotonic() - started
        assert late.passed == 1 and took < 0.5, took
        await asyncio.sleep(0.6)  # the late one ends in its worker: the profile check was not run
        for p in (fix, late):
            p.close()

    asyncio.run(go())
    assert calls == [(True, "", ["profile"]), (False, NO_LOGIN, ["profile"]), (False, WARN_MODE, ["profile"])]


def test_settings_default_by_mode():
    assert Settings(mode="enforce").preflight_mode() == "fix"
    assert Settings(mode="observe").preflight_mode() == "warn"
    assert Settings(mode="observe", preflight="fix").preflight_mode() == "warn"  # observe never acts
    assert Settings(mode="observe", preflight="off").preflight_mode() == "off"
    assert Settings(preflight="off").preflight_mode() == "off"
    assert Settings().preflight_deadline == 2.0


def test_past_tense_of_a_finding():
    assert past("credentials profile p does not exist") == "credentials profile p did not exist"
    assert past("profile p lacks .password_verification") == "profile p lacked .password_verification"


def test_only_a_preflight_opens_with_its_stream():
    from agent.records import Incident
    inc = Incident("i", "r", "k", IncidentState.WARNED, "critical", "c", "s", "f", {},
                   opened_by={"stream": decisions.PREFLIGHT})
    assert decisions.preflight(inc) and decisions.foretold(inc, time.time()) is inc
    assert decisions.foretold(inc, time.time() + 3600) is None


def test_the_messages_say_what_was_prevented_or_will_fail(remedy, tmp_path):
    from agent.notify.notifier import Notifier
    from agent.notify.render import RENDERERS
    from agent.redact import Redactor

    notifier = Notifier(remedy.store, [], rules=remedy.rules, redactor=Redactor())
    prevented = remedy.store.incidents.get(remedy.prevent(
        REQ, [finding("m1")], fix=True, why_not="", cutoff=Cutoff(), container="api").prevented[0])
    msg = notifier._message(prevented, "prevented", prevented.detail)
    assert msg.title == "[CRITICAL] Prevented: the deploy of bot sharp-bot would have failed"
    text = RENDERERS["text"][0](msg)[1]
    assert "Prevented: the deploy of bot sharp-bot would have failed: thing m1 did not exist" in text
    assert "a thing was missing" not in text  # the rule's words tell of a failure that happened
    warned = remedy.store.incidents.get(remedy.prevent(
        REQ, [finding("m2")], fix=False, why_not=NO_LOGIN, cutoff=Cutoff(), container="api").warned[0])
    msg = notifier._message(warned, "warned", warned.detail)
    assert msg.title == "[CRITICAL] Warned: the deploy of bot sharp-bot will fail"
    shown = RENDERERS["text"][0](msg)
    assert "Warned: the deploy of bot sharp-bot will fail: thing m2 does not exist" in shown[1]


def test_a_rule_that_always_asks_is_never_fixed_before_forwarding(tmp_path, api):
    """`ask: true` holds before a deploy as after a failure: preflight warns, nothing runs."""
    url, hits, _ = api
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "thing-missing.yml").write_text(RULE.replace("severity: critical",
                                                                       "severity: critical\nask: true"))
    loaded = load_rules(tmp_path / "rules")
    assert not loaded.errors, loaded.errors
    rules = {r.id: r for r in loaded.rules}
    ctx = ActionContext(docker=None, api=HummingbotAPI(url, "admin", "admin"))
    made = Remedy(State(tmp_path / "s.db"), lambda: rules, lambda: ctx, budget=3,
                  notify=lambda inc, step, text: None)
    verdict = made.prevent(REQ, [finding()], fix=True, why_not="", cutoff=Cutoff(), container="api")
    assert not verdict.prevented and len(verdict.warned) == 1
    inc = made.store.incidents.get(verdict.warned[0])
    assert inc.state == IncidentState.WARNED and "its rule asks a person before it acts" in inc.detail
    assert hits == []

