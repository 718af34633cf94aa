"""Restarts in the middle of attempts, counting the messages where a person reads them: six
incidents of one rule at once (their re-sent bots settling), and the agent restarted twice
during their attempts (a SIGTERM, then a `kill -9`). Each resumed attempt runs again, but no
step is told twice; with six "fixing" and six "fixed" the rule passes the storm limit (10 in
5 min), and still every "Fixed" arrives on its own, none held for a digest."""

from __future__ import annotations

import json
import re
import time

from faults.bed import Bed
from faults.scenarios.common import log, settle
from tests.receiver import Receiver

TARGET = "no step message received twice; every incident's final message received, none held for a digest"
RULE = "credentials-profile-missing"
INCIDENTS = 6


def run(quick: bool) -> dict:
    bot_settle = "10" if quick else "30"  # long enough for the restarts to land inside the attempts
    with Receiver() as rx, Bed("restart-messages", quick=quick) as bed:
        agent = bed.agent(MEDIC_NOTIFY_URLS=rx.url, MEDIC_BOT_SETTLE=bot_settle).start()
        names = [(f"rm{i}-{bed.tag}", f"rm{i}_{bed.tag}") for i in range(INCIDENTS)]
        for name, profile in names:
            assert bed.deploy(agent, name, profile) == 500
        settle(lambda: sum("Detected, fixing" in t for t in rx.titles()) >= INCIDENTS, 60, 0.1)
        settle(lambda: all(bed.bots().get(n) == ["running"] for n, _ in names), 60, 0.1)
        restarts = []
        for how in ("SIGTERM", "kill -9"):
            time.sleep(1.0)
            agent.stop() if how == "SIGTERM" else agent.kill9()
            agent.start()
            restarts.append(how)
            log(f"restarted ({how}) during the attempts")
        done = settle(lambda: sum(t.startswith("[CRITICAL] Fixed") for t in rx.titles()) >= INCIDENTS,
                      120 if quick else 240, 0.2)
        time.sleep(3)  # a repeat or a digest would show now
        received = list(rx.accepted)
        outbox = agent.query("SELECT status, message FROM outbox")
        states = dict(agent.query("SELECT state, COUNT(*) FROM incidents WHERE rule = ? GROUP BY state",
                                  (RULE,)))
        bots = bed.bots()
        agent.stop()
    seen: dict[tuple[str, str], int] = {}
    for m in received:
        found = re.search(r"incident ([0-9a-f]{8})", m.get("message", ""))
        key = (found[1] if found else "", m.get("title", ""))
        seen[key] = seen.get(key, 0) + 1
    repeated = {f"{k[0]} {k[1]}": n for k, n in seen.items() if n > 1}
    fixed = sum(1 for m in received if m.get("title", "").startswith("[CRITICAL] Fixed"))
    digests = [m.get("title", "") for m in received if "more messages" in m.get("title", "")]
    held_final = sum(1 for status, raw in outbox if status in ("held", "digested")
                     and json.loads(raw).get("step") in ("resolved", "gave-up", "needs-you", "observed"))
    measured = {"incidents": INCIDENTS, "restarts": restarts, "bot_settle_s": float(bot_settle),
                "messages_received": len(received), "step_messages_received_twice": len(repeated),
                "fixed_received": fixed, "final_messages_held": held_final, "digests": digests,
                "incident_states": states, "bots": {n: len(s) for n, s in bots.items()}}
    ok = (done and not repeated and fixed == INCIDENTS and held_final == 0
          and states == {"resolved": INCIDENTS} and all(len(s) == 1 for s in bots.values()))
    return {"pass": ok, "measured": measured, "details": {"repeated": repeated},
            "figure": f"{INCIDENTS} incidents of one rule, {len(restarts)} restarts ({', '.join(restarts)})"
                      f" during their attempts: {len(received)} messages, {len(repeated)} received twice;"
                      f" {fixed} of {INCIDENTS} Fixed received, {held_final} final ones held for a digest"}
