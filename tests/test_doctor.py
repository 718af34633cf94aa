"""`hb-medic doctor` against the stand-in: ✓ when the agent can do its job, each ✗ with its fix."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from agent import doctor
from tests.receiver import Receiver
from tests.stack import REPO, free_port

pytestmark = pytest.mark.docker


def run_doctor(env: dict[str, str], *args: str, cwd=None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_")}
    return subprocess.run([sys.executable, "-m", "agent", "doctor", *args], capture_output=True, text=True,
                          env={**environ, "PYTHONPATH": str(REPO), **env}, cwd=cwd, timeout=120)


@pytest.fixture
def setup(make_stack, tmp_path):
    stack = make_stack(broker=False)
    env = {"MEDIC_CONTAINERS": stack.api.name, "MEDIC_HUMMINGBOT_URL": stack.url,
           "MEDIC_HUMMINGBOT_PASSWORD": "admin", "MEDIC_STATE_DB": str(tmp_path / "state" / "s.db"),
           "MEDIC_RECORDER_ADDR": f"127.0.0.1:{free_port()}", "MEDIC_HTTP_ADDR": f"127.0.0.1:{free_port()}",
           "MEDIC_BOTS_DIR": str(stack.bots),
           # the stand-in's login is admin/admin: the try of default credentials would warn of it
           # (tests/test_exposure.py shows it)
           "MEDIC_PROBE_DEFAULTS": "false"}
    return stack, env


def test_everything_in_place_passes_and_send_delivers(setup, tmp_path):
    stack, env = setup
    with Receiver() as receiver:
        out = run_doctor({**env, "MEDIC_NOTIFY_URLS": receiver.url}, "--send", cwd=tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        assert len(receiver.accepted) == 1  # --send sent the sample message
    lines = out.stdout.splitlines()
    assert not [x for x in lines if x.startswith("✗")], out.stdout
    for expected in ("✓ settings valid", "✓ Docker engine ", f"✓ container {stack.api.name}: running",
                     f"✓ hummingbot-api at {stack.url} accepts the login of user admin",
                     f"✓ deploy recorder: {env['MEDIC_RECORDER_ADDR']} is free for the agent",
                     "✓ rules: ", f"✓ state file {tmp_path / 'state' / 's.db'}: will be created",
                     f"✓ MEDIC_BOTS_DIR {stack.bots}: readable", "✓ notify target json://127.0.0.1:",
                     "✓ mode: act: "):
        assert any(x.startswith(expected) for x in lines), (expected, out.stdout)
    assert lines[-1].startswith("all ") and lines[-1].endswith("checks passed: hb-medic can do its job here")


def test_each_problem_is_a_cross_with_its_fix(setup, tmp_path):
    stack, env = setup
    closed = free_port()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    keys = tmp_path / "keys"
    (keys / "prof").mkdir(parents=True)
    (keys / "prof" / "binance.json").symlink_to(tmp_path / "elsewhere.json")
    bad = {**env, "MEDIC_CREDENTIALS_DIR": str(keys),
           "MEDIC_CONTAINERS": f"{stack.api.name},medic-nowhere-{closed}",
           "MEDIC_HUMMINGBOT_PASSWORD": "wrong", "MEDIC_MODE": "bogus",
           "MEDIC_RECORDER_ADDR": f"127.0.0.1:{port}",
           "MEDIC_BOTS_DIR": str(tmp_path / "no-bots"), "MEDIC_NOTIFY_URLS": "nope://x"}
    try:
        out = run_doctor(bad, cwd=tmp_path)
    finally:
        taken.close()
    assert out.returncode == 1
    text = out.stdout
    assert "✗ bad setting MEDIC_MODE: Input should be 'act', 'observe' or 'ask'\n    fix: " in text
    assert f"✗ container medic-nowhere-{closed}: not found on this engine\n    fix: " in text
    assert (f"✗ hummingbot-api at {stack.url} refused the login of user admin (401)\n"
            "    fix: give the agent hummingbot-api's USERNAME and PASSWORD") in text
    assert f"✗ deploy recorder: cannot listen on 127.0.0.1:{port}: in use\n    fix: " in text
    assert f"✗ MEDIC_BOTS_DIR {tmp_path / 'no-bots'}: no such folder\n    fix: mount" in text
    assert "✗ notifications: apprise cannot use a nope:// URL" in text
    assert (f"✗ MEDIC_CREDENTIALS_DIR: key file {keys / 'prof' / 'binance.json'} is a symbolic link:"
            " refused") in text
    assert "wrong" not in text  # the password is never shown
    assert text.splitlines()[-1].endswith("checks failed: fix them and run hb-medic doctor again")
    # A connection error is told apart from a refused login.
    down = run_doctor({**env, "MEDIC_HUMMINGBOT_URL": f"http://127.0.0.1:{closed}"}, cwd=tmp_path)
    assert down.returncode == 1
    assert f"✗ hummingbot-api at http://127.0.0.1:{closed} cannot be reached: " in down.stdout


def test_a_stopped_container_and_no_engine(setup, tmp_path):
    stack, env = setup
    stack.api.stop(timeout=5)
    out = run_doctor(env, cwd=tmp_path)
    assert out.returncode == 1
    assert f"✗ container {stack.api.name}: exited" in out.stdout
    assert f"fix: docker logs --tail 50 {stack.api.name} says why it stopped; start it:" in out.stdout
    gone = run_doctor({**env, "DOCKER_HOST": f"unix://{tmp_path}/no.sock"}, cwd=tmp_path)
    assert gone.returncode == 1
    assert f"✗ Docker engine at unix://{tmp_path}/no.sock does not answer" in gone.stdout
    assert "fix: mount the Docker socket" in gone.stdout


def test_a_check_is_one_function_and_a_broken_one_fails_cleanly(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MEDIC_STATE_DB", str(tmp_path / "s.db"))

    def extra(d: doctor.Doctor):
        yield doctor.Finding(d.settings.mode == "act", "my extra check", "do this")

    def broken(d: doctor.Doctor):
        raise RuntimeError("boom")
        yield  # a generator

    assert doctor.run(checks=[extra]) == 0
    assert doctor.run(checks=[extra, broken]) == 1
    out = capsys.readouterr().out
    assert "✓ my extra check" in out
    assert "✗ broken: the check itself failed: RuntimeError('boom')" in out


def test_secret_files_others_may_read_are_a_warning(tmp_path, capsys, monkeypatch):
    """The documented `printf ... > secrets/hummingbot_password` with the usual umask leaves the
    file 0644: readable by every user of the host. doctor says so, with the fix, and still passes."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    monkeypatch.setattr(doctor, "SECRETS_DIR", str(secrets))
    monkeypatch.setenv("MEDIC_STATE_DB", str(tmp_path / "s.db"))
    (secrets / "medic_hummingbot_password").write_text("admin")
    (secrets / "medic_hummingbot_password").chmod(0o644)
    (secrets / "medic_notify_urls").write_text("")
    (secrets / "medic_notify_urls").chmod(0o640)
    assert doctor.run(checks=[doctor.secret_files]) == 0
    out = capsys.readouterr().out
    password = secrets / "medic_hummingbot_password"
    assert f"! secret file {password}: readable by group and others (mode 0644)" in out
    assert f"! secret file {secrets}/medic_notify_urls: readable by its group (mode 0640)" in out
    assert "fix: let only the agent's user read it" in out and "install -m 600" in out
    assert "(2 warnings above)" in out
    for f in secrets.iterdir():
        f.chmod(0o600)
    assert doctor.run(checks=[doctor.secret_files]) == 0
    out = capsys.readouterr().out
    assert "✓ secret files: 2, readable by their owner only" in out and "!" not in out


def test_a_plain_tcp_docker_host_is_a_warning(setup, tmp_path):
    """DOCKER_HOST=tcp://... without DOCKER_TLS_VERIFY talks plain HTTP to the engine: said, whether
    the engine answers or not (here nothing listens)."""
    _stack, env = setup
    engine = f"tcp://127.0.0.1:{free_port()}"
    out = run_doctor({**env, "DOCKER_HOST": engine}, cwd=tmp_path)
    assert f"! DOCKER_HOST={engine} without TLS: the Docker API, root on that host, goes in plain" \
           " HTTP" in out.stdout, out.stdout
    assert "fix: Fine for a socket proxy on a private network" in out.stdout
    tls = run_doctor({**env, "DOCKER_HOST": engine, "DOCKER_TLS_VERIFY": "1"}, cwd=tmp_path)
    assert "without TLS" not in tls.stdout and f"Docker engine at {engine}" in tls.stdout
