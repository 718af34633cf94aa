"""Runs inside a test container: raises genuine exceptions and prints noise.

On stderr, records in hummingbot-api's format with tracebacks of every shape;
on stdout, numbered noise; then numbered heartbeats until stopped. Every line
carries this boot's id, so tests can tell lines of different starts apart.
Settings come from the environment: ROUNDS, BEAT (seconds), LONG_LINE (chars).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import uuid

from tests.tracebacks import RAISERS, exception


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s - %(name)s - %(levelname)s - %(message)s")
    log = logging.getLogger("services.raiser")
    boot = uuid.uuid4().hex[:8]
    print(f"boot {boot}", flush=True)
    if os.environ.get("LONG_LINE"):
        print(f"long {boot} " + "L" * int(os.environ["LONG_LINE"]), flush=True)
    for r in range(int(os.environ.get("ROUNDS", "1"))):
        for name in sorted(RAISERS):
            print(f"noise {boot} {r} {name}", flush=True)
            log.error("failed %s %s %d", name, boot, r, exc_info=exception(name))
    print(f"raised {boot}", flush=True)
    beat = float(os.environ.get("BEAT", "0.05"))
    n = 0
    while True:
        n += 1
        print(f"beat {boot} {n}", flush=True)
        if n % 10 == 0:
            log.warning("tick %s %d", boot, n)
        time.sleep(beat)


if __name__ == "__main__":
    sys.exit(main())
