"""Ask mode end to end against the stand-in stack, the operator called as a transport calls it:
the seed incident waits with its plan, a listed person's Fix now runs it (the bot lives), anyone
else's does nothing; a pending approval survives a kill -9 of the agent and is approved after the
restart; an approval nobody gives expires and nothing is done."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from agent.chat.decisions import Decisions
from agent.chat.transport import Who
from agent.match.library import load_library
from agent.redact import Redactor
from agent.state import State
from tests.receiver import Receiver
from tests.stack import REPO, free_port, prefixed_rules, wait_until
from tests.test_stop import RULE, _listening, bots, deploy, query

pytestmark = pytest.mark.docker
ALICE = Who("telegram", "1001", "-500", "alice")
MALLORY = Who("telegram", "666", "-500", "mallory")


def fix_button(op, incident: str) -> str:
    return next(b.data for b in op.buttons(incident) if b.data.startswith("fix:"))


def test_in_ask_mode_the_seed_waits_and_only_an_allowed_fix_runs_it(make_stack, driven_agent):
    stack = make_stack()
    with Receiver() as rx:
        service = driven_agent(stack, drive=False, mode="ask", chat_telegram_users=["1001"],
                               notify_urls=rx.url)
        name = stack.unique("ask")
        assert deploy(service.settings.recorder_addr, instance_name=name,
                      credentials_profile="client_ask").status_code == 500
        inc = wait_until(lambda: next((i for i in service.store.incidents.recent(5)
                                       if i.rule == RULE and i.state == "awaiting-approval"), None), 60,
                         "the incident awaiting approval")
        wait_until(lambda: any("Needs your approval" in t for t in rx.titles()), 30, "the plan's message")
        msg = next(m for m in rx.accepted if "Needs your approval" in m["title"])
        assert "ensure_account(profile='client_ask')" in msg["message"] and "retry_deploy" in msg["message"]
        time.sleep(2)
        assert bots(stack, name) == [] and service.store.incidents.get(inc.id).attempts == 0
        press = fix_button(service.operator, inc.id)
        assert service.operator.press(MALLORY, press) == "not allowed"
        assert service.operator.command(MALLORY, f"fix {inc.id}") == "not allowed"
        time.sleep(2)
        assert service.store.incidents.get(inc.id).state == "awaiting-approval" and bots(stack, name) == []
        answer = service.operator.press(ALICE, press)
        assert answer.startswith(f"Fixing incident {inc.id}: ensure_account"), answer
        wait_until(lambda: service.store.incidents.get(inc.id).state == "resolved", 90, "the fix")
        assert [c.status for c in bots(stack, name)] == ["running"]
        assert "pressed already" in service.operator.press(ALICE, press) or \
            "refused" in service.operator.press(ALICE, press)
        trail = service.store.incidents.audit_trail(inc.id)
        names = [(a["kind"], a["name"]) for a in trail]
        assert names.index(("chat", "press fix")) < names.index(("decision", "approved")) \
            < names.index(("attempt", "attempt 1 of 3"))
        assert next(a["params"]["user"] for a in trail if a["kind"] == "chat") == "1001"
        assert sum(1 for n in names if n == ("attempt", "attempt 1 of 3")) == 1
        wait_until(lambda: any("Fixed" in t for t in rx.titles()), 30,
                   "the fixed message")


def test_an_approval_nobody_gives_expires_and_nothing_is_done(make_stack, driven_agent):
    stack = make_stack()
    service = driven_agent(stack, drive=False, mode="ask", approval_ttl=3, chat_telegram_users=["1001"])
    name = stack.unique("expire")
    assert deploy(service.settings.recorder_addr, instance_name=name,
                  credentials_profile="client_expire").status_code == 500
    inc = wait_until(lambda: next((i for i in service.store.incidents.recent(5) if i.rule == RULE), None), 60,
                     "the incident")
    press = wait_until(lambda: service.operator.buttons(inc.id) and fix_button(service.operator, inc.id), 30,
                       "its buttons")
    done = wait_until(lambda: (i := service.store.incidents.get(inc.id)).state == "expired" and i, 30,
                      "expiry")
    assert done.detail == "nobody approved it within 3 s: nothing was done" and done.attempts == 0
    assert service.operator.press(ALICE, press).startswith("expired")
    assert service.operator.command(ALICE, f"fix {inc.id}").startswith("expired")
    time.sleep(2)
    assert bots(stack, name) == [] and service.store.incidents.get(inc.id).state == "expired"


def test_a_pending_approval_survives_a_kill_9_and_is_approved_after_the_restart(make_stack, tmp_path):
    stack = make_stack()
    name = stack.unique("kill")
    recorder = f"127.0.0.1:{free_port()}"
    db = tmp_path / "state.db"
    rules = prefixed_rules(stack.prefix, tmp_path / "rules")
    env = {**os.environ, "MEDIC_CONTAINERS": stack.prefix + "hummingbot-api", "MEDIC_STATE_DB": str(db),
           "MEDIC_RULES_DIR": str(rules), "MEDIC_HUMMINGBOT_URL": stack.url,
           "MEDIC_HUMMINGBOT_PASSWORD": "admin", "MEDIC_RECORDER_ADDR": recorder,
           "MEDIC_HTTP_ADDR": f"127.0.0.1:{free_port()}", "MEDIC_BOTS": "off", "MEDIC_BOT_SETTLE": "3",
           "MEDIC_MODE": "ask", "MEDIC_CHAT_TELEGRAM_USERS": "1001"}
    log = tmp_path / "agent.log"

    def start() -> subprocess.Popen:
        with log.open("ab") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "agent", "run"], env=env, cwd=REPO, stdout=fh,
                                    stderr=subprocess.STDOUT)
        wait_until(lambda: _listening(recorder), 60, "the agent's recorder")
        return proc

    proc = start()
    try:
        assert deploy(recorder, instance_name=name, credentials_profile="client_kill").status_code == 500
        mine = f"SELECT id, state FROM incidents WHERE rule = '{RULE}'"
        wait_until(lambda: [r[1] for r in query(db, mine)] == ["awaiting-approval"], 60, "the approval asked")
        inc_id = query(db, mine)[0][0]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert query(db, mine) == [(inc_id, "awaiting-approval")]
        proc = start()
        time.sleep(3)  # the restarted agent leaves it waiting
        assert query(db, mine) == [(inc_id, "awaiting-approval")] and bots(stack, name) == []
        library = load_library(rules)
        store = State(db)
        op = Decisions(store, lambda: {r.id: r for r in library.rules}, allowed={"telegram": ["1001"]},
                       ttl=3600, redactor=Redactor())  # a transport's side, in another process
        press = fix_button(op, inc_id)
        assert op.press(ALICE, press).startswith(f"Fixing incident {inc_id}")
        wait_until(lambda: query(db, mine) == [(inc_id, "resolved")], 90, "the approved fix, by the agent")
        assert [c.status for c in bots(stack, name)] == ["running"]
        assert not op.press(ALICE, press).startswith("Fixing")
        attempts = "SELECT COUNT(*) FROM audit WHERE kind = 'attempt' AND incident = ?"
        assert query(db, attempts, (inc_id,)) == [(1,)]
        store.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
