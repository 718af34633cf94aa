"""Stacks: the config file's list checked at start (each error names the stack and the field),
the state file of an earlier version migrated (its rows become the stack default), and what
the stacks share holding none of them (the outbox's turns, storm control, the budget)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from agent.records import Incident, IncidentState
from agent.settings import BadSettings, Settings
from agent.state import State
from agent.state.file import SCHEMA, migrate
from tests.stack import REPO
from tests.statefiles import STACKS_VERSION, older_state


def start(tmp_path: Path, stacks: list[dict], **env: str) -> subprocess.CompletedProcess:
    config = tmp_path / "stacks.yml"
    config.write_text(yaml.safe_dump({"stacks": stacks}))
    return subprocess.run([sys.executable, "-m", "agent", "run"], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env={**os.environ, "MEDIC_CONFIG_FILE": str(config),
                                         "MEDIC_STATE_DB": str(tmp_path / "s.db"), **env})


@pytest.fixture
def secret(tmp_path: Path) -> str:
    path = tmp_path / "pw"
    path.write_text("s3cret-pw\n")
    return str(path)


@pytest.mark.parametrize(("entry", "said"), [
    ({"docker_host": "tcp://10.0.0.5:2376"},
     "stack 'eu-1': tls: a tcp:// engine needs TLS (ca, cert, key)"),
    ({"docker_host": "tcp://10.0.0.5:2376", "tls": {"ca": "/nonexistent/ca.pem", "cert": "c", "key": "k"}},
     "stack 'eu-1': tls: ca /nonexistent/ca.pem: no such file"),
    ({"docker_host": "tcp://10.0.0.5:2376", "tls": {"cert": "c", "key": "k"}},
     "stack 'eu-1': tls: ca: needed to verify the engine's certificate"),
    ({"docker_host": "http://10.0.0.5:2376"}, "stack 'eu-1': docker_host: 'http://10.0.0.5:2376' is not"),
    ({"hummingbot_url": "http://x:8000"}, "stack 'eu-1': docker_host: needed"),
    ({"docker_host": "ssh://u@h", "hummingbot_password": "inline"},
     "stack 'eu-1': hummingbot_password: secrets are not written in the config file"),
    ({"docker_host": "ssh://u@h", "contaners": ["x"]}, "stack 'eu-1': contaners: not a field of a stack"),
    ({"docker_host": "ssh://u@h", "hummingbot_password_file": "/nonexistent/pw"},
     "stack 'eu-1': hummingbot_password_file /nonexistent/pw: no such file"),
    ({"docker_host": "unix:///var/run/docker.sock", "containers": ["a b"]},
     "stack 'eu-1': containers: 'a b' is not a container name"),
])
def test_a_bad_stack_names_itself_and_the_field(tmp_path, entry, said):
    out = start(tmp_path, [{"name": "eu-1", **entry}])
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    head = f"hb-medic: bad stack in {tmp_path / 'stacks.yml'}: {said}"
    assert len(lines) == 1 and lines[0].startswith(head), out.stderr


def test_names_engines_and_recorders_are_each_one_stacks(tmp_path, secret):
    one = {"docker_host": "ssh://u@h", "hummingbot_password_file": secret}
    out = start(tmp_path, [{"name": "a", **one}, {"name": "b", **one}])
    assert "stack 'b': docker_host ssh://u@h is also stack 'a''s" in out.stderr, out.stderr
    out = start(tmp_path, [{"name": "a", **one}, {"name": "a", **one, "docker_host": "ssh://v@h"}])
    assert "stack 'a': name a is also stack 'a''s" in out.stderr, out.stderr
    bad_name = start(tmp_path, [{"name": "eu 1", **one}])
    assert "stack 'eu 1': name: String should match pattern" in bad_name.stderr, bad_name.stderr


def test_the_environment_is_the_stack_default_and_a_listed_default_takes_it(tmp_path, secret, monkeypatch):
    monkeypatch.delenv("MEDIC_CONFIG_FILE", raising=False)
    s = Settings(containers=["hb"], hummingbot_url="http://127.0.0.1:9", hummingbot_password="envpw")
    [only] = s.stack_list()
    assert (only.name, only.containers, only.docker_host) == ("default", ["hb"], None)
    assert only.hummingbot_password.get_secret_value() == "envpw"
    s = Settings(containers=["hb"], hummingbot_password="envpw", stacks=[
        {"name": "default"},
        {"name": "lab", "docker_host": "ssh://u@lab", "hummingbot_password_file": secret}])
    default, lab = s.stack_list()
    assert default.containers == ["hb"] and default.hummingbot_password.get_secret_value() == "envpw"
    assert lab.containers == ["hummingbot-api"] and lab.hummingbot_password.get_secret_value() == "s3cret-pw"
    assert "s3cret-pw" not in repr(lab) and "s3cret-pw" not in lab.model_dump_json()


def test_tls_off_and_unverified_are_allowed_but_said(tmp_path, secret):
    s = Settings(stacks=[{"name": "proxy", "docker_host": "tcp://127.0.0.1:2375", "tls": False,
                          "hummingbot_password_file": secret}])
    assert s.stack_list()[0].tls == "off"
    with pytest.raises(BadSettings):
        Settings(stacks=[{"name": "default", "containers": []}]).stack_list()


def test_a_state_file_of_the_previous_version_is_migrated_its_rows_the_stack_default(tmp_path):
    path = tmp_path / "old.db"
    conn = older_state(path, STACKS_VERSION - 1)  # the file as the version before wrote it
    conn.execute("INSERT INTO checkpoints VALUES ('hummingbot-api', 'cid', 5, 1, 6, 2, 0)")
    conn.execute("INSERT INTO incidents (id, rule, key, state, severity, container, summary, fingerprint,"
                 " captures, created, updated)"
                 " VALUES ('inc1', 'r', 'k', 'failed', 'error', 'c', 's', 'f', '{}', 1, 1)")
    conn.execute("INSERT INTO audit (incident, at, kind, name) VALUES ('inc1', ?, 'attempt', 'a')",
                 (time.time(),))
    conn.close()
    store = State(path)
    assert store.checkpoints().get("container", "hummingbot-api") == {
        "container_id": "cid", "stdout": 5 << 10 | 1, "stderr": 6 << 10 | 2}
    assert store.checkpoints("eu-1").get("container", "hummingbot-api") is None
    inc = store.incidents.get("inc1")
    assert inc is not None and inc.stack == "default"
    assert store.incidents.attempts_since(0) == 1 and store.incidents.attempts_since(0, "eu-1") == 0
    store.checkpoints("eu-1").put("container", "hummingbot-api",  # the same name, another stack
                                  {"container_id": "other", "stdout": 9, "stderr": 9})
    assert store.checkpoints().get("container", "hummingbot-api")["container_id"] == "cid"
    assert store.checkpoints("eu-1").get("container", "hummingbot-api")["container_id"] == "other"
    version = store.file.conn().execute("PRAGMA user_version").fetchone()[0]
    assert version == len(SCHEMA)
    migrate(store.file.conn())  # again: nothing to do


def test_incidents_audit_and_budget_are_per_stack(tmp_path):
    store = State(tmp_path / "s.db")
    for stack in ("default", "eu-1"):
        store.incidents.create(Incident(id=f"i-{stack}", rule="r", key="k", state=IncidentState.DETECTED,
                                        severity="error", container="hummingbot-api", summary="s",
                                        fingerprint="f", captures={}, stack=stack))
    assert store.incidents.latest("r", "k").id == "i-default"
    assert store.incidents.latest("r", "k", "eu-1").id == "i-eu-1"
    store.incidents.audit("i-eu-1", "attempt", "attempt 1 of 3")
    assert store.incidents.attempts_since(0, "eu-1") == 1 and store.incidents.attempts_since(0) == 0
    assert [i.id for i in store.incidents.recent(10, stack="eu-1")] == ["i-eu-1"]


def test_the_stacks_take_turns_in_the_outbox_and_storms_count_per_stack(tmp_path):
    store = State(tmp_path / "s.db")
    for n in range(5):  # a flood from one stack first
        store.outbox.enqueue(incident=f"a{n}", rule="r", target="t", message=f"a{n}", stack="flood")
    store.outbox.enqueue(incident="b0", rule="r", target="t", message="b0", stack="calm")
    due = [row[4] for row in store.outbox.due(time.time() + 1)]
    assert due[:2] == ["a0", "b0"], due  # the calm stack's message goes second, not sixth
    assert store.outbox.recent("r", 0, "flood") == 5 and store.outbox.recent("r", 0, "calm") == 1


def test_a_slow_fix_on_one_stack_queues_nothing_of_another(tmp_path, secret):
    """Each stack has its own remedy worker: while one stack's fix hangs (its API or engine
    answers slowly), another stack's fix runs at once."""
    import threading

    from agent.service import Service

    stacks = [{"name": n, "docker_host": f"ssh://u@{n}", "hummingbot_password_file": secret}
              for n in ("slow", "fast")]
    service = Service(Settings(state_db=tmp_path / "s.db", rules_dir=REPO / "rules", stacks=stacks),
                      listen=False)
    slow, fast = service.stack("slow"), service.stack("fast")
    assert slow is not None and fast is not None and slow.remedy is not fast.remedy
    release, ran = threading.Event(), threading.Event()
    slow.remedy.attempt = lambda inc: release.wait(30)  # a fix that hangs
    fast.remedy.attempt = lambda inc: ran.set()
    for rt in (slow, fast):
        rt.remedy.start()
        inc = service.store.incidents.create(Incident(
            id=f"i-{rt.name}", rule="credentials-profile-missing", key="k", state=IncidentState.DETECTED,
            severity="critical", container="hummingbot-api", summary="s", fingerprint="f", captures={},
            stack=rt.name))
        rt.remedy.pool.enqueue(inc.id)
    try:
        assert ran.wait(10), "the fast stack's fix waited behind the slow one's"
        assert not release.is_set()
    finally:
        release.set()
        for rt in (slow, fast):
            rt.remedy.stop(time.monotonic() + 5)
        service.store.close()
