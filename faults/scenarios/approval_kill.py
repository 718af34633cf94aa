"""Ask mode, `kill -9` during an approval: a person's Fix now is written, then the agent is killed
0-1500 ms later (the first round at once, before the agent took the approval; the others spread
over that time: while the attempt starts, or in the middle of it), and started again. The
approval is carried out once: one attempt that counts, one bot per deploy, one account made,
and the press replayed after the restart does nothing."""

from __future__ import annotations

import random
import time

from agent.match.library import load_library
from agent.state import State
from faults.bed import Bed
from faults.scenarios.common import ALICE, approver, fix_button, log, settle

TARGET = "nothing doubled: each approval runs once (one bot, one account), a replayed press does nothing"
RULE = "credentials-profile-missing"


def run(quick: bool) -> dict:
    rounds = 2 if quick else 6
    with Bed("approval-kill", quick=quick) as bed:
        agent = bed.agent(MEDIC_MODE="ask", MEDIC_CHAT_TELEGRAM_USERS="1001").start()
        library = load_library(bed.rules)
        rows: list[dict] = []
        for n in range(1, rounds + 1):
            profile, name = f"apk{n}_{bed.tag}", f"apk{n}-{bed.tag}"
            assert bed.deploy(agent, name, profile) == 500
            asked = settle(lambda p=profile: _state(agent, p) == "awaiting-approval", 60, 0.1)
            inc = _id(agent, profile)
            store = State(agent.state_db)  # the transport's side: another process than the agent's
            op = approver(store, library)
            press = fix_button(op, inc)
            answer = op.press(ALICE, press) if press else "no button"
            # Spread over the approval's life: the first before the agent's next tick takes it.
            delay = 0.0 if n == 1 else random.uniform(0.0, 1.5) if rounds <= 2 else \
                (n - 1) * 1.5 / (rounds - 1) + random.uniform(-0.1, 0.1)
            delay = max(0.0, delay)
            time.sleep(delay)
            agent.kill9()
            state_at_kill = _state(agent, profile)
            agent.start()
            fixed = settle(lambda p=profile: _state(agent, p) == "resolved", 120)
            replay = op.press(ALICE, press) if press else ""
            store.close()
            rows.append({"asked": asked, "approved": answer.startswith("Fixing"),
                         "kill_ms": round(delay * 1000), "state_at_kill": state_at_kill, "fixed": fixed,
                         "replay_refused": not replay.startswith("Fixing"),
                         "approvals_taken": _count(agent, inc, "decision", "approved"),
                         "attempts_counted": _attempts(agent, inc), "profile": profile, "name": name})
            log(f"round {n}: killed {delay * 1000:.0f} ms after the press ({state_at_kill}): fixed {fixed}")
        time.sleep(3)
        bots = bed.bots()
        adds = bed.add_account_calls()
        agent.stop()
    for r in rows:
        r["bots"] = bots.get(r.pop("name"), [])
        r["add_account_calls"] = adds.get(r.pop("profile"), 0)
    ok = bool(rows) and all(r["asked"] and r["approved"] and r["fixed"] and r["replay_refused"]
                            and r["approvals_taken"] == 1 and r["attempts_counted"] == 1
                            and r["bots"] == ["running"] and r["add_account_calls"] == 1 for r in rows)
    kills = ", ".join(f"{r['kill_ms']} ms ({r['state_at_kill']})" for r in rows)
    return {"pass": ok, "measured": {"rounds": rows},
            "figure": f"{len(rows)} approvals each followed by kill -9 at {kills}: "
                      f"{sum(r['fixed'] for r in rows)} fixed once, "
                      f"{sum(len(r['bots']) for r in rows)} bots for {len(rows)} deploys, "
                      f"{sum(r['replay_refused'] for r in rows)} replays refused"}


def _state(agent, profile: str) -> str | None:
    rows = agent.query("SELECT state FROM incidents WHERE rule = ? AND key = ?", (RULE, profile))
    return rows[0][0] if rows else None


def _id(agent, profile: str) -> str | None:
    rows = agent.query("SELECT id FROM incidents WHERE rule = ? AND key = ?", (RULE, profile))
    return rows[0][0] if rows else None


def _count(agent, inc: str | None, kind: str, name: str) -> int:
    return agent.query("SELECT COUNT(*) FROM audit WHERE incident = ? AND kind = ? AND name = ?",
                       (inc, kind, name))[0][0]


def _attempts(agent, inc: str | None) -> int:
    """Attempts that count: started, less those given back (one a kill cut short is not counted)."""
    return agent.query("SELECT COALESCE(SUM(CASE kind WHEN 'attempt' THEN 1 ELSE -1 END), 0) FROM audit"
                       " WHERE incident = ? AND kind IN ('attempt', 'refund')", (inc,))[0][0]
