"""The failures people report most, end to end on the engine: the real agent (in this process)
beside the stand-in hummingbot-api and its stand-in bots, each failure produced as the real
captures show it (real-logs/more), each message read at a local receiver.

Out of memory (a real kernel kill under a memory limit), an unwritable logs folder (the
immutable flag, as captured), a credential upload for an account that does not exist, broken
settings, a broker host that names nothing, an exchange cut off and back, an empty CONFIG_PASSWORD
told before the first deploy (by the agent and by `hb-medic doctor`)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from agent.records import IncidentState
from agent.service import Service
from agent.settings import Settings
from tests.receiver import Receiver
from tests.stack import ADMIN, LABEL, free_port, prefixed_rules, wait_until
from tests.test_doctor import run_doctor

pytestmark = pytest.mark.docker
DONE = ("resolved", "gave-up", "waiting", "failed", "refused", "observed", "stale")
CANARY_KEY, CANARY_SECRET = "CANARYkey7f3a9c1d", "CANARYsecret0b4e28ba"


@pytest.fixture
def agent(tmp_path, receiver, start_service):
    def start(stack, *, rules: Path | None = None, **extra) -> Service:
        folder = rules or prefixed_rules(stack.prefix, tmp_path / f"rules-{stack.run_id}")
        settings = Settings(**{
            "containers": [stack.prefix + "hummingbot-api"], "state_db": tmp_path / "state.db",
            "hummingbot_url": stack.url, "catchup_window": 120, "rules_dir": folder,
            "recorder_addr": f"127.0.0.1:{free_port()}", "bots": f"b{stack.run_id}_*",
            "bots_dir": stack.bots, "bot_settle": 3, "notify_urls": receiver.url,
            "preflight": "off", **extra})  # fixes after a failure (see test_preflight_recorder.py)
        return start_service(settings)

    return start


def name(stack, base: str) -> str:
    return f"b{stack.run_id}_{base}"


def profile(stack, account: str, *, script: str | None = None, config: str | None = None) -> None:
    assert stack.http("POST", "/accounts/add-account", params={"account_name": account}).status_code == 201
    if config is not None:
        (stack.bots / "conf" / "scripts" / config).write_text(
            f"script_file_name: {script or 'v2_with_controllers'}.py\ncontrollers_config: []\n")


def via_recorder(service: Service, method: str, path: str, **kw) -> httpx.Response:
    with httpx.Client(base_url=f"http://{service.settings.recorder_addr}", auth=ADMIN, timeout=60) as c:
        return c.request(method, path, **kw)


def incidents(service: Service, rule: str, states=DONE) -> list:
    return [i for i in service.store.incidents.recent(200) if i.rule == rule and i.state in states]


def one(service: Service, rule: str, states=DONE, timeout: float = 90):
    return wait_until(lambda: (incidents(service, rule, states) or [None])[0], timeout,
                      f"a {rule} incident in {states}")


def actions(service: Service, inc) -> list[tuple[str, str, bool | None]]:
    return [(a["kind"], a["name"], a["ok"]) for a in service.store.incidents.audit_trail(inc.id)
            if a["kind"] in ("action", "verify", "retry")]


def said(receiver: Receiver, words: str) -> list[dict]:
    return [m for m in list(receiver.accepted) if words in m.get("title", "") + m.get("message", "")]


# -- out of memory ----------------------------------------------------------------------------
HOG = """\
import os
blocks = []

def _limit():
    for path in ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"):
        try:
            with open(path) as f:
                text = f.read().strip()
            return int(text) if text.isdigit() else None
        except OSError:
            pass
    return None

def on_tick():
    limit = _limit()
    if limit is None or limit > 2 ** 30:
        logger.info("rb_hog: waiting for a memory limit")
        return
    blocks.append(b"\\x01" * (40 * 2 ** 20))  # touched: counted against the limit
    logger.info(f"rb_hog: holding {40 * len(blocks)} MiB")
"""


def test_a_bot_killed_for_memory_is_told_with_its_limit_and_not_restarted(make_stack, agent, receiver):
    stack = make_stack()
    service = agent(stack)
    profile(stack, "acct_o1", script="rb_hog", config="cfg_o1.yml")
    (stack.bots / "scripts" / "rb_hog.py").write_text(HOG)
    answer = via_recorder(service, "POST", "/bot-orchestration/deploy-v2-script", json={
        "instance_name": name(stack, "rb_o1"), "credentials_profile": "acct_o1",
        "script_config": "cfg_o1.yml", "headless": True})
    assert answer.status_code == 200 and answer.json()["success"], answer.text
    bot = stack.bot(answer.json()["unique_instance_name"])
    bot.update(mem_limit="96m", memswap_limit="96m")  # as the capture did (docker update)
    # The rule asks whatever the mode: its restart waits for a person's Fix now.
    inc = one(service, "bot-oom-killed", states=("awaiting-approval",))
    assert inc.container == bot.name and inc.state == IncidentState.AWAITING_APPROVAL
    bot.reload()
    assert bot.status == "exited" and bot.attrs["State"]["OOMKilled"] is True
    assert bot.attrs["State"]["ExitCode"] == 137
    assert "killed by the kernel for lack of memory (it used all of its memory limit of 96 MiB;" \
           " exit code 137)" in inc.captures["fate"]
    assert actions(service, inc) == []  # a trading bot with open orders is never restarted by itself
    assert service.store.approvals.get(inc.id).plan[0] == f"start_container(name='{bot.name}')"
    wait_until(lambda: said(receiver, "out of memory"), 30, "the out-of-memory message")
    time.sleep(2)  # anything more would come now
    (msg,) = said(receiver, bot.name)
    assert msg["title"].startswith("[CRITICAL]") and "out of memory" in msg["title"]
    assert "96 MiB" in msg["message"] and "open orders" in msg["message"]
    assert not incidents(service, "bot-died")
    bot.reload()
    assert bot.status == "exited" and bot.attrs["RestartCount"] == 0


def test_a_rule_copy_that_asks_restarts_an_oom_killed_bot_within_its_attempts(make_stack, agent,
                                                                           tmp_path):
    """The restart is the operator's choice: a copy of the rule in MEDIC_RULES_DIR that does not ask
    (the shipped one waits for approval). The bot, started again with the same limit, is killed again:
    each start is an attempt; after the limit the incident gives up and says so."""
    stack = make_stack()
    rules = prefixed_rules(stack.prefix, tmp_path / "rules")
    rule = yaml.safe_load((rules / "bot-oom-killed.yml").read_text())
    rule["incident"].update(max_attempts=2, backoff=1)
    rule["ask"] = False
    rule["actions"] = [{"action": "start_container", "params": {"name": "{container}"}}]
    rule["verify"] = [{"action": "bot_quiet", "params": {"name": "{container}", "rule": "bot-oom-killed",
                                                         "seconds": 20}}]
    (rules / "bot-oom-killed.yml").write_text(yaml.safe_dump(rule, sort_keys=False))
    service = agent(stack, rules=rules)
    profile(stack, "acct_o2", script="rb_hog", config="cfg_o2.yml")
    (stack.bots / "scripts" / "rb_hog.py").write_text(HOG)
    answer = via_recorder(service, "POST", "/bot-orchestration/deploy-v2-script", json={
        "instance_name": name(stack, "rb_o2"), "credentials_profile": "acct_o2",
        "script_config": "cfg_o2.yml", "headless": True})
    bot = stack.bot(answer.json()["unique_instance_name"])
    bot.update(mem_limit="96m", memswap_limit="96m")
    inc = one(service, "bot-oom-killed", states=("gave-up", "resolved"), timeout=180)
    assert inc.state == IncidentState.GAVE_UP, inc.detail
    assert "no longer running" in inc.detail and "after 2 attempts" in inc.detail
    steps = actions(service, inc)
    assert steps.count(("action", "start_container", True)) == 2, steps
    bot.reload()
    assert bot.attrs["State"]["OOMKilled"] is True and bot.status == "exited"


# -- unwritable logs ----------------------------------------------------------------------------
def test_a_bot_that_cannot_write_its_logs_is_told_with_the_folder(make_stack, agent, receiver):
    """As captured (more/o3a): the instance's logs/ made immutable before the deploy; the legacy
    generation names the instance as asked, so the folder can be made first."""
    stack = make_stack(generation="legacy")
    service = agent(stack)
    profile(stack, "acct_o3", config="cfg_o3.yml")
    instance = name(stack, "rb_o3")
    logs = stack.bots / "instances" / instance / "logs"
    logs.mkdir(parents=True)
    (stack.bots / "instances" / instance / "data").mkdir()
    subprocess.run(["chattr", "+i", str(logs)], check=True)
    try:
        answer = via_recorder(service, "POST", "/bot-orchestration/deploy-v2-script", json={
            "instance_name": instance, "credentials_profile": "acct_o3", "script_config": "cfg_o3.yml",
            "headless": True})
        assert answer.status_code == 200 and answer.json()["success"], answer.text
        inc = one(service, "bot-logs-not-writable")
        # Told with the exact chown (instance_owner reads the container's user): observed, nothing done.
        assert inc.container == instance and inc.state == IncidentState.OBSERVED, (inc.state, inc.detail)
        assert inc.captures["file"] == "errors.log" and inc.captures["error"] == "Operation not permitted"
        assert inc.captures["fate"].startswith("exited by itself with code 1")
        assert actions(service, inc) == []
        wait_until(lambda: said(receiver, "cannot write its logs folder"), 30, "the message")
        time.sleep(2)
        (msg,) = said(receiver, instance)
        assert f"bots/instances/{instance}/logs" in msg["message"]
        assert "chattr -i" in msg["message"] and "chown" in msg["message"]
        assert f"sudo chown -R 0:0 bots/instances/{instance} " in msg["message"], msg["message"]
        assert msg["title"].startswith("[CRITICAL] Needs you: Bot "), msg["title"]
        assert not incidents(service, "bot-died")
    finally:
        subprocess.run(["chattr", "-i", str(logs)], check=False)


# -- credential uploads ---------------------------------------------------------------------------
def test_credential_uploads_that_fail_are_told_by_reason_and_a_missing_account_is_made(
        make_stack, agent, receiver):
    stack = make_stack(env={"STANDIN_EXCHANGES_OFFLINE": "kucoin"})
    service = agent(stack)
    keys = {"binance_api_key": CANARY_KEY, "binance_api_secret": CANARY_SECRET}
    # The account does not exist: made through the API; the person sends the keys again.
    first = via_recorder(service, "POST", "/accounts/add-credential/acct_new/binance", json=keys)
    assert first.status_code == 400
    assert first.json() == {"detail": "Directory 'credentials/acct_new/connectors' not found"}
    inc = one(service, "credential-add-failed", states=("resolved", "gave-up", "failed"))
    assert inc.state == IncidentState.RESOLVED, inc.detail
    assert inc.captures["reason"] == "account-missing" and inc.captures["account"] == "acct_new"
    assert inc.captures["connector"] == "binance"  # from the recorder's answer (its path)
    assert actions(service, inc) == [("action", "ensure_account", True)]
    assert "acct_new" in stack.http("GET", "/accounts/").json()
    wait_until(lambda: said(receiver, "Fixed: Exchange keys not added to acct_new"), 30, "the fixed message")
    fixed = said(receiver, "Fixed: Exchange keys not added to acct_new")[0]["message"]
    assert "send the keys again" in fixed
    again = via_recorder(service, "POST", "/accounts/add-credential/acct_new/binance", json=keys)
    assert again.status_code == 201, again.text
    # Wrong field names: the fields the connector expects are looked up and told.
    wrong = via_recorder(service, "POST", "/accounts/add-credential/acct_new/binance",
                         json={"api_key": CANARY_KEY, "api_secret": CANARY_SECRET})
    assert wrong.json() == {"detail": "Object has no attribute 'api_key'"}
    # The exchange cannot be reached from this host (kucoin is cut off in this stack).
    cut = via_recorder(service, "POST", "/accounts/add-credential/acct_new/kucoin",
                       json={"kucoin_api_key": CANARY_KEY, "kucoin_secret_key": CANARY_SECRET,
                             "kucoin_passphrase": "CANARYpass5e4f"})
    assert cut.json() == {"detail": "Cannot connect to host api.kucoin.com:443 ssl:default"
                                    " [Name or service not known]"}
    # Not JSON: 422, whose answer echoes the input (not kept).
    raw = via_recorder(service, "POST", "/accounts/add-credential/acct_new/binance",
                       content=f"binance_api_key={CANARY_KEY}",
                       headers={"Content-Type": "application/json"})
    assert raw.status_code == 422
    by_reason = {}
    for reason in ("wrong-fields", "exchange-unreachable", "not-json"):
        by_reason[reason] = wait_until(
            lambda r=reason: next((i for i in incidents(service, "credential-add-failed")
                                   if i.captures.get("reason") == r), None), 60, f"the {reason} incident")
    wrong_inc = by_reason["wrong-fields"]
    assert wrong_inc.state == IncidentState.GAVE_UP and wrong_inc.captures["connector"] == "binance"
    assert "binance_api_key, binance_api_secret" in wrong_inc.detail
    assert by_reason["exchange-unreachable"].captures["host"] == "api.kucoin.com"
    wait_until(lambda: len(said(receiver, "Exchange keys not added")) >= 4, 30, "the messages")
    time.sleep(4)  # hummingbot-api's log lines of the same failures come now, and say nothing more
    titles = [m["title"] for m in said(receiver, "Exchange keys not added")]
    # One closing message an incident: the account fixed, what to send for the field names, one each
    # for the rest; "Detected, fixing" before it only where an attempt took more than a second.
    closing = [t for t in titles if "Detected, fixing" not in t]
    assert len(closing) == 4 and sum(": Fixed" in t or "] Fixed" in t for t in closing) == 1, titles
    assert len(titles) - len(closing) <= 2, titles
    assert sum(1 for i in incidents(service, "credential-add-failed")) == 4
    # The keys never reached the state file, a message or the agent's records.
    db = b"".join(p.read_bytes() for p in Path(service.settings.state_db).parent.glob("state.db*"))
    texts = json.dumps(list(receiver.accepted))
    for secret in (CANARY_KEY, CANARY_SECRET, "CANARYpass5e4f"):
        assert secret.encode() not in db and secret not in texts
    rows = service.store.file.conn().execute(
        "SELECT request_body, response_body FROM deploys WHERE route = 'add-credential'").fetchall()
    assert len(rows) == 4 and all(body == "" for body, _ in rows)
    assert all('"input"' not in answer for _, answer in rows)


# -- broken settings, a broker host that names nothing ------------------------------------------
def test_broken_settings_are_one_message_however_often_it_restarts(make_stack, agent, receiver):
    stack = make_stack(env={"BROKER_PORT": "not_a_port"}, wait_ready=False)
    stack.wait_exit(timeout=60)
    service = agent(stack)
    inc = one(service, "api-settings-invalid")
    assert inc.captures["model"] == "BrokerSettings" and inc.captures["field"] == "PORT"
    for _ in range(2):  # a restart policy (or a person) starts it again: it fails the same way
        stack.api.start()
        stack.wait_exit(timeout=60)
    wait_until(lambda: service.store.incidents.get(inc.id).events >= 3, 60, "the restarts' lines counted")
    time.sleep(2)
    msgs = said(receiver, "does not start")
    assert len(msgs) == 1, [m["title"] for m in msgs]
    assert "BROKER_PORT" in msgs[0]["title"] and "BROKER_PORT" in msgs[0]["message"]
    assert "its setting BROKER_PORT (BrokerSettings) is invalid: Input should be a valid integer" \
        in msgs[0]["message"]
    assert len(incidents(service, "api-settings-invalid", states=(*DONE, "detected"))) == 1
    assert actions(service, inc) == []
    stack.api.reload()
    assert stack.api.status == "exited"  # hb-medic did not start it


def test_a_broker_host_that_names_nothing_starts_no_container(make_stack, agent, receiver):
    missing = "medic-no-such-broker"
    stack = make_stack(env={"BROKER_HOST": missing, "MQTT_RECONNECT_INTERVAL": "1"})
    mine = {"label": f"{LABEL}={stack.run_id}"}  # others' tests share the engine
    before = {c.id: c.status for c in stack.client.containers.list(all=True, filters=mine)}
    service = agent(stack)
    inc = one(service, "broker-unresolvable")
    assert inc.state == IncidentState.GAVE_UP, inc.detail
    assert f"BROKER_HOST={missing} names nothing" in inc.detail and "no container was started" in inc.detail
    assert actions(service, inc) == [("action", "start_named_broker", False)]
    assert not incidents(service, "broker-unreachable", states=(*DONE, "detected", "acting"))
    after = {c.id: c.status for c in stack.client.containers.list(all=True, filters=mine)}
    assert after == before  # nothing started, stopped or made
    assert not stack.client.containers.list(all=True, filters={"name": missing})
    # A person is needed at once (starting something would not help): one "Needs you" message.
    wait_until(lambda: said(receiver, "Needs you: MQTT broker host does not resolve"), 30, "the message")
    (msg,) = said(receiver, "Needs you")
    assert missing in msg["message"]


def test_a_broker_host_naming_a_stopped_container_starts_that_container(make_stack, agent):
    """On a compose network a stopped broker's name resolves to nothing too: that one is started."""
    stack = make_stack(env={"MQTT_RECONNECT_INTERVAL": "1"}, wait_ready=False)
    broker = stack.broker_container
    stack.api.stop(timeout=1)
    broker.stop(timeout=1)
    stack.api.remove()
    stack.env["BROKER_HOST"] = broker.name
    stack.wait_ready = True
    stack.api = stack.client.containers.run(
        stack.api.attrs["Config"]["Image"], name=stack.prefix + "hummingbot-api", detach=True,
        network_mode="host", labels=stack.api.attrs["Config"]["Labels"], volumes=stack._api_volumes(),
        environment=stack._api_env())
    service = agent(stack)
    inc = one(service, "broker-unresolvable")
    assert inc.state == IncidentState.RESOLVED, inc.detail
    assert actions(service, inc) == [("action", "start_named_broker", True)]
    broker.reload()
    assert broker.status == "running"


# -- an exchange cut off, and back -----------------------------------------------------------
def test_an_exchange_cut_off_is_one_opening_and_one_closing_message(make_stack, agent, receiver, tmp_path):
    stack = make_stack(env={"STANDIN_EXCHANGE_INTERVAL": "1"})
    rules = prefixed_rules(stack.prefix, tmp_path / "rules")
    rule = yaml.safe_load((rules / "exchange-unreachable.yml").read_text())
    rule["incident"]["quiet"] = 4  # ten minutes in production
    (rules / "exchange-unreachable.yml").write_text(yaml.safe_dump(rule, sort_keys=False))
    service = agent(stack, rules=rules)
    profile(stack, "acct_x", script="rb_paper", config="cfg_x.yml")
    (stack.bots / "scripts" / "rb_paper.py").write_text(
        "markets = {'binance_paper_trade': {'BTC-USDT'}}\n\n"
        "def on_tick():\n    logger.info('rb_paper: tick')\n")
    answer = via_recorder(service, "POST", "/bot-orchestration/deploy-v2-script", json={
        "instance_name": name(stack, "rb_x"), "credentials_profile": "acct_x", "script_config": "cfg_x.yml",
        "headless": True})
    bot = answer.json()["unique_instance_name"]
    wait_until(lambda: bot in service.ingest.followed_bots(), 30, "the bot followed")
    control = stack.bots / "scripts" / ".standin-offline"
    control.write_text("binance\n")  # cut off: hummingbot-api's connector and the bot's strategy
    inc = one(service, "exchange-unreachable", states=("ongoing",))
    assert inc.captures["exchange"] == "binance"
    wait_until(lambda: said(receiver, "Exchange binance out of reach"), 30, "the opening message")
    wait_until(lambda: service.store.incidents.get(inc.id).events >= 5, 60, "lines from both")
    wait_until(lambda: any(f"at:{bot}/" in key for key in _event_keys(service, inc)), 30,
               "the bot's lines in the same incident")
    control.unlink()  # back
    ended = wait_until(lambda: (lambda i: i if i.state == IncidentState.RESOLVED else None)(
        service.store.incidents.get(inc.id)), 60, "the incident to end by itself")
    assert "no such line for 4 s: over after" in ended.detail
    wait_until(lambda: len(said(receiver, "Exchange binance out of reach")) == 2, 30, "the closing message")
    time.sleep(2)
    opening, closing = said(receiver, "Exchange binance out of reach")
    assert opening["title"].startswith("[WARNING] Detected: Exchange binance out of reach")
    assert "one more message when it is over" in opening["message"]
    assert closing["title"].startswith("[WARNING] Over: Exchange binance out of reach")
    assert "It is over: no such line came for 4 s." in closing["message"]
    assert not said(receiver, "unnamed")
    assert len(incidents(service, "exchange-unreachable", states=(*DONE, "ongoing"))) == 1


def _event_keys(service: Service, inc) -> list[str]:
    """The events an incident counted (their keys name their containers)."""
    rows = service.store.file.conn().execute(
        "SELECT key FROM incident_events WHERE incident = ?", (inc.id,)).fetchall()
    return [r[0] for r in rows]


# -- an empty CONFIG_PASSWORD ---------------------------------------------------------------------
def test_an_empty_config_password_is_told_before_the_first_deploy(make_stack, agent, receiver, tmp_path):
    """hummingbot-api says nothing about it; the agent reads its environment through the engine
    (and so does doctor). The first deploy then fails as captured (more/o4b2), told by the recorder."""
    stack = make_stack(broker=False, env={"CONFIG_PASSWORD": ""})
    env = {"MEDIC_CONTAINERS": stack.api.name, "MEDIC_HUMMINGBOT_URL": stack.url,
           "MEDIC_HUMMINGBOT_PASSWORD": "admin", "MEDIC_STATE_DB": str(tmp_path / "s.db"),
           "MEDIC_HTTP_ADDR": f"127.0.0.1:{free_port()}"}
    out = run_doctor(env, cwd=tmp_path)
    assert out.returncode == 1, out.stdout
    lines = out.stdout.splitlines()
    (cross,) = [x for x in lines if "CONFIG_PASSWORD" in x and x.startswith("✗")]
    assert "CONFIG_PASSWORD is empty" in cross and "Password not provided" in cross
    assert "set CONFIG_PASSWORD" in lines[lines.index(cross) + 1]
    service = agent(stack)
    inc = one(service, "config-password-empty")
    assert inc.container == stack.api.name and actions(service, inc) == []
    wait_until(lambda: said(receiver, "has no CONFIG_PASSWORD"), 30, "the message before any deploy")
    (msg,) = said(receiver, "has no CONFIG_PASSWORD")
    assert msg["title"].startswith("[CRITICAL] Detected: hummingbot-api has no CONFIG_PASSWORD")
    assert "Password not provided" in msg["message"] and "docker compose up -d" in msg["message"]
    profile(stack, "acct_o4b", config="cfg_o4b.yml")
    answer = via_recorder(service, "POST", "/bot-orchestration/deploy-v2-script", json={
        "instance_name": name(stack, "rb_o4b2"), "credentials_profile": "acct_o4b",
        "script_config": "cfg_o4b.yml", "headless": True})
    assert answer.json() == {"success": False,
                             "message": "Password not provided. We cannot start the bot without a password."}
    assert one(service, "config-password-missing").state == IncidentState.RESOLVED
    assert len(incidents(service, "config-password-empty")) == 1
