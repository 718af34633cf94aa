"""State file faults: an unusable file stops the start with one message naming it and what
to do, a distinct exit status (3), and the file untouched; a 0-byte file is not "new". A
file that cannot be written while the agent runs turns /healthz 503 with the reason, is
logged once, and the agent recovers when it can write again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from agent.records import IncidentState
from agent.state import State
from tests.stack import REPO, free_port, wait_until
from tests.statefiles import before_checkpoints, damage, digest, good_state

EXIT_STATE_FILE = 3


def _run(state: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "MEDIC_STATE_DB": str(state), "MEDIC_CONTAINERS": "medic-none-such",
           "MEDIC_RULES_DIR": str(REPO / "rules")}
    return subprocess.run([sys.executable, "-m", "agent", "run"], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.mark.parametrize(("kind", "says"), [
    ("garbage", "is not a SQLite database"),
    ("half", "is damaged"),
    ("directory", "is a directory"),
    ("empty", "is empty (0 bytes)"),
    ("foreign", "is a SQLite database of another program"),
])
def test_unusable_state_file_stops_the_start_with_one_message(tmp_path, kind, says):
    state = tmp_path / "state.db"
    damage(kind, state)
    before = digest(state)
    out = _run(state)
    assert out.returncode == EXIT_STATE_FILE, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"hb-medic: the state file {state} {says}") and "left untouched" in lines[0]
    assert "Traceback" not in out.stderr
    assert digest(state) == before


def test_read_only_state_file_stops_the_start(tmp_path):
    state = tmp_path / "state.db"
    good_state(state)
    before = digest(state)
    if subprocess.run(["chattr", "+i", str(state)], capture_output=True).returncode != 0:
        pytest.fail("chattr +i is needed to make a file read-only for root")
    try:
        out = _run(state)
    finally:
        subprocess.run(["chattr", "-i", str(state)], check=True)
    assert out.returncode == EXIT_STATE_FILE, out.stderr
    assert out.stderr.strip().splitlines() == [
        f"hb-medic: the state file {state} cannot be written (attempt to write a readonly database); it was"
        " left untouched. Make it, and its folder, writable for the user hb-medic runs as."]
    assert digest(state) == before


def test_missing_state_file_is_created_whole(tmp_path):
    state = tmp_path / "sub" / "state.db"
    State(state).close()
    assert state.stat().st_size > 0
    assert [p.name for p in state.parent.iterdir() if p.name.startswith(".")] == []


def test_a_state_file_of_the_previous_version_opens_with_its_checkpoints_in_one_table(tmp_path):
    """Every old shape of "where to resume" (containers, the deploy feed's fake `recorder`
    container, followed files, the engine events in meta) is one source's row now."""
    state = tmp_path / "state.db"
    before_checkpoints(state)
    store = State(state)
    default, eu = store.checkpoints(), store.checkpoints("eu-1")
    assert default.get("container", "hummingbot-api") == {
        "container_id": "cid", "stdout": 1_700_000_000_000_000_000 << 10 | 3,
        "stderr": 1_700_000_000_500_000_000 << 10}
    assert eu.get("container", "hummingbot-api") == {"container_id": "cid2", "stdout": 5 << 10 | 1,
                                                     "stderr": 6 << 10 | 2}
    assert default.get("container", "recorder") is None
    assert default.get("deploys", "") == {"seq": 42} and eu.get("deploys", "") == {"seq": 7}
    assert eu.get("file", "/bots/rb_a/logs/logs_rb.log") == {"container": "rb_a", "dev": 64, "ino": 99,
                                                             "offset": 1234}
    assert default.get("file", "/bots/rb_a/logs/logs_rb.log") is None
    assert default.get("engine-events", "") == {"since": 1700000000123456789}
    assert eu.get("engine-events", "") == {"since": 17}
    conn = store.file.conn()
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "file_checkpoints" not in tables
    assert conn.execute("SELECT key, value FROM meta").fetchall() == [("unknown_digest_at", "12.5")]
    assert store.incidents.get("inc1").state == IncidentState.FAILED
    store.close()


def _health(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return 0, {}


@pytest.mark.docker
def test_unwritable_while_running_is_503_and_logged_once(docker_client, tmp_path):
    if shutil.which("chattr") is None:
        pytest.fail("chattr is needed to make the state file unwritable under a running agent")
    state = tmp_path / "state.db"
    port = free_port()
    log = tmp_path / "agent.log"
    env = {**os.environ, "MEDIC_STATE_DB": str(state), "MEDIC_CONTAINERS": "medic-none-such",
           "MEDIC_RULES_DIR": str(REPO / "rules"), "MEDIC_HTTP_ADDR": f"127.0.0.1:{port}"}
    with log.open("wb") as fh:
        agent = subprocess.Popen([sys.executable, "-m", "agent", "run"], env=env, stdout=fh,
                                 stderr=subprocess.STDOUT)
    files = [state, state.with_name("state.db-wal")]
    try:
        wait_until(lambda: _health(port)[0] == 200, 60, "the agent to be healthy")
        for f in files:
            subprocess.run(["chattr", "+i", str(f)], check=True)
        _status, body = wait_until(lambda: (h := _health(port))[0] == 503 and h, 60, "/healthz to say 503")
        assert any(p.startswith(f"state file {state} cannot be written") for p in body["problems"]), body
        time.sleep(4)  # writers that save every second have had their chances to complain
        for f in files:
            subprocess.run(["chattr", "-i", str(f)], check=True)
        wait_until(lambda: _health(port)[0] == 200, 60, f"/healthz to be 200 again: {_health(port)}")
        text = log.read_text()
        assert text.count("cannot be written") == 1, text
        assert text.count("can be written again") == 1, text
        assert "Traceback" not in text, text
    finally:
        for f in files:
            subprocess.run(["chattr", "-i", str(f)], capture_output=True)
        agent.terminate()
        agent.wait(30)
