"""Markup from a log line never reaches anyone's phone as markup: the message of a real
incident goes through apprise's own Slack plugin (to a local receiver) and Telegram's
renderer, and whatever a log said stays inside code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from apprise.plugins.slack import NotifySlack

from agent.match.loader import load_rules
from agent.notify.notifier import Notifier, deliver
from agent.notify.render import mrkdwn, telegram
from agent.notify.targets import parse_urls
from agent.records import Incident
from agent.redact import Redactor
from agent.state import State
from tests.receiver import Receiver
from tests.stack import wait_until

REPO = Path(__file__).resolve().parents[2]
RULES = {r.id: r for r in load_rules(REPO / "rules").rules}
EVIL = "<!channel> <https://evil.example/fix|Click to fix> *urgent* [fix](https://evil.example) &amp;"


@pytest.fixture
def slack_payloads(monkeypatch):
    rx = Receiver()
    monkeypatch.setattr(NotifySlack, "webhook_url", f"http://127.0.0.1:{rx.port}/services")
    yield rx
    rx.server.shutdown()


def incident(state: str, captures: dict, summary: str) -> Incident:
    return Incident(id="a1b2c3d4", rule="credentials-profile-missing", key="k", state=state,
                    severity="critical", container="hummingbot-api", summary=summary,
                    fingerprint="v2:0", captures=captures)


def outside_code(slack_text: str) -> str:
    """What Slack shows as text: without code blocks and code spans."""
    text = re.sub(r"```.*?```", "", slack_text, flags=re.S)
    return re.sub(r"(`+).*?\1", "", text, flags=re.S)


@pytest.mark.parametrize(("state", "captures", "detail"), [
    ("refused", {"profile": EVIL}, f"not acting: capture profile={EVIL!r} contains '<'"),
    ("resolved", {"profile": "client_sharp"}, "fixed in 0.2 s"),
    ("failed", {"profile": "client_sharp"}, f"deploy retry answered 200: {EVIL}"),
])
def test_slack_gets_no_mention_link_or_markup_from_a_log(tmp_path, slack_payloads, state, captures, detail):
    store = State(tmp_path / "state.db")
    inc = store.incidents.create(incident(state, captures, f"credentials-profile-missing in hummingbot-api: "
                                                          f"Error deploying V2 script: {EVIL}"))
    store.incidents.audit(inc.id, "action", "ensure_account", {"profile": captures["profile"]}, True,
                          f"added {EVIL}")
    notifier = Notifier(store, [], rules=lambda: RULES, redactor=Redactor())
    msg = notifier._message(inc, state, detail)
    [target] = parse_urls("slack://TokenA/TokenB/TokenC1234/#alerts")
    deliver(target, msg)
    payload = wait_until(lambda: slack_payloads.accepted, 10, "the Slack payload")[0]
    title, text = payload["attachments"][0]["title"], payload["attachments"][0]["text"]
    for part in (title, text):
        assert "<!" not in part and "<http" not in part and "<@" not in part
    assert "&lt;!channel&gt;" in text  # it is shown, as text
    shown = outside_code(text)
    assert "channel" not in shown and "evil.example" not in shown and "urgent" not in shown, shown
    assert "channel" not in title and "evil" not in title  # a refused value never outside code
    if state == "refused":
        assert "(see below)" in title
    # Telegram: the same message, log text only inside <code> or <pre>.
    _, body = telegram(msg)
    assert "<!channel>" not in body and "<https://" not in body
    assert "evil.example" not in re.sub(r"<(code|pre)>.*?</\1>", "", body, flags=re.S)
    # A Slack chat (the Web API, mrkdwn with no apprise between): the same, entities, log text in code.
    _, chat = mrkdwn(msg)
    assert "<!" not in chat and "<http" not in chat and "<@" not in chat and "&lt;!channel&gt;" in chat
    assert "evil.example" not in outside_code(chat) and "urgent" not in outside_code(chat)


def test_a_domain_from_a_log_is_no_link_in_a_title(tmp_path):
    """A value of type file (dots allowed) such as `login-binance.com.evil.example` went into the
    title as plain text, where chat apps make it a link: in a title its dots are broken; the body
    shows it whole, as code."""
    store = State(tmp_path / "state.db")
    domain = "login-binance.com.evil.example"
    inc = store.incidents.create(Incident(
        id="d0d0d0d0", rule="script-config-missing", key=domain, state="open", severity="warning",
        container="hummingbot-api", summary="script-config-missing in hummingbot-api", fingerprint="v2:0",
        captures={"config": domain}))
    msg = Notifier(store, [], rules=lambda: RULES, redactor=Redactor())._message(inc, "detected", "")
    assert "login-binance[.]com[.]evil[.]example" in msg.title, msg.title
    assert "binance.com" not in msg.title and "evil.example" not in msg.title
    _, body = telegram(msg)  # Telegram has no title of its own: it heads the body
    assert "evil.example" not in re.sub(r"<(code|pre)>.*?</\1>", "", body, flags=re.S), body
    assert f"<code>{domain}</code>" in body
