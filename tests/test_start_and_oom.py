"""hummingbot-api that never starts, in a restart loop, and an out-of-memory kill the agent did not
see happen: end to end on the engine, the real agent in this process, each message read at a local
receiver.

The start failure is real: the stand-in's image runs real uvicorn (`uvicorn main:app`, as
hummingbot-api's image does) on an app whose import raises a real ImportError (a hummingbot module
without the name it imports, as in hummingbot-api#194), under the engine's own restart policy. The
OOM kill is the kernel's, under a memory limit, as in tests/test_breadth.py."""

from __future__ import annotations

import time

import pytest

from agent.records import IncidentState
from tests.stack import STANDIN_IMAGE, labels, wait_until
from tests.test_breadth import HOG, agent, incidents, name, one, profile, said  # noqa: F401 (agent: a fixture)

pytestmark = pytest.mark.docker

BROKEN_MAIN = "from hummingbot.core.rate_oracle.utils import normalize_token_symbol  # noqa\napp = None\n"


def test_hummingbot_api_that_fails_at_every_start_is_one_message_its_starts_counted(
        make_stack, agent, receiver, tmp_path, docker_client):  # noqa: F811
    stack = make_stack()
    service = agent(stack)
    app = tmp_path / "broken"
    (app / "hummingbot" / "core" / "rate_oracle").mkdir(parents=True)
    for pkg in ("hummingbot", "hummingbot/core", "hummingbot/core/rate_oracle"):
        (app / pkg / "__init__.py").write_text("")
    (app / "hummingbot" / "core" / "rate_oracle" / "utils.py").write_text("def other(): ...\n")
    (app / "main.py").write_text(BROKEN_MAIN)
    api_name = stack.api.name
    stack.api.remove(force=True)
    # the engine restarts it (3 times), as a compose file's restart policy would
    stack.api = docker_client.containers.run(
        STANDIN_IMAGE, name=api_name, detach=True, network_mode="host", labels=labels(stack.run_id),
        entrypoint=["/opt/venv/bin/uvicorn", "--app-dir", "/broken", "main:app"],
        volumes={str(app): {"bind": "/broken", "mode": "ro"}},
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 3})
    inc = one(service, "api-start-failed", states=(*DONE_OR_OPEN,))
    wait_until(lambda: service.store.incidents.get(inc.id).events >= 4, 90, "every start's traceback counted")
    time.sleep(2)  # anything more would come now
    stack.api.reload()
    assert stack.api.attrs["RestartCount"] == 3 and stack.api.status == "exited"
    msgs = said(receiver, "does not start")
    assert len(msgs) == 1, [m["title"] for m in msgs]
    assert msgs[0]["title"].startswith("[CRITICAL]") and "ImportError" in msgs[0]["title"]
    assert "cannot import name 'normalize_token_symbol'" in msgs[0]["message"]
    assert len(incidents(service, "api-start-failed", states=DONE_OR_OPEN)) == 1
    assert service.store.incidents.get(inc.id).events == 4  # the first start and 3 restarts


DONE_OR_OPEN = ("resolved", "gave-up", "waiting", "failed", "refused", "observed", "stale", "detected")


def test_an_oom_kill_before_the_agent_started_is_told_as_one(make_stack, agent, receiver):  # noqa: F811
    """The agent was not running when the kernel killed the bot: at its start it still tells an
    out-of-memory kill, not a crash (the engine's events since its catch-up window, the bot's
    State.OOMKilled and its console's Killed line agree)."""
    stack = make_stack()
    profile(stack, "acct_o5", script="rb_hog", config="cfg_o5.yml")
    (stack.bots / "scripts" / "rb_hog.py").write_text(HOG)
    answer = stack.http("POST", "/bot-orchestration/deploy-v2-script", json={
        "instance_name": name(stack, "rb_o5"), "credentials_profile": "acct_o5",
        "script_config": "cfg_o5.yml", "headless": True})
    assert answer.status_code == 200 and answer.json()["success"], answer.text
    bot = stack.bot(answer.json()["unique_instance_name"])
    bot.update(mem_limit="96m", memswap_limit="96m")
    wait_until(lambda: (bot.reload(), bot.status == "exited")[1], 90, "the kernel's kill")
    assert bot.attrs["State"]["OOMKilled"] is True and bot.attrs["State"]["ExitCode"] == 137
    service = agent(stack)
    inc = one(service, "bot-oom-killed", states=("awaiting-approval",))  # its restart asks first
    assert inc.container == bot.name and inc.state == IncidentState.AWAITING_APPROVAL
    assert "killed by the kernel for lack of memory" in inc.captures["fate"]
    wait_until(lambda: said(receiver, "out of memory"), 30, "the out-of-memory message")
    time.sleep(2)
    (msg,) = said(receiver, bot.name)
    assert "96 MiB" in msg["message"]
    assert not incidents(service, "bot-died", states=DONE_OR_OPEN)
