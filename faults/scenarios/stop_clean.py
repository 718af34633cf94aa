"""`SIGTERM` in the middle of a fix, as `docker stop` sends it (then `SIGKILL` after its 10 s
grace): during a re-sent bot's settle time, and while a re-send is out. The process must end
within MEDIC_STOP_TIMEOUT (8 s, the shipped setting), under the grace, and the incident must
resolve after the restart with no bot deployed twice. Then a re-send that completes during the
shutdown (its deploy done, the incident not closed): after the restart the incident resolves
straight away, never "gave up" with its bot running. That window is milliseconds wide: when
the stop does not land in it, the incident is set back to `retrying` in the state file (what
such a stop leaves behind), and the result says so."""

from __future__ import annotations

import sqlite3
import time

from faults.bed import Bed
from faults.scenarios.common import log, settle

TARGET = ("each SIGTERM ends the process within MEDIC_STOP_TIMEOUT (8 s, under Docker's 10 s grace);"
          " after the restart every incident resolves, no bot deployed twice; a re-send completed during the"
          " stop resolves after the restart (not gave up)")
RULE = "credentials-profile-missing"
STOP_TIMEOUT = 8.0
GRACE = 10.0


def run(quick: bool) -> dict:
    bot_settle = "8" if quick else "30"  # long enough for a SIGTERM to land inside it
    with Bed("stop-clean", quick=quick) as bed:
        agent = bed.agent(MEDIC_BOT_SETTLE=bot_settle)
        agent.start()
        stops: list[dict] = []

        def sigterm(where: str) -> None:
            began = time.monotonic()
            agent.proc.terminate()
            try:
                code = agent.proc.wait(GRACE)
            except Exception:
                agent.kill9()  # what Docker does after its grace
                code = "killed after the grace"
            stops.append({"during": where, "exit_s": round(time.monotonic() - began, 2), "exit_code": code})
            log(f"SIGTERM during {where}: exited after {stops[-1]['exit_s']} s ({code})")

        # 1. During a re-sent bot's settle time.
        settling, profile1 = f"sc1-{bed.tag}", f"sc1_{bed.tag}"
        assert bed.deploy(agent, settling, profile1) == 500
        settle(lambda: bed.bots().get(settling) == ["running"], 60, 0.1)
        time.sleep(1.0)
        sigterm("a re-sent bot's settle time")
        agent.start()
        # 2. While a re-send is out (written ahead as `sending`, its answer not yet back).
        sending, profile2 = f"sc2-{bed.tag}", f"sc2_{bed.tag}"
        assert bed.deploy(agent, sending, profile2) == 500
        settle(lambda: _deploy_state(agent, profile2) == "sending", 60, 0.02)
        sigterm("a re-send")
        agent.start()
        resolved = settle(lambda: _states(agent, (profile1, profile2)) == ["resolved", "resolved"], 120, 0.2)
        # 3. A re-send completing during the stop: SIGTERM the moment its deploy is done.
        done, profile3 = f"sc3-{bed.tag}", f"sc3_{bed.tag}"
        assert bed.deploy(agent, done, profile3) == 500
        settle(lambda: _deploy_state(agent, profile3) == "done", 120, 0.01)
        sigterm("a re-send completing")
        landed = _states(agent, (profile3,)) != ["resolved"] and _deploy_state(agent, profile3) == "done"
        cut_by = "the stop" if landed else "set back"
        if not landed:
            _set_back(agent, profile3)
        restarted = time.monotonic()
        agent.start()
        third = settle(lambda: _states(agent, (profile3,))[0] in ("resolved", "gave-up"), 120, 0.2)
        third_s = round(time.monotonic() - restarted, 1) if third else None
        time.sleep(2)
        final = dict(agent.query("SELECT key, state FROM incidents WHERE rule = ?", (RULE,)))
        detail3 = agent.query("SELECT detail FROM incidents WHERE key = ?", (profile3,))[0][0]
        bots = bed.bots()
        adds = bed.add_account_calls()
        sigterm("an idle agent")
    worst = max(s["exit_s"] for s in stops)
    twice = {n: len(s) for n, s in bots.items() if len(s) > 1}
    measured = {"stops": stops, "worst_exit_s": worst, "stop_timeout_s": STOP_TIMEOUT,
                "bot_settle_s": float(bot_settle), "incidents": final,
                "bots": {n: len(s) for n, s in bots.items()},
                "duplicate_bots": len(twice), "duplicate_add_account": sum(1 for n in adds.values() if n > 1),
                "completed_during_stop_cut_by": cut_by, "completed_during_stop_resolved_after_s": third_s,
                "completed_during_stop_detail": detail3}
    ok = (all(isinstance(s["exit_code"], int) and s["exit_code"] == 0 and s["exit_s"] <= STOP_TIMEOUT
              for s in stops)
          and resolved and final.get(profile3) == "resolved" and not twice
          and all(n == 1 for n in adds.values())
          and all(len(bots.get(n, [])) == 1 for n in (settling, sending, done)))
    return {"pass": ok, "measured": measured,
            "figure": f"{len(stops)} SIGTERMs (settle time, re-send out, re-send completing, idle): exited in"
                      f" {', '.join(str(s['exit_s']) for s in stops)} s (setting {STOP_TIMEOUT:.0f} s,"
                      f" grace {GRACE:.0f} s); {len(final)} incidents {'/'.join(sorted(set(final.values())))}"
                      f", {len(twice)} bots deployed twice; the re-send completed during the stop ({cut_by})"
                      f" resolved {third_s} s after the restart"}


def _deploy_state(agent, profile: str) -> str | None:
    rows = agent.query("SELECT d.state FROM incident_deploys AS d JOIN incidents AS i ON i.id = d.incident"
                       " WHERE i.key = ?", (profile,))
    return rows[0][0] if rows else None


def _states(agent, profiles: tuple[str, ...]) -> list[str | None]:
    out = []
    for p in profiles:
        rows = agent.query("SELECT state FROM incidents WHERE rule = ? AND key = ?", (RULE, p))
        out.append(rows[0][0] if rows else None)
    return out


def _set_back(agent, profile: str) -> None:
    """What a stop between the deploy's `done` and the incident's close leaves: still retrying."""
    conn = sqlite3.connect(agent.state_db)
    try:
        conn.execute("UPDATE incidents SET state = 'retrying', closed = NULL WHERE rule = ? AND key = ?",
                     (RULE, profile))
        conn.commit()
    finally:
        conn.close()
