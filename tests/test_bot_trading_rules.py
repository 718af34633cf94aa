"""Rules about a bot that runs but cannot trade as configured, end to end: the real agent follows
stand-in bots whose scripts write the real programs' records (console and log file), and what
matters is not the match but what reaches people: one message per bot and connector for orders
left out for lack of balance, whichever side or pair; the clock's offset from the exchange's
server time, computed from the times its answer quotes. The disk-usage message is checked
against the real engine and a real bots folder."""

from __future__ import annotations

import contextlib
import io
import time

import docker
import pytest

from agent.actions.base import ActionContext
from agent.actions.host import DiskParams, OwnerParams, disk_usage, instance_owner, offset_text
from agent.records import IncidentState
from tests.images import BASE_IMAGE
from tests.stack import wait_until
from tests.test_bots import agent, deploy, incidents, name, one, profile  # noqa: F401 (agent: a fixture)

pytestmark = pytest.mark.docker

COINBASE = "hummingbot.connector.exchange.coinbase_advanced_trade.coinbase_advanced_trade_exchange." \
           "CoinbaseAdvancedTradeExchange"
BALANCE = f"""import logging
lg = logging.getLogger("{COINBASE}")
n = 0

def on_tick():
    global n
    n += 1
    side, pair = ("BUY", "BTC-USD") if n % 2 else ("SELL", "ETH-USD")
    lg.error(f"coinbase_advanced_trade reports insufficient funds for {{side}} 0.01 {{pair}} @ 30000")
"""
BYBIT = "hummingbot.connector.exchange.bybit.bybit_exchange.BybitExchange"
CLOCK = f"""import logging
lg = logging.getLogger("{BYBIT}")

def on_tick():
    try:
        raise OSError("Error executing request GET https://api.bybit.com/v5/account/wallet-balance."
                      " HTTP status is 400. Error: {{\\"retCode\\":10002,\\"retMsg\\":\\"invalid request,"
                      " please check your server timestamp or recv_window param."
                      " req_timestamp[1796000005904],server_timestamp"
                      "[1796000000004],recv_window[5000]\\"}}")
    except OSError:
        lg.error("Unexpected error while fetching account updates.", exc_info=True)
"""


def test_orders_short_of_balance_are_one_message_per_bot_and_connector(make_stack, agent, receiver):  # noqa: F811
    stack = make_stack()
    service = agent(stack)
    profile(stack, "acct_ib", script="rb_balance", config="cfg_ib.yml")
    (stack.bots / "scripts" / "rb_balance.py").write_text(BALANCE)
    bot = deploy(service, instance_name=name(stack, "rb_ib"), credentials_profile="acct_ib",
                 script_config="cfg_ib.yml")["unique_instance_name"]
    inc = one(service, "bot-insufficient-balance", bot=bot, states=(IncidentState.ONGOING,))
    assert inc.captures["connector"] == "coinbase_advanced_trade"
    assert inc.captures["side"] in ("BUY", "SELL") and inc.captures["pair"] in ("BTC-USD", "ETH-USD")
    # Both sides and both pairs go on failing, once a second: still one incident, one message.
    time.sleep(8)
    found = incidents(service, "bot-insufficient-balance", bot=bot, states=tuple(IncidentState))
    assert len(found) == 1, found
    assert service.store.incidents.get(found[0].id).events >= 8
    titles = wait_until(lambda: [t for t in receiver.titles() if "not enough balance" in t] or None, 30,
                        "the balance message")
    time.sleep(2)
    titles = [t for t in receiver.titles() if "not enough balance" in t]
    assert len(titles) == 1 and "coinbase_advanced_trade" in titles[0], titles
    assert stack.bot(bot).status == "running"


def test_the_clock_offset_is_told_from_the_times_the_exchange_quotes(make_stack, agent, receiver):  # noqa: F811
    stack = make_stack()
    service = agent(stack)
    profile(stack, "acct_ck", script="rb_clock", config="cfg_ck.yml")
    (stack.bots / "scripts" / "rb_clock.py").write_text(CLOCK)
    bot = deploy(service, instance_name=name(stack, "rb_ck"), credentials_profile="acct_ck",
                 script_config="cfg_ck.yml")["unique_instance_name"]
    # The offset is computed by a telling action: the incident ends told ("observed": a person was
    # told, nothing changed), never given up, since nothing was tried and nothing failed.
    inc = one(service, "bot-clock-skew", bot=bot)
    assert inc.state == IncidentState.OBSERVED, (inc.state, inc.detail)
    assert inc.captures["connector"] == "bybit"
    assert "5.9 s ahead of the exchange's server time" in inc.detail, inc.detail
    assert "timedatectl set-ntp true" in inc.detail
    trail = service.store.incidents.audit_trail(inc.id)
    assert [(a["kind"], a["name"], a["ok"]) for a in trail if a["kind"] in ("tell", "action")] \
        == [("tell", "clock_offset", True)], trail
    msgs = wait_until(lambda: [m for m in receiver.accepted if "5.9 s ahead" in m.get("message", "")] or None,
                      30, "the clock message")
    time.sleep(2)  # no other message of it follows
    told = [m for m in receiver.accepted if "this host's clock is off" in m.get("title", "")]
    assert len(told) == 1 and told == msgs, [m.get("title") for m in receiver.accepted]
    title = f"[ERROR] Needs you: Bot {name(stack, 'rb_ck')}: bybit refuses its requests, this host's clock" \
        " is off"
    assert told[0]["title"] == title, told[0]["title"]
    assert "timedatectl set-ntp true" in told[0]["message"]
    # Nothing was done, so nothing is listed as done (let alone as FAILED): the advice is the result.
    assert "FAILED" not in told[0]["message"] and "Done:" not in told[0]["message"], told[0]["message"]
    assert "Gave up" not in told[0]["message"] and "fixing" not in told[0]["message"].lower()


def test_offset_text_either_way():
    assert offset_text(1796000005904, 1796000000004) == "5.9 s ahead of"
    assert offset_text(1796000000004, 1796000012504) == "12.5 s behind"


def test_a_full_disk_is_told_with_what_uses_it_and_the_one_step_that_frees_it(tmp_path):
    """Kind 29 of the failure catalogue: proposed as one command, made from what the engine and the
    bots folder hold now: a bot container that is not running, an untagged image, rotated bot logs."""
    bots = tmp_path / "bots"
    logs = bots / "instances" / "rb_big-20261129-074500" / "logs"
    logs.mkdir(parents=True)
    (logs / "logs_rb_big.log").write_bytes(b"x" * 3_000_000)
    (logs / "logs_rb_big.log.2026-11-28").write_bytes(b"x" * 1_000_000)
    data = bots / "instances" / "rb_small-20261129-074501" / "data"
    data.mkdir(parents=True)
    (data / "rb_small.sqlite").write_bytes(b"x" * 200_000)
    client = docker.from_env()
    bot_image = next(t for i in client.images.list("medic-test/hummingbot") for t in i.tags)
    tag = f"medic-test/disk-{time.time_ns()}:x"
    stopped = client.containers.create(bot_image, name=f"rb_stopped-{time.time_ns()}")
    other = client.containers.create(BASE_IMAGE, name=f"not-a-bot-{time.time_ns()}", entrypoint=["true"])
    made = []
    try:
        for n in (1, 2):  # the same tag built twice: the first build is left untagged (dangling)
            img, _ = client.images.build(fileobj=io.BytesIO(f"FROM {bot_image}\nLABEL n={n}\n".encode()),
                                         tag=tag, rm=True)
            made.append(img.id)
        ctx = ActionContext(docker=client, api=None, bots_dir=bots)  # type: ignore[arg-type]
        text = disk_usage(DiskParams(), ctx)
    finally:
        stopped.remove(force=True)
        other.remove(force=True)
        for image_id in reversed(made):
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(image_id, force=True)
        client.close()
    # The engine's own figures (its system df) and the bots' folders, largest first.
    assert "images " in text and "containers' own files" in text
    assert "volumes " in text and "build cache" in text
    assert "bots' logs 4.0 MB, data 200.0 KB" in text, text
    assert "largest: bots/instances/rb_big-20261129-074500/logs 4.0 MB, " \
           "bots/instances/rb_small-20261129-074501/data 200.0 KB" in text, text
    # One command, with what it frees: the stopped bot by name, untagged images, rotated logs.
    step = text.split("hummingbot-api's folder: ", 1)[1].split(". ", 1)[0]
    parts = step.split(" && ")
    removed = next(p for p in parts if p.startswith("docker rm ")).split()[2:]
    assert stopped.name in removed and other.name not in removed, step  # only bots' containers
    assert "docker image prune -f" in parts and "rm bots/instances/*/logs/*.log.20??-??-??" in parts, step
    assert "docker image prune -a" not in step  # tagged images stay: the next deploy would pull them
    assert "One step frees " in text and "Never remove a running bot's data/" in text


def test_a_running_bot_is_never_in_the_one_step(tmp_path):
    client = docker.from_env()
    bot_image = next(t for i in client.images.list("medic-test/hummingbot") for t in i.tags)
    running = client.containers.run(bot_image, name=f"rb_running-{time.time_ns()}", detach=True,
                                    entrypoint=["sleep", "60"])
    try:
        ctx = ActionContext(docker=client, api=None, bots_dir=tmp_path)  # type: ignore[arg-type]
        text = disk_usage(DiskParams(), ctx)
    finally:
        running.remove(force=True)
        client.close()
    assert running.name not in text, text


@pytest.mark.parametrize(("user", "owner"), [("", "0:0"), ("1000:1001", "1000:1001"), ("1000", "1000:1000")])
def test_the_chown_names_the_user_the_bots_image_runs_as(user, owner):
    """The exact command of bot-files-not-writable: the user is read from the bot's container (a
    created container of a stand-in bot image: the same Config.User an image's USER gives)."""
    client = docker.from_env()
    image = next(t for i in client.images.list("medic-test/hummingbot") for t in i.tags)
    box = client.containers.create(image, user=user or None, name=f"rb_own-{time.time_ns()}")
    ctx = ActionContext(docker=client, api=None)  # type: ignore[arg-type]
    try:
        try:
            told = instance_owner(OwnerParams(name=box.name), ctx)
        finally:
            box.remove(force=True)
        gone = instance_owner(OwnerParams(name=box.name), ctx)
    finally:
        client.close()
    assert f"the bot runs as {owner} (uid:gid)" in told, told
    assert f"sudo chown -R {owner} bots/instances/{box.name} " in told, told
    # A container removed since: the official image's user, said as such, in a command that runs.
    assert f"sudo chown -R 0:0 bots/instances/{box.name} " in gone and "its container is gone" in gone, gone
