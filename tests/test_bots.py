"""The bots hummingbot-api deploys, end to end: the real agent (in this process) follows the
stand-in bots (tests/standin/bot, behaving as the real captures) that the stand-in
hummingbot-api deploys on the real engine, and sends its messages to a local receiver.

Each captured scenario is a deploy through the recorder with the files that cause it, as
in the captures. Bots are named after the stack's run, and the agent follows only those."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time

import httpx
import pytest

from agent.records import IncidentState
from agent.service import Service
from agent.settings import Settings
from tests.stack import ADMIN, REPO, free_port, wait_until

pytestmark = pytest.mark.docker
SETTLE = 3.0
DONE = ("resolved", "gave-up", "waiting", "failed", "refused", "observed", "stale")


@pytest.fixture
def agent(tmp_path, receiver, start_service):
    def start(stack, **extra) -> Service:
        settings = Settings(**{
            "containers": [stack.prefix + "hummingbot-api"], "state_db": tmp_path / "state.db",
            "hummingbot_url": stack.url, "catchup_window": 120,
            "recorder_addr": f"127.0.0.1:{free_port()}", "bots": f"b{stack.run_id}_*",
            "bots_dir": stack.bots, "bot_settle": SETTLE, "notify_urls": receiver.url,
            "preflight": "off", **extra})  # fixes after a failure (see test_preflight_recorder.py)
        return start_service(settings)

    start.stop = start_service.stop
    return start


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
    return [i for i in service.store.incidents.recent(100)
            if i.rule == rule and i.state in states and (bot is None or i.container.startswith(bot))]


def one(service: Service, rule: str, *, bot: str | None = None, states=DONE, timeout: float = 90):
    return wait_until(lambda: (incidents(service, rule, bot=bot, states=states) or [None])[0], timeout,
                      f"a {rule} incident{' of ' + bot if bot else ''} in {states}")


def audit(service: Service, inc) -> list[tuple[str, str, bool | None]]:
    return [(a["kind"], a["name"], a["ok"]) for a in service.store.incidents.audit_trail(inc.id)
            if a["kind"] in ("action", "verify", "retry")]


def test_password_file_missing_is_repaired_and_the_bot_redeployed_lives(make_stack, agent, receiver):
    stack = make_stack()
    service = agent(stack)
    profile(stack, "acct_c", config="cfg_c.yml")
    (stack.bots / "credentials" / "acct_c" / ".password_verification").unlink()
    bot = name(stack, "rb_c")
    first = deploy(service, instance_name=bot, credentials_profile="acct_c", script_config="cfg_c.yml")
    inc = one(service, "bot-password-file-missing", bot=bot, states=("resolved", "gave-up", "failed"))
    assert inc.state == IncidentState.RESOLVED, inc.detail
    assert inc.container == first["unique_instance_name"]
    assert inc.captures["fate"].startswith("exited by itself with code 1 after ")
    steps = audit(service, inc)
    assert steps == [("action", "ensure_account", True), ("action", "provision_credentials", True),
                     ("retry", "retry_deploy", True)], steps
    trail = service.store.incidents.audit_trail(inc.id)
    retry = next(a for a in trail if a["name"] == "retry_deploy")
    assert f"still running after {SETTLE:.0f} s with no failure of its own" in retry["result"]
    assert "hummingbot-api hears its heartbeat (recently_active)" in retry["result"]
    assert retry["duration_ms"] >= SETTLE * 1000
    assert (stack.bots / "credentials" / "acct_c" / ".password_verification").is_file()
    again = [c["Names"][0].lstrip("/") for c in stack.client.api.containers(filters={"name": bot})]
    again = [stack.bot(n) for n in again if n != first["unique_instance_name"]]
    assert len(again) == 1 and again[0].status == "running"
    assert "HEADLESS_MODE=true" in again[0].attrs["Config"]["Env"]  # the recorded body
    wait_until(lambda: any("Fixed" in t for t in receiver.titles()), 30, "the fixed message")
    titles = [t for t in receiver.titles() if bot in t or "password_verification" in t]
    assert any("Fixed" in t and ".password_verification" in t for t in titles), receiver.titles()



def _sha(password: str) -> str:
    """A .password_verification of the real shape (the hex of a key file's JSON) made with this
    password by the stand-in bot's own config_crypt, as a profile of another password has it."""
    spec = importlib.util.spec_from_file_location(
        "standin_config_crypt", REPO / "tests" / "standin" / "bot" / "hummingbot" / "client" / "config"
        / "config_crypt.py")
    crypt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(crypt)
    manager = crypt.ETHKeyFileSecretManger(password)
    return manager.encrypt_secret_value(crypt.PASSWORD_VERIFICATION_WORD, crypt.PASSWORD_VERIFICATION_WORD)


def test_failures_a_bot_dies_of_are_one_clear_message_each_and_nothing_changes(make_stack, agent, receiver):
    """Wrong password, strategy failed, script config missing, keys of another password, an invalid
    conf_client.yml, a death no rule knows; a bot stopped by a person; all at once."""
    stack = make_stack()
    service = agent(stack)
    cases = {}
    profile(stack, "acct_b", config="cfg_ok.yml")
    (stack.bots / "credentials" / "acct_b" / ".password_verification").write_text(_sha("not-a"))
    cases["bot-password-invalid"] = ("rb_b", "acct_b", "cfg_ok.yml")
    profile(stack, "acct_d", script="rb_no_such_script", config="cfg_d1.yml")
    cases["bot-strategy-failed"] = ("rb_d1", "acct_d", "cfg_d1.yml")
    profile(stack, "acct_g")
    cases["bot-script-config-missing"] = ("rb_g", "acct_g", "cfg_gone.yml")
    profile(stack, "acct_m")
    (stack.bots / "credentials" / "acct_m" / "connectors" / "binance.yml").write_text(
        "connector: binance\npassword_sha256: " + hashlib.sha256(b"old").hexdigest() + "\n")
    cases["bot-keys-undecryptable"] = ("rb_m", "acct_m", "cfg_ok.yml")
    profile(stack, "acct_v")
    conf = stack.bots / "credentials" / "acct_v" / "conf_client.yml"
    conf.write_text(conf.read_text().replace("mqtt_port: ", "mqtt_port: x"))
    cases["bot-client-config-invalid"] = ("rb_v", "acct_v", "cfg_ok.yml")
    profile(stack, "acct_x", script="rb_exit_three", config="cfg_x.yml")
    (stack.bots / "scripts" / "rb_exit_three.py").write_text(
        "import os\n\ndef on_tick():\n    print('rb_exit_three: leaving', flush=True)\n    os._exit(3)\n")
    cases["bot-died"] = ("rb_x", "acct_x", "cfg_x.yml")
    profile(stack, "acct_s")
    before = {p.relative_to(stack.bots / "credentials"): p.read_bytes()
              for p in (stack.bots / "credentials").rglob("*") if p.is_file()}

    deployed = {rule: deploy(service, instance_name=name(stack, base), credentials_profile=acct,
                             script_config=cfg)["unique_instance_name"]
                for rule, (base, acct, cfg) in cases.items()}
    stopped = deploy(service, instance_name=name(stack, "rb_s"), credentials_profile="acct_s")
    stopped_bot = stack.bot(stopped["unique_instance_name"])
    wait_until(lambda: stopped_bot.name in service.ingest.followed_bots(), 30, "the bot followed")
    stopped_bot.stop(timeout=1)  # what hummingbot-api's stop does (with a shorter grace)

    for rule, container in deployed.items():
        inc = one(service, rule, bot=container)
        assert inc.container == container and inc.state == IncidentState.RESOLVED, \
            (rule, inc.state, inc.detail)
        assert inc.captures.get("fate", "").startswith("exited by itself with code"), (rule, inc.captures)
        assert audit(service, inc) == [], rule  # notify only: nothing was changed
    wait_until(lambda: len(receiver.messages()) >= len(cases), 30, "a message per failure")
    time.sleep(2)  # anything more would come now
    for rule, container in deployed.items():
        said = [m for m in receiver.accepted if container in m.get("message", "")]
        assert len(said) == 1, (rule, [m["title"] for m in said])
    texts = {rule: next(m["message"] for m in receiver.accepted if c in m.get("message", ""))
             for rule, c in deployed.items()}
    assert "exited by itself with code 0 after" in texts["bot-password-invalid"]
    assert "Invalid password." in texts["bot-password-invalid"]
    assert "Unknown strategy: rb_no_such_script" in texts["bot-strategy-failed"]
    assert "There is no script bots/scripts/rb_no_such_script.py" in texts["bot-strategy-failed"]
    assert "cfg_gone.yml" in texts["bot-script-config-missing"]
    assert "MAC mismatch" in texts["bot-keys-undecryptable"]
    assert "mqtt_bridge.mqtt_port" in texts["bot-client-config-invalid"]
    died = texts["bot-died"]
    assert "exited by itself with code 3 after" in died and "rb_exit_three: leaving" in died  # last lines
    # Nobody died of the stop; nothing was changed, nothing deployed again.
    assert not [i for i in service.store.incidents.recent(100) if i.container == stopped_bot.name]
    assert not any(stopped_bot.name in m for m in receiver.messages())
    after = {p.relative_to(stack.bots / "credentials"): p.read_bytes()
             for p in (stack.bots / "credentials").rglob("*") if p.is_file()}
    assert after == before
    bots = stack.client.api.containers(all=True, filters={"name": f"b{stack.run_id}_"})
    assert len(bots) == len(cases) + 1


def test_running_bots_that_fail_again_and_again_are_detected_by_threshold(make_stack, agent):
    stack = make_stack()
    service = agent(stack)
    profile(stack, "acct_e", script="rb_raise_tick", config="cfg_e2.yml")
    (stack.bots / "scripts" / "rb_raise_tick.py").write_text(
        "n = 0\n\ndef on_tick():\n    global n\n    n += 1\n    logger.info(f'rb_raise_tick: tick {n}')\n"
        "    if n >= 3:\n        raise ZeroDivisionError('rb_raise_tick: boom in on_tick')\n")
    profile(stack, "acct_f", config="cfg_f7.yml")
    conf = stack.bots / "credentials" / "acct_f" / "conf_client.yml"
    conf.write_text(conf.read_text().replace(f"mqtt_port: {stack.broker_port}", f"mqtt_port: {free_port()}"))
    tick = deploy(service, instance_name=name(stack, "rb_e2"), credentials_profile="acct_e",
                  script_config="cfg_e2.yml")["unique_instance_name"]
    mqtt = deploy(service, instance_name=name(stack, "rb_f7"), credentials_profile="acct_f",
                  script_config="cfg_f7.yml")["unique_instance_name"]
    inc = one(service, "bot-tick-errors", bot=tick, states=("resolved",))
    assert inc.captures["error"] == "ZeroDivisionError: rb_raise_tick: boom in on_tick"  # from the log file
    assert stack.bot(tick).status == "running"
    inc = one(service, "bot-mqtt-unreachable", bot=mqtt, states=("acting", "verifying", "failed", "gave-up"))
    assert inc.captures["error"] == "[Errno 111] Connection refused"
    assert stack.bot(mqtt).status == "running"
    # hummingbot-api is connected to the broker: starting it cannot help, and a person is told
    # the bot's own setting at once (no attempt 2 and 3 of the same start).
    inc = one(service, "bot-mqtt-unreachable", bot=mqtt, states=("gave-up",))
    assert inc.attempts == 1, inc.detail
    assert "Starting the broker cannot help" in inc.detail, inc.detail
    assert [a for a in audit(service, inc) if a[0] == "action"] == [("action", "broker_down", False)]
    # Below the threshold nothing is reported: the first tick error alone made no incident.
    assert len(incidents(service, "bot-tick-errors", bot=tick)) == 1


def test_live_keys_missing_provisioned_when_placed_else_the_exact_call(make_stack, agent, tmp_path):
    stack = make_stack()
    keys = tmp_path / "keys"
    (keys / "acct_k").mkdir(parents=True)
    (keys / "acct_k" / "binance.json").write_text(json.dumps({"binance_api_key": "k-8f3a9c1e77",
                                                               "binance_api_secret": "s-2b6d0e4f19"}))
    service = agent(stack, credentials_dir=keys)
    (stack.bots / "scripts" / "rb_live.py").write_text("markets = {'binance': {'BTC-USDT'}}\n")
    for account in ("acct_k", "acct_n"):
        profile(stack, account, script="rb_live", config="cfg_live.yml")
    placed = deploy(service, instance_name=name(stack, "rb_k"), credentials_profile="acct_k",
                    script_config="cfg_live.yml")["unique_instance_name"]
    missing = deploy(service, instance_name=name(stack, "rb_n"), credentials_profile="acct_n",
                     script_config="cfg_live.yml")["unique_instance_name"]
    inc = one(service, "bot-live-keys-missing", bot=placed, states=("resolved", "gave-up", "failed"))
    assert inc.state == IncidentState.RESOLVED, inc.detail
    assert audit(service, inc) == [("action", "provision_credentials", True), ("retry", "retry_deploy", True)]
    assert stack.http("GET", "/accounts/acct_k/credentials").json() == ["binance"]
    bots = [c["Names"][0].lstrip("/")
            for c in stack.client.api.containers(filters={"name": name(stack, "rb_k")})]
    assert len(bots) == 1 and bots[0] != placed
    inc = one(service, "bot-live-keys-missing", bot=missing, states=("resolved", "gave-up", "failed"))
    assert inc.state == IncidentState.GAVE_UP and inc.attempts == 1, inc.detail  # no point in trying again
    assert ("POST /accounts/add-credential/acct_n/binance and a JSON object of binance_api_key,"
            " binance_api_secret") in inc.detail
    trail = json.dumps(service.store.incidents.audit_trail(inc.id)) + json.dumps(
        [service.store.incidents.audit_trail(i.id) for i in service.store.incidents.recent(50)])
    assert "k-8f3a9c1e77" not in trail and "s-2b6d0e4f19" not in trail


def test_a_bot_that_keeps_dying_after_the_redeploy_gives_up_with_its_reason(make_stack, agent, tmp_path):
    stack = make_stack()
    rules = tmp_path / "rules"
    rules.mkdir()
    text = (REPO / "rules" / "bot-password-file-missing.yml").read_text()
    # The operator's own copy of the rule: quicker attempts (the shipped backoff is 30 s, doubled).
    (rules / "bot-password-file-missing.yml").write_text(
        text.replace("max_attempts: 3", "max_attempts: 2").replace("backoff: 30", "backoff: 1"))
    service = agent(stack, rules_dir=rules)
    # add-account copies master_account's .password_verification, made with another password: the
    # repaired profile's bot dies again, of a wrong password.
    (stack.bots / "credentials" / "master_account" / ".password_verification").write_text(_sha("old-one"))
    profile(stack, "acct_r", config="cfg_r.yml")
    (stack.bots / "credentials" / "acct_r" / ".password_verification").unlink()
    bot = name(stack, "rb_r")
    deploy(service, instance_name=bot, credentials_profile="acct_r", script_config="cfg_r.yml")
    inc = one(service, "bot-password-file-missing", bot=bot, states=("resolved", "gave-up"), timeout=120)
    assert inc.state == IncidentState.GAVE_UP and inc.attempts == 2, inc.detail
    assert "exited by itself with code 0" in inc.detail and "bot-password-invalid" in inc.detail
    assert "(after 2 attempts)" in inc.detail
    retries = [a for a in service.store.incidents.audit_trail(inc.id) if a["name"] == "retry_deploy"]
    assert [a["ok"] for a in retries] == [False, False]
    # Each redeployed bot died; none was removed; no third one.
    made = [c for c in stack.client.api.containers(all=True, filters={"name": bot})]
    assert len(made) == 3 and all(c["State"] == "exited" for c in made), made
    # The bots' own deaths are told once each (wrong password), not as new repairs.
    assert not [i for i in incidents(service, "bot-password-file-missing") if i.id != inc.id]


def test_the_seed_incidents_retry_is_verified_by_the_settle_rule(make_stack, agent):
    """The deploy retried after the missing profile is added: a bot that dies within the settle
    time (every new profile gets a .password_verification of another password) is no fix."""
    stack = make_stack(real_names=True)
    (stack.bots / "credentials" / "master_account" / ".password_verification").write_text(_sha("old-one"))
    service = agent(stack, containers=["hummingbot-api"], bots="sharp-bot*")
    with httpx.Client(base_url=f"http://{service.settings.recorder_addr}", auth=ADMIN, timeout=60) as c:
        resp = c.post("/bot-orchestration/deploy-v2-script",
                      json={"instance_name": "sharp-bot", "credentials_profile": "client_sharp"})
    assert resp.status_code == 500
    inc = one(service, "credentials-profile-missing", states=("resolved", "failed", "gave-up", "waiting"))
    assert inc.state == IncidentState.FAILED, inc.detail  # tried again later, up to its limit
    assert inc.detail.startswith("sharp-bot-") and "exited by itself with code 0 after" in inc.detail
    assert "bot-password-invalid" in inc.detail
    retry = next(a for a in service.store.incidents.audit_trail(inc.id) if a["name"] == "retry_deploy")
    assert retry["ok"] is False and retry["params"]["route"] == "deploy-v2-script"


def test_a_bot_that_died_while_the_agent_was_down_is_told_after_its_restart(make_stack, agent, receiver):
    """The engine's life events and the log files have checkpoints: what happened meanwhile (within
    the catch-up window) is told once the agent is back."""
    stack = make_stack()
    service = agent(stack)
    wait_until(lambda: service.store.checkpoints().get("engine-events", ""), 30,
               "the life events' checkpoint")
    agent.stop(service)
    profile(stack, "acct_w", config="cfg_w.yml")
    (stack.bots / "credentials" / "acct_w" / ".password_verification").write_text(_sha("not-a"))
    made = stack.deploy(instance_name=name(stack, "rb_w"), credentials_profile="acct_w",
                        script_config="cfg_w.yml", headless=True).json()["unique_instance_name"]
    assert stack.bot(made).wait(timeout=60)["StatusCode"] == 0  # it died with nobody watching
    service = agent(stack)
    inc = one(service, "bot-password-invalid", bot=made)
    assert inc.captures["fate"].startswith("exited by itself with code 0 after")
    wait_until(lambda: any(made in m for m in receiver.messages()), 30, "its message")
    assert len([m for m in receiver.messages() if made in m]) == 1
