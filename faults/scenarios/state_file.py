"""State file faults: garbage, half a database, a directory, 0 bytes, another program's
database and a read-only file each stop `hb-medic run` with one message naming the file and
what to do, exit status 3, and the file untouched. A file that becomes unwritable under a
running agent turns /healthz 503 with the reason, is logged once, and heals."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from faults.agent import Agent
from faults.scenarios.common import settle
from tests.stack import REPO
from tests.statefiles import KINDS, damage, digest

TARGET = ("each fault: one message naming the file, exit status 3, file untouched; unwritable while"
          " running: /healthz 503 with the reason, logged once, back to 200 when it heals")
EXIT = 3


def run(quick: bool) -> dict:
    if shutil.which("chattr") is None:
        return {"pass": False, "error": "chattr is needed to make a file read-only (for root too)"}
    work = Path(tempfile.mkdtemp(prefix="medic-faults-state-"))
    cases = {}
    try:
        for kind in KINDS:
            folder = work / kind
            folder.mkdir()
            state = folder / "state.db"
            damage(kind, state)
            before = digest(state)
            env = {**os.environ, "MEDIC_STATE_DB": str(state), "MEDIC_CONTAINERS": "medic-none-such",
                   "MEDIC_HUMMINGBOT_PASSWORD": "admin", "MEDIC_RULES_DIR": str(REPO / "rules")}
            out = subprocess.run([sys.executable, "-m", "agent", "run"], capture_output=True, text=True,
                                 env=env, timeout=60, cwd=REPO)
            subprocess.run(["chattr", "-i", str(state)], capture_output=True)
            lines = out.stderr.strip().splitlines()
            cases[kind] = {"exit": out.returncode, "lines": len(lines), "message": lines[0] if lines else "",
                           "names_file": str(state) in out.stderr, "untouched": digest(state) == before,
                           "traceback": "Traceback" in out.stderr}
        running = _unwritable_while_running(work / "running", quick)
    finally:
        for p in work.rglob("*"):
            subprocess.run(["chattr", "-i", str(p)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    start_ok = all(c["exit"] == EXIT and c["lines"] == 1 and c["names_file"] and c["untouched"]
                   and not c["traceback"] for c in cases.values())
    ok = start_ok and running["ok"]
    bad = [k for k, c in cases.items() if not (c["exit"] == EXIT and c["lines"] == 1 and c["untouched"])]
    return {"pass": ok, "measured": {"at_start": cases, "while_running": running},
            "figure": f"{len(cases) - len(bad)} of {len(cases)} faults at start: one message, exit 3, file"
                      f" untouched; unwritable while running: 503 after {running['to_503_s']} s, logged"
                      f" {running['logged']} time(s), 200 again after {running['to_200_s']} s"}


def _unwritable_while_running(folder: Path, quick: bool) -> dict:
    folder.mkdir()
    agent = Agent(folder, {"MEDIC_CONTAINERS": "medic-none-such", "MEDIC_RULES_DIR": str(REPO / "rules")})
    files = [agent.state_db, agent.state_db.with_name("state.db-wal")]
    result: dict = {"ok": False, "to_503_s": None, "to_200_s": None, "logged": 0}
    try:
        agent.start()
        if not settle(lambda: agent.health()[0] == 200, 120, 0.2):
            result["unhealthy_before"] = agent.health()[1].get("problems")
            return result
        for f in files:
            subprocess.run(["chattr", "+i", str(f)], check=True)
        since = time.monotonic()
        said = settle(lambda: _state_problem(agent) is not None, 60, 0.2)
        result["to_503_s"] = round(time.monotonic() - since, 1) if said else None
        result["reason"] = _state_problem(agent)
        time.sleep(3 if quick else 30)  # long enough to see it is not logged again and again
        for f in files:
            subprocess.run(["chattr", "-i", str(f)], check=True)
        since = time.monotonic()
        healed = settle(lambda: agent.health()[0] == 200, 60, 0.2)
        if not healed:
            result["unhealthy_after"] = agent.health()[1].get("problems")
        result["to_200_s"] = round(time.monotonic() - since, 1) if healed else None
        text = agent.text()
        result["logged"] = text.count("cannot be written")
        result["logged_healed"] = text.count("can be written again")
        result["tracebacks"] = text.count("Traceback")
        result["errors"] = [x[:300] for x in text.splitlines() if " ERROR " in x][:5]
        result["ok"] = bool(said and healed and result["reason"] and result["logged"] == 1
                            and result["logged_healed"] == 1 and result["tracebacks"] == 0)
    finally:
        for f in files:
            subprocess.run(["chattr", "-i", str(f)], capture_output=True)
        agent.stop()
    return result


def _state_problem(agent: Agent) -> str | None:
    """/healthz's 503 reason about the state file, if it says one."""
    status, body = agent.health()
    problems = body.get("problems", []) if status == 503 else []
    return next((p for p in problems if p.startswith("state file")), None)
