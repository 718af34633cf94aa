"""`kill -9` 50-300 ms after a fix (before the checkpoint is saved), the agent down longer
than the rule's cooldown: when it starts again it reads those failure lines a second time,
and must see them for what they are, events it handled. Nothing is repeated."""

from __future__ import annotations

import random
import threading
import time
import uuid

from faults.bed import Bed
from faults.scenarios.common import log, settle

TARGET = "nothing repeated: no second incident, no action run again, no deploy asked of a person"
RULE = "credentials-profile-missing"
REPLAYED = "replayed event already handled: no action"


def run(quick: bool) -> dict:
    down = 8.0 if quick else 300.0
    changes = {RULE: {"incident": {"cooldown": 5}}} if quick else {}  # the quick run: a shorter cooldown
    tag = uuid.uuid4().hex[:4]
    profiles = [f"kaf{i}_{tag}" for i in range(3)]
    with Bed("kill-after-fix", rules=changes) as bed:
        agent = bed.agent().start()
        threads = [threading.Thread(target=bed.deploy, args=(agent, f"kaf{i}-{tag}", p))
                   for i, p in enumerate(profiles)]
        for t in threads:
            t.start()
        fixed = settle(lambda: _resolved(agent) >= len(profiles), 60, interval=0.01)
        delay = random.uniform(0.05, 0.3)
        time.sleep(delay)
        agent.kill9()
        for t in threads:
            t.join(60)
        before = _snapshot(agent)
        log(f"killed {delay * 1000:.0f} ms after the fixes; down for {down:.0f} s")
        time.sleep(down)
        agent.start()
        settle(lambda: _replayed(agent) >= len(profiles), 30)
        time.sleep(5)  # whatever the restart would do, it has done it now
        after = _snapshot(agent)
        bots = bed.bots()
        adds = bed.add_account_calls()
        agent.stop()
    repeated_actions = after["actions"] - before["actions"]
    new_incidents = after["incidents"] - before["incidents"]
    measured = {"fixed_before_kill": fixed, "kill_after_fix_ms": round(delay * 1000), "down_s": down,
                "cooldown_s": 5 if quick else 300, "incidents_before": before["incidents"],
                "new_incidents_after_restart": new_incidents, "actions_run_again": repeated_actions,
                "waiting_incidents": after["waiting"], "replays_joined": after["replayed"],
                "bots": {k: len(v) for k, v in bots.items()}, "add_account_calls": sum(adds.values())}
    ok = (fixed and new_incidents == 0 and repeated_actions == 0 and after["waiting"] == 0
          and all(len(v) == 1 for v in bots.values()) and len(bots) == len(profiles)
          and all(n == 1 for n in adds.values()))
    return {"pass": ok, "measured": measured,
            "figure": f"down {down:.0f} s > cooldown: {new_incidents} new incidents, {repeated_actions}"
                      f" actions repeated, {after['replayed']} replayed events joined their incident"}


def _resolved(agent) -> int:
    return agent.query(f"SELECT COUNT(*) FROM incidents WHERE rule = '{RULE}' AND state = 'resolved'")[0][0]


def _replayed(agent) -> int:
    return agent.query("SELECT COUNT(*) FROM audit WHERE name = ?", (REPLAYED,))[0][0]


def _snapshot(agent) -> dict:
    q = agent.query
    return {"incidents": q(f"SELECT COUNT(*) FROM incidents WHERE rule = '{RULE}'")[0][0],
            "actions": q("SELECT COUNT(*) FROM audit WHERE kind IN ('action', 'retry', 'attempt')")[0][0],
            "waiting": q(f"SELECT COUNT(*) FROM incidents WHERE rule = '{RULE}' AND state = 'waiting'")[0][0],
            "replayed": _replayed(agent)}
