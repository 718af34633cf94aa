"""Several stacks from one agent, on real engines: the shared one, and a second engine of the
test's own listening on tcp://127.0.0.1:<port> with TLS (certificates made at test time), each
with a stand-in stack. One `hb-medic run` follows a stack on each engine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import httpx
import pytest
import yaml

from tests.engines import SecondEngine, SshGate
from tests.images import BOT_IMAGE, STANDIN_IMAGE, TOOLS_IMAGE
from tests.receiver import Receiver
from tests.stack import (
    ADMIN,
    REPO,
    Stack,
    free_port,
    labels,
    prefixed_rules,
    start_raiser,
    wait_until,
)

pytestmark = pytest.mark.docker
SEED = "credentials-profile-missing"


@pytest.fixture(scope="module")
def engine(docker_client):
    """The second engine, with the test images moved to it once for the module."""
    second = SecondEngine(tls_port=free_port())
    try:
        second.start()
        second.load_images(docker_client, [STANDIN_IMAGE, TOOLS_IMAGE, BOT_IMAGE])
        yield second
    finally:
        second.close()


@pytest.fixture
def remote(engine):
    """A stand-in stack on the second engine (its stand-in deploys bots through that engine)."""
    client = engine.client()
    stack = Stack(client, docker_socket=str(engine.socket))
    try:
        yield stack.start()
    finally:
        stack.close()
        client.close()


def write_config(tmp_path: Path, local: Stack, remote: Stack, engine: SecondEngine, *, cert: str = "client",
                 remote_password: str = "admin", extra_remote: list[str] = ()) -> dict[str, str]:
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "local").write_text("admin\n")
    (secrets / "remote").write_text(remote_password + "\n")
    for f in secrets.iterdir():
        f.chmod(0o600)
    client_cert, client_key = engine.certs.pair(cert)
    recorders = {"local": f"127.0.0.1:{free_port()}", "remote": f"127.0.0.1:{free_port()}"}
    config = {"stacks": [
        {"name": "local", "docker_host": "unix:///var/run/docker.sock", "containers": [local.api.name],
         "hummingbot_url": local.url, "hummingbot_password_file": str(secrets / "local"),
         "recorder_addr": recorders["local"], "bots": "off"},
        {"name": "remote", "docker_host": engine.tcp_url,
         "tls": {"ca": str(engine.certs.ca), "cert": str(client_cert), "key": str(client_key)},
         "containers": [remote.api.name, *extra_remote], "hummingbot_url": remote.url,
         "hummingbot_password_file": str(secrets / "remote"), "recorder_addr": recorders["remote"]},
    ]}
    path = tmp_path / "stacks.yml"
    path.write_text(yaml.safe_dump(config))
    return {"MEDIC_CONFIG_FILE": str(path), "MEDIC_STATE_DB": str(tmp_path / "state.db"),
            "MEDIC_RULES_DIR": str(prefixed_rules(local.prefix, tmp_path / "rules", remote.prefix)),
            "MEDIC_BOT_SETTLE": "2", "MEDIC_CATCHUP_WINDOW": "120",
            **{f"_RECORDER_{k.upper()}": v for k, v in recorders.items()}}


class Agent:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.http = os.environ["MEDIC_HTTP_ADDR"]
        with log.open("ab") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "agent", "run"], env={**os.environ, **env},
                                         stdout=fh, stderr=subprocess.STDOUT, cwd=REPO)
        wait_until(lambda: self.health()[0] or self.proc.poll() is not None, 60, "/healthz to answer")
        assert self.proc.poll() is None, log.read_text()

    def health(self) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://{self.http}/healthz", timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
        except OSError:
            return 0, {}

    def lines(self, stack: str, container: str) -> int:
        with urllib.request.urlopen(f"http://{self.http}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        m = re.search(rf'^hb_medic_lines_total{{container="{re.escape(container)}",stack="{stack}"}} (\S+)$',
                      text, re.M)
        return int(float(m[1])) if m else -1

    def text(self) -> str:
        return self.log.read_text()

    def incidents(self, *args: str) -> list[dict]:
        out = subprocess.run([sys.executable, "-m", "agent", "incidents", "--json", *args], cwd=REPO,
                             env={**os.environ, **self.env}, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return [json.loads(line) for line in out.stdout.splitlines()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def seed_failure(recorder: str, instance: str, profile: str) -> None:
    resp = httpx.post(f"http://{recorder}/bot-orchestration/deploy-v2-script", auth=ADMIN, timeout=60,
                      json={"instance_name": instance, "credentials_profile": profile, "headless": True})
    assert resp.status_code == 500, resp.text


def fixed(agent: Agent, stack: str, profile: str, timeout: float = 90) -> dict:
    def done():
        for inc in agent.incidents("--stack", stack):
            if inc["rule"] == SEED and inc["captures"].get("profile") == profile and inc["state"] in (
                    "resolved", "gave-up", "waiting", "refused"):
                return inc
        return None
    inc = wait_until(done, timeout, f"the seed incident of stack {stack}")
    assert inc["state"] == "resolved", inc
    return inc


def test_the_remote_stacks_seed_incident_is_fixed_through_its_engine_and_api(make_stack, remote, engine,
                                                                               tmp_path):
    local = make_stack()
    with Receiver() as rx:
        env = write_config(tmp_path, local, remote, engine)
        agent = Agent({**env, "MEDIC_NOTIFY_URLS": rx.url}, tmp_path / "agent.log")
        try:
            profile, instance = remote.unique("client"), remote.unique("sharp")
            seed_failure(env["_RECORDER_REMOTE"], instance, profile)
            inc = fixed(agent, "remote", profile)
            assert inc["stack"] == "remote" and inc["container"] == remote.api.name
            assert not [i for i in agent.incidents("--stack", "local") if i["rule"] == SEED]
            retried = next(a for a in inc["audit"] if a["name"] == "retry_deploy")
            assert retried["ok"] and f"deployed {instance}" in retried["result"]
            # Through the remote engine: the bot runs there, and nowhere on the shared engine.
            # (the raw listing: no inspect of each container, which races with other tests' removals)
            with engine.using() as mine:
                assert mine.api.containers(filters={"name": instance, "status": "running"})
            assert not local.client.api.containers(all=True, filters={"name": instance})
            assert profile in remote.http("GET", "/accounts/").json()  # that stack's API made it
            assert profile not in local.http("GET", "/accounts/").json()
            wait_until(lambda: any("Fixed:" in t for t in rx.titles()), 30, "the fixed message")
            title = next(t for t in rx.titles() if "Fixed:" in t)
            assert title.startswith("[CRITICAL] remote · Fixed: Deploy failed: credentials profile"), title
            message = next(m["message"] for m in rx.accepted if m["title"] == title)
            assert f"incident {inc['id']} · remote · {remote.api.name} · {SEED}" in message
            assert "stack remote: Docker engine " + engine.tcp_url + " (TLS, server verified)" in agent.text()
        finally:
            agent.stop()


def test_a_stopped_remote_engine_holds_nothing_of_the_local_stack(make_stack, remote, engine, tmp_path):
    local = make_stack()
    with engine.using() as mine:
        emitter = mine.containers.run(
            TOOLS_IMAGE, ["-c", "i=0; while [ $i -lt 50 ]; do echo line $i; i=$((i+1)); done;"
                                " exec sleep 3600"],
            entrypoint=["sh"], name=remote.prefix + "emitter", detach=True, network_mode="none",
            labels=labels(remote.run_id), restart_policy={"Name": "always"},
            stop_signal="SIGKILL")  # the engine's stop need not wait for it
    env = write_config(tmp_path, local, remote, engine, extra_remote=[emitter.name])
    agent = Agent(env, tmp_path / "agent.log")
    try:
        wait_until(lambda: agent.lines("remote", emitter.name) == 50, 60, "the emitter's 50 lines")
        engine.stop()
        # The local stack goes on: its seed incident is fixed, as ever.
        profile = local.unique("client")
        seed_failure(env["_RECORDER_LOCAL"], local.unique("sharp"), profile)
        fixed(agent, "local", profile)
        _, body = wait_until(lambda: (h := agent.health())[0] == 503 and h, 60, "/healthz to say 503")
        assert body["problems"] and all(p.startswith("stack remote: ") for p in body["problems"]), body
        assert body["stacks"]["local"]["ok"] and not body["stacks"]["remote"]["ok"], body
        back = engine.restart()
        with engine.using() as mine:  # the emitter starts again (restart policy) and writes 50 more
            wait_until(lambda: len(mine.containers.get(emitter.name).logs().splitlines()) == 100, 60,
                       "the emitter's second run")
        wait_until(lambda: agent.lines("remote", emitter.name) >= 100, 30, "following to resume")
        resumed = time.monotonic() - back
        assert resumed <= 10, f"following resumed {resumed:.1f} s after the engine was back"
        print(f"following resumed {resumed:.1f} s after the engine answered again")
        time.sleep(2)  # nothing more (no line twice)
        assert agent.lines("remote", emitter.name) == 100
        wait_until(lambda: agent.health()[0] == 200 or agent.health()[1]["stacks"]["remote"]["streams"].get(
            remote.api.name) == "stopped", 30, "the remote stack to be healthy again")
        assert "stack remote: Docker engine unreachable" in agent.text()
        assert "stack local: Docker engine unreachable" not in agent.text()
    finally:
        agent.stop()


def test_a_wrong_certificate_or_password_is_one_clear_error_for_that_stack_only(make_stack, remote, engine,
                                                                                 tmp_path):
    """Three stacks: the local one, the remote engine over TLS with a client certificate of another
    CA, and the remote engine over its socket with a wrong hummingbot-api password."""
    local = make_stack()
    env = write_config(tmp_path, local, remote, engine, cert="stranger")
    config = yaml.safe_load(Path(env["MEDIC_CONFIG_FILE"]).read_text())
    local_stack, tls = config["stacks"]
    tls.update(name="tls", recorder_addr=None)
    wrong = tmp_path / "secrets" / "wrong"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    login = {"name": "login", "docker_host": engine.url, "containers": [remote.api.name],
             "hummingbot_url": remote.url, "hummingbot_password_file": str(wrong), "bots": "off"}
    Path(env["MEDIC_CONFIG_FILE"]).write_text(yaml.safe_dump({"stacks": [local_stack, tls, login]}))
    agent = Agent(env, tmp_path / "agent.log")
    try:
        def settled():
            status, body = agent.health()
            streams = {s: body.get("stacks", {}).get(s, {}).get("streams", {}) for s in ("local", "login")}
            return status == 503 and streams["local"].get(local.api.name) == "attached" and \
                streams["login"].get(remote.api.name) == "attached" and len(body["problems"]) == 2 and body
        body = wait_until(settled, 60, "both problems, and the other stacks followed")
        time.sleep(6)  # several tries of the engine meanwhile: still said once
        _, body = agent.health()
        assert body["problems"][1:] == [
            f"stack login: hummingbot-api at {remote.url} refused the login of user admin (401): fixes of"
            " this stack cannot run; give the agent its USERNAME and PASSWORD (hummingbot_username,"
            " hummingbot_password_file)"], body
        head = f"stack tls: Docker engine at {engine.tcp_url} unreachable"
        assert body["problems"][0].startswith(head), body
        assert body["stacks"]["local"]["ok"] and body["stacks"]["local"]["api"] == "ok", body
        log = agent.text().splitlines()
        errors = [line for line in log if "does not accept this stack's client" in line]
        assert len(errors) == 1 and " ERROR " in errors[0], agent.text()
        assert "stack tls: Docker engine unreachable (TLS: the engine refused the handshake" in errors[0]
        refused = [line for line in log if "refused the login" in line]
        assert len(refused) == 1 and " ERROR " in refused[0] and "stack login:" in refused[0], agent.text()
        assert not [line for line in log if "stack local:" in line and " INFO " not in line]
        assert "not-the-password" not in agent.text()
        state = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
        assert b"not-the-password" not in state
        doctor = subprocess.run([sys.executable, "-m", "agent", "doctor"], env={**os.environ, **env},
                                cwd=REPO, capture_output=True, text=True, timeout=120)
        assert doctor.returncode == 1, doctor.stdout
        assert f"✗ stack tls: Docker engine at {engine.tcp_url} does not answer: TLS: the engine refused" \
               " the handshake" in doctor.stdout, doctor.stdout
        assert f"✗ stack login: hummingbot-api at {remote.url} refused the login of user admin (401)" \
            in doctor.stdout, doctor.stdout
        for ok in ("✓ stack local: Docker engine ", "✓ stack login: Docker engine ",
                   "✓ stack tls: hummingbot-api at", "✓ stack local: hummingbot-api at"):
            assert ok in doctor.stdout, doctor.stdout
        assert "not-the-password" not in doctor.stdout
    finally:
        agent.stop()


def test_an_ssh_stack_is_followed_through_the_engine_hosts_ssh(docker_client, tmp_path):
    """`ssh://` as docker-py does it (paramiko): the agent user's ~/.ssh/config and known_hosts;
    the engine host's sshd runs `docker system dial-stdio`. Here the sshd is the test's own and
    the engine behind it the shared one."""
    gate = SshGate(free_port()).start()
    name = f"medic-ssh-{os.urandom(3).hex()}-hummingbot-api"  # its role: a stream the rules read
    raiser = start_raiser(docker_client, name, name, BEAT=0.2)
    try:
        secret = tmp_path / "pw"
        secret.write_text("admin\n")
        secret.chmod(0o600)
        config = tmp_path / "stacks.yml"
        config.write_text(yaml.safe_dump({"stacks": [
            {"name": "lab", "docker_host": gate.url, "containers": [name], "bots": "off",
             "hummingbot_url": f"http://127.0.0.1:{free_port()}", "hummingbot_password_file": str(secret)}]}))
        env = {"MEDIC_CONFIG_FILE": str(config), "MEDIC_STATE_DB": str(tmp_path / "state.db"),
               "HOME": str(gate.home)}
        agent = Agent(env, tmp_path / "agent.log")
        try:
            wait_until(lambda: agent.lines("lab", name) > 0, 60, "lines through ssh")
            assert agent.health()[1]["stacks"]["lab"]["streams"] == {name: "attached"}
            assert "stack lab: Docker engine " + gate.url in agent.text()
            assert "traceback in lab/" + name in agent.text()  # what no rule knows names its stack
        finally:
            agent.stop()
        doctor = subprocess.run([sys.executable, "-m", "agent", "doctor"], env={**os.environ, **env},
                                cwd=REPO, capture_output=True, text=True, timeout=120)
        assert re.search(rf"✓ stack lab: Docker engine .* at {re.escape(gate.url)}$", doctor.stdout, re.M), \
            doctor.stdout
        assert f"✓ stack lab: container {name}: running" in doctor.stdout, doctor.stdout
        (gate.home / ".ssh" / "known_hosts").write_text("")  # an unknown host: never trusted
        doctor = subprocess.run([sys.executable, "-m", "agent", "doctor"], env={**os.environ, **env},
                                cwd=REPO, capture_output=True, text=True, timeout=120)
        refused = (f"✗ stack lab: Docker engine at {gate.url} does not answer: SSH: the engine host's key is"
                   " not in the agent user's ~/.ssh/known_hosts")
        assert refused in doctor.stdout, doctor.stdout
    finally:
        raiser.remove(force=True)
        gate.close()
