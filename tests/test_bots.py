"""The bots hummingbot-api deploys, end to end: the real agent (in this process) follows the
stand-in bots (tests/standin/bot, behaving as the real captures) that the stand-in
hummingbot-api deploys on the real engine, and sends its messages to a local receiver.

Each captured scenario is a deploy through the recorder with the files that cause it, as
in the captures. Bots are named after the stack's run, and the agent follows only those."""

from __future__ import annotations

import hashlib
import json
import time

import httpx
import pytest

from agent.service import Service
from agent.settings import Settings
from tests.receiver import Receiver
from tests.stack import ADMIN, free_port, wait_until

pytestmark = pytest.mark.docker
SETTLE = 3.0
DONE = ("resolved", "gave-up", "waiting", "failed", "refused", "observed", "stale")


@pytest.fixture
def receiver():
    with Receiver() as rx:
        yield rx


@pytest.fixture
def agent(tmp_path, receiver):
    made: list[Service] = []

    def start(stack, **extra) -> Service:
        settings = Settings(**{
            "containers": [stack.prefix + "hummingbot-api"], "state_db": tmp_path / "state.db",
            "hummingbot_url": stack.url, "catchup_window": 120,
            "recorder_addr": f"127.0.0.1:{free_port()}", "bots": f"b{stack.run_id}_*",
            "bots_dir": stack.bots, "bot_settle": SETTLE, "notify_urls": receiver.url, **extra})
        service = Service(settings)
        service.start()
        made.append(service)
        return service

    yield start
    for s in made:
        s.stop()


def name(stack, base: str) -> str:
    """An instance name the agent of this stack follows (and no other test's)."""
    return f"b{stack.run_id}_{base}"


def deploy(service: Service, **body) -> dict:
    """A deploy through the recorder, as a client pointed at it sends it."""
    with httpx.Client(base_url=f"http://{service.settings.recorder_addr}", auth=ADMIN, timeout=60) as c:
        resp = c.post("/bot-orchestration/deploy-v2-script", json={"headless": True, **body})
    assert resp.status_code == 200 and resp.json()["success"], resp.text
    return resp.json()


def profile(stack, account: str, *, script: str | None = None, config: str | None = None) -> None:
    assert stack.http("POST", "/accounts/add-account", params={"account_name": account}).status_code == 201
    if config is not None:
        (stack.bots / "conf" / "scripts" / config).write_text(
            f"script_file_name: {script or 'v2_with_controllers'}.py\ncontrollers_config: []\n")


def incidents(service: Service, rule: str, *, bot: str | None = None, states=DONE) -> list:
    return [i for i in service.store.incidents(100)
            if i.rule == rule and i.state in states and (bot is None or i.container.startswith(bot))]


def one(service: Service, rule: str, *, bot: str | None = None, states=DONE, timeout: float = 90):
    return wait_until(lambda: (incidents(service, rule, bot=bot, states=states) or [None])[0], timeout,
                      f"a {rule} incident{' of ' + bot if bot else ''} in {states}")


def audit(service: Service, inc) -> list[tuple[str, str, bool | None]]:
    return [(a["kind"], a["name"], a["ok"]) for a in service.store.audit_trail(inc.id)
            if a["kind"] in ("action", "verify", "retry")]


def test_password_file_missing_is_repaired_and_the_bot_redeployed_lives(make_stack, agent, receiver):
    stack = make_stack()
    service = agent(stack)
    profile(stack, "acct_c", config="cfg_c.yml")
    (stack.bots / "credentials" / "acct_c" / ".password_verification").unlink()
    bot = name(stack, "rb_c")
    first = deploy(service, instance_name=bot, credentials_profile="acct_c", script_config="cfg_c.yml")
    inc = one(service, "bot-password-file-missing", bot=bot, states=("resolved", "gave-up", "failed"))
    assert inc.state == "resolved", inc.detail
    assert inc.container == first["unique_instance_name"]
    assert inc.captures["fate"].startswith("exited by itself with code 1 after ")
    steps = audit(service, inc)
    assert steps == [("action", "ensure_account", True), ("action", "provision_credentials", True),
                     ("retry", "retry_deploy", True)], steps
    trail = service.store.audit_trail(inc.id)
    retry = next(a for a in trail if a["name"] == "retry_deploy")
    assert f"still running after {SETTLE:.0f} s with no bot rule matched" in retry["result"]
    assert "hummingbot-api hears its heartbeat (recently_active)" in retry["result"]
    assert retry["duration_ms"] >= SETTLE * 1000
    assert (stack.bots / "credentials" / "acct_c" / ".password_verification").is_file()
    again = [c for c in stack.client.containers.list(filters={"label": f"medic-test={stack.run_id}"})
             if c.name.startswith(bot) and c.name != first["unique_instance_name"]]
    assert len(again) == 1 and again[0].status == "running"
    assert "HEADLESS_MODE=true" in again[0].attrs["Config"]["Env"]  # the recorded body
    wait_until(lambda: any("Fixed" in t for t in receiver.titles()), 30, "the fixed message")
    titles = [t for t in receiver.titles() if bot in t or "password_verification" in t]
    assert any("Fixed" in t and ".password_verification" in t for t in titles), receiver.titles()

