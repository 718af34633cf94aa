"""`kill -9` during a failure storm: each cycle, three concurrent deploys on one missing
profile with two instance names, then two more missing profiles, and the agent killed at a
random moment among them (once the first has reached hummingbot-api) and started again. In
the end every deploy that reached hummingbot-api runs as exactly one bot, and each profile was
added exactly once."""

from __future__ import annotations

import random
import threading
import time

from faults.bed import Bed
from faults.scenarios.common import log, settle

TARGET = ("0 duplicate actions, 0 duplicate bots, every failed deploy retried, every incident ended once its"
          " bots lived their settle time")
OPEN = "'detected','acting','verifying','retrying','failed','outage','waiting'"


def run(quick: bool) -> dict:
    cycles = 3 if quick else 20
    rng = random.Random()
    with Bed("kill-storm", quick=quick) as bed:
        agent = bed.agent().start()
        outcomes: dict[str, list] = {}
        sent: list[tuple[str, str]] = []
        kills = 0
        for cycle in range(cycles):
            a, b, c, d = (f"st{cycle}{x}-{bed.tag}" for x in "abcd")
            p, q, r = (f"prof{cycle}{x}_{bed.tag}" for x in "pqr")
            sends = [(a, p), (a, p), (b, p), (c, q), (d, r)]
            sent += sends
            threads = []
            for i, (name, profile) in enumerate(sends):
                delay = 0.0 if i < 3 else 0.15  # the three at once, then the two more profiles
                t = threading.Thread(target=_send, args=(bed, agent, name, profile, delay, outcomes))
                t.start()
                threads.append(t)
            # The kill lands at a random moment once the storm is under way: after the first of this
            # cycle's deploys reached hummingbot-api (on a loaded machine a fixed delay could kill the
            # recorder before any did, and the cycle would test nothing).
            settle(lambda names=(a, b, c, d): bool(bed.reached() & set(names)), 30, 0.02)
            time.sleep(rng.uniform(0.0, 1.2))
            agent.kill9()
            kills += 1
            for t in threads:
                t.join(90)
            agent.start()
            log(f"cycle {cycle + 1}/{cycles}: killed, started again")
        reached = bed.reached()
        # Waits are bounds, not expectations: a loaded machine only takes longer to get there.
        done = settle(lambda: all(len(bed.bots().get(n, [])) >= 1 for n in reached), 90 if quick else 180)
        time.sleep(3)  # anything still to come (a duplicate) has its chance to show
        # Each incident ends once its re-sent bots have lived the settle time: none is left open
        # (one left `waiting` or `failed` beside a running bot would ask a person for nothing).
        settle(lambda: not agent.query(f"SELECT id FROM incidents WHERE state IN ({OPEN})"),
               60 if quick else 120)
        bots = bed.bots()
        adds = bed.add_account_calls()
        profile_of = {name: profile for name, profile in sent}
        missing = [n for n in sorted(reached) if not bots.get(n)]
        why = {n: [list(r) for r in agent.query("SELECT id, state, attempts, detail FROM incidents"
                                                 " WHERE key = ?", (profile_of.get(n),))] for n in missing}
        still = agent.query(f"SELECT id, key, state, attempts, detail FROM incidents WHERE state IN ({OPEN})")
        states = dict(agent.query("SELECT state, COUNT(*) FROM incidents GROUP BY state"))
        open_incidents = len(still)
        health, _ = agent.health()
        agent.stop()
    failed = sorted(reached)
    not_retried = [n for n in failed if not bots.get(n)]
    duplicate_bots = {n: len(s) for n, s in bots.items() if len(s) > 1}
    invented = [n for n in bots if n not in reached]
    duplicate_adds = {p: n for p, n in adds.items() if n > 1}
    not_running = [n for n in failed if bots.get(n) and "running" not in bots[n]]
    measured = {
        "cycles": cycles, "kills": kills, "deploys_sent": sum(len(v) for v in outcomes.values()),
        "client_saw_500": sum(v.count(500) for v in outcomes.values()),
        "client_cut_off": sum(1 for v in outcomes.values() for s in v if not isinstance(s, int)),
        "failed_deploys": len(failed), "not_retried": len(not_retried), "duplicate_bots": len(duplicate_bots),
        "bots_not_running": len(not_running), "bots_of_unsent_deploys": len(invented),
        "profiles_added": len(adds), "duplicate_add_account": len(duplicate_adds),
        "incidents_still_open": open_incidents, "incident_states": states, "healthz": health, "settled": done,
    }
    ok = (not not_retried and not duplicate_bots and not duplicate_adds and not invented and not not_running
          and health == 200 and len(failed) > 0 and not open_incidents)
    return {"pass": ok, "measured": measured,
            "details": {"not_retried": not_retried, "duplicate_bots": duplicate_bots,
                        "duplicate_add_account": duplicate_adds, "not_running": not_running,
                        "open_incidents": [list(r) for r in still],
                        "incidents_of_the_not_retried": why},
            "figure": f"{kills} kills: {len(not_retried)} of {len(failed)} failed deploys not retried,"
                      f" {len(duplicate_bots)} duplicate bots, {len(duplicate_adds)} duplicate add-account;"
                      f" incidents at the end: {', '.join(f'{n} {s}' for s, n in sorted(states.items()))}"}


def _send(bed: Bed, agent, name: str, profile: str, delay: float, outcomes: dict) -> None:
    time.sleep(delay)
    outcomes.setdefault(name, []).append(bed.deploy(agent, name, profile))
