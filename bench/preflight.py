"""The recorder's preflight over a real engine and the stand-in: what it adds to a deploy when
nothing is wrong, and how long a deploy whose failure it prevents takes from request to answer."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from agent.recorder.proxy import Recorder, RecorderServer
from agent.service import Service
from agent.settings import Settings
from agent.state import State
from tests.images import BOT_IMAGE
from tests.stack import ADMIN, Stack, free_port, prefixed_rules, wait_until

ROUTE = "/bot-orchestration/deploy-v2-script"
REFUSED = ("admin", "not-the-password")


def measure(client, requests: int, prevented: int) -> dict:
    """`preflight_p50_ms` / `preflight_p99_ms`: added per deploy when nothing is wrong (the agent's
    recorder with preflight against the same recorder without, over loopback, interleaved);
    `prevented_deploy_ms`: the seed deploy (its profile missing) through the agent's recorder,
    request in -> success out (median); `deploy_direct_ms`: a deploy whose profile exists, straight
    to hummingbot-api, beside each (what hummingbot-api's own deploy takes: starting the bot)."""
    tmp = Path(tempfile.mkdtemp(prefix="medic-bench-"))
    try:
        with Stack(client) as stack:
            service = Service(Settings(
                containers=[stack.prefix + "hummingbot-api"], state_db=tmp / "state.db",
                rules_dir=prefixed_rules(stack.prefix, tmp / "rules"), hummingbot_url=stack.url,
                hummingbot_password="admin", http_addr=f"127.0.0.1:{free_port()}",
                recorder_addr=f"127.0.0.1:{free_port()}", bots="off", bots_dir=stack.bots,
                preflight="fix", bot_settle=3, allowed_images=[BOT_IMAGE]))
            service.start()
            bare_port = free_port()
            bare = RecorderServer(Recorder(stack.url, State(tmp / "bare.db"), login=ADMIN), "127.0.0.1",
                                  bare_port)
            bare.start()
            bare.ready.wait(10)
            try:
                assert stack.http("POST", "/accounts/add-account",
                                  params={"account_name": "bench"}).status_code == 201
                on = _deploys(f"http://{service.settings.recorder_addr}", f"http://127.0.0.1:{bare_port}",
                              requests)
                taken, direct = [], []
                for i in range(prevented):  # hummingbot-api's own deploy beside each prevented one
                    taken.append(_prevented(service, stack, i))
                    direct.append(_direct(stack, i))
            finally:
                bare.stop()
                service.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with_pf, without = on
    taken.sort()
    direct.sort()
    return {"deploy_direct_ms": direct[len(direct) // 2],
            "preflight_p50_ms": max(0.0, _pct(with_pf, 50) - _pct(without, 50)),
            "preflight_p99_ms": max(0.0, _pct(with_pf, 99) - _pct(without, 99)),
            "prevented_deploy_ms": taken[len(taken) // 2], "prevented_runs": len(taken)}


def _deploys(with_pf: str, without: str, n: int) -> tuple[list[float], list[float]]:
    """Latencies of a deploy whose profile exists (nothing wrong: every check runs and passes),
    sent with a login hummingbot-api refuses (401 before its handler runs), so no bot is started
    for each request: the recorder's deploy path, with and without preflight, one after the other."""
    body = {"instance_name": "bench-bot", "credentials_profile": "bench", "headless": True,
            "image": BOT_IMAGE}
    out: tuple[list[float], list[float]] = ([], [])
    with httpx.Client(auth=REFUSED, timeout=30) as c:
        for _ in range(20):
            for base in (with_pf, without):
                c.post(base + ROUTE, json=body)
        for _ in range(n):
            for base, into in ((with_pf, out[0]), (without, out[1])):
                t = time.perf_counter()
                assert c.post(base + ROUTE, json=body).status_code == 401
                into.append((time.perf_counter() - t) * 1000)
    return out


def _prevented(service: Service, stack: Stack, i: int) -> float:
    """One seed deploy through the agent's recorder: ms from request to its success answer."""
    profile = f"bench_{uuid.uuid4().hex[:6]}"
    body = {"instance_name": f"b{stack.run_id}-p{i}", "credentials_profile": profile, "headless": True,
            "image": BOT_IMAGE}
    with httpx.Client(auth=ADMIN, timeout=60) as c:
        t = time.perf_counter()
        resp = c.post(f"http://{service.settings.recorder_addr}{ROUTE}", json=body)
        took = (time.perf_counter() - t) * 1000
    if resp.status_code != 200 or resp.json().get("success") is not True:
        raise RuntimeError(f"the prevented deploy answered {resp.status_code}: {resp.text[:300]}")
    wait_until(lambda: any(x.state == "prevented" and x.key == profile
                           for x in service.store.incidents.recent(20)), 10, "the prevented incident")
    return took


def _direct(stack: Stack, i: int) -> float:
    """A deploy whose profile exists, straight to hummingbot-api: ms to its success answer (what
    hummingbot-api itself takes to start a bot)."""
    body = {"instance_name": f"b{stack.run_id}-d{i}", "credentials_profile": "bench", "headless": True,
            "image": BOT_IMAGE}
    with httpx.Client(auth=ADMIN, timeout=60) as c:
        t = time.perf_counter()
        resp = c.post(stack.url + ROUTE, json=body)
        took = (time.perf_counter() - t) * 1000
    if resp.status_code != 200 or resp.json().get("success") is not True:
        raise RuntimeError(f"the direct deploy answered {resp.status_code}: {resp.text[:300]}")
    return took


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p / 100))]

