"""Measurements over a real engine: detection latency, following throughput
against `docker logs -f`, idle CPU, and the recorder's added latency."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import docker
import httpx

from agent.events import TRACEBACK
from agent.ingest.assemble import Assembler
from agent.ingest.follow import Ingest
from agent.ingest.pipeline import Pipeline
from agent.match.loader import load_rules
from agent.match.matcher import Matcher
from agent.recorder.proxy import Recorder, RecorderServer
from agent.state import State
from tests.images import TOOLS_IMAGE
from tests.stack import Stack, free_port, labels, wait_until

REPO = Path(__file__).resolve().parent.parent

# A container raising one traceback at a time; its message carries the wall time at which
# the last line is written (host and container share the clock).
RAISE = """
import logging, sys, time
logging.basicConfig(stream=sys.stderr, format='%(asctime)s - %(name)s - %(levelname)s - %(message)s')
log = logging.getLogger('services.bench')
time.sleep(1.0)
for i in range({n}):
    try:
        try:
            open('/nonexistent/%d' % i)
        except OSError as e:
            raise RuntimeError('bench %.6f' % time.time()) from e
    except RuntimeError as e:
        log.error('failed', exc_info=e)
    time.sleep({gap})
time.sleep(3600)
"""
NOISE = """
import sys
w = sys.stdout.write
line = 'INFO:     127.0.0.1:39592 - "GET /bot-orchestration/status HTTP/1.1" 200 OK %07d\\n'
for i in range({n}):
    w(line % i)
w('DONE\\n'); sys.stdout.flush()
import time; time.sleep(3600)
"""


def _run(client, code: str, name: str):
    return client.containers.run(TOOLS_IMAGE, entrypoint=["python3", "-u", "-c", code], name=name,
                                 detach=True, network_mode="none", labels=labels("bench"))


def detect_latency(client, samples: int) -> list[float]:
    """ms from the container writing the last traceback line to the match decision."""
    name = f"medic-bench-detect-{uuid.uuid4().hex[:6]}"
    rules = [r for r in load_rules(REPO / "rules").rules]
    matcher = Matcher(rules)
    out: list[float] = []

    def handle(event):
        matcher.match(event)  # the decision, with the full library
        if event.kind == TRACEBACK and event.outermost and event.outermost.message.startswith("bench "):
            out.append((time.time() - float(event.outermost.message.split()[1])) * 1000)

    pipeline = Pipeline(handle, assembler=Assembler(grace=0.03))
    ingest = Ingest([name], pipeline, catchup_window=60)
    pipeline.start()
    ingest.start()
    c = _run(client, RAISE.format(n=samples, gap=0.05), name)
    try:
        wait_until(lambda: len(out) >= samples, 30 + samples, "the tracebacks")
    finally:
        ingest.stop(time.monotonic() + 5.0)
        pipeline.stop(time.monotonic() + 5.0)
        c.remove(force=True)
    return out


def follow_ratio(client, lines: int) -> tuple[float, float, float]:
    """(agent lines/s, docker logs -f lines/s, ratio), same container, same run."""
    name = f"medic-bench-noise-{uuid.uuid4().hex[:6]}"
    c = _run(client, NOISE.format(n=lines), name)
    try:
        wait_until(lambda: b"DONE" in c.logs(tail=1), 120, "the noisy container to finish writing")
        # docker logs -f, to /dev/null, until it has read the whole log (it then blocks: follow)
        docker_bin = shutil.which("docker")
        started = time.perf_counter()
        proc = subprocess.Popen([docker_bin, "logs", "-f", name], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        for raw in proc.stdout:
            if raw.startswith(b"DONE"):
                break
        cli = time.perf_counter() - started
        proc.kill()
        proc.wait()

        done = threading.Event()
        count = [0]

        def handle(event):
            count[0] += 1
            if event.lines and event.lines[0] == "DONE":
                done.set()

        matcher = Matcher(load_rules(REPO / "rules").rules)
        pipeline = Pipeline(lambda e: (matcher.match(e), handle(e)), assembler=Assembler())
        ingest = Ingest([name], pipeline, catchup_window=3600)
        started = time.perf_counter()
        pipeline.start()
        ingest.start()
        done.wait(300)
        agent = time.perf_counter() - started
        ingest.stop(time.monotonic() + 5.0)
        pipeline.stop(time.monotonic() + 5.0)
    finally:
        c.remove(force=True)
    return lines / agent, lines / cli, cli / agent


def idle_cpu(seconds: float) -> float:
    """CPU % of `hb-medic run` following a quiet container, after its start-up."""
    client = docker.from_env()
    name = f"medic-bench-idle-{uuid.uuid4().hex[:6]}"
    c = _run(client, "import time\nprint('quiet', flush=True)\ntime.sleep(3600)", name)
    tmp = Path(tempfile.mkdtemp(prefix="medic-bench-"))
    env = {**os.environ, "MEDIC_CONTAINERS": name, "MEDIC_STATE_DB": str(tmp / "s.db"),
           "MEDIC_HUMMINGBOT_PASSWORD": "bench", "MEDIC_HTTP_ADDR": f"127.0.0.1:{free_port()}",
           "MEDIC_RULES_DIR": str(REPO / "rules"), "MEDIC_BOTS": "off"}
    proc = subprocess.Popen([sys.executable, "-m", "agent", "run"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        time.sleep(3.0)  # start-up is not idle
        before, t0 = _cpu(proc.pid), time.monotonic()
        time.sleep(seconds)
        used, wall = _cpu(proc.pid) - before, time.monotonic() - t0
    finally:
        proc.terminate()
        proc.wait(10)
        c.remove(force=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 100.0 * used / wall


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def recorder_added(client, requests: int) -> tuple[float, float]:
    """(p50, p99) ms added per request by the recorder over loopback (direct vs through it)."""
    with Stack(client) as stack:
        port = free_port()
        tmp = Path(tempfile.mkdtemp(prefix="medic-bench-"))
        thread = RecorderServer(Recorder(stack.url, State(tmp / "s.db")), "127.0.0.1", port)
        thread.start()
        thread.ready.wait(10)
        try:
            direct = _latencies(stack.url, requests)
            via = _latencies(f"http://127.0.0.1:{port}", requests)
        finally:
            thread.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    # The difference of two noisy percentiles can come out below zero: nothing is added then.
    return max(0.0, _pct(via, 50) - _pct(direct, 50)), max(0.0, _pct(via, 99) - _pct(direct, 99))


def _latencies(base: str, n: int) -> list[float]:
    out = []
    with httpx.Client(base_url=base) as c:
        for _ in range(20):
            c.get("/")
        for _ in range(n):
            t = time.perf_counter()
            c.get("/")
            out.append((time.perf_counter() - t) * 1000)
    return out


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p / 100))]
