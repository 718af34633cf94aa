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

from tests.stack import start_raiser, wait_until
from tests.tracebacks import RAISERS

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parent.parent


def start_agent(env: dict[str, str], log_path: Path, command: str = "run") -> subprocess.Popen:
    fh = open(log_path, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "agent", command], env={**os.environ, **env},
                            stdout=fh, stderr=subprocess.STDOUT, cwd=REPO)


def stop_agent(proc: subprocess.Popen) -> float:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    return time.monotonic() - started


def test_run_reports_and_resumes(docker_client, tmp_path):
    # Named as hummingbot-api is (its role): errors no rule knows are counted only from the
    # streams a rule reads, and the rules read hummingbot-api's stderr.
    name = f"medic-run-{uuid.uuid4().hex[:6]}-hummingbot-api"
    env = {"MEDIC_CONTAINERS": name, "MEDIC_STATE_DB": str(tmp_path / "state.db")}
    log = tmp_path / "agent.log"
    first = start_agent(env, log)
    c = start_raiser(docker_client, name, name, BEAT=0.05)
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
        # Started (its start can take seconds on a busy machine), then given time to read the
        # container's log again from its checkpoint.
        wait_until(lambda: log.read_text().count(" in act mode") == 2, 30, "the second start")
        time.sleep(2)
        stop_agent(second)
        # Handled tracebacks are not reported again after the restart.
        assert log.read_text().count("traceback in") == reported
        assert log.read_text().count(" in act mode") == 2
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


TICK_RULE = """\
id: {id}
description: raiser ticks
severity: info
where: {{containers: [{container}]}}
match:
  - kind: line
    logger: services.raiser
    level: WARNING
    message: "^tick (?P<boot>[0-9a-f]+) [0-9]+$"
captures:
  boot: {{type: name}}
notify: {{title: "tick {{boot}}", text: tick}}
"""


def test_rules_reload_and_a_broken_file_keeps_the_old_set(docker_client, tmp_path):
    name = f"medic-reload-{uuid.uuid4().hex[:6]}"
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "tick-a.yml").write_text(TICK_RULE.format(id="tick-a", container=name))
    env = {"MEDIC_CONTAINERS": name, "MEDIC_STATE_DB": str(tmp_path / "state.db"),
           "MEDIC_RULES_DIR": str(rules)}
    log = tmp_path / "agent.log"
    agent = start_agent(env, log)
    c = start_raiser(docker_client, name, name, BEAT=0.02)
    try:
        wait_until(lambda: "rule tick-a matched" in log.read_text(), 20, "tick-a matches")
        (rules / "broken.yml").write_text("id: broken\nseverity: [\n")
        wait_until(lambda: "not reloaded" in log.read_text(), 10, "the reload error")
        text = log.read_text()
        assert f"rule error: {rules / 'broken.yml'}:3: not valid YAML" in text
        mark = len(text)
        wait_until(lambda: "rule tick-a matched" in log.read_text()[mark:], 10, "tick-a still in force")
        (rules / "broken.yml").unlink()
        (rules / "tick-a.yml").unlink()
        (rules / "tick-b.yml").write_text(TICK_RULE.format(id="tick-b", container=name))
        wait_until(lambda: "rules reloaded" in log.read_text()[mark:], 10, "the reload")
        mark = len(log.read_text())
        wait_until(lambda: "rule tick-b matched" in log.read_text()[mark:], 10, "tick-b matches")
        assert "rule tick-a matched" not in log.read_text()[mark:]
        stop_agent(agent)
    finally:
        c.remove(force=True)
        if agent.poll() is None:
            agent.kill()


def test_start_refused_with_broken_rules(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "x.yml").write_text("id: x\n")
    out = subprocess.run([sys.executable, "-m", "agent", "run"], capture_output=True, text=True, timeout=30,
                         env={**os.environ, "MEDIC_RULES_DIR": str(rules),
                              "MEDIC_STATE_DB": str(tmp_path / "s.db")})
    assert out.returncode == 2
    assert "the rules have errors" in out.stderr
    assert f"{rules / 'x.yml'}:1: id 'x' must match" not in out.stderr  # x is too short an id
    assert f"{rules / 'x.yml'}:1: id: String should match pattern" in out.stderr


@pytest.mark.parametrize("mode", ["in-process", "own-process"])
def test_recorded_failures_reach_the_agent(make_stack, tmp_path, mode):
    import httpx

    from tests.stack import ADMIN, free_port

    stack = make_stack(generation="legacy")
    stack.http("POST", "/accounts/add-account", params={"account_name": "prof"})
    port = free_port()
    env = {"MEDIC_CONTAINERS": stack.api.name, "MEDIC_STATE_DB": str(tmp_path / "state.db"),
           "MEDIC_HUMMINGBOT_URL": stack.url, "MEDIC_RECORDER_ADDR": f"127.0.0.1:{port}"}
    log = tmp_path / "agent.log"
    procs = []
    if mode == "in-process":
        procs.append(start_agent(env, log))
    else:
        procs.append(start_agent(env, tmp_path / "recorder.log", command="recorder"))
        procs.append(start_agent({k: v for k, v in env.items() if k != "MEDIC_RECORDER_ADDR"}, log))
    try:
        wait_until(lambda: _listening(port), 20, "the recorder")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=ADMIN, timeout=60) as c:
            r = c.post("/bot-orchestration/deploy-v2-script", json={
                "instance_name": "img-bot", "credentials_profile": "prof",
                "image": "127.0.0.1:9/nope/hummingbot:latest"})
        assert r.json()["success"] is False
        wait_until(lambda: "rule deploy-image-unavailable matched" in log.read_text(), 20, "the match")
        assert "image='127.0.0.1:9/nope/hummingbot:latest'" in log.read_text()
    finally:
        for p in procs:
            stop_agent(p)


def _listening(port: int) -> bool:
    import socket
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_json_logs_are_redacted(tmp_path):
    canary = "canary-pw-77121"
    log = tmp_path / "agent.log"
    proc = start_agent({"MEDIC_LOG_FORMAT": "json", "MEDIC_HUMMINGBOT_PASSWORD": canary,
                        "MEDIC_HUMMINGBOT_URL": f"http://{canary}:{canary}@127.0.0.1:1",
                        "MEDIC_STATE_DB": str(tmp_path / "s.db"), "MEDIC_CONTAINERS": "medic-none"}, log)
    wait_until(lambda: "health and metrics" in log.read_text(), 20, "the start-up summary")
    stop_agent(proc)
    import json
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert {"time", "level", "logger", "message"} <= set(rows[0])
    assert any(r["message"] == "hb-medic stopped" for r in rows)
    assert canary not in log.read_text()


@pytest.mark.parametrize("level", [None, "warning"])
def test_log_levels(tmp_path, level):
    """INFO is normal operation (the start-up summary, the stop); MEDIC_LOG_LEVEL=warning keeps
    only what needs a look."""
    import json
    log = tmp_path / "agent.log"
    env = {"MEDIC_LOG_FORMAT": "json", "MEDIC_STATE_DB": str(tmp_path / "s.db"),
           "MEDIC_CONTAINERS": "medic-none", **({"MEDIC_LOG_LEVEL": level} if level else {})}
    proc = start_agent(env, log)
    if level is None:
        wait_until(lambda: "health and metrics" in log.read_text(), 20, "the start-up summary")
    else:
        wait_until(lambda: _agent_listening(proc, env), 20, "the agent to start")
    stop_agent(proc)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    levels = {r["message"]: r["level"] for r in rows}
    if level is None:
        assert levels["hb-medic stopped"] == "INFO"
        assert [r["level"] for r in rows if r["message"].startswith("hb-medic 0")] == ["INFO"]
    else:
        assert "hb-medic stopped" not in levels and not [r for r in rows if r["level"] == "INFO"]


def _agent_listening(proc: subprocess.Popen, env: dict[str, str]) -> bool:
    """/healthz answers (200 or 503): the agent has started (nothing is logged at WARNING)."""
    import urllib.error
    import urllib.request
    if proc.poll() is not None:
        return True
    try:
        with urllib.request.urlopen(f"http://{os.environ['MEDIC_HTTP_ADDR']}/healthz", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
