"""A tiny stand-in for a Hummingbot bot container: prints log lines forever.

It shows what a deploy handed it (instance id, script config, headless mode)
so tests can check the bind mounts and environment, then a heartbeat.
"""

from __future__ import annotations

import os
import pathlib
import signal
import sys
import time


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    conf = pathlib.Path("/home/hummingbot/conf/conf_client.yml")
    instance_id = "?"
    if conf.is_file():
        for line in conf.read_text().splitlines():
            if line.startswith("instance_id:"):
                instance_id = line.split(":", 1)[1].strip()
    print(f"bot starting: instance_id={instance_id}", flush=True)
    print(f"script_config={os.environ.get('SCRIPT_CONFIG', '')} "
          f"headless={os.environ.get('HEADLESS_MODE', '')} "
          f"password_set={bool(os.environ.get('CONFIG_PASSWORD'))}", flush=True)
    interval = float(os.environ.get("BOT_HEARTBEAT_INTERVAL", "5"))
    n = 0
    while True:
        n += 1
        print(f"heartbeat {n}", flush=True)
        time.sleep(interval)


if __name__ == "__main__":
    sys.exit(main())
