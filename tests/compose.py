"""Bring a compose file of the repository up for real with Debian's docker-compose 1.29.

The test bed talks over 127.0.0.1 only (host networking), so the compose network is not
used: an override file gives the services this run's image, ports, secrets (as files),
bots folder and labels; docker-compose merges it with the shipped file (`config`), and
what an override cannot remove in compose 1.29 is then dropped from the merged file:
each service's `networks` (replaced by `network_mode: host`) and its published `ports`
(meaningless on the host network, and refused there by compose 1.29).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.stack import REPO, free_port, labels

COMPOSE = shutil.which("docker-compose")


def port_or_free(port: int) -> int:
    """The port the compose file names when it is free here, else a free one."""
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


class ComposeUp:
    """`docker-compose up -d` of one shipped file with an override; `down -v` on close."""

    def __init__(self, file: str, run_id: str, override: dict, secrets: dict[str, str]) -> None:
        if COMPOSE is None:
            if os.environ.get("CI"):
                pytest.fail("CI needs docker-compose (scripts/prepare installs Debian's)")
            pytest.skip("docker-compose is not installed (scripts/prepare installs Debian's)")
        self.run_id = run_id
        self.project = f"medic-t{run_id}"
        self.dir = Path(tempfile.mkdtemp(prefix="medic-compose-"))
        for name, text in secrets.items():
            path = self.dir / "secrets" / name
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
            if os.geteuid() == 0:  # as the docs say: the agent's user (uid 10001) alone may read it
                os.chown(path, 10001, -1)
                path.chmod(0o600)
            else:  # the agent runs as uid 10001: as with the default umask
                path.chmod(0o644)
        override.setdefault("secrets", {}).update(
            {name: {"file": str(self.dir / "secrets" / name)} for name in secrets})
        for svc in override.get("services", {}).values():
            svc.setdefault("labels", {}).update(labels(run_id))
        (self.dir / "override.yml").write_text(yaml.safe_dump(override))
        self.env = {**os.environ, "DOCKER_GID": str(os.stat("/var/run/docker.sock").st_gid)}
        merged = yaml.safe_load(self._run("-f", str(REPO / file), "-f", str(self.dir / "override.yml"),
                                          "config").stdout)
        for svc in merged["services"].values():
            svc.pop("ports", None)
            svc.pop("networks", None)
            svc["network_mode"] = "host"
        merged.pop("networks", None)
        for vol in merged.get("volumes", {}).values():
            vol.setdefault("labels", {}).update(labels(run_id))
        self.file = self.dir / "compose.host.yml"
        self.file.write_text(yaml.safe_dump(merged))
        self.config = merged

    def _run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        out = subprocess.run([COMPOSE, "--ansi", "never", "-p", self.project, *args], capture_output=True,
                             text=True, env=self.env, cwd=self.dir, timeout=timeout)
        if out.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out

    def up(self) -> ComposeUp:
        self._run("-f", str(self.file), "up", "-d", "--no-build")
        return self

    def close(self) -> None:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            self._run("-f", str(self.file), "down", "-v", "--remove-orphans", timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)
