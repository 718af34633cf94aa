"""The bots, measured over a real engine with the stand-in hummingbot-api and bots:
how long from a bot's death to the message, and what following many bots costs
(`hb-medic run`'s RSS and idle CPU), each with the agent as its own process."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import docker
import httpx

from tests.receiver import Receiver
from tests.stack import Stack, free_port, wait_until

REPO = Path(__file__).resolve().parent.parent
WRONG = "standin-sha256:0000000000000000000000000000000000000000000000000000000000000000"


def _agent(stack: Stack, tmp: Path, *, notify: str | None = None) -> tuple[subprocess.Popen, str]:
    """`hb-medic run` following the stack's bots; and where its /healthz is."""
    addr = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "MEDIC_CONTAINERS": stack.prefix + "hummingbot-api",
           "MEDIC_STATE_DB": str(tmp / "state.db"), "MEDIC_HUMMINGBOT_URL": stack.url,
           "MEDIC_HUMMINGBOT_PASSWORD": "admin", "MEDIC_HTTP_ADDR": addr,
           "MEDIC_BOTS": f"b{stack.run_id}_*", "MEDIC_BOTS_DIR": str(stack.bots),
           "MEDIC_RULES_DIR": str(REPO / "rules"), "MEDIC_NOTIFY_URLS": notify or ""}
    proc = subprocess.Popen([sys.executable, "-m", "agent", "run"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    return proc, addr


def _followed(addr: str) -> int:
    """Bots the running agent follows, from its /healthz."""
    try:
        streams = httpx.get(f"http://{addr}/healthz", timeout=5).json().get("streams", {})
    except (httpx.HTTPError, ValueError):
        return 0
    return sum(1 for n in streams if n.startswith("b"))


def _epoch(stamp: str) -> float:
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float(f"0.{frac or 0}")


def measure(client: docker.DockerClient, *, count: int, seconds: float, deaths: int) -> dict:
    """One stack, one `hb-medic run`: its RSS and idle CPU following `count` quiet bots (consoles
    and log files), then, with them still followed, the seconds from each of `deaths` bots'
    deaths (the engine's FinishedAt) to its message at a receiver."""
    with Stack(client) as stack, Receiver() as rx, tempfile.TemporaryDirectory(prefix="medic-bench-") as tmp:
        stack.http("POST", "/accounts/add-account", params={"account_name": "quiet"})
        for i in range(count):
            stack.deploy(instance_name=f"b{stack.run_id}_q{i}", credentials_profile="quiet", headless=True)
        proc, addr = _agent(stack, Path(tmp), notify=rx.url)
        try:
            wait_until(lambda: _followed(addr) >= count or None, 120, f"{count} bots followed")
            time.sleep(3.0)  # start-up is not idle
            before, t0 = _cpu(proc.pid), time.monotonic()
            time.sleep(seconds)
            used, wall = _cpu(proc.pid) - before, time.monotonic() - t0
            out = {"rss_mb": _rss_mb(proc.pid), "idle_cpu_pct": 100.0 * used / wall, "deaths": []}
            for i in range(deaths):
                account = f"dying{i}"
                stack.http("POST", "/accounts/add-account", params={"account_name": account})
                (stack.bots / "credentials" / account / ".password_verification").write_text(WRONG)
                name = stack.deploy(instance_name=f"b{stack.run_id}_d{i}", credentials_profile=account,
                                    headless=True).json()["unique_instance_name"]
                got = wait_until(lambda n=name: next((t for t, m in rx.timed() if n in m), None), 60,
                                 f"the message about {name}")
                bot = client.containers.get(name)
                out["deaths"].append(got - _epoch(bot.attrs["State"]["FinishedAt"]))
        finally:
            proc.terminate()
            proc.wait(10)
    return out


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
