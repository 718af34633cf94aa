"""The Telegram chat against a local Bot API server (tests.telegram_fake), through the real
notifier, outbox and transport: one living message per incident, edits that fall back to a new
message, a restart that edits the same message, rate limits, an outage of the service, button
presses and commands reaching the operator, and the bot token kept out of the log and the state.
Beside it, a plain apprise target (tests.receiver) gets the intermediate steps folded."""

from __future__ import annotations

import io
import json
import logging
import threading
import time

import httpx
import pytest

from agent import doctor, logs
from agent.chat.telegram import Telegram, from_url
from agent.chat.transport import ChatError, EditGone, Posted
from agent.redact import Redactor
from tests.chatbed import STORY, OperatorDouble, bed, incident
from tests.receiver import Receiver
from tests.stack import ADMIN, free_port, prefixed_rules, wait_until
from tests.telegram_fake import TOKEN, TelegramFake

SECRET = TOKEN.split(":")[1]


def headlines(text: str) -> str:
    return text.split("\n")[0]


def test_the_six_message_story_is_one_edited_message_and_one_that_needs_you(tmp_path):
    with (TelegramFake() as fake, Receiver() as rx,
          bed(tmp_path / "s.db", fake, plain_url=rx.url, operator=OperatorDouble()) as b):
        inc = incident(b.store, "story001")
        b.tell(inc)
        wait_until(lambda: b.drained() and len(rx.accepted) >= 2, 20, "every step delivered")
        time.sleep(1.0)  # a double would show now
    sent = fake.sent()
    assert len(sent) == 2, [s.text[:60] for s in sent]
    living, needs_you = sent
    # The incident's message, edited at each step: detected, failed, again, failed, again.
    assert len(fake.of("editMessageText")) == 4 and len(living.edits) == 4
    assert headlines(living.edits[0]).startswith("<b>[CRITICAL] Detected, fixing")
    assert headlines(living.text).startswith("<b>[CRITICAL] Fixing again (attempt 3)")
    assert "Steps so far:" in living.text and "Fix failed, will try again" in living.text
    # A person is needed: a new message (the phone rings), with the steps so far and the buttons.
    assert headlines(needs_you.text).startswith("<b>[CRITICAL] Gave up: a human is needed")
    for earlier in ("Detected, fixing", "Fixing again (attempt 2)", "Fixing again (attempt 3)"):
        assert earlier in needs_you.text
    assert needs_you.text.count("Fix failed, will try again") == 2
    assert [b["callback_data"] for row in needs_you.markup["inline_keyboard"] for b in row] == [
        "fix:story001:t0k3n", "ignore:story001:t0k3n"]
    assert b.store.chat.where("story001", next(iter(b.channels.chats))) == (fake.chat_id, str(needs_you.id))
    # The apprise target: today's first message, then the final one with the intermediate steps in it.
    titles = [t.split(":")[0] for t in rx.titles()]
    assert titles == ["[CRITICAL] Detected, fixing", "[CRITICAL] Gave up"], titles
    final = rx.messages()[1]
    assert "Steps so far:" in final and final.count("Fix failed, will try again") == 2
    assert "Fixing again (attempt 2)" in final and "Fixing again (attempt 3)" in final
    assert "answered 500 (Internal Server Error); next attempt in 10 s" in final  # why it failed
    assert "Steps so far" not in rx.messages()[0]
    assert b.store.outbox.counts() == {"sent": 8, "folded-in": 4}


def test_folded_steps_are_sent_after_the_bound_when_no_final_comes(tmp_path):
    """The agent stops for good in the middle: the intermediate steps are not lost."""
    with (TelegramFake() as fake, Receiver() as rx,
          bed(tmp_path / "s.db", fake, plain_url=rx.url, fold_for=2.0) as b):
        inc = incident(b.store, "bound001")
        b.tell(inc, STORY[:3])  # fixing, failed, fixing again: no final
        wait_until(lambda: len(rx.accepted) >= 3, 20, "the folded steps after their bound")
        time.sleep(1.0)
    titles = [t.split(":")[0] for t in rx.titles()]
    assert titles == ["[CRITICAL] Detected, fixing", "[CRITICAL] Fix failed, will try again",
                      "[CRITICAL] Fixing again (attempt 2)"], titles


def test_an_edit_of_a_deleted_message_posts_a_new_one(tmp_path):
    with TelegramFake() as fake, bed(tmp_path / "s.db", fake) as b:
        inc = incident(b.store, "gone0001")
        b.tell(inc, STORY[:1])
        wait_until(lambda: len(fake.sent()) == 1 and b.drained(), 15, "the first message")
        first = fake.sent()[0].id
        fake.delete(first)  # the person deleted it
        b.tell(inc, STORY[1:2])
        wait_until(lambda: len(fake.sent()) == 1 and fake.sent()[0].id != first, 15, "a new message")
        b.tell(inc, STORY[2:3])
        wait_until(lambda: fake.sent()[0].edits, 15, "the new message edited")
        time.sleep(0.5)
    calls = [c.method for c in fake.calls if c.method != "getUpdates"]
    assert calls == ["sendMessage", "editMessageText", "sendMessage", "editMessageText"]
    assert [c.status for c in fake.calls if c.method == "editMessageText"] == [400, 200]
    assert headlines(fake.sent()[0].text).startswith("<b>[CRITICAL] Fixing again (attempt 2)")


def test_a_restart_edits_the_same_message(tmp_path):
    with TelegramFake() as fake:
        with bed(tmp_path / "s.db", fake) as b:
            inc = incident(b.store, "rst00001")
            b.tell(inc, STORY[:2])
            wait_until(lambda: b.drained() and fake.of("editMessageText"), 15, "posted and edited")
        with bed(tmp_path / "s.db", fake) as b:  # the agent restarted
            inc = b.store.incidents.get("rst00001")
            b.tell(inc, STORY[2:4])
            wait_until(lambda: b.drained() and len(fake.of("editMessageText")) == 3, 15,
                       "edited after the restart")
            time.sleep(0.5)
    assert len(fake.of("sendMessage")) == 1 and len(fake.sent()) == 1
    assert headlines(fake.sent()[0].text).startswith("<b>[CRITICAL] Fix failed, will try again")


def test_retry_after_is_honoured_and_each_step_lands_once_in_order(tmp_path):
    with TelegramFake() as fake, bed(tmp_path / "s.db", fake) as b:
        incs = [incident(b.store, f"rl{i:06d}") for i in range(2)]
        for inc in incs:
            b.tell(inc, STORY[:1])
        wait_until(lambda: len(fake.sent()) == 2 and b.drained(), 15, "the first messages")
        fake.limit(3)
        for inc in incs:
            b.tell(inc, STORY[1:4])
        wait_until(lambda: b.drained(), 30, "every edit after the rate limit")
        time.sleep(1.0)
    assert fake.limited == 1 and fake.early == 0, (fake.limited, fake.early)
    later = [c.at for c in fake.calls if c.method == "editMessageText" and c.status == 200]
    assert len(later) == 6 and min(later) >= fake.limited_until
    for sent in fake.sent():  # each incident's steps in order, none twice
        assert [headlines(t).split(":")[0] for t in [*sent.edits, sent.text]] == [
            "<b>[CRITICAL] Detected, fixing", "<b>[CRITICAL] Fix failed, will try again",
            "<b>[CRITICAL] Fixing again (attempt 2)", "<b>[CRITICAL] Fix failed, will try again"]
    assert b.store.outbox.counts() == {"sent": 8}


def test_the_service_gone_for_a_while_then_back_loses_and_doubles_nothing(tmp_path):
    with TelegramFake() as fake, bed(tmp_path / "s.db", fake) as b:
        inc = incident(b.store, "away0001")
        b.tell(inc, STORY[:1])
        wait_until(lambda: b.drained(), 15, "the first message")
        fake.go_away()
        other = incident(b.store, "away0002")
        took = b.tell(inc, STORY[1:], pause=0.3) + b.tell(other, STORY[:2], pause=0.3)
        wait_until(lambda: b.notifier.failed >= 2, 20, "failed deliveries while it is away")
        time.sleep(4)
        assert b.store.outbox.counts().get("pending", 0) >= 2
        fake.come_back()
        wait_until(lambda: b.drained(), 60, "everything delivered once it is back")
        time.sleep(1.0)
    assert max(took) < 0.5, took  # the fix never waited for the chat
    mine = [s for s in fake.sent() if "incident away0001" in s.text]
    assert len(mine) == 2  # its message, and the "gave up" one
    assert [headlines(t).split(":")[0] for t in [*mine[0].edits, mine[0].text]] == [
        "<b>[CRITICAL] Detected, fixing", "<b>[CRITICAL] Fix failed, will try again",
        "<b>[CRITICAL] Fixing again (attempt 2)", "<b>[CRITICAL] Fix failed, will try again",
        "<b>[CRITICAL] Fixing again (attempt 3)"]
    assert headlines(mine[1].text).startswith("<b>[CRITICAL] Gave up")
    theirs = [s for s in fake.sent() if "incident away0002" in s.text]
    assert len(theirs) == 1 and len(theirs[0].edits) == 1
    assert b.store.outbox.counts() == {"sent": 8}


def test_a_press_and_a_command_reach_the_operator_and_its_answer_is_shown(tmp_path):
    operator = OperatorDouble()
    with TelegramFake() as fake, bed(tmp_path / "s.db", fake, operator=operator, listen=True):
        query = fake.press(4242, "fix:inc0001:abc", username="alice")
        wait_until(lambda: query in fake.answers, 15, "the press answered")
        fake.command(4242, "/status@medic_test_bot")
        fake.command(4242, "/incident inc0001")
        fake.command(4242, "/status@another_bot")  # for another bot in the group: not ours
        fake.command(4242, "just talking")
        wait_until(lambda: len(operator.commands) >= 2 and len(fake.of("sendMessage")) >= 2, 15,
                   "the commands answered")
        time.sleep(1.5)
    assert fake.answers[query] == "fix incident inc0001: done"
    who, data, _ = operator.presses[0]
    assert (who.service, who.user, who.chat, who.name, data) == ("telegram", "4242", fake.chat_id, "alice",
                                                                "fix:inc0001:abc")
    assert [c[1] for c in operator.commands] == ["status", "incident inc0001"]
    answers = [c.params["text"] for c in fake.of("sendMessage")]
    assert answers == ["answer to status &lt;b&gt;not markup&lt;/b&gt;",
                       "answer to incident inc0001 &lt;b&gt;not markup&lt;/b&gt;"]


def test_a_restart_does_not_hand_the_same_press_again(tmp_path):
    with TelegramFake() as fake:
        first = OperatorDouble()
        with bed(tmp_path / "s.db", fake, operator=first, listen=True):
            query = fake.press(7, "retry:inc0002:abc")
            wait_until(lambda: query in fake.answers, 15, "the press answered")
        second = OperatorDouble()
        with bed(tmp_path / "s.db", fake, operator=second, listen=True):
            later = fake.press(7, "ignore:inc0002:def")
            wait_until(lambda: later in fake.answers, 15, "the second press answered")
            time.sleep(0.5)
    assert [p[1] for p in first.presses] == ["retry:inc0002:abc"]
    assert [p[1] for p in second.presses] == ["ignore:inc0002:def"]


def test_a_stop_ends_a_long_poll_at_once(tmp_path):
    with TelegramFake() as fake, bed(tmp_path / "s.db", fake, operator=OperatorDouble(), listen=True) as b:
        listener = b.channels.listeners[0]
        listener.transport.poll_seconds = 30
        wait_until(lambda: fake.of("getUpdates"), 10, "a first poll")
        time.sleep(0.5)  # now inside a 30 s poll
        start = time.monotonic()
        listener.stop(time.monotonic() + 2)
        assert time.monotonic() - start < 2.5 and not listener.loop.alive


def test_the_token_stays_out_of_the_log_the_state_and_errors(tmp_path):
    buf = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.setup("text", Redactor(), "DEBUG", buf)  # no redactor help: the token must never be written
    try:
        with (TelegramFake() as fake,
              bed(tmp_path / "s.db", fake, operator=OperatorDouble(), listen=True) as b):
            inc = incident(b.store, "tok00001")
            b.tell(inc, STORY[:2])
            wait_until(lambda: b.drained(), 15, "delivered")
            fake.press(1, "fix:tok00001:x")
            fake.limit(2)
            b.tell(inc, STORY[2:3])
            fake.go_away()
            b.tell(inc, STORY[3:4])
            wait_until(lambda: b.notifier.failed >= 2, 20, "failures logged")
            fake.come_back()
            wait_until(lambda: b.drained(), 30, "delivered after the outage")
            bad = Telegram("999:wrong-token-abcdefghijklmnop", fake.chat_id, api_url=fake.url)
            with pytest.raises(ChatError) as refused:
                bad.post("x", [])
            with pytest.raises(ChatError) as unreachable:
                Telegram(TOKEN, fake.chat_id, api_url="http://127.0.0.1:9").post("x", [])
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert "401" in str(refused.value) and "wrong-token" not in str(refused.value)
    assert SECRET not in str(unreachable.value) and unreachable.value.__cause__ is None
    text = buf.getvalue()
    assert "rate limited" in text and "notification to" in text  # the log did speak of it
    assert SECRET not in text
    assert SECRET.encode() not in (tmp_path / "s.db").read_bytes()
    for extra in tmp_path.glob("s.db-*"):
        assert SECRET.encode() not in extra.read_bytes()


def test_transport_unit_shapes():
    assert from_url(f"tgram://{TOKEN}/-100123/") == (TOKEN, "-100123")
    assert from_url(f"tgram://bot{TOKEN}/42?format=html") == (TOKEN, "42")
    with TelegramFake() as fake:
        t = Telegram(TOKEN, fake.chat_id, api_url=fake.url)
        posted = t.post("<b>x</b>", [])
        t.edit(posted, "<b>x</b>", [])  # the same text: "not modified" is no error
        with pytest.raises(EditGone):
            t.edit(Posted(fake.chat_id, "9999"), "y", [])
        assert t.me()["username"] == "medic_test_bot" and "AAH" not in repr(t)


def _doctor(monkeypatch, fake: TelegramFake, users: str, send: bool, chat: str | None = None,
            token: str | None = None) -> tuple[int, str]:
    monkeypatch.setenv("MEDIC_CHAT", "telegram")
    monkeypatch.setenv("MEDIC_NOTIFY_URLS", f"tgram://{token or fake.token}/{chat or fake.chat_id}")
    monkeypatch.setenv("MEDIC_TELEGRAM_API_URL", fake.url)
    monkeypatch.setenv("MEDIC_CHAT_TELEGRAM_USERS", users)
    out = io.StringIO()

    def telegram_only(d):
        return doctor.telegram_chat(d, wait=10)

    code = doctor.run(send=send, out=out, checks=[telegram_only])
    return code, out.getvalue()


def test_doctor_checks_the_telegram_chat_and_its_test_button_comes_back(monkeypatch):
    with TelegramFake() as fake:
        def press_when_posted():
            wait_until(lambda: fake.sent(), 10, "the test message")
            button = fake.sent()[0].markup["inline_keyboard"][0][0]
            fake.press(5151, button["callback_data"], username="bob")

        presser = threading.Thread(target=press_when_posted, daemon=True)
        presser.start()
        code, out = _doctor(monkeypatch, fake, "5151", send=True)
        presser.join(5)
    assert code == 0, out
    assert "✓ telegram chat: bot @medic_test_bot (token valid)" in out
    assert f"✓ telegram chat {fake.chat_id} (ops): reachable" in out
    assert "✓ telegram chat: 1 allowed user may press and command" in out
    assert "✓ telegram chat: the press came back, from bob (user id 5151)" in out
    assert fake.updates, "the doctor confirmed no update: the agent still gets what waits for it"
    assert SECRET not in out


def test_doctor_says_what_to_fix(monkeypatch):
    with TelegramFake() as fake:
        code, out = _doctor(monkeypatch, fake, "", send=False, token="999:not-the-token-abcdefghijkl")
        assert code == 1 and "✗ telegram chat" in out and "401" in out and "BotFather" in out, out
        code, out = _doctor(monkeypatch, fake, "", send=False, chat="-100999")
        assert code == 1 and "✗ telegram chat -100999: not reachable by the bot" in out, out
        assert "add the bot to that group" in out
        code, out = _doctor(monkeypatch, fake, "", send=False)
        assert code == 1 and "✗ telegram chat: no allowed users" in out and "MEDIC_CHAT_TELEGRAM_USERS" in out
        code, out = _doctor(monkeypatch, fake, "1,2", send=True)
        assert code == 1 and "✗ telegram chat: no press of the test button within 10 s" in out, out
    fake_gone = _doctor(monkeypatch, fake, "1", send=False)
    assert fake_gone[0] == 1 and "did not answer" in fake_gone[1] and "MEDIC_TELEGRAM_API_URL" in fake_gone[1]
    assert "not-the-token" not in out


@pytest.mark.docker
def test_the_agent_keeps_one_message_per_incident_and_hands_presses_to_its_operator(make_stack, tmp_path):
    """The whole agent (in this process) with MEDIC_CHAT=telegram against the stand-in: the seed
    incident is one Telegram message, posted then edited to Fixed; a press reaches the operator;
    the token is nowhere in /healthz or the start-up summary."""
    from agent.service import Service
    from agent.settings import Settings

    stack = make_stack()
    operator = OperatorDouble()
    with TelegramFake() as fake, Receiver() as rx:
        settings = Settings(
            containers=[stack.prefix + "hummingbot-api"], state_db=tmp_path / "state.db",
            rules_dir=prefixed_rules(stack.prefix, tmp_path / "rules"), hummingbot_url=stack.url,
            catchup_window=120, bots="off", bot_settle=2, recorder_addr=f"127.0.0.1:{free_port()}",
            chat=["telegram"], notify_urls=f"{fake.notify_url()},{rx.url}", telegram_api_url=fake.url)
        service = Service(settings, operator=operator)
        service.start()
        try:
            body = {"instance_name": stack.unique("chat"), "credentials_profile": "client_chat",
                    "headless": True}
            with httpx.Client(base_url=f"http://{settings.recorder_addr}", auth=ADMIN, timeout=60) as c:
                assert c.post("/bot-orchestration/deploy-v2-script", json=body).status_code == 500
            wait_until(lambda: any(headlines(s.text).startswith("<b>[CRITICAL] Fixed") for s in fake.sent()),
                       90, "the incident's message edited to Fixed")
            query = fake.press(4242, fake.sent()[0].markup["inline_keyboard"][0][0]["callback_data"])
            wait_until(lambda: query in fake.answers, 15, "the press answered")
            wait_until(lambda: len(rx.accepted) >= 2, 30, "the apprise target's messages")
            report = json.dumps(service.report()[1])
            summary = "\n".join(service.summary())
        finally:
            service.stop()
    sent = fake.sent()
    assert len(sent) == 1 and sent[0].edits, [s.text[:80] for s in sent]
    assert headlines(sent[0].edits[0]).startswith("<b>[CRITICAL] Detected, fixing")
    assert operator.presses[0][1].startswith("fix:") and fake.answers[query].startswith("fix incident")
    assert [t.split(":")[0] for t in rx.titles()] == ["[CRITICAL] Detected, fixing", "[CRITICAL] Fixed"]
    assert "chat: telegram, bot 123456789, chat -100424242" in summary
    assert SECRET not in report and SECRET not in summary
