"""`python -m faults [--quick] [--only NAME ...]`: every fault scenario against the real engine
and the stand-in, each in its own process and bounded in time, a few side by side. Prints one
JSON object a scenario as each finishes, then a summary table; exits 1 if any missed its target.

`--quick` runs a reduced version of each (part of the test command); the full run is what the
table in docs/reliability.md reports.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker

from faults.scenarios import SCENARIOS
from tests.stack import sweep

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m faults", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a reduced version of each scenario")
    ap.add_argument("--only", action="append", choices=sorted(SCENARIOS), metavar="NAME",
                    help="run only this scenario (repeatable)")
    ap.add_argument("--jobs", type=int, default=4, help="scenarios run side by side (default 4)")
    args = ap.parse_args()
    names = [n for n in SCENARIOS if (args.only is None or n in args.only)
             and not (args.quick and SCENARIOS[n].full_only)]
    started = time.monotonic()
    mode = "quick" if args.quick else "full"
    print(f"hb-medic fault suite ({mode}): {len(names)} scenarios, {args.jobs} at a time", file=sys.stderr)
    waiting = list(names)  # in the registry's order: the longest first
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    results: list[dict] = []
    while waiting or running:
        while waiting and len(running) < args.jobs:
            name = waiting.pop(0)
            cmd = [sys.executable, "-m", "faults.run", name] + (["--quick"] if args.quick else [])
            running[name] = (subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True),
                             time.monotonic())
        time.sleep(0.2)
        for name, (proc, since) in list(running.items()):
            overdue = time.monotonic() - since > SCENARIOS[name].limit(args.quick)
            if proc.poll() is None and not overdue:
                continue
            if proc.poll() is None:
                _stop(proc)
            out = proc.stdout.read() if proc.stdout else ""
            del running[name]
            result = _last_json(out) or {"scenario": name, "pass": False,
                                          "error": f"no result (exit status {proc.returncode})"}
            if overdue:
                result["pass"] = False
                result.setdefault("error", f"overran its limit of {SCENARIOS[name].limit(args.quick):.0f} s")
            results.append(result)
            print(json.dumps(result), flush=True)
    with contextlib.suppress(Exception):
        client = docker.from_env()
        sweep(client)  # what a stopped scenario could not remove
        client.close()
    took = time.monotonic() - started
    print(table(results, took, mode), flush=True)
    return 0 if results and all(r.get("pass") for r in results) else 1


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                return value
    return None


def table(results: list[dict], took: float, mode: str) -> str:
    order = list(SCENARIOS)
    rows = sorted(results, key=lambda r: order.index(r["scenario"]) if r["scenario"] in order else 99)
    width = max([len(r["scenario"]) for r in rows] + [8])
    lines = [f"{'scenario':<{width}}  result  seconds  measured", f"{'-' * width}  ------  -------  --------"]
    for r in rows:
        figure = r.get("figure") or r.get("error") or ""
        lines.append(f"{r['scenario']:<{width}}  {'pass' if r.get('pass') else 'FAIL':<6}  "
                     f"{r.get('seconds', 0):>7.1f}  {figure}")
    passed = sum(1 for r in rows if r.get("pass"))
    lines.append(f"{passed} of {len(rows)} scenarios met their target ({mode} run, {took:.0f} s)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
