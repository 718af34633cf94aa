"""The state file's disk fills under a running agent while failures arrive, then space is
freed. Nothing is dropped silently (each failure line written while full opens its incident
once there is room, or is counted as dropped), the log says it twice (when it starts and when
it ends), /healthz is 503 while it lasts, and the agent heals soon after."""

from __future__ import annotations

import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from faults.bed import Bed
from faults.scenarios.common import log, settle

TARGET = ("0 events dropped silently, 2 log lines about it (unwritable, writable again), /healthz 503"
          " while full, healed (200, every waiting event handled) within 30 s of the space's return")
SIZE = "16m"  # the state file and its write-ahead log (SQLite lets it grow to about 4 MiB), then filled
FAILURE = ("{now} - root - ERROR - Error deploying V2 script: [Errno 2] No such file or directory:"
           " 'bots/credentials/{p}'")
ABOUT_IT = ("cannot be written", "can be written again", "later ones are dropped")


def run(quick: bool) -> dict:
    lines, full_s = (30, 5.0) if quick else (1500, 30.0)
    disk = Path(tempfile.mkdtemp(prefix="medic-faults-full-disk-"))
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0755", "medic-test", str(disk)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        disk.rmdir()
        return {"pass": False, "error": f"mounting a tmpfs is needed (root): {out.stderr.strip()}"}
    try:
        with Bed("full-disk", quick=quick) as bed:
            return _run(bed, disk, lines, full_s)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
        disk.rmdir()


def _run(bed: Bed, disk: Path, lines: int, full_s: float) -> dict:
    tag = bed.tag
    agent = bed.agent(recorder=False, MEDIC_STATE_DB=str(disk / "state.db"))
    agent.state_db = disk / "state.db"
    agent.start()
    if not settle(lambda: agent.health()[0] == 200, 60, 0.2):
        return {"pass": False, "error": f"not healthy before the fault: {agent.health()[1].get('problems')}"}
    filler = disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
    filled = time.monotonic()
    _failure(bed, [f"first_{tag}"])  # something to write
    said = settle(lambda: agent.health()[0] == 503, 60, 0.1)
    to_503 = round(time.monotonic() - filled, 1) if said else None
    samples: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.5):
            samples.append(agent.health()[0])

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    profiles = [f"full{i}_{tag}" for i in range(lines)]
    began = time.monotonic()
    step = full_s / 10
    for n in range(10):  # the failures arrive over the full period, in ten bursts
        _failure(bed, profiles[n * lines // 10:(n + 1) * lines // 10])
        time.sleep(max(0.0, began + (n + 1) * step - time.monotonic()))
    stop.set()
    watcher.join(5)
    reason = next((p for p in agent.health()[1].get("problems", []) if p.startswith("state file")), None)
    waiting = _waiting(agent)
    filler.unlink()
    freed = time.monotonic()
    log(f"full for {freed - filled:.0f} s, {lines} failure lines written meanwhile; space freed")
    healthy = settle(lambda: agent.health()[0] == 200, 120, 0.1)
    to_200 = round(time.monotonic() - freed, 1) if healthy else None
    handled = settle(lambda: set(profiles) <= _incident_keys(agent), 120, 0.2)
    to_handled = round(time.monotonic() - freed, 1) if handled else None
    opened = len(set(profiles) & _incident_keys(agent))
    dropped = _metric(agent, "hb_medic_events_dropped_total")
    text = agent.text()
    agent.stop()
    about = {k: text.count(k) for k in ABOUT_IT}
    silent = lines - opened - int(dropped)
    # a probe left unanswered on a loaded machine is timing, not an answer: every answer is 503
    full_503 = 503 in samples and all(s in (503, 0) for s in samples)
    heal_s = max(to_200 or 0.0, to_handled or 0.0) if healthy and handled else None
    measured = {"failure_lines_while_full": lines, "full_s": round(freed - filled, 1),
                "incidents_opened_after": opened, "dropped_counted": int(dropped),
                "dropped_silently": silent, "waiting_when_freed": waiting, "log_lines_about_it": about,
                "to_503_s": to_503,
                "healthz_while_full": {"samples": len(samples), "503": samples.count(503)},
                "reason": reason, "healthy_again_s": to_200, "all_handled_s": to_handled,
                "tracebacks": text.count("Traceback"), "closed_database": text.count("closed database")}
    ok = (silent == 0 and sum(about.values()) == 2 and full_503 and said and heal_s is not None
          and heal_s <= 30 and measured["tracebacks"] == 0 and measured["closed_database"] == 0)
    return {"pass": ok, "measured": measured,
            "figure": f"{lines} failure lines while full for {freed - filled:.0f} s: {silent} dropped"
                      f" silently, {int(dropped)} dropped and counted, {opened} incidents opened after;"
                      f" {sum(about.values())} log lines about it; /healthz 503 {samples.count(503)} of"
                      f" {len(samples)} samples while full; healed {heal_s} s after the space returned"}


def _failure(bed: Bed, profiles: list[str]) -> None:
    """Failure lines in hummingbot-api's stderr, as it writes them."""
    now = time.strftime("%Y-%m-%d %H:%M:%S,000", time.gmtime())
    text = "".join(FAILURE.format(now=now, p=p) + "\n" for p in profiles)
    (bed.stack.bots / "full-disk.txt").write_text(text)
    code, out = bed.stack.api.exec_run(["cp", "/hummingbot-api/bots/full-disk.txt", "/proc/1/fd/2"])
    assert code == 0, out


def _incident_keys(agent) -> set[str]:
    return {k for (k,) in agent.query("SELECT key FROM incidents")}


def _metric(agent, name: str) -> float:
    return sum(float(m[1]) for m in re.finditer(rf"^{name}\{{[^}}]*\}} (\S+)$", agent.metrics(), re.M))


def _waiting(agent) -> int:
    return int(_metric(agent, "hb_medic_events_waiting"))
