"""The command line entry points exist and answer."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

from agent import __version__
from tests.stack import free_port, wait_until


def test_python_m_agent_version():
    out = subprocess.run([sys.executable, "-m", "agent", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == f"hb-medic {__version__}"


def test_no_command_prints_help_and_exits_2():
    out = subprocess.run([sys.executable, "-m", "agent"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "usage: hb-medic" in out.stdout


def _hb(args: list[str], tmp_path, **env) -> subprocess.Popen:
    environ = {**os.environ, "MEDIC_STATE_DB": str(tmp_path / "s.db"), **env}
    return subprocess.Popen([sys.executable, "-m", "agent", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environ)


def test_each_command_validates_only_the_settings_it_reads(tmp_path):
    """The recorder never reads MEDIC_CONTAINERS or MEDIC_MODE: bad values there do not stop it."""
    bad = {"MEDIC_CONTAINERS": "", "MEDIC_MODE": "bogus"}
    port = free_port()
    rec = _hb(["recorder"], tmp_path, MEDIC_RECORDER_ADDR=f"127.0.0.1:{port}", **bad)
    try:
        wait_until(lambda: _listening(port) or rec.poll() is not None, 30, "the recorder to listen")
        assert rec.poll() is None, rec.communicate()[1]
    finally:
        rec.send_signal(signal.SIGTERM)
        _, err = rec.communicate(timeout=30)
    assert rec.returncode == 0, err
    assert f"deploy recorder on 127.0.0.1:{port}" in err
    listing = _hb(["incidents"], tmp_path, **bad)
    assert listing.wait(30) == 0, listing.communicate()[1]
    # A setting the command does read still stops it, and only that one is named.
    wrong = _hb(["recorder"], tmp_path, MEDIC_RECORDER_ADDR="nowhere", **bad)
    _, err = wrong.communicate(timeout=30)
    assert wrong.returncode == 2
    assert err.splitlines() == ["hb-medic: bad setting MEDIC_RECORDER_ADDR: String should match pattern "
                                "'^[^\\s:]*:\\d{1,5}$'"]
    # The agent reads them all.
    run = _hb(["run"], tmp_path, **bad)
    _, err = run.communicate(timeout=30)
    assert run.returncode == 2
    assert err.splitlines() == [
        "hb-medic: bad setting MEDIC_CONTAINERS: Value error, at least one container name is needed",
        "hb-medic: bad setting MEDIC_MODE: Input should be 'act', 'observe' or 'ask'"]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path):
    """`hb-medic rules test big.log --json | head -1`: no BrokenPipeError traceback."""
    line = ("2026-06-29 14:03:07,515 - root - ERROR - Error deploying V2 script: [Errno 2] No such file "
            "or directory: 'bots/credentials/p{n}'\n")
    big = tmp_path / "big.log"
    big.write_text("".join(line.format(n=n) for n in range(20000)))
    proc = subprocess.Popen([sys.executable, "-m", "agent", "rules", "test", "--json", str(big)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert b'"rule": "credentials-profile-missing"' in first
    assert err == ""
    assert proc.returncode == 128 + signal.SIGPIPE
