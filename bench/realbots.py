"""The agent's footprint beside the REAL programs (tests/realstack): the real current-generation
hummingbot-api with its own broker and database, and real Hummingbot bots running upstream's
v2_with_controllers script, deployed through the agent's recorder. `hb-medic run` is its own
process with its recorder, a notification target, the shipped rules (watching the stack's
prefixed container names) and the bots' log files. There is no internet here: the bots log their
exchanges' DNS errors on their consoles and in their log files, as a bot does when its exchange
is out of reach, so the agent follows far more lines than it does with quiet stand-in bots."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
import httpx

from bench.bots import _cpu, _rss_mb
from tests.realstack.images import BOT_IMAGE, ensure_real_images
from tests.realstack.stack import RealStack
from tests.receiver import Receiver
from tests.stack import ADMIN, free_port, prefixed_rules, wait_until

SCRIPT = "v2_with_controllers.py"  # upstream's script: runs, and asks its rate sources for prices


def _agent(stack: RealStack, tmp: Path, tag: str, notify: str) -> tuple[subprocess.Popen, str, str]:
    """`hb-medic run` following the stack's hummingbot-api and the bots named `tag*`; where its
    /healthz and its recorder are."""
    addr, recorder = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    prefix = stack.api_name.removesuffix("hummingbot-api")
    env = {**os.environ, "MEDIC_CONTAINERS": stack.api_name,
           "MEDIC_RULES_DIR": str(prefixed_rules(prefix, tmp / "rules")),
           "MEDIC_STATE_DB": str(tmp / "state.db"), "MEDIC_HUMMINGBOT_URL": stack.url,
           "MEDIC_HUMMINGBOT_USERNAME": ADMIN[0], "MEDIC_HUMMINGBOT_PASSWORD": ADMIN[1],
           "MEDIC_HTTP_ADDR": addr, "MEDIC_RECORDER_ADDR": recorder, "MEDIC_BOTS": f"{tag}*",
           "MEDIC_BOTS_DIR": str(stack.bots), "MEDIC_NOTIFY_URLS": notify,
           "MEDIC_ALLOWED_IMAGES": BOT_IMAGE}
    with open(tmp / "agent.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "agent", "run"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return proc, addr, recorder


def _healthz(addr: str) -> bool:
    """The agent's /healthz answers (healthy or not)."""
    try:
        return httpx.get(f"http://{addr}/healthz", timeout=5).status_code in (200, 503)
    except httpx.HTTPError:
        return False


def _attached(addr: str, tag: str) -> int:
    """Bot consoles the running agent has attached, from its /healthz."""
    try:
        streams = httpx.get(f"http://{addr}/healthz", timeout=5).json().get("streams", {})
    except (httpx.HTTPError, ValueError):
        return 0
    return sum(1 for n, state in streams.items() if tag in n and state == "attached")


def _hwm_mb(pid: int) -> float:
    """The process's peak RSS over its whole life (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _written(stack: RealStack, names: list[str]) -> int:
    """Bytes the bots have written so far: their consoles (as the engine keeps them) and log files."""
    total = 0
    for name in names:
        total += len(stack.client.api.logs(name, stdout=True, stderr=True))
        total += sum(p.stat().st_size for p in stack.bot_logs(name).glob("*") if p.is_file())
    return total


def _check(proc: subprocess.Popen, tmp: Path) -> None:
    """Fail with the end of its log if `hb-medic run` has exited."""
    if proc.poll() is not None:
        raise RuntimeError("hb-medic run exited:\n" + (tmp / "agent.log").read_text()[-3000:])


def measure(client: docker.DockerClient, *, count: int = 3, minutes: int = 3, settle: float = 10.0) -> dict:
    """One real stack and one `hb-medic run`: its RSS once started, then `count` healthy bots
    deployed through its recorder; once every bot is heard over MQTT and followed, `settle`
    seconds, then its RSS every second and its CPU in each of `minutes` one-minute slices (a bot
    with no exchange in reach writes its errors once a minute: each slice holds one round)."""
    ensure_real_images(client, log=lambda _msg: None)  # built by scripts/prepare: only checked
    started = time.monotonic()
    with (RealStack(client, "current") as stack, Receiver() as rx,
          tempfile.TemporaryDirectory(prefix="medic-bench-") as folder):
        tmp, tag = Path(folder), f"rb{stack.run_id[:6]}_"
        proc, addr, recorder = _agent(stack, tmp, tag, rx.url)
        try:
            wait_until(lambda: proc.poll() is not None or _healthz(addr), 60, "the agent's /healthz")
            time.sleep(3.0)  # start-up is not over at the first answer
            _check(proc, tmp)
            before_bots = _rss_mb(proc.pid)
            names = _deploy(stack, recorder, tag, count)
            wait_until(lambda: all((stack.status().get(n) or {}).get("recently_active") for n in names), 120,
                       f"{count} bots heard over MQTT", interval=1)
            wait_until(lambda: _attached(addr, tag) >= count, 60, f"{count} bots followed", interval=0.5)
            ready = time.monotonic() - started
            time.sleep(settle)
            rss: list[float] = []
            slices: list[float] = []
            written = _written(stack, names)
            for _ in range(minutes):
                cpu0, t0 = _cpu(proc.pid), time.monotonic()
                while time.monotonic() - t0 < 60.0:
                    time.sleep(1.0)
                    rss.append(_rss_mb(proc.pid))
                slices.append(100.0 * (_cpu(proc.pid) - cpu0) / (time.monotonic() - t0))
            written = _written(stack, names) - written
            _check(proc, tmp)
            return {"bots": len(names), "rss_mb": statistics.median(rss), "rss_peak_mb": _hwm_mb(proc.pid),
                    "rss_before_bots_mb": before_bots, "idle_cpu_pct": statistics.median(slices),
                    "rss_samples": len(rss), "cpu_samples": len(slices), "ready_s": ready,
                    "written_kb_per_bot_min": written / 1024 / len(names) / minutes}
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _deploy(stack: RealStack, recorder: str, tag: str, count: int) -> list[str]:
    """`count` healthy headless bots, each with its own credentials profile and upstream's script,
    deployed through the agent's recorder as a client pointed at it does; their container names."""
    config = f"{tag}cfg"
    answer = stack.write_script_config(config, SCRIPT)
    if answer.status_code not in (200, 201):
        raise RuntimeError(f"script config: {answer.status_code} {answer.text[:500]}")
    names = []
    with httpx.Client(base_url=f"http://{recorder}", auth=ADMIN, timeout=120) as http:
        for i in range(count):
            answer = stack.add_account(f"{tag}acct{i}")
            if answer.status_code != 201:
                raise RuntimeError(f"add-account: {answer.status_code} {answer.text[:500]}")
            answer = http.post("/bot-orchestration/deploy-v2-script", json={
                "instance_name": f"{tag}bot{i}", "credentials_profile": f"{tag}acct{i}", "image": BOT_IMAGE,
                "headless": True, "script_config": f"{config}.yml"})
            if answer.status_code != 200 or not answer.json().get("success"):
                raise RuntimeError(f"deploy: {answer.status_code} {answer.text[:500]}")
            names.append(answer.json()["unique_instance_name"])
    return names
