"""`rules check` and rendering agree: every name a rule's templates may use renders for an
incident, and every name an incident renders passes `rules check`."""

from __future__ import annotations

import textwrap

from agent import templates
from agent.events import exit_event
from agent.ingest.replay import replay_lines
from agent.match.loader import load_rules, render
from agent.records import Incident, IncidentState

TRACEBACK = [
    "2026-06-29 14:03:07,515 - hummingbot_api - ERROR - Error deploying V2 script",
    "Traceback (most recent call last):",
    '  File "/app/deploy.py", line 1, in deploy',
    "    open(path)",
    "FileNotFoundError: [Errno 2] No such file or directory: 'bots/credentials/client_sharp'",
]


def sample_incident() -> Incident:
    """A bot's incident as the remedy opens it: the opening event's values kept, its fate in
    the captures (see agent.remedy.fate), and the deploy that created the bot."""
    (event,) = replay_lines(TRACEBACK, "rb_sharp-20260629-140300")
    body = {name: f"<{name}>" for name in templates.DEPLOY_FIELDS}
    return Incident(id="i1", rule="bot-died", key="k", state=IncidentState.DETECTED, severity="critical",
                    container="rb_sharp-20260629-140300", summary="s", fingerprint="f",
                    captures={"profile": "client_sharp", "fate": "exited by itself with code 1",
                              "exit_code": "1"},
                    deploy={"route": "deploy-v2-script", "body": body}, stack="eu-1",
                    opened_by=templates.event_values(event, str.upper))


def test_every_name_rules_check_allows_renders_for_an_incident():
    values = templates.incident_values(sample_incident())
    names = sorted(templates.NAMES) + [f"deploy.{f}" for f in sorted(templates.DEPLOY_FIELDS)]
    rendered = {name: render("{" + name + "}", values) for name in names}
    assert [name for name, text in rendered.items() if text == "(unknown)"] == [], rendered
    assert rendered["stack"] == "eu-1" and rendered["bot"] == "rb_sharp"
    assert rendered["exception"] == "FileNotFoundError" and rendered["stream"] == "merged"
    assert rendered["message"] == "ERROR DEPLOYING V2 SCRIPT"  # kept as the redactor gave it


def test_every_name_an_incident_renders_passes_rules_check(tmp_path):
    text = " ".join("{" + name + "}" for name in sorted(templates.NAMES))
    (tmp_path / "my-rule.yml").write_text(textwrap.dedent(f"""\
        id: my-rule
        description: a test rule
        severity: warning
        match:
          - kind: line
            level: ERROR
            message: "^Error deploying V2 script: (?P<profile>\\\\S+)$"
        captures:
          profile: {{type: name}}
        notify:
          title: "{{stack}}: profile {{profile}}"
          text: "{text}"
        """))
    result = load_rules(tmp_path)
    assert [str(e) for e in result.errors] == [] and [r.id for r in result.rules] == ["my-rule"]
    values = templates.incident_values(sample_incident())
    assert set(values) - set(sample_incident().captures) - {f"deploy.{f}" for f in templates.DEPLOY_FIELDS} \
        <= templates.NAMES


def test_a_match_has_the_values_of_its_event():
    (event,) = replay_lines(TRACEBACK, "hummingbot-api")
    values = templates.match_values(event, "r", "error", {"profile": "client_sharp"},
                                    {"credentials_profile": "client_sharp"})
    assert values == {"container": "hummingbot-api", "rule": "r", "severity": "error", "stack": "default",
                      "stream": "merged", "message": "Error deploying V2 script",
                      "exception": "FileNotFoundError", "profile": "client_sharp",
                      "deploy.credentials_profile": "client_sharp"}  # {bot}: only a bot's own lines
    died = templates.match_values(exit_event("rb_x-20261129-073004", exit_code=1, ts=1, lived=4.4),
                                  "bot-died", "critical", {}, None)
    assert died["bot"] == "rb_x" and died["exit_code"] == 1 and died["fate"].startswith("exited by itself")


def test_a_time_in_milliseconds_is_shown_as_a_utc_date_and_how_far_from_now():
    now = 1796000000.0
    assert templates.epoch_ms("1796009000000", now) == "2026-11-30 03:23:20 UTC (in 2.5 h)"
    assert templates.epoch_ms("1795999400000", now) == "2026-11-30 00:43:20 UTC (10 min ago)"
    assert templates.epoch_ms("1796000000000", now) == "2026-11-30 00:53:20 UTC (now)"
    assert templates.epoch_ms("9999999999999999", now) is None  # past any calendar: left as captured
    assert templates.epoch_ms("soon", now) is None


def test_the_ip_ban_message_shows_the_end_of_the_ban_as_a_date(tmp_path):
    """bot-ip-banned: Binance quotes the ban's end in ms since 1970; the message says when, in UTC,
    and how long from now. The incident keeps the value as captured."""
    import time

    from agent.notify.notifier import Notifier
    from agent.redact import Redactor
    from agent.state import State
    from tests.stack import REPO

    rules = {r.id: r for r in load_rules(REPO / "rules").rules}
    until = int((time.time() + 3 * 3600) * 1000)
    store = State(tmp_path / "state.db")
    inc = store.incidents.create(Incident(
        id="b1", rule="bot-ip-banned", key="binance", state=IncidentState.DETECTED, severity="critical",
        container="rb_ban-20261129-074200", summary="s", fingerprint="f",
        captures={"connector": "binance", "until": str(until)}))
    msg = Notifier(store, [], rules=lambda: rules, redactor=Redactor())._message(inc, "detected", "")
    assert msg is not None and "ms since 1970" not in msg.summary and str(until) not in msg.summary
    day = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(until // 1000))
    assert f"for too many requests until \ue000{day} (in 3.0 h)\ue001." in msg.summary, msg.summary
    assert inc.captures["until"] == str(until)
