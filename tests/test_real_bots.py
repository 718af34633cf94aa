"""The agent against the REAL programs: the real hummingbot-api (both generations, with its real
broker and database) deploying REAL Hummingbot bots (tests/realstack), the agent in this process
following them and sending its messages to a local receiver.

This machine has no internet: every real bot that runs a strategy sees its exchanges and rate
sources out of reach within seconds, as a user's bot does when an exchange is slow or blocked.
That is its surroundings' condition, never its own failure: a repaired bot that runs is fixed.
Each scenario is a deploy through the recorder with the files that cause it, as captured in the
shared real logs (bots/README)."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from agent.records import IncidentState
from agent.service import Service
from agent.settings import Settings
from tests.realstack.images import BOT_IMAGE, ensure_real_images
from tests.realstack.scripts import RAISE_TICK
from tests.realstack.stack import RealStack
from tests.receiver import Receiver
from tests.stack import ADMIN, free_port, prefixed_rules, wait_until

pytestmark = pytest.mark.docker
SETTLE = 15.0  # a real bot is heard over MQTT after 10-20 s: the heartbeat check waits beyond it
DONE = ("resolved", "gave-up", "waiting", "failed", "refused", "observed", "stale")
SCRIPT = "v2_with_controllers.py"  # upstream's script: starts, runs, and asks the rate sources for prices


@pytest.fixture(scope="module")
def real_current(docker_client):
    """One real current-generation stack for this module's bot scenarios (each test's bots have
    names of their own)."""
    ensure_real_images(docker_client, log=lambda _msg: None)
    with RealStack(docker_client, "current") as stack:
        yield stack


def agent_settings(stack: RealStack, tag: str, folder: Path, notify_url: str, **extra) -> Settings:
    """An agent following this stack's hummingbot-api and the bots whose names start with `tag`,
    with the bots folder mounted read-only as in compose."""
    prefix = stack.api_name.removesuffix("hummingbot-api")  # the shipped rules, watching this name
    return Settings(**{
        "containers": [stack.api_name], "rules_dir": prefixed_rules(prefix, folder / "rules"),
        "state_db": folder / "state.db", "hummingbot_url": stack.url,
        "catchup_window": 120, "recorder_addr": f"127.0.0.1:{free_port()}", "bots": f"{tag}*",
        "bots_dir": stack.bots, "bot_settle": SETTLE, "notify_urls": notify_url,
        "allowed_images": [BOT_IMAGE],
        "preflight": "off", **extra})  # fixes after a failure (see test_preflight_recorder.py)


@pytest.fixture
def agent(tmp_path, receiver, start_service):
    """An agent for the bots of this test (their names start with `tag`)."""
    def start(stack: RealStack, tag: str, **extra) -> Service:
        return start_service(agent_settings(stack, tag, tmp_path, receiver.url, **extra))

    return start


def new_tag() -> str:
    return f"r{uuid.uuid4().hex[:5]}_"


def deploy(service: Service, **body) -> httpx.Response:
    """A deploy through the recorder, as a client pointed at it sends it."""
    with httpx.Client(base_url=f"http://{service.settings.recorder_addr}", auth=ADMIN, timeout=60) as c:
        return c.post("/bot-orchestration/deploy-v2-script",
                      json={"headless": True, "image": BOT_IMAGE, **body})


def deployed(service: Service, **body) -> str:
    resp = deploy(service, **body)
    assert resp.status_code == 200 and resp.json()["success"], resp.text
    return resp.json()["unique_instance_name"]


def incidents(service: Service, rule: str, *, bot: str | None = None, states=DONE) -> list:
    return [i for i in service.store.incidents.recent(200)
            if i.rule == rule and i.state in states and (bot is None or i.container.startswith(bot))]


def one(service: Service, rule: str, *, bot: str | None = None, states=DONE, timeout: float = 150):
    return wait_until(lambda: (incidents(service, rule, bot=bot, states=states) or [None])[0], timeout,
                      f"a {rule} incident{' of ' + bot if bot else ''} in {states}", interval=0.5)


def trail(service: Service, inc) -> list[tuple[str, str, bool | None]]:
    return [(a["kind"], a["name"], a["ok"]) for a in service.store.incidents.audit_trail(inc.id)
            if a["kind"] in ("action", "verify", "retry")]


def result_of(service: Service, inc, name: str) -> str:
    return next(a["result"] for a in service.store.incidents.audit_trail(inc.id) if a["name"] == name)


def script_config(stack: RealStack, name: str) -> str:
    """bots/conf/scripts/<name>.yml for upstream's v2_with_controllers script, as a user writes it."""
    assert stack.write_script_config(name, SCRIPT).status_code in (200, 201)
    return f"{name}.yml"


def said(receiver, words: str) -> list[dict]:
    return [m for m in list(receiver.accepted) if words in m.get("title", "") + m.get("message", "")]


def running(stack: RealStack, prefix: str) -> list[str]:
    names = []
    for c in stack.bot_containers():
        c.reload()
        if c.name.startswith(prefix) and c.status == "running":
            names.append(c.name)
    return names


# Incidents of the test bed's surroundings, not of the failure under test: no exchange is reachable,
# hummingbot-api runs with its default login, and the stack has no gateway.
SURROUNDINGS = ("exchange-unreachable", "insecure-default-credentials", "gateway-not-configured")


# -- the seed incident, both generations ----------------------------------------------------------
@pytest.mark.parametrize("generation", ["current", "legacy"])
def test_real_seed_deploy_is_fixed_and_the_bot_lives_beside_unreachable_exchanges(
        docker_client, agent, receiver, generation):
    """The seed incident as a user meets it: a deploy with a script config naming a profile that
    does not exist. The agent adds the profile, re-sends the deploy, and the real bot, which runs
    but cannot reach any exchange from here, is fixed: the exchanges are its surroundings'."""
    ensure_real_images(docker_client, log=lambda _msg: None)
    with RealStack(docker_client, generation) as stack:
        tag = new_tag()
        service = agent(stack, tag)
        config = script_config(stack, f"{tag}cfg")
        profile = f"{tag}client_sharp"
        resp = deploy(service, instance_name=f"{tag}sharp", credentials_profile=profile, script_config=config)
        assert resp.status_code == 500
        inc = one(service, "credentials-profile-missing", states=("resolved", "gave-up"), timeout=180)
        assert inc.state == IncidentState.RESOLVED, inc.detail
        assert trail(service, inc) == [("action", "ensure_account", True),
                                       ("action", "provision_credentials", True),
                                       ("retry", "retry_deploy", True)]
        retried = result_of(service, inc, "retry_deploy")
        assert "with no failure of its own" in retried and "hears its heartbeat" in retried, retried
        (name,) = running(stack, tag)
        assert stack.status()[name]["recently_active"] is True
        wait_until(lambda: said(receiver, "Fixed:"), 30, "the Fixed message")
        # hummingbot-api's own 500, seen by the recorder, is the incident's failure: no unknown error.
        time.sleep(6)
        unknown = [u.summary for u in service.store.unknown.most_frequent()]
        assert not [s for s in unknown if "credentials/" in s or "deploy-v2-script" in s], unknown


def test_real_seed_deploy_is_prevented_and_answers_success_the_first_time(real_current, agent, receiver):
    """Preflight on the real current hummingbot-api: the seed deploy's missing profile is added
    before the deploy is forwarded, so hummingbot-api never fails it: success at once, the real
    bot runs, no failure line in hummingbot-api's log, the incident is prevented."""
    stack, tag = real_current, new_tag()
    service = agent(stack, tag, preflight="fix")
    config = script_config(stack, f"{tag}cfg")
    profile = f"{tag}client_sharp"
    started = time.monotonic()
    resp = deploy(service, instance_name=f"{tag}sharp", credentials_profile=profile, script_config=config)
    took = time.monotonic() - started
    assert resp.status_code == 200 and resp.json()["success"] is True, resp.text
    (inc,) = incidents(service, "credentials-profile-missing", states=("prevented", "warned"))
    assert inc.state == IncidentState.PREVENTED, inc.detail
    assert inc.detail.startswith(f"Prevented: the deploy of bot {tag}sharp would have failed: credentials"
                                 f" profile {profile} did not exist; added profile {profile}"), inc.detail
    wait_until(lambda: running(stack, tag) or None, 60, "the bot running")
    time.sleep(SETTLE)  # a settle time later it still runs and is heard
    (name,) = running(stack, tag)
    wait_until(lambda: stack.status().get(name, {}).get("recently_active") is True or None, 30,
               "the bot heard over MQTT")
    marks = ("Error deploying", "Traceback", "No such file or directory", "FileNotFoundError")
    assert [x for x in stack.lines("all") if profile in x and any(m in x for m in marks)] == []
    assert not incidents(service, "credentials-profile-missing", states=DONE)
    wait_until(lambda: said(receiver, "Prevented:"), 30, "the Prevented message")
    print(f"\nreal current: prevented deploy answered in {took * 1000:.0f} ms")


# -- bots that die at start -----------------------------------------------------------------------
def damage_profile(stack: RealStack, profile: str, how: str) -> None:
    pv = stack.bots / "credentials" / profile / ".password_verification"
    if how == "missing":
        pv.unlink()
    elif how == "damaged":
        pv.write_text("zz-not-hex!!")
    elif how == "other-password":  # made with hummingbot's own code, as a profile of another password
        subprocess.run(["docker", "run", "--rm", "--network", "none", "-w", "/home/hummingbot", "-v",
                        f"{pv.parent}:/home/hummingbot/conf", "--entrypoint", "/opt/venv/bin/python",
                        BOT_IMAGE,
                        "-c", "from hummingbot.client.config.config_crypt import ETHKeyFileSecretManger,"
                              " store_password_verification;"
                              " store_password_verification(ETHKeyFileSecretManger('not-admin'))"],
                       check=True, capture_output=True, timeout=120)


def test_real_bots_that_die_at_start_are_told_and_repaired_where_safe(real_current, agent, receiver):
    """Wrong password (told, nothing changed), .password_verification missing or damaged
    (repaired through add-account, redeployed, the new bot lives), a script that does not exist
    (told with its name): four real bots deployed at once, each its own incident."""
    stack = real_current
    tag = new_tag()
    # Four real bots start at once: on a loaded machine one took more than the default 10 s from
    # its failure line to its exit, and was told as still running. What is checked here is how
    # each death is told, so each gets the time to die.
    service = agent(stack, tag, bot_exit_wait=30)
    config = script_config(stack, f"{tag}cfg")
    missing_script = f"{tag}nosuch"
    assert stack.write_script_config(missing_script, f"{tag}no_such_script.py").status_code in (200, 201)
    cases = {"password": "other-password", "missing": "missing", "damaged": "damaged", "script": None}
    names = {}
    for case, how in cases.items():
        profile = f"{tag}acct_{case}"
        assert stack.add_account(profile).status_code == 201
        if how:
            damage_profile(stack, profile, how)
        names[case] = deployed(service, instance_name=f"{tag}{case}", credentials_profile=profile,
                               script_config=f"{missing_script}.yml" if case == "script" else config)
    wrong = one(service, "bot-password-invalid", bot=names["password"])
    assert wrong.captures["fate"].startswith("exited by itself with code 0"), wrong.captures
    for case, problem in (("missing", "does not exist"), ("damaged", "is damaged")):
        inc = one(service, "bot-password-file-missing", bot=names[case], states=("resolved", "gave-up"),
                  timeout=180)
        assert inc.state == IncidentState.RESOLVED, inc.detail
        assert inc.captures["problem"].startswith(problem)
        assert inc.captures["fate"].startswith("exited by itself with code 1")
        assert trail(service, inc)[-1] == ("retry", "retry_deploy", True)
        assert len(running(stack, f"{tag}{case}")) == 1  # the redeployed bot, under a new name
    dead = one(service, "bot-strategy-failed", bot=names["script"])
    assert dead.captures.get("script") == f"{tag}no_such_script", dead.captures
    wait_until(lambda: said(receiver, "another password")
               and said(receiver, "no usable .password_verification"), 30, "the messages")
    # Nothing else was opened for these bots: no bot-died beside the rule that knew why.
    assert not [i for i in service.store.incidents.recent(200) if i.rule == "bot-died"]


# -- bots that keep running, failing ----------------------------------------------------------------
def test_real_running_bots_failing_are_told_once_with_the_right_reason(real_current, agent, receiver):
    """A script that raises on every tick: told with the clock's own exception (not the DNS
    failure of its start). A bot with a wrong mqtt_port: the disconnect counted once though the bot
    writes it to its console and its log file, and, since the broker runs, a person is told at once
    with both addresses instead of three attempts to start a running broker."""
    stack = real_current
    tag = new_tag()
    service = agent(stack, tag)
    (stack.bots / "scripts" / f"{tag}raise_tick.py").write_text(RAISE_TICK)  # as captured (e2)
    assert stack.write_script_config(f"{tag}tick", f"{tag}raise_tick.py").status_code in (200, 201)
    assert stack.add_account(f"{tag}acct_tick").status_code == 201
    assert stack.add_account(f"{tag}acct_mqtt").status_code == 201
    conf = stack.bots / "credentials" / f"{tag}acct_mqtt" / "conf_client.yml"
    wrong_port = free_port()
    conf.write_text(conf.read_text().replace(f"mqtt_port: {stack.broker_port}", f"mqtt_port: {wrong_port}"))
    tick = deployed(service, instance_name=f"{tag}tick", credentials_profile=f"{tag}acct_tick",
                    script_config=f"{tag}tick.yml")
    started = time.time()
    mqtt = deployed(service, instance_name=f"{tag}mqtt", credentials_profile=f"{tag}acct_mqtt",
                    script_config=script_config(stack, f"{tag}cfg"))
    inc = one(service, "bot-tick-errors", bot=tick)
    assert inc.captures.get("error") == "ZeroDivisionError: raise_tick: boom in on_tick", inc.captures
    inc = one(service, "bot-mqtt-unreachable", bot=mqtt, states=("gave-up",), timeout=180)
    assert inc.attempts == 1, inc.detail
    assert f"conf_client.yml says 127.0.0.1:{wrong_port}" in inc.detail, inc.detail
    assert f"connected to it at 127.0.0.1:{stack.broker_port}" in inc.detail, inc.detail
    assert trail(service, inc) == [("action", "broker_down", False)]
    # Three disconnects, 5 s apart, each on two channels: opened at the third, not the second.
    assert inc.created - started >= 9.0, inc.created - started
    wait_until(lambda: said(receiver, "Needs you:"), 30, "the message")
    assert running(stack, tick) and running(stack, mqtt)


def test_real_a_check_counts_only_lines_written_after_it_began(real_current, agent):
    """A bot failing every 5 s on its console and in its log file (a wrong mqtt_port): a quiet
    check that starts between two failures fails on the next one, never on the log-file copy of
    one written before it began (the poll reads that copy up to a second late)."""
    from agent.actions.base import ActionError
    from agent.actions.bots import QuietParams, bot_quiet

    stack = real_current
    tag = new_tag()
    service = agent(stack, tag)
    assert stack.add_account(f"{tag}acct").status_code == 201
    conf = stack.bots / "credentials" / f"{tag}acct" / "conf_client.yml"
    conf.write_text(conf.read_text().replace(f"mqtt_port: {stack.broker_port}", f"mqtt_port: {free_port()}"))
    name = deployed(service, instance_name=f"{tag}quiet", credentials_profile=f"{tag}acct")
    ctx = service.main.context()
    rx = re.compile(r"(\d\d:\d\d:\d\d) - hummingbot_application - MQTT bridge disconnected")
    checks = []
    for _ in range(3):
        # Right after a disconnect reached the console: its log-file copy is still to be read.
        wait_until(lambda: ctx.watch.matches_since(name, time.time() - 0.3, "bot-mqtt-unreachable"), 60,
                   "a disconnect", interval=0.05)
        began = time.time()
        with pytest.raises(ActionError) as failed:
            bot_quiet(QuietParams(name=name, rule="bot-mqtt-unreachable", seconds=15), ctx)
        written = rx.search(str(failed.value))
        assert written, str(failed.value)
        checks.append((began, written[1], time.time() - began))
    for began, clock, took in checks:
        assert clock >= time.strftime("%H:%M:%S", time.gmtime(int(began))), (clock, began)
        assert took >= 2.0, took  # the next disconnect, about 5 s later; not the copy of the last one


# -- what is not a failure --------------------------------------------------------------------------
HEALTHY_TEST = "test_real_a_stopped_bot_and_a_healthy_bot_make_no_incident"
QUIET_FOR = 120.0  # the healthy bot's two minutes, and the stopped one's, after the stop


class StopAndHealthy:
    """The scenario of HEALTHY_TEST, begun with the module: two real bots deployed through the
    agent's recorder, the first stopped once it is heard. Its two minutes pass while the tests
    before HEALTHY_TEST run, instead of after them (about 2 min of the module's 6). Those tests
    give their bots names of their own and none makes hummingbot-api itself fail (the seed tests
    run on real stacks of their own; the deploy that fails with a 500, the keys test's, comes after
    HEALTHY_TEST, which stops this agent): this agent, which follows only its own bots and this
    hummingbot-api, sees nothing of theirs (HEALTHY_TEST checks it: on this hummingbot-api, only
    SURROUNDINGS)."""

    def __init__(self, stack: RealStack, folder: Path) -> None:
        self.stack, self.tag = stack, new_tag()
        self.receiver = Receiver().__enter__()
        self.service = Service(agent_settings(
            stack, self.tag, folder, self.receiver.url, hummingbot_password="admin",
            http_addr=f"127.0.0.1:{free_port()}", probe_defaults=False))  # as tests/conftest.py's agent_env
        self.service.start()
        self.stopped = self.healthy = ""
        self.exit_code: int | None = None
        self.stopped_at = 0.0
        self.error: BaseException | None = None
        self.closed = False
        self._thread = threading.Thread(target=self._begin, name="stop-and-healthy", daemon=True)
        self._thread.start()

    def _begin(self) -> None:
        try:
            stack, tag = self.stack, self.tag
            for n in (1, 2):
                assert stack.add_account(f"{tag}acct{n}").status_code == 201
            config = script_config(stack, f"{tag}cfg")
            self.stopped, self.healthy = (
                deployed(self.service, instance_name=f"{tag}{what}", credentials_profile=f"{tag}acct{n}",
                         script_config=config) for n, what in ((1, "stop"), (2, "ok")))
            wait_until(lambda: (stack.status().get(self.stopped) or {}).get("recently_active"), 60,
                       "the bot heard", interval=1)
            bot = next(c for c in stack.bot_containers() if c.name == self.stopped)
            bot.stop()
            bot.reload()
            self.exit_code = bot.attrs["State"]["ExitCode"]
            self.stopped_at = time.monotonic()
        except BaseException as exc:  # told by the test
            self.error = exc

    def stopped_bot(self) -> None:
        """Wait for the stop; raise what went wrong before it."""
        self._thread.join(timeout=300)
        assert not self._thread.is_alive(), "the deploys and the stop took more than 300 s"
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._thread.join(timeout=300)
        self.service.stop()
        self.receiver.__exit__(None, None, None)


@pytest.fixture(scope="module", autouse=True)
def stop_and_healthy(request, tmp_path_factory):
    """StopAndHealthy when HEALTHY_TEST is selected (None otherwise); HEALTHY_TEST closes it."""
    if not any(item.originalname == HEALTHY_TEST for item in request.session.items):
        yield None
        return
    scenario = StopAndHealthy(request.getfixturevalue("real_current"), tmp_path_factory.mktemp("healthy"))
    try:
        yield scenario
    finally:
        scenario.close()


def test_real_a_stopped_bot_and_a_healthy_bot_make_no_incident(real_current, stop_and_healthy):
    """`docker stop` (what hummingbot-api's stop does: bash is PID 1, so 10 s and exit 137) is no
    incident; a healthy bot running its strategy for 2 minutes with every exchange out of reach
    opens nothing of its own (only the exchange's condition, told once)."""
    scenario, stack = stop_and_healthy, real_current
    try:
        scenario.stopped_bot()
        assert scenario.exit_code == 137
        left = scenario.stopped_at + QUIET_FOR - time.monotonic()
        print(f"\n{QUIET_FOR - max(left, 0):.0f} s of the {QUIET_FOR:.0f} s passed beside the tests before")
        time.sleep(max(left, 0))
        service, receiver, tag, healthy = scenario.service, scenario.receiver, scenario.tag, scenario.healthy
        assert running(stack, healthy) == [healthy]
        mine = [i for i in service.store.incidents.recent(200) if i.container.startswith(tag)]
        assert all(i.rule == "exchange-unreachable" for i in mine), [(i.rule, i.container) for i in mine]
        assert not [m for m in receiver.accepted if tag in m.get("title", "") + m.get("message", "")
                    and "Exchange" not in m.get("title", "")]
        # What the tests beside it did on this hummingbot-api made this agent open nothing.
        beside = [(i.rule, i.container) for i in service.store.incidents.recent(200)
                  if i.container == stack.api_name and i.rule not in SURROUNDINGS]
        assert not beside, beside
    finally:
        scenario.close()  # its agent follows this hummingbot-api: not beside the tests that make it fail


def test_real_keys_the_exchange_cannot_check_are_not_sent_again(real_current, agent, receiver, tmp_path):
    """The seed incident with exchange keys the operator placed for the profile: the real
    hummingbot-api checks keys by calling the exchange, which is out of reach here, and refuses
    them (400, "Cannot connect to host ..."). Sending them again cannot help: the incident says so
    at once, with that reason, in its own message (before: three attempts, each re-sending the
    keys, and the reason only in another incident's message). The keys appear nowhere."""
    stack = real_current
    tag = new_tag()
    profile = f"{tag}keyed"
    keys = tmp_path / "keys"
    (keys / profile).mkdir(parents=True, mode=0o700)
    keys.chmod(0o700)
    secret = {"binance_api_key": "kEy-7f3a9c1e77d2", "binance_api_secret": "sEcret-2b6d0e4f19a8"}
    key_file = keys / profile / "binance.json"
    key_file.write_text(json.dumps(secret))
    key_file.chmod(0o600)
    service = agent(stack, tag, credentials_dir=keys)
    resp = deploy(service, instance_name=f"{tag}keyed", credentials_profile=profile)
    assert resp.status_code == 500
    inc = one(service, "credentials-profile-missing", states=("resolved", "gave-up", "failed"), timeout=120)
    assert inc.state == IncidentState.GAVE_UP and inc.attempts == 1, (inc.state, inc.attempts, inc.detail)
    assert "add-credential" in inc.detail and "Cannot connect to host api.binance.com:443" in inc.detail
    assert trail(service, inc) == [("action", "ensure_account", True),
                                   ("action", "provision_credentials", False)]
    (msg,) = wait_until(lambda: [m for m in said(receiver, profile) if "Needs you" in m["title"]], 30,
                        "the message")
    assert "Cannot connect to host api.binance.com:443" in msg["message"]
    time.sleep(3)  # hummingbot-api's own log line of that refusal has come: it is the same failure
    others = [(i.rule, i.captures.get("reason")) for i in service.store.incidents.recent(50) if i.id != inc.id
              and i.rule not in SURROUNDINGS]
    assert not others, others
    everything = json.dumps(list(receiver.accepted)) + json.dumps(service.store.incidents.audit_trail(inc.id))
    assert secret["binance_api_key"] not in everything and secret["binance_api_secret"] not in everything


# -- what anybody who reaches the real hummingbot-api can write -----------------------------------
def test_real_forged_error_lines_and_an_unauthenticated_upload_open_nothing(real_current, agent, receiver):
    """21 requests without the login to `/x%0A<a forged ERROR record>`: the real hummingbot-api
    prints the decoded path on stdout; nothing is counted, nobody is told. A credential upload
    without the login whose body is not UTF-8: the real one answers 400 before its login check;
    the recorder keeps nothing and no incident names the sender's account."""
    stack = real_current
    service = agent(stack, new_tag())
    urgent = "URGENT: exchange keys leaked, rotate now at https://evil.example/rotate"
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S')},000 - root - ERROR - {urgent}"
    with httpx.Client(base_url=stack.url, timeout=30) as c:
        for _ in range(21):
            assert c.get("/x%0A" + quote(line) + "%0A").status_code in (401, 404)
    stack.wait_line("stdout", r"root - ERROR - URGENT: exchange keys leaked")
    raw = b'{"binance_api_key": "\xff\xfe"}'
    with httpx.Client(base_url=f"http://{service.settings.recorder_addr}", timeout=60) as c:
        refused = c.post("/accounts/add-credential/victim_acct/binance", content=raw,
                         headers={"Content-Type": "application/json"})
    assert refused.status_code == 400, refused.text
    time.sleep(6)  # the tracker's ticks, the recorder's write
    service.unknown.flush()
    entries = service.store.unknown.most_frequent()
    assert [e.summary for e in entries if "URGENT" in e.summary] == []
    assert all(e.stream == "stderr" for e in entries), [(e.summary, e.stream) for e in entries]
    assert "evil.example" not in json.dumps(receiver.accepted)
    assert service.store.file.conn().execute(
        "SELECT COUNT(*) FROM deploys WHERE route = 'add-credential'").fetchone()[0] == 0
    assert [i for i in service.store.incidents.recent(50) if "victim_acct" in json.dumps(i.captures)] == []
