"""What "fixed" rests on, without an engine: which bot lines count against a fix (only what
the bot wrote after the check began, each record once, its own failures and not its
surroundings'), how an attempt that needs a person at once is told, and observe mode for a
rule that only tells."""

from __future__ import annotations

import os
import time

import httpx

from agent.actions.base import ActionContext, NeedsHuman
from agent.actions.bots import BrokerDownParams, broker_down
from agent.actions.hummingbot import CredentialsParams, provision_credentials
from agent.events import BOT, CONSOLE, LOG, Origin
from agent.ingest.files import LogFiles
from agent.ingest.replay import replay_lines
from agent.ingest.source import Lines
from agent.match.loader import load_rules
from agent.match.matcher import Matcher
from agent.records import IncidentState
from agent.remedy.engine import Remedy
from agent.remedy.fate import Fate
from agent.state import State
from tests.stack import REPO

RULES = {r.id: r for r in load_rules(REPO / "rules").rules}
BOT_NAME = "rb_a-20261129-072744"


def stamp(at: float) -> str:
    """`docker logs -t`'s time of a console line written at `at`."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1e9):09d}Z"


def bot_results(lines: list[str], channel: str) -> list:
    matcher = Matcher(list(RULES.values()))
    origin = Origin(BOT_NAME, channel, BOT)
    return [r for e in replay_lines(lines, BOT_NAME, origin=origin) if (r := matcher.match(e)) is not None]


def fate() -> Fate:
    return Fate(lambda: list(RULES.values()), lambda _res: None)


def test_a_condition_of_the_surroundings_is_not_the_bots_failure():
    """The exchange out of reach (its own incident) is told beside the verdict, not as it; and a
    line below its rule's threshold is no failure yet."""
    watch = fate()
    now = time.time()
    lines = [f"{stamp(now + n)} 07:36:4{n} - script_strategy_base - kucoin is not ready. Please wait..."
             for n in range(3)]
    for res in bot_results(lines, CONSOLE):
        watch.matched(res)
    seen = watch.matches_since(BOT_NAME, now - 1)
    assert [m.rule for m in seen] == ["exchange-unreachable"] and seen[0].condition  # the third line only


STRATEGY = "Failed to start strategy rb_no_such_script: Unknown strategy: rb_no_such_script"


def test_a_line_counts_from_when_it_was_written_not_when_it_was_read():
    """A line written before a check began is not the check's, however late it is read."""
    watch = fate()
    written = time.time() - 20
    for res in bot_results([f"{stamp(written)} 07:31:32 - trading_core - {STRATEGY}"], CONSOLE):
        watch.matched(res)
    assert watch.matches_since(BOT_NAME, written - 1, "bot-strategy-failed")
    assert not watch.matches_since(BOT_NAME, written + 1, "bot-strategy-failed")


def test_one_record_on_the_console_and_in_the_log_file_is_one_match(tmp_path):
    """A real bot writes each record to its console and to logs/logs_*.log (real capture d1)."""
    watch = fate()
    now = time.time()
    console = f"{stamp(now)} {time.strftime('%H:%M:%S', time.gmtime(now))} - trading_core - {STRATEGY}"
    logfile = (f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(now))},{int(now % 1 * 1000):03d} - 11 -"
               f" hummingbot.core.trading_core - ERROR - {STRATEGY}")
    for res in bot_results([console], CONSOLE) + file_results(tmp_path, [logfile]):
        watch.matched(res)
    assert len(watch.matches_since(BOT_NAME, now - 5)) == 1


def test_a_threshold_counts_a_record_on_two_channels_once():
    """bot-mqtt-unreachable wants 3 disconnects within 30 s: two, each on the console and in the
    log file, are two."""
    matcher = Matcher(list(RULES.values()))
    start = time.time() - 20
    results = []
    for n in range(3):
        at = start + 5 * n
        clock = time.strftime("%H:%M:%S", time.gmtime(at))
        message = "MQTT bridge disconnected: [Errno 111] Connection refused. Reconnecting in 5.0s."
        for channel, line in ((CONSOLE, f"{clock} - hummingbot_application - {message}"),
                              (LOG, f"{time.strftime('%Y-%m-%d', time.gmtime(at))} {clock},000 - 7 -"
                                    f" hummingbot.client.hummingbot_application - ERROR - {message}")):
            origin = Origin(BOT_NAME, channel, BOT, file="logs_cfg.log" if channel == LOG else "")
            (event,) = replay_lines([f"{stamp(at + 0.3 * (channel == LOG))} {line}"], BOT_NAME, origin=origin)
            results.append(matcher.match(event))
    assert [r.rule.id for r in results] == ["bot-mqtt-unreachable"] * 6
    assert [r.below_threshold for r in results] == [True, True, True, True, False, False]


def test_a_tick_error_is_explained_by_the_clocks_traceback_not_the_start_ups():
    """Real bot (current-e2): its log file holds the rate source's DNS traceback from its start,
    then the clock's ZeroDivisionError each tick. The console's tick error takes the latter."""
    real = REPO / "tests" / "real_logs" / "bots"
    logfile = (real / "current-e2-hostlogs-logs_rb_cfg_e2.log").read_text().splitlines()
    console = (real / "current-e2-docker-stdout.log").read_text().splitlines()
    matcher = Matcher(list(RULES.values()))
    origin = Origin(BOT_NAME, LOG, BOT, file="logs_rb_cfg_e2.log")
    first_tick = next(i for i, x in enumerate(logfile) if "hummingbot.core.clock" in x)
    at = 0.0
    stamped = []
    for line in logfile:  # each line with its record's time, as the follower reads it
        if line[:4].isdigit():
            at = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) - time.timezone
        stamped.append(f"{stamp(at)} {line}")
    for event in replay_lines(stamped[:first_tick], BOT_NAME, origin=origin):
        matcher.match(event)
    tick = next(x for x in console if "Unexpected error running clock tick" in x)
    (event,) = replay_lines([tick], BOT_NAME, origin=Origin(BOT_NAME, CONSOLE, BOT))
    res = matcher.match(event)
    assert res.rule.id == "bot-tick-errors" and "error" not in res.captures  # not the DNS failure
    for event in replay_lines(stamped[first_tick:first_tick + 12], BOT_NAME, origin=origin):
        matcher.match(event)
    (event,) = replay_lines([tick], BOT_NAME, origin=Origin(BOT_NAME, CONSOLE, BOT))
    assert matcher.match(event).captures["error"] == "ZeroDivisionError: rb_raise_tick: boom in on_tick"


def file_results(folder, lines: list[str], mtime: float | None = None) -> list:
    """The lines as the log-file follower reads them from a bot's logs/ folder."""
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)
    path = logs / "logs_cfg.log"
    path.write_text("".join(x + "\n" for x in lines))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    got: list = []

    class Sink:
        def put(self, batch) -> None:
            if isinstance(batch, Lines):
                got.extend(batch.items)

    files = LogFiles(Sink())
    files.watch(BOT_NAME, logs, fresh=False, stack="default")
    files.stop(time.monotonic())
    matcher = Matcher(list(RULES.values()))
    origin = Origin(BOT_NAME, LOG, BOT, file="logs_cfg.log")
    stamped = [f"{stamp(ts / 1e9)} {text}" for _, ts, text in got]
    return [r for e in replay_lines(stamped, BOT_NAME, origin=origin) if (r := matcher.match(e)) is not None]


def test_a_log_file_line_keeps_the_time_the_bot_wrote_it_in_its_own_zone(tmp_path):
    """Records of a bot in UTC+2, read a minute late: their time is their own, in UTC."""
    written = time.time() - 60
    local = time.gmtime(written + 7200)
    line = (f"{time.strftime('%Y-%m-%d %H:%M:%S', local)},000 - 7 - hummingbot.client.hummingbot_application"
            " - ERROR - MQTT bridge disconnected: [Errno 111] Connection refused. Reconnecting in 5.0s.")
    (res,) = file_results(tmp_path, [line], mtime=written)
    assert abs(res.event.ts / 1e9 - int(written)) < 1.0


class FakeAPI:
    """hummingbot-api's answers to the calls an action makes (no engine is involved)."""

    def __init__(self, answers: dict[str, httpx.Response]) -> None:
        self.answers = answers

    def request(self, method: str, path: str, **_kw) -> httpx.Response:
        return self.answers[path.split("?")[0]]


def test_broker_down_says_at_once_when_the_broker_runs(tmp_path):
    conf = tmp_path / "instances" / BOT_NAME / "conf"
    conf.mkdir(parents=True)
    (conf / "conf_client.yml").write_text("mqtt_bridge:\n  mqtt_host: localhost\n  mqtt_port: 1884\n")
    api = FakeAPI({"/bot-orchestration/mqtt": httpx.Response(200, json={"status": "success", "data": {
        "mqtt_connected": True, "broker_host": "127.0.0.1", "broker_port": 1883}})})
    ctx = ActionContext(docker=None, api=api, bots_dir=tmp_path)
    try:
        broker_down(BrokerDownParams(name=BOT_NAME), ctx)
    except NeedsHuman as exc:
        said = str(exc)
    assert "connected to it at 127.0.0.1:1883" in said and "conf_client.yml says localhost:1884" in said
    api.answers["/bot-orchestration/mqtt"] = httpx.Response(200, json={"data": {"mqtt_connected": False}})
    assert "broker is down" in broker_down(BrokerDownParams(name=BOT_NAME), ctx)


def test_keys_refused_with_a_reason_are_not_sent_again(tmp_path):
    keys = tmp_path / "keys" / "acct"
    keys.mkdir(parents=True, mode=0o700)
    (keys / "binance.json").write_text('{"binance_api_key": "k-1", "binance_api_secret": "s-2"}')
    (keys / "binance.json").chmod(0o600)
    (tmp_path / "keys").chmod(0o700)
    api = FakeAPI({"/accounts/add-credential/acct/binance": httpx.Response(400, json={
        "detail": "Cannot connect to host api.binance.com:443 ssl:default [Name or service not known]"})})
    ctx = ActionContext(docker=None, api=api, credentials_dir=tmp_path / "keys")
    try:
        provision_credentials(CredentialsParams(profile="acct"), ctx)
    except NeedsHuman as exc:
        said = str(exc)
    assert "answered 400: Cannot connect to host api.binance.com:443" in said
    assert "k-1" not in said and "s-2" not in said


BROKER_RULE = """\
id: test-broker
description: a bot that cannot reach the broker (a test copy)
severity: error
where: {roles: [bot], channels: [console]}
match:
  - kind: line
    message: "^MQTT bridge disconnected: (?P<error>.+)$"
captures:
  error: {type: text, max_length: 200}
incident: {key: broker}
actions:
  - action: broker_down
    params: {name: "{container}"}
notify: {title: broker, text: the bot cannot reach the broker}
"""


def test_an_attempt_that_needs_a_person_at_once_is_one_message(tmp_path):
    """No "Detected, fixing" a few milliseconds before "Gave up": one "Needs you"."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "test-broker.yml").write_text(BROKER_RULE)
    rules = {r.id: r for r in load_rules(tmp_path / "rules").rules}
    api = FakeAPI({"/bot-orchestration/mqtt": httpx.Response(200, json={"data": {"mqtt_connected": True}})})
    told: list[str] = []
    remedy = Remedy(State(tmp_path / "s.db"), lambda: rules, lambda: ActionContext(docker=None, api=api),
                    notify=lambda _inc, step, _text: told.append(step))
    matcher = Matcher(list(rules.values()))
    (event,) = replay_lines([f"{stamp(time.time())} 07:38:33 - hummingbot_application - MQTT bridge"
                             " disconnected: [Errno 111] Connection refused."], BOT_NAME,
                            origin=Origin(BOT_NAME, CONSOLE, BOT))
    inc = remedy.submit(matcher.match(event))
    remedy.attempt(remedy.store.incidents.get(inc.id))
    time.sleep(1.5)  # past the hold: nothing more comes
    assert remedy.store.incidents.get(inc.id).state == IncidentState.GAVE_UP
    assert told == ["detected", "needs-you"]


def test_observe_mode_tells_a_rule_that_only_tells_as_it_is(tmp_path):
    told: list[tuple[str, str]] = []
    remedy = Remedy(State(tmp_path / "o.db"), lambda: RULES, lambda: None, mode="observe", stale_after=1e10,
                    notify=lambda _inc, step, text: told.append((step, text)))
    lines = (REPO / "rules" / "insecure-default-credentials.samples.log").read_text().splitlines()
    (res,) = [r for e in replay_lines([x for x in lines if "CRITICAL" in x], "hummingbot-api")
              if (r := Matcher(list(RULES.values())).match(e)) is not None]
    inc = remedy.submit(res)
    assert inc.state == IncidentState.RESOLVED
    assert not any("would have" in text for _, text in told)


def test_hummingbot_api_that_does_not_answer_is_not_called_a_broker_down():
    """hummingbot-api stopped during a bot's settle time: it did not answer, which says nothing
    of its broker."""
    from agent.actions.alive import _heard
    from agent.hummingbot_api import HummingbotAPI
    from tests.stack import free_port

    ctx = ActionContext(docker=None, api=HummingbotAPI(f"http://127.0.0.1:{free_port()}", "admin", "admin",
                                                       timeout=2))
    said = _heard(ctx, "bot-1", wait=0.0)
    assert said == "; hummingbot-api did not answer (ConnectError), so its heartbeat was not checked"
    api = FakeAPI({"/bot-orchestration/mqtt": httpx.Response(200, json={"data": {"mqtt_connected": False}})})
    assert "broker is not connected" in _heard(ActionContext(docker=None, api=api), "bot-1", wait=0.0)
