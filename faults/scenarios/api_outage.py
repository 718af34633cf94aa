"""hummingbot-api goes down right after a failed deploy, before the agent could fix it, and
stays down (60 s, or 10 minutes in the full run). The agent waits for it without using up
its attempts, and finishes the fix and the deploy soon after it is back; a deploy that fails
2 s after the return is retried too, not hidden by a cooldown. The deploy recorder runs in
its own process (as in its own container), so the failure is recorded while the agent is
still starting."""

from __future__ import annotations

import time

from faults.bed import Bed
from faults.scenarios.common import log, settle

TARGET = ("the incident waits (no attempt used up) and finishes within 30 s of the return; a deploy"
          " failing after it is retried")
RULE = "credentials-profile-missing"


def run_for(down: float, quick: bool) -> dict:
    with Bed("api-outage", quick=quick) as bed:
        profile, first, second = f"out_{bed.tag}", f"out1-{bed.tag}", f"out2-{bed.tag}"
        recorder = bed.agent(command="recorder").start()
        agent = bed.agent(recorder=False)
        assert bed.deploy(recorder, first, profile) == 500
        bed.stack.api.stop(timeout=5)  # down right after the failure line
        down_at = time.monotonic()
        agent.start()
        waiting = settle(lambda: _incident(agent)[1:2] == ("outage",), 60, 0.2)
        log(f"hummingbot-api down; incident waiting: {waiting}")
        healthy_meanwhile = agent.health()[0]
        time.sleep(max(0.0, down - (time.monotonic() - down_at)))
        attempts_while_down = _incident(agent)[2]
        bed.stack.api.start()
        settle(lambda: _answers(bed), 120, 0.1)
        back = time.monotonic()
        log(f"hummingbot-api back after {back - down_at:.0f} s")
        time.sleep(2)
        back_wall = time.time() - (time.monotonic() - back)
        second_status = bed.deploy(recorder, second, profile)  # fails unless the fix came first
        # Fixed: the account added and the deploy re-sent; resolved once the bot lived its settle time.
        resent = settle(lambda: _resent_at(agent) is not None, 60, 0.1)
        resent_s = round(_resent_at(agent) - back_wall, 1) if resent else None
        done = settle(lambda: _incident(agent)[1] == "resolved", 120, 0.1)
        finished_s = round(time.monotonic() - back, 1) if done else None
        both = settle(lambda: all(bed.bots().get(n) == ["running"] for n in (first, second)), 60)
        time.sleep(2)
        inc = _incident(agent)
        states = [r[0] for r in agent.query(f"SELECT state FROM incidents WHERE rule = '{RULE}'")]
        bots = bed.bots()
        agent.stop()
        recorder.stop()
    measured = {"down_s": round(down, 0), "waited_in_state": "outage" if waiting else None,
                "attempts_used_while_down": attempts_while_down, "deploy_resent_after_return_s": resent_s,
                "resolved_after_return_s": finished_s, "bot_settle_s": 3 if quick else 30,
                "final_state": inc[1], "attempts": inc[2], "second_deploy_answered": second_status,
                "incidents": states, "bots": {n: bots.get(n, []) for n in (first, second)},
                "healthz_while_down": healthy_meanwhile}
    ok = (waiting and attempts_while_down == 0 and resent_s is not None and resent_s <= 30 and done
          and both and "gave-up" not in states)
    return {"pass": ok, "measured": measured,
            "figure": f"down {down:.0f} s: {attempts_while_down} attempts used while down; the deploy re-sent"
                      f" {resent_s} s after the return, resolved (bot lived its settle time) after"
                      f" {finished_s} s; the deploy sent 2 s after the return ({second_status})"
                      f" {'runs' if both else 'does NOT run'}"}


def _incident(agent) -> tuple:
    rows = agent.query("SELECT id, state, attempts FROM incidents WHERE rule = ? ORDER BY created LIMIT 1",
                       (RULE,))
    return rows[0] if rows else (None, None, None)


def _resent_at(agent) -> float | None:
    rows = agent.query("SELECT MIN(sent_at) FROM incident_deploys WHERE sent_at IS NOT NULL")
    return rows[0][0] if rows else None


def _answers(bed: Bed) -> bool:
    try:
        return bed.stack.http("GET", "/").status_code == 200
    except Exception:
        return False


def run(quick: bool) -> dict:
    return run_for(12.0 if quick else 60.0, quick)


def run_long(quick: bool) -> dict:
    return run_for(600.0, quick)
