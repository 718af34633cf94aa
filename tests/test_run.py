"""`hb-medic run` as a process: follows a real container, reports what it sees,
stops cleanly on SIGTERM and resumes from its checkpoint when started again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.images import TOOLS_IMAGE
from tests.stack import LABEL, wait_until
from tests.tracebacks import RAISERS

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parent.parent


def start_agent(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    fh = open(log_path, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "agent", "run"], env={**os.environ, **env},
                            stdout=fh, stderr=subprocess.STDOUT, cwd=REPO)


def stop_agent(proc: subprocess.Popen) -> float:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    return time.monotonic() - started


def test_run_reports_and_resumes(docker_client, tmp_path):
    name = f"medic-run-{uuid.uuid4().hex[:6]}"
    env = {"MEDIC_CONTAINERS": name, "MEDIC_STATE_DB": str(tmp_path / "state.db")}
    log = tmp_path / "agent.log"
    first = start_agent(env, log)
    c = docker_client.containers.run(
        TOOLS_IMAGE, entrypoint=["python3", "-u", "-m", "tests.raiser"], working_dir="/w",
        name=name, detach=True, network_mode="none", labels={LABEL: name},
        volumes={str(REPO): {"bind": "/w", "mode": "ro"}}, environment={"BEAT": "0.05"})
    try:
        wait_until(lambda: log.read_text().count("traceback in") >= len(RAISERS), 20, "reports")
        took = stop_agent(first)
        assert took < 3, took
        text = log.read_text()
        assert "hb-medic stopped" in text
        assert f"traceback in {name} (stderr): FileNotFoundError:" in text
        assert "ExceptionGroup: several tasks failed" in text
        reported = text.count("traceback in")
        assert reported == len(RAISERS)

        second = start_agent(env, log)
        time.sleep(2)
        stop_agent(second)
        # Handled tracebacks are not reported again after the restart.
        assert log.read_text().count("traceback in") == reported
        assert log.read_text().count("hb-medic following") == 2
    finally:
        c.remove(force=True)
        if first.poll() is None:
            first.kill()


def test_bad_setting_is_one_clear_message(tmp_path):
    out = subprocess.run([sys.executable, "-m", "agent", "run"], capture_output=True, text=True,
                         env={**os.environ, "MEDIC_CATCHUP_WINDOW": "-5"}, timeout=30)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "hb-medic: bad setting MEDIC_CATCHUP_WINDOW: Input should be greater than 0"]
