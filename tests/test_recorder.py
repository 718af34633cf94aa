"""The deploy recorder in front of the stand-in: byte-identical pass-through,
recorded deploys, failed ones as events, websockets, and hummingbot-api down."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import threading
import time

import aiohttp
import httpx
import pytest

from agent.ingest.deploys import DeployFeed
from agent.match.loader import load_rules
from agent.match.matcher import Matcher
from agent.recorder.events import event_from_deploy
from agent.recorder.proxy import Recorder, RecorderServer
from agent.state import State
from tests.stack import ADMIN, free_port, wait_until

pytestmark = pytest.mark.docker
LIBRARY = load_rules("rules").rules
VOLATILE = {"date"}


@pytest.fixture
def recorder(tmp_path):
    made = []

    def start(upstream: str):
        store = State(tmp_path / "state.db")
        port = free_port()
        thread = RecorderServer(Recorder(upstream, store), "127.0.0.1", port)
        thread.start()
        assert thread.ready.wait(10) and thread.error is None, thread.error
        made.append(thread)
        return f"http://127.0.0.1:{port}", store

    yield start
    for t in made:
        t.stop()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def exchange(base: str, method: str, path: str, **kw) -> httpx.Response:
    with httpx.Client(base_url=base, timeout=60) as c:
        return c.request(method, path, **kw)


def same(direct: httpx.Response, via: httpx.Response) -> None:
    assert via.status_code == direct.status_code
    assert via.content == direct.content
    assert via.reason_phrase == direct.reason_phrase or not direct.reason_phrase
    strip = lambda r: [(k, v) for k, v in r.headers.multi_items() if k not in VOLATILE]  # noqa: E731
    assert strip(via) == strip(direct)


@pytest.mark.parametrize("generation", ["current", "legacy"])
def test_responses_are_byte_identical(make_stack, recorder, generation):
    stack = make_stack(generation=generation)
    via, store = recorder(stack.url)
    stack.http("POST", "/accounts/add-account", params={"account_name": "prof"})
    cases = [
        ("POST", "/bot-orchestration/deploy-v2-script",
         {"json": {"instance_name": stack.unique("ok"), "credentials_profile": "prof"}, "auth": ADMIN}),
        ("POST", "/bot-orchestration/deploy-v2-script",
         {"json": {"instance_name": "x", "credentials_profile": "client_sharp"}, "auth": ADMIN}),
        ("POST", "/bot-orchestration/deploy-v2-script",
         {"json": {"instance_name": "x", "credentials_profile": "../etc"}, "auth": ADMIN}),
        ("GET", "/accounts/", {"auth": ("admin", "wrong")}),
        ("GET", "/accounts/", {}),
        ("GET", "/", {}),
        ("GET", "/x%0A2026-01-01%2000:00:00,000%20-%20root%20-%20ERROR%20-%20forged", {}),  # a newline too
        ("POST", "/accounts/add-account", {"params": {"account_name": "prof"}, "auth": ADMIN}),
    ]
    for method, path, kw in cases:
        direct = exchange(stack.url, method, path, **kw)
        first_name = kw.get("json", {}).get("instance_name")
        if "deploy" in path and direct.status_code == 200:
            kw["json"]["instance_name"] = stack.unique("ok")  # a fresh name: the same outcome again
        through = exchange(via, method, path, **kw)
        if "deploy" in path and direct.status_code == 200:
            # A success names its instance (and the current generation adds the time):
            # the same bytes once the names are swapped (they have the same length).
            second = through.json()["unique_instance_name" if generation == "current" else "message"]
            first = direct.json()["unique_instance_name" if generation == "current" else "message"]
            assert len(first) == len(second) and first_name
            direct = httpx.Response(direct.status_code, headers=direct.headers,
                                    content=direct.content.replace(first.encode(), second.encode()))
        same(direct, through)
    # 200 success:false (name conflict, legacy has no timestamp): the same twice.
    if generation == "legacy":
        body = {"instance_name": stack.unique("dup"), "credentials_profile": "prof"}
        exchange(stack.url, "POST", "/bot-orchestration/deploy-v2-script", json=body, auth=ADMIN)
        direct = exchange(stack.url, "POST", "/bot-orchestration/deploy-v2-script", json=body, auth=ADMIN)
        through = exchange(via, "POST", "/bot-orchestration/deploy-v2-script", json=body, auth=ADMIN)
        assert direct.json()["success"] is False
        same(direct, through)
    # Every deploy hummingbot-api handled was recorded, with its outcome; the current
    # generation refuses '../etc' and then fails to encode its refusal (500, as the real one:
    # tests/real_logs/more/current-invalid-name-api.log), the legacy one has no name check and
    # fails inside the deploy.
    expected = [200, 500, 500] if generation == "current" else [200, 500, 500, 200]
    wait_until(lambda: len(store.deploys.after(0)) >= len(expected), 10, "deploy records")
    rows = [d for _, d in store.deploys.after(0)]
    assert [r.status for r in rows] == expected
    assert [r.failed for r in rows] == [False, True, True, True][:len(expected)]
    assert rows[1].profile == "client_sharp"
    assert all(r.authenticated and r.state == "answered" for r in rows)


def test_streams_large_and_chunked_bodies(make_stack, recorder):
    stack = make_stack()
    via, _ = recorder(stack.url)
    stack.http("POST", "/accounts/add-account", params={"account_name": "big"})
    keys = {f"bitmart_{k}": "v" * 1_000_000 for k in ("api_key", "secret_key", "memo")}  # 3 MB of JSON
    payload = json.dumps(keys).encode()

    def chunks():
        for i in range(0, len(payload), 100_000):
            yield payload[i:i + 100_000]

    with httpx.Client(base_url=via, timeout=60) as c:
        resp = c.post("/accounts/add-credential/big/bitmart", content=chunks(), auth=ADMIN,
                      headers={"content-type": "application/json"})
    assert resp.status_code == 201, resp.text
    assert exchange(via, "GET", "/accounts/big/credentials", auth=ADMIN).json() == ["bitmart"]


def test_websocket_passes_through(make_stack, recorder):
    stack = make_stack()
    via, _ = recorder(stack.url)

    async def talk(auth):
        async with aiohttp.ClientSession() as s, s.ws_connect(
                via.replace("http", "ws") + "/ws/market-data", headers=basic(*auth)) as ws:
            await ws.send_str("hello")
            return (await ws.receive(timeout=10)).data

    assert asyncio.run(talk(ADMIN)) == "echo: hello"

    async def refused(base):
        async with aiohttp.ClientSession() as s:
            try:
                await s.ws_connect(base.replace("http", "ws") + "/ws/market-data",
                                   headers=basic("x", "y"))
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status
        return None

    # A refused handshake comes back as hummingbot-api gave it.
    assert asyncio.run(refused(via)) == asyncio.run(refused(stack.url)) == 403


def test_silent_docker_failures_become_matched_events(make_stack, recorder):
    stack = make_stack(generation="legacy")
    via, store = recorder(stack.url)
    stack.http("POST", "/accounts/add-account", params={"account_name": "prof"})
    image = "127.0.0.1:9/nope/hummingbot:latest"  # a registry that refuses, on this machine
    r1 = exchange(via, "POST", "/bot-orchestration/deploy-v2-script", auth=ADMIN,
                  json={"instance_name": "img-bot", "credentials_profile": "prof", "image": image})
    assert r1.status_code == 200 and r1.json()["success"] is False
    name = stack.unique("dup")
    for _ in range(2):
        last = exchange(via, "POST", "/bot-orchestration/deploy-v2-script", auth=ADMIN,
                        json={"instance_name": name, "credentials_profile": "prof"})
    assert last.json()["success"] is False
    # Nothing in the logs: the failures exist only in the responses.
    assert not [x for x in stack.lines("stderr") if " - ERROR - " in x or "Traceback" in x]

    events = []
    class Sink:
        def put(self, batch):
            events.append(batch.event)
            batch.ack(batch.position)

    feed = DeployFeed(store, Sink(), checkpoints=store.checkpoints(), catchup_window=600, interval=0.1)
    feed.start()
    try:
        wait_until(lambda: len(events) >= 2, 10, "two failed deploys as events")
    finally:
        feed.stop(time.monotonic() + 1.0)
    matcher = Matcher(LIBRARY)
    results = [matcher.match(e) for e in events]
    assert [r.rule.id for r in results] == ["deploy-image-unavailable", "deploy-name-conflict"]
    assert results[0].captures == {"image": image}
    assert results[0].deploy == {"route": "deploy-v2-script", "body": {
        "instance_name": "img-bot", "credentials_profile": "prof", "image": image}}
    assert results[1].captures == {"instance": name}


def test_recorded_body_is_the_one_a_retry_sends(make_stack, recorder):
    stack = make_stack()
    via, store = recorder(stack.url)
    body = {"instance_name": "sharp-bot", "credentials_profile": "client_sharp",
            "script_config": "sharp.yml", "headless": True}
    sent = json.dumps(body, separators=(",", ":"))
    resp = exchange(via, "POST", "/bot-orchestration/deploy-v2-script", auth=ADMIN, content=sent,
                    headers={"content-type": "application/json"})
    assert resp.status_code == 500
    found = wait_until(lambda: store.deploys.find(profile="client_sharp", route="deploy-v2-script"),
                       10, "the recorded failure")
    assert found.request_body == sent and found.body() == body
    assert found.failed and found.message == (
        "[Errno 2] No such file or directory: 'bots/credentials/client_sharp'")
    # The current generation logs the timestamped name; the record is found by it too.
    from agent.remedy.intent import from_recorder
    via_log_name = from_recorder(store, profile=None, instance="sharp-bot-20261129-014932", at=found.at)
    assert via_log_name["deploy_id"] == found.id
    assert from_recorder(store, profile=None, instance="sharp_bot-20261129-014932", at=found.at) is None
    assert event_from_deploy(found).data["request"] == body


def test_no_authorization_or_password_in_the_state_database(make_stack, recorder, tmp_path):
    canary_pass = "canary-Pw-8731"
    stack = make_stack(env={"USERNAME": "canary-user", "PASSWORD": canary_pass})
    via, store = recorder(stack.url)
    auth = ("canary-user", canary_pass)
    exchange(via, "POST", "/accounts/add-account", params={"account_name": "p"}, auth=auth)
    for profile in ("p", "missing"):
        exchange(via, "POST", "/bot-orchestration/deploy-v2-script", auth=auth,
                 json={"instance_name": "c", "credentials_profile": profile})
    wait_until(lambda: len(store.deploys.after(0)) == 2, 10, "records")
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    token = base64.b64encode(f"canary-user:{canary_pass}".encode())
    for secret in (canary_pass.encode(), token, b"Basic ", b"authorization"):
        assert secret not in raw
    dump = "\n".join(sqlite3.connect(tmp_path / "state.db").iterdump())
    assert canary_pass not in dump and "Basic" not in dump


def test_hummingbot_api_down_gives_502_and_nothing_is_kept(recorder):
    via, store = recorder(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    resp = exchange(via, "POST", "/bot-orchestration/deploy-v2-script", auth=ADMIN,
                    json={"instance_name": "a", "credentials_profile": "b"})
    assert resp.status_code == 502
    assert resp.text.startswith("Bad Gateway: hummingbot-api unreachable")
    assert exchange(via, "GET", "/accounts/", auth=ADMIN).status_code == 502
    # The recorder's own 502 is no answer of hummingbot-api: the request written ahead is dropped.
    wait_until(lambda: store.deploys.get(1) is None, 10, "the written-ahead request to be dropped")
    assert store.deploys.after(0) == [] and store.deploys.find(profile="b") is None


def test_concurrent_clients(make_stack, recorder):
    stack = make_stack()
    via, _ = recorder(stack.url)
    errors = []

    def client():
        try:
            with httpx.Client(base_url=via) as c:
                for _ in range(20):
                    assert c.get("/accounts/", auth=ADMIN).json() == ["master_account"]
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
