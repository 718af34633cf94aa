"""Preflight in the recorder, against the stand-in of both generations: the seed deploy (a
credentials profile that does not exist) is fixed before hummingbot-api sees it, answers success
the first time and the bot runs; without the login it is forwarded untouched and warned; what
cannot be fixed is forwarded and warned, its failure then linked; the deadline; warn and off;
every other route untouched. (The checks themselves are tested with them.)"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from agent.chat.transport import Who
from agent.preflight.checks import Context, DeployRequest, Finding, profile_exists
from agent.recorder.proxy import Recorder, RecorderServer
from agent.records import IncidentState
from agent.service import Service
from agent.settings import Settings
from tests.images import BOT_IMAGE
from tests.stack import ADMIN, free_port, prefixed_rules, wait_until

pytestmark = pytest.mark.docker
FAILURE_MARKS = ("Error deploying", "Traceback", "FileNotFoundError", "No such file or directory")
# Incidents of the test bed's surroundings (the stand-in's default login, no gateway), not of a deploy.
SURROUNDINGS = ("insecure-default-credentials", "gateway-not-configured", "exchange-unreachable")
CLOSED = ("resolved", "gave-up", "waiting", "failed", "refused", "observed", "prevented", "warned")


@pytest.fixture
def agent(tmp_path, receiver, start_service):
    def start(stack, **extra) -> Service:
        settings = Settings(**{
            "containers": [stack.prefix + "hummingbot-api"], "state_db": tmp_path / "state.db",
            "rules_dir": prefixed_rules(stack.prefix, tmp_path / "rules"), "hummingbot_url": stack.url,
            "catchup_window": 120, "recorder_addr": f"127.0.0.1:{free_port()}", "bots": "off",
            "bots_dir": stack.bots, "bot_settle": 3, "notify_urls": receiver.url,
            "allowed_images": [BOT_IMAGE], **extra})
        return start_service(settings)

    return start


@pytest.fixture
def own_recorder():
    """A recorder in front of the agent's stack with checks of the test's own (a slow one, an
    unfixable one): the agent's preflight, its remedy and state, only the checks differ."""
    made: list[RecorderServer] = []

    def start(service: Service, stack, checks) -> str:
        rt = service.main
        port = free_port()
        server = RecorderServer(Recorder(stack.url, service.store, on_record=rt.feed.notify,
                                         login=ADMIN, preflight=rt.preflight(checks=checks)),
                                "127.0.0.1", port)
        server.start()
        assert server.ready.wait(10) and server.error is None, server.error
        made.append(server)
        return f"http://127.0.0.1:{port}"

    yield start
    for server in made:
        server.stop()


def via(service: Service) -> str:
    return f"http://{service.settings.recorder_addr}"


def post(base: str, route: str = "deploy-v2-script", auth=ADMIN, **body) -> httpx.Response:
    """A deploy of the test bed's bot image (the default image, hummingbot/hummingbot, is not on
    the test engine: its check would foresee that failure too)."""
    body.setdefault("image", BOT_IMAGE)
    with httpx.Client(base_url=base, auth=auth, timeout=60) as c:
        return c.post(f"/bot-orchestration/{route}", json=body)


def incidents(service: Service, rule: str = "credentials-profile-missing", states=CLOSED) -> list:
    return [i for i in service.store.incidents.recent(100) if i.rule == rule and i.state in states]


def one(service: Service, states, rule: str = "credentials-profile-missing", timeout: float = 30):
    return wait_until(lambda: (incidents(service, rule, states) or [None])[0], timeout,
                      f"a {rule} incident in {states}", interval=0.2)


def ours(service: Service) -> list:
    """The incidents of the deploys under test (not of the surroundings)."""
    return [i for i in service.store.incidents.recent(50) if i.rule not in SURROUNDINGS]


def failure_lines(stack) -> list[str]:
    return [x for x in stack.lines("all") if any(m in x for m in FAILURE_MARKS)]


def bots_named(stack, base: str) -> list:
    return [c for c in stack.client.containers.list(all=True, filters={"label": f"medic-test={stack.run_id}"})
            if c.name == base or c.name.startswith(base + "-")]


def accounts(stack) -> list[str]:
    return stack.http("GET", "/accounts/").json()


@pytest.mark.parametrize("generation", ["current", "legacy"])
@pytest.mark.parametrize("route", ["deploy-v2-script", "deploy-v2-controllers"])
def test_seed_deploy_is_prevented_and_succeeds_the_first_time(make_stack, agent, receiver, generation,
                                                              route):
    stack = make_stack(generation=generation)
    service = agent(stack)
    base = f"p{stack.run_id}"
    body = {"instance_name": base, "credentials_profile": "client_sharp", "headless": True}
    if route == "deploy-v2-controllers":
        body["controllers_config"] = []
    started = time.monotonic()
    resp = post(via(service), route, **body)
    took = time.monotonic() - started
    assert resp.status_code == 200 and resp.json()["success"] is True, resp.text
    inc = one(service, ("prevented", "warned"))
    assert inc.state == IncidentState.PREVENTED, inc.detail
    assert inc.detail.startswith(
        f"Prevented: the deploy of bot {base} would have failed: credentials profile client_sharp did not"
        " exist; added profile client_sharp"), inc.detail
    steps = [(a["kind"], a["name"], a["ok"]) for a in service.store.incidents.audit_trail(inc.id)
             if a["kind"] in ("attempt", "action", "retry")]
    assert steps == [("attempt", "attempt 1 of 3", None), ("action", "ensure_account", True),
                     ("action", "provision_credentials", True)]
    # the bot runs, past its settle time; one bot, one account
    (bot,) = bots_named(stack, base)
    time.sleep(3)
    bot.reload()
    assert bot.status == "running"
    assert accounts(stack).count("client_sharp") == 1
    # hummingbot-api never failed: no failure line, no incident of a failure, one deploy recorded
    assert failure_lines(stack) == []
    time.sleep(1.5)
    assert [i.state for i in ours(service)] == ["prevented"]
    rows = [d for _, d in service.store.deploys.after(0)]
    assert [(r.status, r.failed) for r in rows] == [(200, False)]
    wait_until(lambda: any(m.get("title", "").startswith("[CRITICAL] Prevented: the deploy of bot")
                           for m in receiver.accepted), 15, "the Prevented message")
    text = next(m["message"] for m in receiver.accepted if "Prevented" in m.get("title", ""))
    assert "credentials profile client_sharp did not exist" in text
    print(f"\n{generation} {route}: prevented deploy answered in {took * 1000:.0f} ms")


def test_without_the_login_it_is_forwarded_untouched_and_warned(make_stack, agent):
    stack = make_stack()
    service = agent(stack)
    body = {"instance_name": f"n{stack.run_id}", "credentials_profile": "client_sharp", "headless": True}
    direct = post(stack.url, auth=("admin", "wrong"), **body)
    through = post(via(service), auth=("admin", "wrong"), **body)
    assert through.status_code == direct.status_code == 401 and through.content == direct.content
    inc = one(service, ("warned",))
    assert inc.detail.startswith(f"Warned: the deploy of bot n{stack.run_id} will fail: credentials profile"
                                 " client_sharp does not exist; forwarded as is (the request did not carry"
                                 " hummingbot-api's login"), inc.detail
    assert "client_sharp" not in accounts(stack)  # nothing was made for it
    assert not (stack.bots / "credentials" / "client_sharp").exists()
    assert bots_named(stack, f"n{stack.run_id}") == []
    assert [a["kind"] for a in service.store.incidents.audit_trail(inc.id) if a["kind"] == "action"] == []


@pytest.mark.parametrize("generation", ["current", "legacy"])
def test_warn_mode_forwards_as_is_and_links_the_failure_then_fixed(make_stack, agent, generation):
    stack = make_stack(generation=generation)
    service = agent(stack, preflight="warn")
    base = f"w{stack.run_id}"
    resp = post(via(service), instance_name=base, credentials_profile="client_sharp", headless=True)
    assert resp.status_code == 500  # hummingbot-api's own answer, as without preflight
    warned = one(service, ("warned",))
    assert "(MEDIC_PREFLIGHT=warn: told, not fixed)" in warned.detail
    # the failure came: the rule's incident (fixed after it, as ever) is linked to the warning
    fixed = one(service, ("resolved", "gave-up"), timeout=60)
    assert fixed.id != warned.id and fixed.state == IncidentState.RESOLVED, fixed.detail
    assert any(a["name"] == "foretold" and a["params"] == {"warned": warned.id}
               for a in service.store.incidents.audit_trail(fixed.id))
    assert any(a["name"] == "failed as foretold" and a["params"] == {"incident": fixed.id}
               for a in service.store.incidents.audit_trail(warned.id))
    assert len([b for b in bots_named(stack, base) if b.status == "running"]) == 1
    assert accounts(stack).count("client_sharp") == 1


def test_off_is_as_before(make_stack, agent):
    stack = make_stack()
    service = agent(stack, preflight="off")
    resp = post(via(service), instance_name=f"o{stack.run_id}", credentials_profile="client_sharp",
                headless=True)
    assert resp.status_code == 500
    inc = one(service, ("resolved", "gave-up"), timeout=60)
    assert inc.state == IncidentState.RESOLVED
    assert [i.state for i in ours(service)] == ["resolved"]


def test_unfixable_is_forwarded_and_warned(make_stack, agent, own_recorder):
    """A finding its check says no fix before a deploy can help (fixable=False)."""
    stack = make_stack()
    service = agent(stack, action_budget=0)  # nor after it: the failure's incident only says so

    def unfixable(req: DeployRequest, ctx: Context) -> Finding | None:
        found = profile_exists(req, ctx)
        if found is None or found.ok:
            return found
        return Finding(found.check, False, found.says, rule=found.rule, captures=found.captures,
                       fixable=False)

    base = own_recorder(service, stack, (unfixable,))
    resp = post(base, instance_name=f"u{stack.run_id}", credentials_profile="client_sharp", headless=True)
    assert resp.status_code == 500
    warned = one(service, ("warned",))
    assert "(no fix before a deploy for it)" in warned.detail
    failed = one(service, ("gave-up",), timeout=60)  # the failure's own incident: no budget, gave up
    assert "client_sharp" not in accounts(stack)
    assert any(a["name"] == "foretold" for a in service.store.incidents.audit_trail(failed.id))


def test_a_fix_that_fails_is_forwarded_and_warned_with_what_is_left(make_stack, agent):
    stack = make_stack()
    service = agent(stack, preflight="fix")
    template = stack.bots / "credentials" / "master_account"
    for f in template.rglob("*"):  # add-account copies the template: without it, it fails
        if f.is_file():
            f.unlink()
    resp = post(via(service), instance_name=f"f{stack.run_id}", credentials_profile="client_sharp",
                headless=True)
    assert resp.status_code in (200, 500)  # hummingbot-api's own answer to the deploy
    warned = one(service, ("warned", "prevented"))
    assert warned.state == IncidentState.WARNED, warned.detail
    assert "the fix before forwarding failed" in warned.detail and "left: " in warned.detail, warned.detail


def test_past_the_deadline_it_is_forwarded_as_is(make_stack, agent, own_recorder, caplog):
    """A check slower than the deadline: the deploy goes on at the deadline, as is; the failure
    is fixed after it as without preflight, and what the late preflight found joins that incident
    (or is told as warned, never prevented)."""
    stack = make_stack()
    service = agent(stack, preflight_deadline=0.5)

    def slow(req: DeployRequest, ctx: Context) -> Finding | None:
        time.sleep(2.0)
        return None

    base = own_recorder(service, stack, (profile_exists, slow))
    started = time.monotonic()
    resp = post(base, instance_name=f"d{stack.run_id}", credentials_profile="client_sharp", headless=True)
    took = time.monotonic() - started
    assert resp.status_code == 500 and took < 0.5 + 1.5, took  # the deadline, then hummingbot-api's answer
    assert any("took longer than 0.5 s (MEDIC_PREFLIGHT_DEADLINE): forwarded as is" in r.getMessage()
               for r in caplog.records)
    fixed = one(service, ("resolved", "gave-up"), timeout=60)
    assert fixed.state == IncidentState.RESOLVED, fixed.detail
    time.sleep(2.5)  # the slow check has returned: the late preflight has said what it found
    late = [i for i in incidents(service) if i.id != fixed.id]
    assert all(i.state == IncidentState.WARNED and "(the checks took past the deadline)" in i.detail
               for i in late), [(i.state, i.detail) for i in late]
    noted = [a for a in service.store.incidents.audit_trail(fixed.id) if a["name"] == "preflight"]
    assert len(late) + len(noted) == 1, (late, noted)  # told once: a warning, or a note in its trail
    assert not incidents(service, states=("prevented",))


def test_other_routes_and_other_bodies_are_untouched(make_stack, agent):
    stack = make_stack()
    service = agent(stack)
    cases = [("GET", "/accounts/", {}), ("GET", "/", {}),
             ("POST", "/bot-orchestration/deploy-v2-script", {"json": ["not", "an", "object"]}),
             ("POST", "/bot-orchestration/deploy-v2-script", {"content": b"not json"}),
             ("GET", "/bot-orchestration/deploy-v2-script", {})]
    for method, path, kw in cases:
        with httpx.Client(timeout=30, auth=ADMIN) as c:
            direct = c.request(method, stack.url + path, **kw)
            through = c.request(method, via(service) + path, **kw)
        assert (through.status_code, through.content) == (direct.status_code, direct.content), path
    # a profile that exists: nothing foreseen, nothing told
    stack.http("POST", "/accounts/add-account", params={"account_name": "here"})
    resp = post(via(service), instance_name=f"h{stack.run_id}", credentials_profile="here", headless=True)
    assert resp.status_code == 200 and resp.json()["success"]
    time.sleep(1.0)
    assert ours(service) == []


ALICE = Who("telegram", "1001", "-500", "alice")
MALLORY = Who("telegram", "666", "-500", "mallory")


def labels(service: Service, incident: str) -> list[str]:
    return [b.label for b in service.operator.buttons(incident)]


def fix_button(service: Service, incident: str) -> str:
    return next(b.data for b in service.operator.buttons(incident) if b.data.startswith("fix:"))


def test_ask_mode_the_warning_carries_fix_now_which_approves_the_failure_that_came(make_stack, agent):
    """The seed deploy in ask mode: forwarded as is (hummingbot-api fails it at once), warned with
    the buttons; Fix now on the warning approves the failure's incident, which runs its fix and its
    deploy retry, once: the bot runs."""
    stack = make_stack()
    service = agent(stack, mode="ask", chat_telegram_users=["1001"])
    base = f"a{stack.run_id}"
    resp = post(via(service), instance_name=base, credentials_profile="client_ask", headless=True)
    assert resp.status_code == 500  # forwarded as is: hummingbot-api's own answer
    warned = one(service, ("warned",))
    assert "(ask mode: Fix now runs its fix: ensure_account(profile='client_ask')" in warned.detail, \
        warned.detail
    failure = one(service, ("awaiting-approval",))
    assert labels(service, warned.id) == ["Fix now", "Ignore", "Silence 1 h"]
    press, own = fix_button(service, warned.id), fix_button(service, failure.id)
    assert service.operator.press(MALLORY, press) == "not allowed"
    time.sleep(1)
    assert service.store.incidents.get(failure.id).state == "awaiting-approval" and "client_ask" not in \
        accounts(stack)
    answer = service.operator.press(ALICE, press)
    assert answer.startswith(f"Fixing incident {failure.id}: ensure_account(profile='client_ask')"), answer
    assert labels(service, warned.id) == []  # the offer is used
    assert not service.operator.press(ALICE, own).startswith("Fixing")  # the failure's own: no second fix
    done = wait_until(lambda: (i := service.store.incidents.get(failure.id)).state in ("resolved", "gave-up")
                      and i, 90, "the approved fix")
    assert done.state == "resolved", done.detail
    assert len([b for b in bots_named(stack, base) if b.status == "running"]) == 1
    assert accounts(stack).count("client_ask") == 1
    trail = service.store.incidents.audit_trail(failure.id)
    assert [a["name"] for a in trail if a["kind"] == "attempt"] == ["attempt 1 of 3"]
    assert [a["name"] for a in trail if a["kind"] == "action"].count("ensure_account") == 1
    chat = next(a for a in trail if a["kind"] == "chat")
    assert chat["params"]["user"] == "1001" and chat["params"]["name"] == "alice"
    theirs = service.store.incidents.audit_trail(warned.id)
    assert [a for a in theirs if a["kind"] == "action"] == []  # nothing ran twice
    assert any(a["name"] == "fix now" and a["params"] == {"by": "telegram user 1001", "incident": failure.id}
               for a in theirs)


def test_ask_mode_fix_now_before_the_failure_fixes_it_and_the_deploy_then_succeeds(make_stack, agent):
    """Fix now pressed before the deploy's failure came (here: before the deploy is forwarded at
    all): the warned fix runs once, with the same actions and audit, and the deploy that follows
    succeeds: its failure never comes."""
    stack = make_stack()
    service = agent(stack, mode="ask", chat_telegram_users=["1001"])
    base = f"b{stack.run_id}"
    body = {"instance_name": base, "credentials_profile": "client_early", "headless": True,
            "image": BOT_IMAGE}
    preflight = service.main.preflight()  # the recorder's own preflight, as it checks a deploy
    try:
        verdict = asyncio.run(preflight.check(DeployRequest("deploy-v2-script", body), True))
    finally:
        preflight.close()
    (wid,) = verdict.warned
    assert labels(service, wid) == ["Fix now", "Ignore", "Silence 1 h"]
    answer = service.operator.press(ALICE, fix_button(service, wid))
    assert answer.startswith(f"Fixing incident {wid} before its failure: ensure_account(profile="
                             "'client_early')"), answer
    fixed = wait_until(lambda: (i := service.store.incidents.get(wid)).detail.startswith("Fixed now") and i,
                       60, "the warned fix")
    assert fixed.state == "warned" and fixed.detail.startswith(
        "Fixed now by telegram user 1001, after the warning: added profile client_early"), fixed.detail
    assert accounts(stack).count("client_early") == 1
    resp = post(via(service), **body)
    assert resp.status_code == 200 and resp.json()["success"] is True, resp.text
    (bot,) = bots_named(stack, base)
    time.sleep(3)
    bot.reload()
    assert bot.status == "running"
    assert [i.id for i in ours(service) if i.rule == "credentials-profile-missing"] == [wid]
    trail = service.store.incidents.audit_trail(wid)
    assert [a["name"] for a in trail if a["kind"] == "action"].count("ensure_account") == 1
    assert next(a for a in trail if a["kind"] == "chat")["params"]["user"] == "1001"


def test_a_profile_without_its_password_file_is_rebuilt_before_forwarding(make_stack, agent):
    """A rule whose fix names the failed deploy's profile ({deploy.credentials_profile}, here
    bot-password-file-missing) runs before forwarding with the profile the request names: the
    profile (holding no keys) is rebuilt, the deploy succeeds and the bot lives."""
    stack = make_stack()
    service = agent(stack)
    assert stack.http("POST", "/accounts/add-account", params={"account_name": "nopw"}).status_code == 201
    verification = stack.bots / "credentials" / "nopw" / ".password_verification"
    verification.unlink()
    base = f"v{stack.run_id}"
    resp = post(via(service), instance_name=base, credentials_profile="nopw", headless=True)
    assert resp.status_code == 200 and resp.json()["success"] is True, resp.text
    inc = one(service, ("prevented", "warned"), rule="bot-password-file-missing")
    assert inc.state == IncidentState.PREVENTED, inc.detail
    assert "rebuilt profile nopw" in inc.detail, inc.detail
    assert verification.is_file()
    (bot,) = bots_named(stack, base)
    time.sleep(3)
    bot.reload()
    assert bot.status == "running"
