"""A real `hb-medic run` process under test: started with its own settings, stopped with
SIGTERM or killed with `kill -9` by its pid, and dying with the scenario that started it."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.stack import REPO, free_port

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: a scenario killed by the harness takes its agents with it."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Agent:
    def __init__(self, workdir: Path, env: dict[str, str], command: str = "run") -> None:
        """`command`: run (the agent), or recorder (the deploy recorder alone, sharing the state)."""
        self.workdir = workdir
        self.command = command
        self.state_db = workdir / "state.db"
        self.log = workdir / f"{command}.log"
        self.http_port = free_port()
        # A retried bot is watched for a settle time before it counts as fixed (30 s by default):
        # a short one here; the engine's other bots (other runs') are not followed; and the stand-in's
        # admin/admin login is not told at every start (the start-up try: tests/test_exposure.py).
        self.env = {**os.environ, "MEDIC_STATE_DB": str(self.state_db), "MEDIC_HUMMINGBOT_PASSWORD": "admin",
                    "MEDIC_HTTP_ADDR": f"127.0.0.1:{self.http_port}", "MEDIC_LOG_LEVEL": "INFO",
                    "MEDIC_BOT_SETTLE": "3", "MEDIC_BOTS": "off", "MEDIC_PROBE_DEFAULTS": "false", **env}
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    # -- life ---------------------------------------------------------------------------------
    def start(self, wait: bool = True) -> Agent:
        fh = self.log.open("ab")
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "agent", self.command], env=self.env,
                                         cwd=REPO, stdout=fh, stderr=subprocess.STDOUT,
                                         preexec_fn=_die_with_parent)
        finally:
            fh.close()
        self.starts += 1
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Up when /healthz answers at all (200 or 503) and the recorder, if any, listens."""
        deadline = time.monotonic() + timeout
        recorder = self.env.get("MEDIC_RECORDER_ADDR")
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"hb-medic {self.command} exited ({self.proc.returncode}):\n{self.tail()}")
            up = self.command != "run" or self.health()[0]
            if up and (not recorder or _listening(recorder)):
                return
            time.sleep(0.05)
        raise RuntimeError(f"hb-medic {self.command} not ready after {timeout:.0f} s:\n{self.tail()}")

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self.proc.returncode

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    # -- looking at it ------------------------------------------------------------------------
    def health(self) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except (OSError, ValueError):
            return 0, {}

    def metrics(self) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5) as resp:
                return resp.read().decode()
        except OSError:
            return ""

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def rss_peak_mb(self) -> float:
        """The process's peak resident memory (VmHWM), while it runs."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except (OSError, TypeError):
            pass
        return 0.0

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Read the state file beside the running agent (read-only, WAL readers never block it)."""
        for _ in range(50):
            try:
                conn = sqlite3.connect(self.state_db.absolute().as_uri() + "?mode=ro", uri=True, timeout=10)
                try:
                    return conn.execute(sql, args).fetchall()
                finally:
                    conn.close()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                time.sleep(0.1)
        raise RuntimeError(f"cannot read {self.state_db}")


def _listening(addr: str) -> bool:
    import socket

    host, _, port = addr.rpartition(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host or "127.0.0.1", int(port))) == 0
