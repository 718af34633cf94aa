"""Ask mode through the chat, end to end: the agent (Service, its real operator) on the stand-in
stack, the seed deploy failing through its recorder, and a person answering from the local
Telegram Bot API server (tests.telegram_fake) or the local Slack (tests.slack_fake). The
incident's message comes with its buttons; a press from someone not listed does nothing; a
listed person's Fix now runs the fix as act mode would (the bot lives its settle time) and the
same message is edited to Fixed; the same press again does nothing; the commands answer."""

from __future__ import annotations

import time

import pytest

from tests.slack_fake import FakeSlack
from tests.stack import wait_until
from tests.telegram_fake import TelegramFake
from tests.test_stop import RULE, bots, deploy

pytestmark = pytest.mark.docker
ALLOWED, OTHER = 1001, 999


def awaiting(service, profile: str):
    return next((i for i in service.store.incidents.recent(10)
                 if i.rule == RULE and i.state == "awaiting-approval"
                 and i.captures.get("profile") == profile), None)


def actions(service, inc_id: str) -> list[dict]:
    return [a for a in service.store.incidents.audit_trail(inc_id)
            if a["kind"] in ("action", "retry", "verify")]


def test_telegram_a_listed_persons_fix_now_runs_the_fix_and_edits_the_same_message(make_stack, driven_agent):
    stack = make_stack()
    with TelegramFake() as fake:
        service = driven_agent(stack, drive=False, mode="ask", chat=["telegram"],
                               chat_telegram_users=["1001"], notify_urls=fake.notify_url(),
                               telegram_api_url=fake.url, preflight="off", bots="off")
        name, profile = stack.unique("tgask"), "client_tgask"
        assert deploy(service.settings.recorder_addr, instance_name=name,
                      credentials_profile=profile).status_code == 500
        inc = wait_until(lambda: awaiting(service, profile), 60, "the incident awaiting approval")
        asking = wait_until(lambda: next((s for s in reversed(fake.sent()) if profile in s.text
                                          and "Needs your approval" in s.text.split("\n")[0]), None), 30,
                            "the incident's message asking for approval")
        buttons = [b for row in asking.markup["inline_keyboard"] for b in row]
        assert [b["text"] for b in buttons] == ["Fix now", "Ignore", "Silence 1 h"]
        assert all(b["callback_data"].split(":")[1] == inc.id for b in buttons)
        fix = buttons[0]["callback_data"]

        denied = fake.press(OTHER, fix, message=asking.id, username="mallory")
        wait_until(lambda: denied in fake.answers, 15, "the stranger's press answered")
        assert fake.answers[denied] == "not allowed"
        time.sleep(2)  # long enough for a fix to have begun, were one begun
        now = service.store.incidents.get(inc.id)
        assert (now.state, now.attempts) == ("awaiting-approval", 0)
        assert actions(service, inc.id) == [] and bots(stack, name) == []

        pressed = fake.press(ALLOWED, fix, message=asking.id, username="alice")
        wait_until(lambda: pressed in fake.answers, 15, "the press answered")
        assert fake.answers[pressed].startswith(f"Fixing incident {inc.id}: ensure_account"), fake.answers
        wait_until(lambda: service.store.incidents.get(inc.id).state == "resolved", 90, "the fix")
        wait_until(lambda: asking.text.startswith("<b>[CRITICAL] Fixed"), 30,
                   "the same message edited to Fixed")
        assert [c.status for c in bots(stack, name)] == ["running"]
        assert not (asking.markup or {}).get("inline_keyboard")  # nothing left to press
        done = actions(service, inc.id)
        ran = [(a["kind"], a["name"], a["ok"]) for a in done]
        assert ran[0] == ("action", "ensure_account", True) and ("retry", "retry_deploy", True) in ran, ran
        redeployed = next(a for a in done if a["name"] == "retry_deploy")
        assert any(a["ok"] and "still running after 3 s" in a["result"]
                   for a in done), [(a["kind"], a["name"], a["result"]) for a in done]
        deployed = redeployed["at"] - redeployed["duration_ms"] / 1000  # its bot started after this
        trail = service.store.incidents.audit_trail(inc.id)
        ended = next(a["at"] for a in trail if (a["kind"], a["name"]) == ("decision", "resolved"))
        assert ended - deployed >= 2.8, trail  # the bot lived its settle time (3 s) before it counted

        sends = len(fake.of("sendMessage"))
        replayed = fake.press(ALLOWED, fix, message=asking.id, username="alice")
        wait_until(lambda: replayed in fake.answers, 15, "the replayed press answered")
        assert "nothing" in fake.answers[replayed] or fake.answers[replayed].startswith("refused"), \
            fake.answers[replayed]
        time.sleep(1.5)
        assert len(fake.of("sendMessage")) == sends
        assert service.store.incidents.get(inc.id).state == "resolved"
        trail = service.store.incidents.audit_trail(inc.id)
        assert sum(1 for a in trail if a["kind"] == "attempt") == 1
        assert len(actions(service, inc.id)) == len(done)
        said = [(a["name"], a["params"].get("user")) for a in trail if a["kind"] == "chat"]
        assert said[0] == ("press fix", "1001")  # the stranger's press was refused before the trail

        fake.command(ALLOWED, "/status")
        fake.command(ALLOWED, f"/incident {inc.id}")
        fake.command(OTHER, "/status")
        replies = wait_until(lambda: (r := [c.params["text"] for c in fake.of("sendMessage")[sends:]])
                             and len(r) >= 3 and r, 15, "the commands answered")
    status, trail_text, stranger = replies
    assert "open incidents:" in status, status
    assert trail_text.startswith(f"{inc.id} resolved {RULE}"), trail_text
    assert "ensure_account" in trail_text or "retry_deploy" in trail_text or "resolved" in trail_text
    for text in (status, trail_text):
        assert len(text) < 1200 and len(text.splitlines()) <= 12  # short, for a phone
    assert stranger == "not allowed"  # and nothing else happened


def test_slack_a_listed_persons_fix_now_runs_the_fix(make_stack, driven_agent):
    stack = make_stack()
    with FakeSlack() as fake:
        service = driven_agent(stack, drive=False, mode="ask", chat=["slack"], chat_slack_users=["U0ALICE"],
                               slack_bot_token=fake.bot_token, slack_app_token=fake.app_token,
                               slack_channel=fake.channel, slack_api_url=fake.api_url, preflight="off",
                               bots="off")
        name, profile = stack.unique("slask"), "client_slask"
        assert deploy(service.settings.recorder_addr, instance_name=name,
                      credentials_profile=profile).status_code == 500
        inc = wait_until(lambda: awaiting(service, profile), 60, "the incident awaiting approval")
        asking = wait_until(lambda: next((m for m in reversed(list(fake.messages.values())) if profile in
                                          m.current and "Needs your approval" in m.current.split("\n")[0]),
                                         None), 30, "the incident's message asking for approval")
        assert [label for label, _ in asking.buttons()] == ["Fix now", "Ignore", "Silence 1 h"]
        fix = asking.buttons()[0][1]
        fake.wait_connected()
        fake.wait_ack(fake.press("U0MALLORY", fix, ts=asking.ts, label="Fix now"))
        assert fake.wait_ephemeral(1)[0]["text"] == "not allowed"
        time.sleep(2)
        assert service.store.incidents.get(inc.id).state == "awaiting-approval" and bots(stack, name) == []
        fake.wait_ack(fake.press("U0ALICE", fix, ts=asking.ts, label="Fix now"))
        answer = fake.wait_ephemeral(2)[1]
        assert answer["user"] == "U0ALICE" and answer["text"].startswith(f"Fixing incident {inc.id}"), answer
        wait_until(lambda: service.store.incidents.get(inc.id).state == "resolved", 90, "the fix")
        wait_until(lambda: asking.current.startswith("*[CRITICAL] Fixed"), 30,
                   "the same message edited to Fixed")
        assert [c.status for c in bots(stack, name)] == ["running"] and not asking.buttons()
