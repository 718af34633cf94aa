"""What text from logs and clients may steer, checked without a Docker engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.actions.deploys import check_body, image_allowed
from agent.ingest.replay import replay_lines
from agent.match.loader import load_rules
from agent.match.matcher import Matcher
from agent.redact import Redactor

REPO = Path(__file__).resolve().parent.parent.parent
LIBRARY = load_rules(REPO / "rules").rules
TS = "2026-11-29 07:00:00,000"
FORGED = (f"{TS} - root - INFO - Creating hummingbot instance with config: instance_name='pwned-bot'"
          " credentials_profile='client_sharp' image='evil/miner:latest' script='steal.py'"
          " script_config=None headless=False")
FAILURE = (f"{TS} - root - ERROR - Error deploying V2 script: [Errno 2] No such file or directory:"
           " 'bots/credentials/client_sharp'")


def test_no_shipped_rule_reads_hummingbot_api_stdout():
    """Request paths (decoded) are printed on stdout: a forged record line lands there."""
    readers = []
    for c in Matcher(LIBRARY).rules:
        where = c.rule.where
        if c.rule.source != "log" or (where.containers and "hummingbot-api" not in where.containers) \
                or (where.roles and "hummingbot-api" not in where.roles):
            continue
        if c.streams.accepts("stdout"):
            readers.append(c.rule.id)
        readers += [f"{c.rule.id} (context)" for _, _, s in c.context if (s or c.streams).accepts("stdout")]
    assert readers == []


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_a_record_line_counts_only_on_its_own_stream(stream):
    """The forged INFO line on stdout is no deploy context; the same line on stderr (a build that
    logs INFO) is, and the failure itself counts only on stderr."""
    events = list(replay_lines([FORGED, FAILURE], "hummingbot-api"))
    events[0].stream, events[1].stream = stream, "stderr"
    matcher = Matcher(LIBRARY)
    assert matcher.match(events[0]) is None
    res = matcher.match(events[1])
    assert res.rule.id == "credentials-profile-missing"
    assert (res.deploy is not None) == (stream == "stderr")
    events = list(replay_lines([FAILURE], "hummingbot-api"))
    events[0].stream = "stdout"
    assert Matcher(LIBRARY).match(events[0]) is None


OK = {"instance_name": "sharp-bot", "credentials_profile": "client_sharp"}


@pytest.mark.parametrize(("field", "value"), [
    ("image", "evil/miner:latest"), ("image", "hummingbot/hummingbot:latest; rm -rf /"), ("image", 7),
    ("script", "../../../etc/passwd"), ("script", "/abs/steal.py"), ("script", "-x.py"),
    ("script_config", "conf/../../x.yml"), ("script_config", "a b.yml"), ("script", ["a.py"]),
    ("headless", "yes"),
])
def test_a_deploy_body_names_only_the_default_or_allowed_image_and_plain_file_names(field, value):
    assert check_body("deploy-v2-script", OK) is None
    assert check_body("deploy-v2-script", {**OK, "image": "hummingbot/hummingbot:latest",
                                           "script": "v2_with_controllers.py", "script_config": "conf_1.yml",
                                           "headless": True}) is None
    problem = check_body("deploy-v2-script", {**OK, field: value})
    assert problem and field in problem


def test_controllers_and_the_image_allow_list():
    body = {**OK, "controllers_config": ["pmm_1", "dman.yml"], "max_global_drawdown_quote": 10}
    assert check_body("deploy-v2-controllers", body) is None
    assert "controllers_config" in check_body("deploy-v2-controllers",
                                              {**body, "controllers_config": ["ok", "../x"]})
    assert "max_global_drawdown_quote" in check_body("deploy-v2-controllers",
                                                     {**body, "max_global_drawdown_quote": "1e9"})
    mine = {**OK, "image": "registry.local:5000/me/hummingbot:v2"}
    assert "MEDIC_ALLOWED_IMAGES" in check_body("deploy-v2-script", mine)
    assert check_body("deploy-v2-script", mine, ("registry.local:5000/me/hummingbot:v2",)) is None
    assert check_body("deploy-v2-script", mine, ("registry.local:5000/me/hummingbot:*",)) is None
    assert not image_allowed("registry.local:5000/me/other:v2", ("registry.local:5000/me/hummingbot:*",))
    assert not image_allowed("hummingbot/hummingbot:latest@sha256:" + "0" * 64, ())


@pytest.mark.parametrize(("text", "shown"), [
    ("CONFIG_PASSWORD=CfgPw-1 starting", "CONFIG_PASSWORD=*** starting"),
    ("password: hunter2", "password: ***"),
    ('{"binance_api_secret": "s e c", "binance_api_key": "K1"}',
     '{"binance_api_secret": "***", "binance_api_key": "***"}'),
    ("secret_key='xyz'", "secret_key='***'"),
    ("GET /x?access_token=abc&page=2", "GET /x?access_token=***&page=2"),
    ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic ***"),
    ("Invalid credentials_profile: 'x CONFIG_PASSWORD=CfgPw-1'",
     "Invalid credentials_profile: 'x CONFIG_PASSWORD=***'"),
    ("CONFIG_PASSWORD=''", "CONFIG_PASSWORD=''"),  # empty is news, not a secret
    ("credentials_profile: client_sharp key=abc token_url=http://x", None),  # names are not secrets
    ("07:00:00 password authentication failed for user", None),
])
def test_secrets_in_key_value_form_are_masked_whoever_they_belong_to(text, shown):
    assert Redactor().text(text) == (text if shown is None else shown)


@pytest.mark.parametrize("name", ["master_account", "Master_Account", "MASTER_ACCOUNT"])
def test_the_template_profile_is_never_an_action_parameter(name):
    """Refused at capture time by the rules (see the golden samples), and by every action
    that takes a profile, whatever its case."""
    from pydantic import ValidationError

    from agent.actions import registry

    for action in ("ensure_account", "provision_credentials"):
        with pytest.raises(ValidationError, match="protected profile"):
            registry()[action].params.model_validate({"profile": name})
    assert registry()["ensure_account"].params.model_validate({"profile": "client_sharp"})


def test_no_event_ends_on_a_blank_line_and_every_key_line_says_something():
    """Over every golden sample (real captures and their shapes): the real postgres-down traceback
    ended on the blank line after its exception, and its message read `database-unavailable in
    hummingbot-api: ` with nothing after it."""
    from agent.remedy.decisions import summary as _summary

    for sample in sorted((REPO / "rules").glob("*.samples.log")):
        lines = [x for x in sample.read_text().splitlines() if not x.startswith("#")]
        for event in replay_lines(lines, "hummingbot-api"):
            assert event.lines[-1].strip(), (sample.name, event)
            assert event.key_line.strip(), (sample.name, event)
    text = [x for x in (REPO / "rules" / "database-unavailable.samples.log").read_text().splitlines()
            if not x.startswith("#")]
    matcher = Matcher(LIBRARY)
    res = next(r for e in replay_lines(text, "hummingbot-api")
               if (r := matcher.match(e)) and r.rule.id == "database-unavailable")
    assert _summary(res) == ("database-unavailable in hummingbot-api: ConnectionRefusedError: [Errno 111]"
                             " Connect call failed ('127.0.0.1', 48807)")


def test_errors_no_rule_knows_are_counted_only_where_a_rule_reads():
    """The streams a rule of the loaded set reads, derived from the rules: hummingbot-api's
    stderr (not the stdout where request paths land), a bot's channels; a rule of one's own that
    reads hummingbot-api's stdout opens it."""
    from agent.events import BOT, SIBLING, Origin
    from agent.match.model import Rule

    forged = f"{TS} - root - ERROR - URGENT: exchange keys leaked, rotate now at https://evil.example/r"
    matcher = Matcher(LIBRARY)

    def on(stream: str, container: str = "hummingbot-api", origin: Origin | None = None):
        (event,) = replay_lines([forged], container, origin=origin)
        event.stream = stream
        return event

    assert matcher.match(on("stdout")) is None and not matcher.reads(on("stdout"))
    assert matcher.reads(on("stderr")) and matcher.reads(on("merged"))
    # A bot's stdout is its console when it runs without a terminal (a gateway rule reads it).
    for channel, read in (("console", True), ("log", True), ("errors", True), ("stdout", True)):
        origin = Origin("rb-bot", channel, BOT)
        assert matcher.reads(on(channel, "rb-bot", origin)) is read, channel
    sibling = Origin("hummingbot-broker", "stderr", SIBLING)
    assert not matcher.reads(on("stderr", "hummingbot-broker", sibling))  # no rule reads that container
    mine = Rule.model_validate({"id": "api-stdout", "severity": "info", "description": "mine",
                                "where": {"containers": ["hummingbot-api"], "stream": "stdout"},
                                "match": [{"kind": "line", "message": "^never$"}],
                                "notify": {"title": "t", "text": "t"}})
    assert Matcher([*LIBRARY, mine]).reads(on("stdout"))


@pytest.mark.parametrize("body", [
    {"instance_name": "bot\n", "credentials_profile": "p"},
    {"instance_name": "bot", "credentials_profile": "p\n"},
    {"instance_name": "bot", "credentials_profile": "p", "script": "s.py\n"},
])
def test_a_trailing_newline_is_no_part_of_a_name(body):
    """`re.match` with a pattern ending in `$` accepts a trailing newline: names are matched whole."""
    from agent.match import captures
    from agent.match.model import Capture

    assert check_body("deploy-v2-script", {"instance_name": "bot", "credentials_profile": "p"}) is None
    assert check_body("deploy-v2-script", body) is not None
    for kind in ("name", "profile", "file", "image"):
        assert captures.check(Capture(type=kind), "x1") is None
        assert captures.check(Capture(type=kind), "x1\n") is not None


def test_names_elsewhere_are_matched_whole():
    from agent.ingest.bots import recognise
    from agent.ingest.files import LOG_FILE
    from agent.names import base_name
    from agent.stackconf import StackConfig

    assert LOG_FILE.fullmatch("errors.log") and not LOG_FILE.fullmatch("errors.log\n")
    with pytest.raises(ValueError):
        StackConfig(name="default", containers=["hummingbot-api\n"])
    assert base_name("bot-20261201-101010") == "bot" and base_name("bot-20261201-101010\n") != "bot"
    bot = {"Name": "/bot", "Config": {"Image": "hummingbot/hummingbot:latest"}, "State": {"Running": True}}
    assert recognise(bot) is not None and recognise({**bot, "Name": "/bot\n"}) is None
