"""Fuzz: 100k mutated sample lines (the rules' golden samples with bytes changed, dropped,
inserted, timestamps made impossible) through `hb-medic rules test` (both outputs) and into
a running agent's followed container. No exception anywhere; the agent stays healthy."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from faults.bed import Bed
from faults.scenarios.common import log, settle
from tests.stack import REPO

TARGET = "no exception in rules test or the running agent; the agent healthy throughout"
ODD = [0, 7, 8, 13, 27, 127, 0x85, 0x9B, 0xFFFD]
INSERTS = ["Traceback (most recent call last):", '  File "x.py", line 1, in f', " - ERROR - ", "\r", "\x00",
           "\x1b[2J", "2026-02-30T25:61:61.1Z ", "During handling of the above exception, another exception",
           "  + Exception Group Traceback (most recent call last):", "\udcff", "'", "\u2028"]


def mutate(rng: random.Random, line: str) -> str:
    chars = list(line)
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(len(chars) + 1)
        op = rng.randrange(6)
        if op == 0 and chars:
            del chars[min(at, len(chars) - 1)]
        elif op == 1:
            chars.insert(at, chr(rng.choice([*ODD, rng.randrange(32, 0x2FFF)])))
        elif op == 2 and chars:
            chars[min(at, len(chars) - 1)] = rng.choice("0123456789:-TZ.,'\"/ ")
        elif op == 3:
            chars[at:at] = list(rng.choice(INSERTS))
        elif op == 4:
            chars = chars[:at]
        else:
            chars[at:at] = chars[: rng.randrange(len(chars) + 1)]  # a repeat of its start
    return "".join(chars)


def corpus(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    lines = [x for p in sorted((REPO / "rules").glob("*.samples.log")) for x in p.read_text().splitlines()
             if x and not x.startswith("#") and not x.startswith("RECORDED")]
    out = (mutate(rng, rng.choice(lines)) for _ in range(n))
    return "\n".join(out).encode("utf-8", "surrogatepass") + b"\n"


def run(quick: bool) -> dict:
    n = 10_000 if quick else 100_000
    seed = int(os.environ.get("FAULTS_SEED") or random.randrange(2**32))
    data = corpus(n, seed)
    work = Path(tempfile.mkdtemp(prefix="medic-faults-fuzz-"))
    try:
        path = work / "fuzz.log"
        path.write_bytes(data)
        runs = {}
        for flags in ([], ["--json"]):
            out = subprocess.run([sys.executable, "-m", "agent", "rules", "test", *flags, str(path)],
                                 capture_output=True, cwd=REPO, timeout=600, env={**os.environ})
            runs["json" if flags else "text"] = {"exit": out.returncode,
                                                 "traceback": b"Traceback" in out.stderr,
                                                 "reported": out.stdout.count(b"\n")}
        rules_ok = all(r["exit"] == 0 and not r["traceback"] for r in runs.values())
        log(f"rules test over {n} mutated lines (seed {seed}): {runs}")
        agent_result = _through_an_agent(data, quick)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    ok = rules_ok and agent_result["ok"]
    return {"pass": ok, "measured": {"lines": n, "seed": seed, "rules_test": runs, "agent": agent_result},
            "figure": f"{n} mutated lines (seed {seed}): rules test exit {runs['text']['exit']}/"
                      f"{runs['json']['exit']}, agent: {agent_result['exceptions']} exceptions, healthy"
                      f" {agent_result['healthy']}"}


def _through_an_agent(data: bytes, quick: bool) -> dict:
    with Bed("fuzz", quick=quick) as bed:
        agent = bed.agent(MEDIC_MODE="observe").start()  # it may match real-looking failures: only report
        (bed.stack.bots / "fuzz.log").write_bytes(data)
        marker = f"fuzz-done-{time.monotonic_ns()}"
        (bed.stack.bots / "marker.log").write_text(
            f"2026-11-29 01:49:32,002 - services.fuzz - ERROR - {marker}\n")
        for name in ("fuzz.log", "marker.log"):
            code, out = bed.stack.api.exec_run(["cp", f"/hummingbot-api/bots/{name}", "/proc/1/fd/2"])
            assert code == 0, out
        done = settle(lambda: marker in agent.text() or _unknown(agent, marker), 120 if quick else 600, 0.5)
        time.sleep(2)
        status = agent.health()[0]
        alive = agent.proc is not None and agent.proc.poll() is None
        text = agent.text()
        agent.stop()
    # The agent's own failures are its ERROR entries (log.exception); what it reports of the
    # fuzzed lines (which say "Traceback" often enough) is WARNING or INFO.
    exceptions = sum(1 for line in text.splitlines() if line.split(" ", 3)[2:3] in (["ERROR"], ["CRITICAL"]))
    return {"ok": bool(done and alive and status == 200 and exceptions == 0), "processed": done,
            "alive": alive, "healthy": status == 200, "exceptions": exceptions}


def _unknown(agent, marker: str) -> bool:
    return bool(agent.query("SELECT 1 FROM unknown WHERE samples LIKE ?", (f"%{marker}%",)))
