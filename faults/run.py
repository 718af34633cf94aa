"""Run one scenario in this process (the harness starts one such process per scenario, so a
scenario that overruns its time can be stopped without leaving the others behind).
Prints the scenario's result as one JSON object on the last line."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import traceback

from faults.scenarios import SCENARIOS


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m faults.run")
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    # The harness stops an overrunning scenario with SIGTERM: clean up (containers, agents, the
    # suite's engine) on the way out, as for any other exception.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    spec = SCENARIOS[args.scenario]
    started = time.monotonic()
    try:
        result = spec.run(args.quick)
    except SystemExit:
        result = {"pass": False, "error": "stopped: it overran its time limit"}
    except Exception as exc:
        traceback.print_exc()
        result = {"pass": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
    out = {"scenario": args.scenario, "quick": args.quick, "target": spec.target, **result,
           "seconds": round(time.monotonic() - started, 1)}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0 if out.get("pass") else 1


if __name__ == "__main__":
    sys.exit(main())
