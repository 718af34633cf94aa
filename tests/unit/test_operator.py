"""The chat's operator over a real state file: who may answer, single-use buttons, replays and
forgeries, expiry, refusals when the incident changed, and the audit trail of every answer."""

from __future__ import annotations

import time

import pytest

from agent import templates
from agent.chat.decisions import Decisions, duration
from agent.chat.operator import Operator
from agent.chat.transport import Who
from agent.records import Incident, IncidentState
from agent.redact import Redactor
from agent.remedy.decisions import plan_of
from agent.remedy.journal import Journal
from agent.state import State
from tests.unit.test_remedy_decisions import RULES

RULE = RULES["credentials-profile-missing"]
ALICE = Who("telegram", "1001", "-500", "alice")
MALLORY = Who("telegram", "666", "-500", "mallory")
BOB = Who("slack", "U0BOB", "C01", "bob")


@pytest.fixture
def world(tmp_path):
    store = State(tmp_path / "state.db")
    told: list[tuple[str, str, str]] = []
    woken: list[tuple[str, str]] = []
    op = Decisions(store, lambda: RULES, allowed={"telegram": ["1001"], "slack": {"U0BOB"}}, ttl=3600,
                   redactor=Redactor(["hunter2-secret-value"]),
                   notify=lambda inc, step, text: told.append((inc.id, step, text)),
                   wake=lambda stack, inc: woken.append((stack, inc)))
    return store, op, told, woken


def asking(store: State, ident: str = "abcd1234", *, expires: float | None = None) -> Incident:
    inc = Incident(id=ident, rule=RULE.id, key="client_sharp", state=IncidentState.DETECTED,
                   severity="critical", container="hummingbot-api", summary="s", fingerprint="f",
                   captures={"profile": "client_sharp"})
    store.incidents.create(inc)
    plan = plan_of(RULE, templates.incident_values(inc))
    Journal(store, lambda *a: None, Redactor()).ask(inc, plan, expires or time.time() + 3600)
    return inc


def data(op: Decisions, inc: str, choice: str) -> str:
    return next(b.data for b in op.buttons(inc) if b.data.startswith(choice + ":"))


def test_it_is_an_operator_and_its_buttons_fit_telegram(world):
    store, op, _, _ = world
    checked: Operator = op  # the protocol the transports call
    assert all(callable(getattr(checked, name)) for name in ("press", "command", "buttons"))
    inc = asking(store)
    buttons = op.buttons(inc.id)
    assert [b.label for b in buttons] == ["Fix now", "Ignore", "Silence 1 h"]
    assert all(len(b.data.encode()) <= 64 and b.data.split(":")[1] == inc.id for b in buttons)
    assert op.buttons(inc.id) == buttons  # drawn again: the same live tokens
    assert op.buttons("nope") == []


def test_an_allowed_fix_approves_once_and_a_replay_does_nothing(world):
    store, op, _, woken = world
    inc = asking(store)
    press = data(op, inc.id, "fix")
    answer = op.press(ALICE, press)
    assert answer.startswith(f"Fixing incident {inc.id}: ensure_account(profile='client_sharp')"), answer
    assert woken == [("default", inc.id)]
    assert store.approvals.get(inc.id).approved_by == "telegram user 1001"
    again = op.press(ALICE, press)
    assert "pressed already" in again or "approved already" in again, again
    assert woken == [("default", inc.id)]  # nothing more happened
    assert store.approvals.start(inc.id) and store.incidents.get(inc.id).state == IncidentState.DETECTED
    assert "is detected now" in op.press(ALICE, press)
    trail = [a for a in store.incidents.audit_trail(inc.id) if a["kind"] == "chat"]
    assert [a["name"] for a in trail] == ["press fix"] * 3
    assert trail[0]["params"] == {"service": "telegram", "user": "1001", "chat": "-500", "name": "alice"}
    assert trail[0]["result"].startswith("Fixing incident")


def test_someone_not_listed_gets_not_allowed_and_nothing_else(world, caplog):
    store, op, told, woken = world
    inc = asking(store)
    press = data(op, inc.id, "fix")
    before = store.incidents.audit_trail(inc.id)
    with caplog.at_level("WARNING", logger="agent.chat"):
        assert op.press(MALLORY, press) == "not allowed"
        assert op.command(MALLORY, "fix " + inc.id) == "not allowed"
        assert op.command(Who("slack", "1001", "C9"), "status") == "not allowed"  # another service's id
    assert len([r for r in caplog.records if "not allowed" in r.getMessage()]) == 3
    assert store.incidents.audit_trail(inc.id) == before and not told and not woken
    assert store.incidents.get(inc.id).state == IncidentState.AWAITING_APPROVAL
    assert op.press(ALICE, press).startswith("Fixing")  # the token is still good for an allowed person


def test_forged_and_other_incidents_tokens_do_nothing(world):
    store, op, _, woken = world
    one, two = asking(store, "aaaa1111"), asking(store, "bbbb2222")
    token = data(op, one.id, "fix").split(":")[2]
    assert "not a valid button" in op.press(ALICE, f"fix:{two.id}:{token}")  # one's token, two's id
    assert "not a valid button" in op.press(ALICE, f"fix:{one.id}:{'x' * 16}")
    assert "not a valid button" in op.press(ALICE, f"ignore:{one.id}:{token}")  # another choice's
    assert "not a button of hb-medic" in op.press(ALICE, "fix:zzzz9999:abc")
    assert "not a button of hb-medic" in op.press(ALICE, "garbage")
    assert not woken
    waiting = IncidentState.AWAITING_APPROVAL
    assert store.incidents.get(one.id).state == store.incidents.get(two.id).state == waiting


def test_an_expired_approval_is_refused_and_the_incident_expires(world):
    store, op, _, woken = world
    inc = asking(store, expires=time.time() - 1)
    assert op.press(ALICE, data(op, inc.id, "fix")).startswith("expired")
    assert op.command(BOB, f"fix {inc.id}").startswith("expired")
    assert store.approvals.expiring(time.time(), "default") == [inc.id]
    assert store.approvals.expire(inc.id)
    assert store.incidents.get(inc.id).state == IncidentState.EXPIRED
    assert op.command(BOB, f"fix {inc.id}").startswith("expired") and not woken
    assert op.buttons(inc.id) == []


def test_a_button_older_than_its_time_to_live_has_expired(world):
    store, op, _, _ = world
    inc = asking(store)
    press = data(op, inc.id, "fix")
    with store.file.transaction() as conn:
        conn.execute("UPDATE chat_tokens SET created = created - 7200")
    assert "expired" in op.press(ALICE, press)


def test_an_approval_of_an_incident_that_closed_or_changed_is_refused_with_the_reason(world):
    store, op, _, woken = world
    inc = asking(store)
    press = data(op, inc.id, "fix")
    assert store.approvals.ignore(inc.id)  # someone else closed it meanwhile
    answer = op.press(ALICE, press)
    assert answer.startswith(f"refused: incident {inc.id} is observed now (will run: ensure_account"), answer
    assert answer.endswith("; nothing to approve")
    other = asking(store, "cccc3333")
    store.approvals.replan(other.id, ["something_else()"])  # the rule planned otherwise when it asked
    answer = op.command(BOB, f"fix {other.id}")
    assert answer.startswith("refused: the rule changed since it asked"), answer
    assert not woken
    assert op.command(BOB, f"fix {other.id}").startswith("Fixing")  # the new plan, knowingly


def test_ignore_closes_it_with_who_in_the_trail_and_tells(world):
    store, op, told, woken = world
    inc = asking(store)
    assert op.press(BOB, data(op, inc.id, "ignore")) == f"Ignored incident {inc.id}: nothing was done"
    after = store.incidents.get(inc.id)
    assert after.state == IncidentState.OBSERVED and after.closed
    assert after.detail == "ignored by slack user U0BOB: nothing was done"
    assert told[-1][:2] == (inc.id, "ignored")
    assert op.buttons(inc.id) == []
    assert op.command(BOB, f"fix {inc.id}").startswith("refused") and not woken


def test_retry_reopens_a_gave_up_incident_once(world):
    store, op, _, woken = world
    inc = asking(store)
    store.approvals.ignore(inc.id)
    assert op.command(ALICE, f"retry {inc.id}").startswith("refused: incident")  # not gave-up
    inc = store.incidents.get(inc.id)
    inc.state, inc.closed = IncidentState.GAVE_UP, time.time()
    store.incidents.save(inc)
    assert [b.label for b in op.buttons(inc.id)] == ["Retry", "Silence 1 h"]
    press = data(op, inc.id, "retry")
    assert op.press(ALICE, press) == f"Retrying incident {inc.id}: a new attempt now"
    after = store.incidents.get(inc.id)
    assert after.state == IncidentState.FAILED and after.closed is None and after.next_attempt <= time.time()
    assert woken == [("default", inc.id)]
    assert op.press(ALICE, press).startswith("refused") and woken == [("default", inc.id)]


def test_silence_mutes_a_rule_or_an_incident_and_unsilence_ends_it(world):
    store, op, _, _ = world
    inc = asking(store)
    assert op.press(ALICE, data(op, inc.id, "silence")).startswith(f"Silenced incident {inc.id}")
    assert store.silences.covers(RULE.id, "client_sharp", "default") is not None
    assert store.silences.covers(RULE.id, "other_profile", "default") is None
    assert store.incidents.get(inc.id).state == IncidentState.AWAITING_APPROVAL  # a mute, not a decision
    assert op.command(BOB, "silence bot-died 30m").startswith("Silenced rule bot-died for 30 min")
    assert store.silences.covers("bot-died", "any", "eu-1") is not None
    assert op.command(BOB, "silence bot-died soon").startswith("usage")
    assert op.command(BOB, "silence no-such-thing 1h").startswith("no rule or incident")
    assert "silenced:" in op.command(BOB, "status")
    assert op.command(BOB, "unsilence bot-died") == "Unsilenced rule bot-died"
    assert op.command(BOB, "unsilence").startswith("Unsilenced everything (1 silence)")
    assert store.silences.active() == []
    assert (duration("1h"), duration("30m"), duration("2d"), duration("x")) == (3600, 1800, 172800, None)


def test_commands_answer_short_and_never_show_a_secret(world):
    store, op, _, _ = world
    inc = asking(store)
    inc.detail = "password=hunter2-secret-value failed"
    store.incidents.save(inc)
    for text in ("help", "/status", "incidents", f"incident {inc.id}", "status@medic_bot", "what", ""):
        answer = op.command(ALICE, text)
        assert answer and len(answer.splitlines()) <= 12 and "hunter2" not in answer, (text, answer)
    assert inc.id in op.command(ALICE, "incidents")
    assert "awaiting-approval" in op.command(ALICE, "status")
    assert op.command(ALICE, "incident nope").startswith("no incident")
    assert all("hunter2" not in str(a) for a in store.incidents.audit_trail(inc.id))
    assert any(a["name"] == f"incident {inc.id}" for a in store.incidents.audit_trail(inc.id))


def test_a_silenced_incident_sends_no_message_and_its_neighbours_still_do(world):
    from agent.notify.notifier import Notifier
    from agent.notify.targets import parse_urls

    store, op, _, _ = world
    notifier = Notifier(store, parse_urls("json://127.0.0.1:9/"), rules=lambda: RULES, redactor=Redactor())
    quiet, loud = asking(store, "dddd4444"), asking(store, "eeee5555")
    with store.file.transaction() as conn:  # another key of the rule: another failure
        conn.execute("UPDATE incidents SET key = ? WHERE id = ?", ("another_profile", loud.id))
    assert op.command(ALICE, f"silence {quiet.id} 1h").startswith("Silenced incident")
    for inc in (quiet, store.incidents.get(loud.id)):
        notifier.step(inc, "awaiting-approval", inc.detail)
    assert store.outbox.counts() == {"pending": 1}
    assert store.outbox.of_incident(loud.id, list(notifier.targets)) and \
        not store.outbox.of_incident(quiet.id, list(notifier.targets))
    op.command(ALICE, f"unsilence {quiet.id}")
    notifier.step(quiet, "awaiting-approval", quiet.detail)
    assert store.outbox.counts() == {"pending": 2}


def test_answers_show_in_hb_medic_incidents_and_its_json(world, tmp_path):
    import json
    import os
    import subprocess
    import sys

    store, op, _, _ = world
    inc = asking(store)
    op.press(BOB, data(op, inc.id, "ignore"))
    env = {**os.environ, "MEDIC_STATE_DB": str(tmp_path / "state.db")}
    run = [sys.executable, "-m", "agent", "incidents"]
    text = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    assert "chat     press ignore" in text and '"user": "U0BOB"' in text and "Ignored incident" in text
    assert "ignored by slack user U0BOB: nothing was done" in text
    (line,) = subprocess.run([*run, "--json"], env=env, capture_output=True, text=True, timeout=60,
                             check=True).stdout.splitlines()
    chat = [a for a in json.loads(line)["audit"] if a["kind"] == "chat"]
    assert chat[0]["params"] == {"service": "slack", "user": "U0BOB", "chat": "C01", "name": "bob"}
    assert chat[0]["result"] == f"Ignored incident {inc.id}: nothing was done" and chat[0]["at"] > 0
