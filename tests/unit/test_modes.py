"""The modes (act, observe, ask; enforce the old name of act) and the rules that always ask."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.match.library import load_library
from agent.remedy import decisions
from agent.remedy.decisions import First
from agent.settings import Settings
from tests.unit.test_remedy_decisions import result

CHAT_DOC = Path(__file__).resolve().parents[2] / "docs" / "chat.md"


@pytest.mark.parametrize(("given", "mode"), [("enforce", "act"), ("act", "act"), ("ask", "ask"),
                                             ("observe", "observe")])
def test_the_modes_and_the_old_name(monkeypatch, given, mode):
    monkeypatch.setenv("MEDIC_MODE", given)
    assert Settings().mode == mode


def test_the_default_mode_acts_and_approvals_expire_after_an_hour(monkeypatch):
    monkeypatch.delenv("MEDIC_MODE", raising=False)
    assert (Settings().mode, Settings().approval_ttl) == ("act", 3600.0)


def test_allowed_users_are_ids(monkeypatch):
    monkeypatch.setenv("MEDIC_CHAT_TELEGRAM_USERS", "1001, 1002")
    monkeypatch.setenv("MEDIC_CHAT_SLACK_USERS", "U0BOB")
    s = Settings()
    assert (s.chat_telegram_users, s.chat_slack_users) == (["1001", "1002"], ["U0BOB"])
    monkeypatch.setenv("MEDIC_CHAT_SLACK_USERS", "U0BOB,<script>")
    with pytest.raises(ValueError, match="is not a Slack user id"):
        Settings()
    monkeypatch.setenv("MEDIC_CHAT_SLACK_USERS", "U0BOB")
    monkeypatch.setenv("MEDIC_CHAT_TELEGRAM_USERS", "1001,<script>")
    with pytest.raises(ValueError, match="is not a user id"):
        Settings()


def test_ask_waits_observe_wins_and_a_rule_may_always_ask():
    res = result()
    plan = decisions.plan(res)
    assert decisions.first_step(res, plan, age=0, stale_after=60, observe=False, ask=True) == First.ASK
    assert decisions.first_step(res, plan, age=0, stale_after=60, observe=True, ask=True) == First.OBSERVE
    assert decisions.first_step(res, [], age=0, stale_after=60, observe=False, ask=True) == First.TELL
    asking = result()
    asking.rule = res.rule.model_copy(update={"ask": True})
    assert decisions.first_step(asking, plan, age=0, stale_after=60, observe=False) == First.ASK
    assert decisions.plan_of(res.rule, res.values) == plan


def test_the_docs_list_exactly_the_shipped_rules_that_ask():
    text = CHAT_DOC.read_text()
    table = text[text.index("The shipped rules that always ask"):text.index("**Fix now** (or the command")]
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \|", table, re.M))
    asking = {r.id for r in load_library(None).rules if r.ask}
    assert listed == asking and asking
