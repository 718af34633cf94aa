"""Folding in the outbox, and the steps a message carries: an apprise target is not sent the
intermediate steps of an incident one by one; the next message tells them, or they are sent
as they are after their bound."""

from __future__ import annotations

import time

import pytest

from agent.chat.channels import ChatSetupError, build
from agent.notify.message import Message
from agent.notify.notifier import Notifier, folded
from agent.notify.render import text
from agent.notify.targets import parse_urls
from agent.redact import Redactor
from agent.state import State
from tests.chatbed import RULES, STORY, incident


def notifier(store: State, **kw) -> Notifier:
    """Not started: what it queues is read from the outbox."""
    return Notifier(store, parse_urls("json://127.0.0.1:9/x"), rules=lambda: RULES, redactor=Redactor(), **kw)


def statuses(store: State) -> list[tuple[str, str]]:
    rows = store.file.conn().execute("SELECT message, status FROM outbox ORDER BY id").fetchall()
    return [(Message.from_json(m).headline, s) for m, s in rows]


def test_intermediate_steps_wait_and_the_final_message_tells_them(tmp_path):
    store = State(tmp_path / "s.db")
    n = notifier(store)
    inc = incident(store, "fold0001")
    for step, attempt, detail in STORY:
        inc.attempts = attempt
        n.step(inc, step, detail)
    assert statuses(store) == [
        ("Detected, fixing", "pending"), ("Fix failed, will try again", "folded-in"),
        ("Fixing again (attempt 2)", "folded-in"), ("Fix failed, will try again", "folded-in"),
        ("Fixing again (attempt 3)", "folded-in"), ("Gave up: a human is needed", "pending")]
    rows = store.file.conn().execute("SELECT message FROM outbox ORDER BY id").fetchall()
    first, final = Message.from_json(rows[0][0]), Message.from_json(rows[-1][0])
    assert final.folded == 4 and len(final.steps) == 5
    assert final.steps[1].endswith("Fix failed, will try again: \ue000retry_deploy: answered 500 (Internal"
                                   " Server Error); next attempt in 5 s\ue001")
    body = text(final)[1]
    assert "Steps so far:" in body and "- " + final.steps[0][:8] in body
    assert first.steps == [] and "Steps so far" not in text(first)[1]  # today's first message


def test_a_folded_step_is_released_after_its_bound_before_what_came_later(tmp_path):
    store = State(tmp_path / "s.db")
    n = notifier(store, fold_for=0.2)
    inc = incident(store, "fold0002")
    for step, attempt, detail in STORY[:3]:
        inc.attempts = attempt
        n.step(inc, step, detail)
    assert [s for _, s in statuses(store)] == ["pending", "folded", "folded"]
    assert store.outbox.release_folded(time.time()) == 0  # not yet
    time.sleep(0.3)
    assert store.outbox.release_folded(time.time()) == 2
    due = [Message.from_json(r[4]).headline for r in store.outbox.due(time.time())]
    assert due == ["Detected, fixing"]  # one incident's messages one at a time, oldest first
    assert [s for _, s in statuses(store)] == ["pending", "pending", "pending"]


def test_only_intermediate_steps_fold():
    def msg(step: str, attempt: int) -> Message:
        return Message(incident="i", step=step, severity="error", rule="r", container="c", title="t",
                       summary="s", attempt=attempt)

    assert folded(msg("failed", 1)) and folded(msg("acting", 2))
    assert not folded(msg("acting", 1)) and not folded(msg("gave-up", 3)) and not folded(msg("resolved", 2))
    assert not folded(Message(incident="", step="failed", severity="e", rule="r", container="c", title="t",
                              summary="s"))


def test_a_step_told_again_is_not_a_step_of_its_own(tmp_path):
    store = State(tmp_path / "s.db")
    n = notifier(store)
    inc = incident(store, "fold0003", attempts=1)
    n.step(inc, *STORY[0][::2])
    n.step(inc, *STORY[0][::2])  # a restart resumed the attempt
    inc.attempts = 3
    n.step(inc, "gave-up", "retry_deploy answered 500 (after 3 attempts)")
    final = Message.from_json(store.file.conn().execute("SELECT message FROM outbox ORDER BY id DESC")
                              .fetchone()[0])
    assert len(final.steps) == 1 and final.steps[0].endswith("Detected, fixing")


def test_the_chat_needs_a_telegram_target(tmp_path):
    store = State(tmp_path / "s.db")
    with pytest.raises(ChatSetupError, match="no notify target is a Telegram one"):
        build(["telegram"], store, parse_urls("json://127.0.0.1:9/x"), Redactor(), None,
              telegram_api_url="http://127.0.0.1:9")
    redactor = Redactor()
    token = "123456789:AAHsecret-part-of-the-token-000000"
    targets = parse_urls(f"tgram://{token}/-100123,json://127.0.0.1:9/x")
    channels = build(["telegram"], store, targets, redactor, None, telegram_api_url="http://127.0.0.1:9")
    assert len(channels.chats) == 1 and channels.listeners == []  # no operator: messages only
    assert redactor.text(f"the token {token}") == "the token ***"
    assert build([], store, parse_urls(f"tgram://{token}/-100123"), redactor, None,
                 telegram_api_url="http://127.0.0.1:9").chats == {}
