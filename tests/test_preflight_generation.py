"""The preflight knows which generation of hummingbot-api it checks for, from what hummingbot-api
serves: its /openapi.json (no login), whose routes only one generation has say which
(agent.recorder.generation). Held against the real programs of both generations and the stand-in
(which serves one such route of each, as the real ones do); then the recorder on a legacy stand-in,
where the legacy-only check (Docker's 409 on a name in use) now runs; and keys placed for a profile
(MEDIC_CREDENTIALS_DIR) reaching the recorder's checks."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import httpx
import pytest
from yarl import URL

from agent.preflight.checks import Context, DeployRequest, Finding
from agent.preflight.connectors import live_keys
from agent.preflight.engine import TTL
from agent.recorder.generation import GenerationWatch, served
from agent.recorder.proxy import Recorder, RecorderServer
from agent.recorder.routes import generation_of
from agent.service import Service
from agent.settings import Settings
from tests.images import BOT_IMAGE
from tests.stack import ADMIN, free_port, prefixed_rules, wait_until

pytestmark = pytest.mark.docker
GENERATIONS = ("legacy", "current")
EMPTY = {"total_portfolio_value": 0, "account_count": 0, "distribution": []}  # no balances held
DISTRIBUTION = "/portfolio/accounts-distribution"
OWN = {"legacy": "POST", "current": "GET"}  # the method each generation serves that path with


def schema(url: str) -> dict:
    resp = httpx.get(url + "/openapi.json", timeout=60)  # no login: FastAPI serves it to anyone
    assert resp.status_code == 200, resp.text[:200]
    return resp.json()


def distribution(url: str, method: str) -> tuple[int, object]:
    resp = httpx.request(method, url + DISTRIBUTION, auth=ADMIN, timeout=30,
                         **({"json": {}} if method == "POST" else {}))
    return resp.status_code, resp.json()


def answers(url: str, generation: str) -> list[tuple[int, object]]:
    """How a stack answers the distribution route: its own method, then the other's."""
    own = OWN[generation]
    return [distribution(url, own), distribution(url, "GET" if own == "POST" else "POST")]


EXPECTED = [(200, EMPTY), (405, {"detail": "Method Not Allowed"})]


def asked(url: str) -> str | None:
    """The recorder's own ask, as it runs at its start."""
    async def go() -> str | None:
        async with aiohttp.ClientSession() as session:
            return await GenerationWatch(URL(url), timeout=30).ask(session)
    return asyncio.run(go())


@pytest.mark.parametrize("generation", GENERATIONS)
def test_the_stand_in_serves_the_routes_that_tell_its_generation(make_stack, generation):
    stack = make_stack(generation=generation, broker=False)
    assert generation_of(served(schema(stack.url))) == generation
    assert answers(stack.url, generation) == EXPECTED
    assert asked(stack.url) == generation


def test_real_openapi_tells_each_generation(docker_client):
    """Both real generations (built by scripts/prepare): the table names each from its own
    /openapi.json, and the stand-in's distribution route answers as the real one does."""
    from tests.realstack.images import ensure_real_images
    from tests.realstack.stack import RealStack

    ensure_real_images(docker_client, log=lambda _msg: None)
    for generation in GENERATIONS:
        with RealStack(docker_client, generation) as stack:
            routes = served(schema(stack.url))
            assert len(routes) > 50, len(routes)
            assert generation_of(routes) == generation
            assert asked(stack.url) == generation
            assert answers(stack.url, generation) == EXPECTED, generation


# -- the recorder --------------------------------------------------------------------------------
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


def post(service: Service, **body) -> httpx.Response:
    body.setdefault("image", BOT_IMAGE)
    with httpx.Client(base_url=f"http://{service.settings.recorder_addr}", auth=ADMIN, timeout=60) as c:
        return c.post("/bot-orchestration/deploy-v2-script", json=body)


def told(service: Service) -> str:
    return service.report()[1]["stacks"][service.main.name]["generation"]


def one(service: Service, rule: str, states, timeout: float = 30):
    return wait_until(lambda: next((i for i in service.store.incidents.recent(100)
                                    if i.rule == rule and i.state in states), None),
                      timeout, f"a {rule} incident in {states}", interval=0.2)


def test_on_a_legacy_stack_the_name_in_use_is_warned_before_docker_refuses_it(make_stack, agent):
    stack = make_stack(generation="legacy")
    service = agent(stack)
    wait_until(lambda: told(service) == "legacy", 15, "the legacy generation told in /healthz")
    assert stack.http("POST", "/accounts/add-account", params={"account_name": "here"}).status_code == 201
    name = f"g{stack.run_id}"
    first = post(service, instance_name=name, credentials_profile="here", headless=True)
    assert first.status_code == 200 and first.json()["success"] is True, first.text
    time.sleep(TTL + 0.5)  # the engine's container names, as the checks last read them, are that old at most
    second = post(service, instance_name=name, credentials_profile="here", headless=True)
    assert second.json()["success"] is False and "409" in second.json()["message"]  # as without preflight
    warned = one(service, "deploy-name-conflict", ("warned",))
    assert warned.detail.startswith(f"Warned: the deploy of bot {name} will fail: a container named {name}"
                                    " already exists"), warned.detail
    assert "(no fix before a deploy for it)" in warned.detail, warned.detail  # hb-medic removes no container


def test_a_current_stack_is_told_current(make_stack, agent):
    stack = make_stack(generation="current", broker=False)
    service = agent(stack)
    wait_until(lambda: told(service) == "current", 15, "the current generation told in /healthz")


def test_the_stack_s_placed_keys_reach_the_recorder_s_checks(make_stack, agent, tmp_path):
    """The live-keys check says its finding is fixable only when it sees MEDIC_CREDENTIALS_DIR
    with keys for the profile: the recorder's checks are given the stack's (the agent's preflight,
    in a recorder of the test's own whose one check keeps what it found)."""
    stack = make_stack(broker=False)
    keys = tmp_path / "keys"
    (keys / "acct_k").mkdir(parents=True)
    (keys / "acct_k" / "binance.json").write_text(json.dumps({"binance_api_key": "k-31c0a9",
                                                               "binance_api_secret": "s-77e2b4"}))
    service = agent(stack, credentials_dir=keys)
    assert stack.http("POST", "/accounts/add-account", params={"account_name": "acct_k"}).status_code == 201
    (stack.bots / "conf" / "scripts" / "cfg_live.yml").write_text(
        "script_file_name: v2_with_controllers.py\ncontrollers_config: []\nmarkets:\n  binance: [BTC-USDT]\n")
    found: list[tuple[Context, Finding | None]] = []

    def keeps(req: DeployRequest, ctx: Context) -> Finding | None:
        found.append((ctx, live_keys(req, ctx)))
        return found[-1][1]

    port = free_port()
    server = RecorderServer(Recorder(stack.url, service.store, login=ADMIN,
                                     preflight=service.main.preflight(checks=(keeps,))), "127.0.0.1", port)
    server.start()
    try:
        assert server.ready.wait(10) and server.error is None, server.error
        with httpx.Client(auth=ADMIN, timeout=60) as c:
            resp = c.post(f"http://127.0.0.1:{port}/bot-orchestration/deploy-v2-script",
                          json={"instance_name": f"k{stack.run_id}", "credentials_profile": "acct_k",
                                "script_config": "cfg_live.yml", "image": BOT_IMAGE, "headless": True})
    finally:
        server.stop()
    assert resp.status_code == 200, resp.text
    ((ctx, finding),) = found
    assert ctx.credentials_dir == keys
    assert finding is not None and (finding.ok, finding.rule, finding.fixable) == \
        (False, "bot-live-keys-missing", True), finding
    assert "hb-medic adds the keys placed for acct_k" in finding.fix
