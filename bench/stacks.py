"""The cost of following, across two engines: `hb-medic run` with two stacks (the shared
engine over its socket, and a second engine of the bench's own over tcp:// with TLS),
following 1, 10 and 100 quiet containers (RSS, idle CPU), and the throughput of following 10
noisy ones. The agent is its own process, measured from /proc."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import docker
import yaml

from bench.bots import _cpu, _epoch, _rss_mb
from tests.engines import SecondEngine
from tests.images import TOOLS_IMAGE
from tests.stack import REPO, free_port, labels, wait_until

QUIET = "echo quiet; exec sleep 3600"
# A noisy container waits for the word to go (a file), so all of them start writing at once.
NOISY = ("import os, sys, time\nwhile not os.path.exists('/go/go'):\n    time.sleep(0.01)\n"
         "w = sys.stdout.write\nfor i in range({n}):\n"
         "    w('2026-11-29 09:30:48,655 - services.noise - INFO - noisy line %09d ...........\\n' % i)\n"
         "sys.stdout.flush()\n")


class Bed:
    """Two engines with containers to follow; everything removed at the end."""

    def __init__(self, shared: docker.DockerClient) -> None:
        self.shared = shared
        self.tmp = Path(tempfile.mkdtemp(prefix="medic-bench-stacks-"))
        self.run = uuid.uuid4().hex[:6]
        self.engine = SecondEngine(tls_port=free_port())
        self.remote: docker.DockerClient | None = None
        self.made: list[tuple[docker.DockerClient, str]] = []
        self.go = self.tmp / "go"
        self.go.mkdir()

    def __enter__(self) -> Bed:
        self.engine.start()
        self.engine.load_images(self.shared, [TOOLS_IMAGE])
        self.remote = self.engine.client()
        return self

    def __exit__(self, *exc) -> None:
        for client, name in self.made:
            with contextlib.suppress(docker.errors.DockerException):
                client.api.remove_container(name, force=True)
        if self.remote is not None:
            self.remote.close()
        self.engine.close()
        subprocess.run(["rm", "-rf", str(self.tmp)], check=False)

    def containers(self, kind: str, count: int, *, start: bool = True,
                   lines: int = 0) -> list[tuple[str, str]]:
        """(stack, name) of `count` containers, half on each engine (the odd one on the shared)."""
        out = []
        for i in range(count):
            stack = "local" if i % 2 == 0 else "remote"
            client = self.shared if stack == "local" else self.remote
            name = f"medic-bench-{self.run}-{kind}{i}"
            argv = ["sh", "-c", QUIET] if kind == "quiet" else ["python3", "-c", NOISY.format(n=lines)]
            c = client.containers.create(TOOLS_IMAGE, argv[1:], entrypoint=argv[:1], name=name,
                                         network_mode="none", labels=labels(self.run),
                                         volumes={str(self.go): {"bind": "/go", "mode": "ro"}})
            self.made.append((client, name))
            if start:
                c.start()
            out.append((stack, name))
        return out

    def agent(self, followed: list[tuple[str, str]]) -> tuple[subprocess.Popen, str]:
        certs = self.engine.certs
        cert, key = certs.pair("client")
        secret = self.tmp / "password"
        secret.write_text("bench")
        secret.chmod(0o600)
        stacks = []
        for name, host, tls in (("local", "unix:///var/run/docker.sock", None),
                                ("remote", self.engine.tcp_url,
                                 {"ca": str(certs.ca), "cert": str(cert), "key": str(key)})):
            mine = [c for s, c in followed if s == name]
            if mine:
                stacks.append({"name": name, "docker_host": host, "containers": mine, "bots": "off",
                               "hummingbot_url": f"http://127.0.0.1:{free_port()}",
                               "hummingbot_password_file": str(secret), **({"tls": tls} if tls else {})})
        run = self.tmp / uuid.uuid4().hex[:6]
        run.mkdir()
        (run / "stacks.yml").write_text(yaml.safe_dump({"stacks": stacks}))
        addr = f"127.0.0.1:{free_port()}"
        env = {**os.environ, "MEDIC_CONFIG_FILE": str(run / "stacks.yml"),
               "MEDIC_STATE_DB": str(run / "s.db"),
               "MEDIC_HTTP_ADDR": addr, "MEDIC_RULES_DIR": str(REPO / "rules"), "MEDIC_LOG_LEVEL": "ERROR"}
        proc = subprocess.Popen([sys.executable, "-m", "agent", "run"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd=REPO)
        return proc, addr


def _lines(addr: str) -> dict[str, float]:
    """hb_medic_lines_total by container, from the agent's /metrics."""
    try:
        with urllib.request.urlopen(f"http://{addr}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    found = re.finditer(r'^hb_medic_lines_total\{container="([^"]+)",[^}]*\} (\S+)$', text, re.M)
    return {m[1]: float(m[2]) for m in found}


def _attached(addr: str) -> int:
    try:
        with urllib.request.urlopen(f"http://{addr}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return 0
    return len(re.findall(r'^hb_medic_stream_attached\{[^}]*state="attached"\} 1\.0$', text, re.M))


def quiet_cost(bed: Bed, followed: list[tuple[str, str]], seconds: float,
               settle: float = 3.0) -> tuple[float, float]:
    """(RSS MB, idle CPU %) of the agent following these quiet containers."""
    proc, addr = bed.agent(followed)
    try:
        wait_until(lambda: _attached(addr) >= len(followed) or proc.poll() is not None, 120,
                   f"{len(followed)} containers followed")
        time.sleep(settle)  # start-up is not idle
        before, t0 = _cpu(proc.pid), time.monotonic()
        time.sleep(seconds)
        used, wall = _cpu(proc.pid) - before, time.monotonic() - t0
        rss = _rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    return rss, 100.0 * used / wall


def noisy_throughput(bed: Bed, count: int, lines: int) -> tuple[float, float]:
    """Lines a second the agent follows from `count` containers writing `lines` each at once,
    from their start to the last line counted; and the lines a second the containers wrote
    (through their engines' logging: the pace there was to keep)."""
    (bed.go / "go").unlink(missing_ok=True)
    noisy = bed.containers("noisy", count, lines=lines)
    proc, addr = bed.agent(noisy)
    try:
        wait_until(lambda: _attached(addr) >= count or proc.poll() is not None, 120,
                   "the noisy containers to be followed")
        t0, wall0 = time.monotonic(), time.time()
        (bed.go / "go").write_text("go")
        total = count * lines
        wait_until(lambda: sum(_lines(addr).values()) >= total, 300, f"{total:,} lines followed",
                   interval=0.05)
        followed = total / (time.monotonic() - t0)
        ended = max(_epoch((bed.shared if stack == "local" else bed.remote).api.inspect_container(name)
                           ["State"]["FinishedAt"]) for stack, name in noisy)
        return followed, total / max(ended - wall0, 1e-3)
    finally:
        proc.terminate()
        proc.wait(10)
        for stack, name in noisy:
            with contextlib.suppress(docker.errors.DockerException):
                (bed.shared if stack == "local" else bed.remote).api.remove_container(name, force=True)
