"""Slack as a chat transport, against the local Slack of tests/slack_fake.py: messages posted
and edited through the Web API, rate limits and gone messages told as the Transport says,
presses, slash commands and mentions over Socket Mode handed to the operator and answered,
a dropped connection opened anew, and the tokens nowhere but in the requests' headers."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from contextlib import contextmanager

import httpx
import pytest

from agent import doctor, logs
from agent.chat.channels import build
from agent.chat.living import LivingMessages
from agent.chat.slack import SlackTransport, blocks
from agent.chat.transport import Button, ChatError, EditGone, Posted, RateLimited, Who
from agent.notify.message import Message
from agent.notify.notifier import Notifier
from agent.redact import Redactor
from agent.settings import Settings
from agent.state import State
from tests.chatbed import RULES, STORY, OperatorDouble, incident
from tests.slack_fake import FakeSlack
from tests.stack import ADMIN, free_port, prefixed_rules, wait_until

ALICE, MALLORY = "U0ALICE", "U0MALLORY"


@pytest.fixture
def fake():
    with FakeSlack() as f:
        yield f


def transport(fake: FakeSlack, **kw) -> SlackTransport:
    return SlackTransport(fake.bot_token, fake.app_token, fake.channel, api_url=fake.api_url, timeout=5,
                          **kw)


class Operator:
    """A small double of agent.chat.operator.Operator: records what reached it, answers in words."""

    def __init__(self) -> None:
        self.presses: list[tuple[Who, str]] = []
        self.commands: list[tuple[Who, str]] = []

    def press(self, who: Who, data: str) -> str:
        self.presses.append((who, data))
        return "not allowed" if who.user != ALICE else f"Fixing incident {data.split(':')[1]}"

    def command(self, who: Who, text: str) -> str:
        self.commands.append((who, text))
        return f"status: 1 open incident <!channel> & {text}"


class Listening:
    """`transport.listen` on a thread of the test, stopped at the end."""

    def __init__(self, t: SlackTransport, op: Operator) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=t.listen, args=(op.press, op.command, self.stop.is_set),
                                       daemon=True)

    def __enter__(self) -> Listening:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "listen did not return after stopping() said so"


def test_post_shows_escaped_text_and_buttons_then_edit_replaces_them(fake):
    t = transport(fake)
    buttons = [Button("Fix now", "fix:12:tok1"), Button("Ignore", "ignore:12:tok2")]
    where = t.post("*Detected, fixing* &lt;!channel&gt;", buttons)
    assert where == Posted(fake.channel, where.message) and where.message in fake.messages
    msg = fake.messages[where.message]
    assert msg.buttons() == [("Fix now", "fix:12:tok1"), ("Ignore", "ignore:12:tok2")]
    section = msg.blocks[0]
    assert section["type"] == "section" and section["text"] == {
        "type": "mrkdwn", "text": "*Detected, fixing* &lt;!channel&gt;", "verbatim": True}
    actions = msg.blocks[-1]["elements"]
    assert [a["action_id"] for a in actions] == ["fix:12:tok1", "ignore:12:tok2"]
    post = next(c for c in fake.calls if c["method"] == "chat.postMessage")["args"]
    assert post["unfurl_links"] is False and post["link_names"] is False

    t.edit(where, "*Fixed*", [])
    assert msg.current == "*Fixed*" and msg.buttons() == []
    assert [c["method"] for c in fake.calls] == ["chat.postMessage", "chat.update"]


def test_a_long_message_is_split_into_sections_never_inside_an_entity():
    text = ("x" * 2995 + "&amp;" + "y" * 10) * 3
    parts = [b["text"]["text"] for b in blocks(text, [])]
    assert "".join(parts) == text and all(len(p) <= 3000 for p in parts)
    assert all(p.count("&") == p.count(";") for p in parts)


@pytest.mark.parametrize("error", ["message_not_found", "cant_update_message", "edit_window_closed"])
def test_a_message_that_cannot_be_edited_is_edit_gone(fake, error):
    t = transport(fake)
    where = t.post("first", [])
    fake.delete(where.message, error)
    with pytest.raises(EditGone, match=error):
        t.edit(where, "second", [])
    with pytest.raises(EditGone, match="message_not_found"):
        t.edit(Posted(fake.channel, "1.000000"), "never posted", [])


def test_other_refusals_are_chat_errors_naming_the_method_and_code(fake):
    t = SlackTransport(fake.bot_token, fake.app_token, "C0ELSEWHERE", api_url=fake.api_url)
    with pytest.raises(ChatError, match=r"^slack chat.postMessage: channel_not_found$") as exc:
        t.post("hello", [])
    assert not isinstance(exc.value, EditGone | RateLimited)
    gone = SlackTransport(fake.bot_token, fake.app_token, fake.channel, api_url="http://127.0.0.1:9/api/",
                          timeout=2)
    with pytest.raises(ChatError, match="the Web API cannot be reached"):
        gone.post("hello", [])


def test_429_is_rate_limited_with_retry_after(fake):
    t = transport(fake)
    fake.limit("chat.postMessage", 7)
    with pytest.raises(RateLimited) as exc:
        t.post("hello", [])
    assert exc.value.retry_after == 7
    where = Posted(fake.channel, "1.000001")
    fake.limit("chat.update", 3)
    with pytest.raises(RateLimited) as exc:
        t.edit(where, "hello", [])
    assert exc.value.retry_after == 3
    # one call each: slack_sdk does not retry the 429 behind the outbox's back
    assert [(c["method"], c["status"]) for c in fake.calls] == [("chat.postMessage", 429),
                                                                 ("chat.update", 429)]


def test_presses_commands_and_mentions_reach_the_operator_and_the_answers_the_person(fake):
    t, op = transport(fake), Operator()
    where = t.post("incident 12", [Button("Fix now", "fix:12:tok1")])
    with Listening(t, op):
        fake.wait_connected()
        pressed = fake.press(ALICE, "fix:12:tok1", ts=where.message, label="Fix now")
        fake.wait_ack(pressed)
        fake.wait_ephemeral(1)
        typed = fake.command(MALLORY, "status")
        mentioned = fake.mention(ALICE, "incident 12")
        empty = fake.command(ALICE, "  ")
        for envelope in (typed, mentioned, empty):
            fake.wait_ack(envelope)
        answers = fake.wait_ephemeral(4)
    assert op.presses == [(Who("slack", ALICE, fake.channel, "user-u0alice"), "fix:12:tok1")]
    assert op.commands == [(Who("slack", MALLORY, fake.channel, "user-u0mallory"), "status"),
                           (Who("slack", ALICE, fake.channel), "incident 12"),
                           (Who("slack", ALICE, fake.channel, "user-u0alice"), "help")]
    assert answers[0]["user"] == ALICE and answers[0]["text"] == "Fixing incident 12"
    assert answers[1]["user"] == MALLORY
    # the operator's words are plain text: no mention or link can be made of them
    assert answers[1]["text"] == "status: 1 open incident &lt;!channel&gt; &amp; status"
    assert {a["channel"] for a in answers} == {fake.channel}
    # each envelope acknowledged before its answer was shown
    assert fake.acks[pressed] <= answers[0]["at"]


def test_a_press_from_anyone_reaches_the_operator_which_says_no(fake):
    t, op = transport(fake), Operator()
    with Listening(t, op):
        fake.wait_connected()
        fake.wait_ack(fake.press(MALLORY, "fix:12:tok1"))
        answers = fake.wait_ephemeral(1)
    assert op.presses[0][0].user == MALLORY and answers == [
        {"channel": fake.channel, "user": MALLORY, "text": "not allowed", "at": answers[0]["at"]}]


def test_a_dropped_connection_is_opened_again_and_the_next_press_arrives(fake):
    t, op = transport(fake, ping_interval=0.5), Operator()
    with Listening(t, op):
        fake.wait_connected()
        fake.wait_ack(fake.press(ALICE, "fix:1:a"))
        opened = sum(m == "apps.connections.open" for m in fake.methods())
        fake.drop()
        fake.wait_connected(timeout=15, count=2)
        started = time.monotonic()
        fake.wait_ack(fake.press(ALICE, "retry:1:b"))
        assert time.monotonic() - started < 5
    assert [d for _, d in op.presses] == ["fix:1:a", "retry:1:b"]
    assert sum(m == "apps.connections.open" for m in fake.methods()) > opened  # a new URL for the new link


def test_stopping_ends_listen_even_while_slack_cannot_be_reached():
    t = SlackTransport("xoxb-x", "xapp-x", "C0MEDIC", api_url="http://127.0.0.1:9/api/", ping_interval=0.2)
    stop = threading.Event()
    thread = threading.Thread(target=t.listen, args=(lambda w, d: "", lambda w, d: "", stop.is_set),
                              daemon=True)
    thread.start()
    time.sleep(1)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def test_the_tokens_appear_in_no_log_line_and_no_error(fake, caplog):
    caplog.set_level(logging.DEBUG)
    t, op = transport(fake, ping_interval=0.5), Operator()
    errors = []
    wrong = SlackTransport("xoxb-wrong-secret-value", "xapp-wrong-secret-value", fake.channel,
                           api_url=fake.api_url)
    fake.limit("chat.update", 2)
    for call in (lambda: wrong.post("x", []), lambda: t.edit(Posted(fake.channel, "9.9"), "x", []),
                 lambda: t.post("x", [Button("Fix now", "fix:1:t")])):
        try:
            call()
        except ChatError as exc:
            errors.append(exc)
    with Listening(t, op):
        fake.wait_connected()
        fake.wait_ack(fake.command(ALICE, "status"))
        fake.wait_ephemeral(1)
        fake.drop()
        fake.wait_connected(timeout=15, count=2)
    with Listening(wrong, op):  # an app token Slack refuses: it tries and says so, without the token
        time.sleep(1.5)
    assert [str(e) for e in errors] == ["slack chat.postMessage: invalid_auth",
                                        "rate limited (429), retry after 2.0 s"]
    shown = caplog.text + "".join(f"{e!s} {e!r} {e.__cause__!r} {e.__context__!r}" for e in errors)
    assert "invalid_auth" in caplog.text  # the refused app token was told, without itself
    for secret in (fake.bot_token, fake.app_token, "wrong-secret-value"):
        assert secret not in shown


def story(incident: str = "7") -> list[Message]:
    """The six steps one bot whose fix cannot work produced (as told against the real programs),
    with a hostile line in the excerpt a log could hold."""
    base = dict(incident=incident, severity="critical", rule="bot-died", container="pmm-bot",
                summary="The bot `pmm-bot` died.",
                excerpt="Error <!channel> see <https://evil.example|here> & more")
    steps = [("acting", 1, "Detected, fixing"), ("failed", 1, "Fix failed, will try again"),
             ("acting", 2, "Fixing again (attempt 2)"), ("failed", 2, "Fix failed, will try again"),
             ("acting", 3, "Fixing again (attempt 3)"), ("gave-up", 3, "Gave up: a human is needed")]
    out, told = [], []
    for step, attempt, headline in steps:
        m = Message(step=step, attempt=attempt, headline=headline, title=headline, at=time.time(),
                    outcome="the container exited again" if step == "failed" else "", **base)
        m.steps = list(told)
        told.append(m.as_step())
        out.append(m)
    return out


def test_the_six_message_story_is_one_edited_slack_message_and_one_for_the_person(fake, tmp_path):
    store = State(tmp_path / "state.db")
    t = transport(fake)
    living = LivingMessages(store, t, "slack-target",
                            buttons=lambda inc: [Button("Retry", f"retry:{inc}:tok")])
    steps = story()
    for m in steps[:5]:
        living.deliver(m)
    assert fake.methods() == ["chat.postMessage"] + ["chat.update"] * 4
    (first,) = fake.messages.values()
    assert "Fixing again (attempt 3)" in first.current and "Steps so far" in first.current
    assert first.current.count("Fix failed, will try again") == 2
    assert first.buttons() == [("Retry", "retry:7:tok")]
    # the hostile line arrives as entities: no mention, no link
    assert "&lt;!channel&gt;" in first.current
    assert "&lt;https://evil.example|here&gt; &amp; more" in first.current
    assert "<!channel>" not in first.current and "<https://" not in first.current
    living.deliver(steps[5])  # a person is needed: a message that rings
    assert fake.methods()[-1] == "chat.postMessage" and len(fake.messages) == 2
    assert (living.posted, living.edited) == (2, 4)
    last = fake.messages[store.chat.where("7", "slack-target")[1]]
    assert "Gave up" in last.current and last.current.count("Fixing again") == 2

    # the message deleted meanwhile: the next step posts a new one and edits that from then on
    fake.delete(last.ts)
    living.deliver(Message(incident="7", step="resolved", severity="critical", rule="bot-died",
                           container="pmm-bot", title="Fixed", summary="It runs again.", at=time.time()))
    assert fake.methods()[-2:] == ["chat.update", "chat.postMessage"] and len(fake.messages) == 3
    assert store.chat.where("7", "slack-target")[1] not in (first.ts, last.ts)


# -- wired as the agent wires it: the notifier's outbox, the living messages, the listener ----------

@contextmanager
def slack_bed(path, fake: FakeSlack, operator=None, redactor: Redactor | None = None):
    """The real notifier and outbox with the Slack chat that MEDIC_CHAT=slack builds, and its
    listener handing presses and commands to `operator`."""
    settings = Settings(chat=["slack"], slack_bot_token=fake.bot_token, slack_app_token=fake.app_token,
                        slack_channel=fake.channel, slack_api_url=fake.api_url)
    store, redactor = State(path), redactor or Redactor()
    channels = build(settings.chat, store, [], redactor, operator, telegram_api_url="", settings=settings)
    notifier = Notifier(store, channels.targets, rules=lambda: RULES, redactor=redactor, chats=channels.chats)
    parts = [notifier, *channels.listeners]
    for part in parts:
        part.start()
    try:
        yield store, notifier, channels
    finally:
        for part in reversed(parts):
            part.stop(time.monotonic() + 5)


def tell(notifier: Notifier, inc, story=STORY) -> None:
    for step, attempt, text in story:
        inc.attempts = attempt
        notifier.step(inc, step, text)


def drained(store: State) -> bool:
    counts = store.outbox.counts()
    return not counts.get("pending") and not counts.get("folded")


def test_wired_the_story_is_one_edited_message_and_a_press_on_it_reaches_the_operator(fake, tmp_path):
    op = OperatorDouble()
    with slack_bed(tmp_path / "s.db", fake, op) as (store, notifier, channels):
        tell(notifier, incident(store, "story001"))
        wait_until(lambda: drained(store) and len(fake.messages) == 2, 20, "every step delivered")
        living, needs_you = fake.messages.values()
        assert fake.methods().count("chat.update") == 4 and len(living.edits) == 4
        assert living.current.startswith("*[CRITICAL] Fixing again (attempt 3)")
        assert needs_you.current.startswith("*[CRITICAL] Gave up: a human is needed")
        assert needs_you.current.count("Fix failed, will try again") == 2
        assert needs_you.buttons() == [("Fix now", "fix:story001:t0k3n"), ("Ignore", "ignore:story001:t0k3n")]
        assert store.chat.where("story001", channels.targets[0].id) == (fake.channel, needs_you.ts)
        fake.wait_connected()
        fake.wait_ack(fake.press(ALICE, "fix:story001:t0k3n", ts=needs_you.ts))
        answer = fake.wait_ephemeral(1)[0]
    assert [(w.user, d) for w, d, _ in op.presses] == [(ALICE, "fix:story001:t0k3n")]
    assert answer["user"] == ALICE and answer["text"] == "fix incident story001: done"
    assert store.outbox.counts() == {"sent": 6}


def test_wired_retry_after_is_honoured_and_each_step_lands_once_in_order(fake, tmp_path):
    with slack_bed(tmp_path / "s.db", fake) as (store, notifier, _):
        inc = incident(store, "rl000001")
        tell(notifier, inc, STORY[:1])
        wait_until(lambda: len(fake.messages) == 1 and drained(store), 15, "the first message")
        fake.limit("chat.update", 3)
        limited_at = time.time()
        tell(notifier, inc, STORY[1:4])
        wait_until(lambda: drained(store), 30, "every edit after the rate limit")
    updates = [c for c in fake.calls if c["method"] == "chat.update"]
    assert [c["status"] for c in updates] == [429, 200, 200, 200]  # asked once, then waited
    assert min(c["at"] for c in updates if c["status"] == 200) >= limited_at + 2.5
    (message,) = fake.messages.values()
    assert [e["text"].split("\n")[0].split(":")[0] for e in message.edits] == [
        "*[CRITICAL] Fix failed, will try again", "*[CRITICAL] Fixing again (attempt 2)",
        "*[CRITICAL] Fix failed, will try again"]
    assert store.outbox.counts() == {"sent": 4}


def test_wired_tokens_stay_out_of_the_log_and_the_state(fake, tmp_path):
    out = io.StringIO()
    redactor = Redactor()
    logs.setup("text", redactor, level="DEBUG", stream=out)
    try:
        with slack_bed(tmp_path / "s.db", fake, OperatorDouble(), redactor=redactor) as (store, notifier, _):
            tell(notifier, incident(store, "tok00001"), STORY[:2])
            wait_until(lambda: drained(store), 15, "delivered")
            fake.wait_connected()
            fake.wait_ack(fake.command(ALICE, "status"))
            fake.wait_ephemeral(1)
            logging.getLogger("test").info("the bot token is %s", fake.bot_token)  # masked if ever said
    finally:
        logs.setup("text", Redactor(), level="INFO")
    text = out.getvalue()
    assert "the bot token is ***" in text
    state = (tmp_path / "s.db").read_bytes()
    for secret in (fake.bot_token, fake.app_token):
        assert secret not in text and secret.encode() not in state


# -- doctor ------------------------------------------------------------------------------------------

def _doctor(monkeypatch, fake: FakeSlack, users: str, send: bool, *, bot: str | None = None,
            app: str | None = None, channel: str | None = None, api: str | None = None) -> tuple[int, str]:
    monkeypatch.setenv("MEDIC_CHAT", "slack")
    monkeypatch.setenv("MEDIC_SLACK_BOT_TOKEN", bot if bot is not None else fake.bot_token)
    monkeypatch.setenv("MEDIC_SLACK_APP_TOKEN", app if app is not None else fake.app_token)
    monkeypatch.setenv("MEDIC_SLACK_CHANNEL", channel or fake.channel)
    monkeypatch.setenv("MEDIC_SLACK_API_URL", api or fake.api_url)
    monkeypatch.setenv("MEDIC_CHAT_SLACK_USERS", users)
    out = io.StringIO()
    code = doctor.run(send=send, out=out, checks=[lambda d: doctor.slack_chat(d, wait=10)])
    return code, out.getvalue()


def test_doctor_checks_the_slack_chat_and_its_test_button_comes_back(monkeypatch, fake):
    def press_when_posted():
        wait_until(lambda: fake.messages, 10, "the test message")
        message = next(iter(fake.messages.values()))
        fake.wait_connected()
        fake.press(ALICE, message.buttons()[0][1], ts=message.ts)

    presser = threading.Thread(target=press_when_posted, daemon=True)
    presser.start()
    code, out = _doctor(monkeypatch, fake, ALICE, send=True)
    presser.join(5)
    assert code == 0, out
    assert "✓ slack chat: bot hb-medic in workspace Fake (bot token valid)" in out
    assert "✓ slack chat: the app-level token opens Socket Mode" in out
    assert f"✓ slack chat: channel {fake.channel} (#medic): reachable" in out
    assert "✓ slack chat: 1 allowed user may press and command" in out
    assert f"✓ slack chat: the press came back, from user-u0alice (user id {ALICE})" in out
    (message,) = fake.messages.values()
    assert message.buttons() == [] and "came back" in message.current  # the test button taken away
    assert fake.wait_ephemeral(1)[0]["text"] == "hb-medic got it"
    assert fake.bot_token not in out and fake.app_token not in out


def test_doctor_says_what_to_fix_for_slack(monkeypatch, fake):
    code, out = _doctor(monkeypatch, fake, "", send=False, bot="xoxb-not-the-token", app="xapp-not-the-token")
    assert code == 1, out
    assert "✗ slack chat: the bot token was refused (slack auth.test: invalid_auth)" in out
    assert "Bot User OAuth Token" in out and "medic_slack_bot_token" in out
    assert "✗ slack chat: the app-level token cannot open Socket Mode (slack apps.connections.open:" \
           " invalid_auth)" in out and "connections:write" in out
    assert "✗ slack chat: no allowed users" in out and "MEDIC_CHAT_SLACK_USERS" in out
    code, out = _doctor(monkeypatch, fake, ALICE, send=False, bot=fake.app_token, app=fake.bot_token)
    assert "not a bot token (they start with xoxb-)" in out and "not an app-level token" in out
    code, out = _doctor(monkeypatch, fake, ALICE, send=False, channel="C0ELSEWHERE")
    assert code == 1 and "✗ slack chat: channel C0ELSEWHERE is not reachable by the bot" in out, out
    assert "/invite" in out
    code, out = _doctor(monkeypatch, fake, ALICE, send=True)
    assert code == 1 and "✗ slack chat: no press of the test button within 10 s" in out, out
    code, out = _doctor(monkeypatch, fake, ALICE, send=False, api="http://127.0.0.1:9/api/")
    assert code == 1 and "cannot be reached" in out and "MEDIC_SLACK_API_URL" in out
    assert "not-the-token" not in out and fake.bot_token not in out


def test_doctor_says_which_slack_setting_is_missing(monkeypatch, fake):
    monkeypatch.setenv("MEDIC_CHAT", "slack")
    for name in ("MEDIC_SLACK_BOT_TOKEN", "MEDIC_SLACK_APP_TOKEN", "MEDIC_SLACK_CHANNEL"):
        monkeypatch.delenv(name, raising=False)
    out = io.StringIO()
    assert doctor.run(out=out, checks=[doctor.slack_chat]) == 1
    for name in ("MEDIC_SLACK_BOT_TOKEN", "MEDIC_SLACK_APP_TOKEN", "MEDIC_SLACK_CHANNEL"):
        assert f"✗ slack chat: {name} is not set" in out.getvalue()


def test_wired_a_stop_ends_the_listener_at_once_and_health_tells_a_lost_connection(fake, tmp_path):
    with slack_bed(tmp_path / "s.db", fake, OperatorDouble()) as (_, _, channels):
        (listener,) = channels.listeners
        fake.wait_connected()
        wait_until(lambda: not listener.transport.problem, 5, "connected")
        fake.stop()  # Slack gone: the connection drops and cannot be opened again
        wait_until(lambda: listener.transport.problem, 10, "the lost connection noticed")
        assert listener.health() == []  # told only after a while (UNREACHABLE)
        listener.transport.problem_since -= 3600
        assert listener.health() and "Socket Mode is not connected" in listener.health()[0]
        start = time.monotonic()
        listener.stop(time.monotonic() + 2)
        assert time.monotonic() - start < 2.5 and not listener.loop.alive


@pytest.mark.docker
def test_the_agent_keeps_one_slack_message_per_incident_and_hands_presses_to_its_operator(
        make_stack, tmp_path, fake):
    """The whole agent (in this process) with MEDIC_CHAT=slack against the stand-in: the seed
    incident is one Slack message, posted then edited to Fixed; a press on it reaches the operator
    and its answer the presser; neither token is in /healthz or the start-up summary."""
    from agent.service import Service

    stack = make_stack()
    operator = OperatorDouble()
    settings = Settings(
        containers=[stack.prefix + "hummingbot-api"], state_db=tmp_path / "state.db",
        rules_dir=prefixed_rules(stack.prefix, tmp_path / "rules"), hummingbot_url=stack.url,
        catchup_window=120, bots="off", bot_settle=2, recorder_addr=f"127.0.0.1:{free_port()}",
        chat=["slack"], slack_bot_token=fake.bot_token, slack_app_token=fake.app_token,
        slack_channel=fake.channel, slack_api_url=fake.api_url, chat_slack_users=[ALICE])
    service = Service(settings, operator=operator)
    service.start()
    try:
        body = {"instance_name": stack.unique("chat"), "credentials_profile": "client_chat", "headless": True}
        with httpx.Client(base_url=f"http://{settings.recorder_addr}", auth=ADMIN, timeout=60) as c:
            assert c.post("/bot-orchestration/deploy-v2-script", json=body).status_code == 500
        wait_until(lambda: any(m.current.startswith("*[CRITICAL] Fixed") for m in fake.messages.values()),
                   90, "the incident's message edited to Fixed")
        # the stand-in's default login is an incident of its own (a warning): its own message
        (message,) = [m for m in fake.messages.values() if "credentials profile client_chat" in m.text]
        fake.wait_connected()
        fake.wait_ack(fake.press(ALICE, message.buttons()[0][1], ts=message.ts))
        answer = fake.wait_ephemeral(1)[0]
        report = json.dumps(service.report()[1])
        summary = "\n".join(service.summary())
    finally:
        service.stop()
    assert message.edits and message.text.startswith("*[CRITICAL] Detected, fixing")
    assert operator.presses[0][1].startswith("fix:") and answer["text"].startswith("fix incident")
    assert f"chat: slack, channel {fake.channel}" in summary
    for secret in (fake.bot_token, fake.app_token):
        assert secret not in report and secret not in summary
