"""A Docker engine of the suite's own, to restart at will: its own dockerd with its own socket,
data root, exec root and pid file under a temporary folder, no bridge and no iptables rules.
The shared engine is never touched; this one is stopped (by its pid) and removed when done."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
from docker.errors import DockerException

from faults.agent import _die_with_parent


class SecondEngine:
    def __init__(self) -> None:
        # Short paths: containerd's socket under the exec root must fit a unix socket path.
        self.root = Path(tempfile.mkdtemp(prefix="mfe-", dir="/tmp"))
        self.socket = self.root / "d.sock"
        self.url = f"unix://{self.socket}"
        self.proc: subprocess.Popen | None = None
        self.log = self.root / "dockerd.log"
        self.restarts = 0

    def start(self, timeout: float = 60.0) -> SecondEngine:
        binary = shutil.which("dockerd")
        if binary is None:
            raise RuntimeError("dockerd is not installed: the engine-restart scenario needs its own engine")
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [binary, "--host", self.url, "--data-root", str(self.root / "data"),
                 "--exec-root", str(self.root / "x"), "--pidfile", str(self.root / "d.pid"),
                 "--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=overlay2"],
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"the suite's dockerd exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"the suite's dockerd did not answer within {timeout:.0f} s")

    def answers(self) -> bool:
        client = None
        try:
            client = docker.DockerClient(base_url=self.url, timeout=5)
            return bool(client.ping())
        except (DockerException, OSError):
            return False
        finally:
            if client is not None:
                client.close()

    def stop(self) -> None:
        """SIGTERM to our dockerd, as a service manager stops it (its containers stop with it)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def restart(self) -> float:
        """Stop and start again; returns the moment (time.monotonic) it answers again."""
        self.stop()
        self.start()
        self.restarts += 1
        return time.monotonic()

    @contextlib.contextmanager
    def client(self) -> Iterator[docker.DockerClient]:
        client = docker.DockerClient(base_url=self.url, timeout=120)
        try:
            yield client
        finally:
            client.close()

    def load_image(self, shared: docker.DockerClient, image: str) -> None:
        """Nothing can be pulled here: the image comes from the shared engine."""
        with self.client() as mine:
            mine.images.load(shared.images.get(image).save(chunk_size=1 << 20, named=image))
            mine.images.get(image)  # there under its name: running it never tries a registry

    def close(self) -> None:
        with contextlib.suppress(Exception), self.client() as mine:
            for c in mine.containers.list(all=True):
                c.remove(force=True)
        self.stop()
        # dockerd unmounts its layers on a clean stop; anything left mounted is not deleted.
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(self.root))]
        for mount in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        if os.path.exists(self.root):
            subprocess.run(["rm", "-rf", str(self.root)], capture_output=True)
