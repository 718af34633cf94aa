"""The shipped image: built from the Dockerfile on the local test base, run as a
container with the Docker socket against the stand-in."""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest

from tests.conftest import AGENT_IMAGE as IMAGE
from tests.stack import ADMIN, REPO, free_port, labels, wait_until

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def image(agent_image):
    return agent_image


def run_agent(client, stack, **env):
    http_port, rec_port = free_port(), free_port()
    environment = {"MEDIC_HUMMINGBOT_URL": stack.url, "MEDIC_HUMMINGBOT_PASSWORD": "admin",
                   "MEDIC_RECORDER_ADDR": f"127.0.0.1:{rec_port}",
                   "MEDIC_BOT_SETTLE": "3", "MEDIC_BOTS": "off",  # short settle; no other bots
                   "MEDIC_HTTP_ADDR": f"127.0.0.1:{http_port}", **env}
    c = client.containers.run(
        IMAGE, detach=True, network_mode="host", labels=labels(stack.run_id),
        name=f"hb-medic-{stack.run_id}",
        environment=environment, group_add=[str(os.stat("/var/run/docker.sock").st_gid)],
        volumes={"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}},
        healthcheck={"test": ["CMD", "hb-medic", "health"], "interval": 1_000_000_000,
                     "timeout": 3_000_000_000, "start_period": 1_000_000_000, "retries": 2})
    return c, http_port, rec_port


def test_image_fixes_the_seed_incident_and_stops_cleanly(image, docker_client, make_stack):
    assert image.attrs["Config"]["Healthcheck"]["Test"] == ["CMD", "hb-medic", "health"]
    assert image.attrs["Config"]["User"] == "medic"
    assert image.attrs["Config"]["Entrypoint"] == ["hb-medic"]
    stack = make_stack(real_names=True)
    agent, http_port, rec_port = run_agent(docker_client, stack)
    try:
        wait_until(lambda: _health(agent) == "healthy", 60, "the health check to pass")
        resp = httpx.post(f"http://127.0.0.1:{rec_port}/bot-orchestration/deploy-v2-script", auth=ADMIN,
                          json={"instance_name": "sharp-bot", "credentials_profile": "client_sharp"},
                          timeout=30)
        assert resp.status_code == 500
        wait_until(lambda: docker_client.containers.list(filters={"name": "^sharp-bot-"}),
                   60, "the bot deployed by the agent")
        # The second Deploy command of docs/operating.md, inside the running agent's container.
        code, out = agent.exec_run(["hb-medic", "doctor"])
        text = out.decode()
        assert code == 0, text
        assert f"✓ deploy recorder: 127.0.0.1:{rec_port} is the running agent's" in text
        assert f"✓ health and metrics: 127.0.0.1:{http_port} is the running agent's" in text
        assert "✓ container hummingbot-api: running" in text
        # The bot runs a moment before the agent has checked it and counted the retry.
        def counted() -> str | None:
            text = httpx.get(f"http://127.0.0.1:{http_port}/metrics").text
            return text if 'hb_medic_actions_total{action="retry_deploy",result="ok",stack="default"} 1.0' \
                in text else None

        metrics = wait_until(counted, 60, "the retry counted")
        assert 'hb_medic_matches_total{rule="credentials-profile-missing",stack="default"} 1.0' in metrics
        assert 'hb_medic_actions_total{action="ensure_account",result="ok",stack="default"} 1.0' in metrics
        assert 'hb_medic_stream_attached{container="hummingbot-api",stack="default",state="attached"} 1.0' \
            in metrics
        started = time.monotonic()
        agent.stop(timeout=10)
        took = time.monotonic() - started
        logs = agent.logs().decode()
        assert took < 10, f"not stopped within Docker's 10 s grace (killed): {took:.1f} s"
        agent.reload()
        assert agent.attrs["State"]["ExitCode"] == 0 or agent.wait()["StatusCode"] == 0
        assert "hb-medic stopped" in logs
        assert "deploy recorder:" in logs and "in act mode" in logs
    finally:
        agent.remove(force=True, v=True)


def _health(container) -> str:
    container.reload()
    return (container.attrs["State"].get("Health") or {}).get("Status", "")


@pytest.mark.parametrize(("env", "expected"), [
    ({"MEDIC_NOTIFY_URLS": "nope://x"},
     "hb-medic: apprise cannot use a nope:// URL (unknown service or malformed)"),
    ({"MEDIC_HUMMINGBOT_PASSWORD": None},
     "hb-medic: MEDIC_HUMMINGBOT_PASSWORD is not set (environment, or the secret file "
     "/run/secrets/medic_hummingbot_password)"),
    ({"MEDIC_RULES_DIR": "/data/rules"}, "hb-medic: the rules have errors:"),
])
def test_bad_settings_stop_the_start_with_one_clear_message(image, docker_client, env, expected):
    environment = {"MEDIC_HUMMINGBOT_PASSWORD": "admin", **env}
    environment = {k: v for k, v in environment.items() if v is not None}
    entry = None
    if "MEDIC_RULES_DIR" in env:  # a rules folder with a mistake in it
        entry = ["sh", "-c",
                 "mkdir -p /data/rules && printf 'id: x\\n' > /data/rules/x.yml && exec hb-medic run"]
    c = docker_client.containers.run(IMAGE, entrypoint=entry, environment=environment, network_mode="none",
                                     detach=True)
    try:
        assert c.wait(timeout=30)["StatusCode"] == 2
        err = c.logs(stdout=False, stderr=True).decode().splitlines()
    finally:
        c.remove(force=True, v=True)
    assert err[0] == expected
    if "rules" in expected:
        assert err[1].startswith("/data/rules/x.yml:1: id: String should match pattern")
    else:
        assert len(err) == 1


@pytest.mark.parametrize("mount", [False, True])
def test_an_engine_it_cannot_use_stops_the_start_with_the_fix(image, docker_client, mount):
    """No socket mounted, or mounted without the socket's group: one message and the fix,
    not a traceback in a restart loop."""
    volumes = {"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}} if mount else {}
    c = docker_client.containers.run(IMAGE, environment={"MEDIC_HUMMINGBOT_PASSWORD": "admin"},
                                     network_mode="none", detach=True, volumes=volumes,
                                     labels=labels("image"))
    try:
        assert c.wait(timeout=60)["StatusCode"] == 2
        err = c.logs(stdout=False, stderr=True).decode().splitlines()
    finally:
        c.remove(force=True, v=True)
    assert len(err) == 2, err
    assert err[0].startswith("hb-medic: the Docker engine at unix:///var/run/docker.sock does not answer: ")
    gid = os.stat("/var/run/docker.sock").st_gid
    assert err[1] == (f"    fix: user 10001 may not use /var/run/docker.sock (group {gid}): add that group to"
                      f" the container (compose: DOCKER_GID={gid}, group_add)" if mount else
                      "    fix: mount the Docker socket into the container (/var/run/docker.sock:"
                      "/var/run/docker.sock), or set DOCKER_HOST to the engine (the hardened compose: its"
                      " socket proxy)")


def test_the_installed_package_carries_its_rules(image, docker_client, tmp_path):
    """A fresh `pip install .` (the image's) replays a saved log from an empty folder, with no
    rules folder anywhere but inside the package."""
    log = REPO / "tests" / "real_logs" / "b_current_ee7ce5c_deploy_missing_profile.log"
    out = tmp_path / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)  # the image's user writes there
    # The result goes to a file: a busy engine may not have copied a quick container's last
    # stdout lines to its log when the container is reported gone.
    docker_client.containers.run(
        IMAGE, ["sh", "-c", "hb-medic rules test --json /logs/saved.log > /out/result.jsonl"],
        entrypoint=[], remove=True, network_mode="none", labels=labels("image"),
        volumes={str(log): {"bind": "/logs/saved.log", "mode": "ro"},
                 str(out): {"bind": "/out", "mode": "rw"}})
    rules = [json.loads(line)["rule"] for line in (out / "result.jsonl").read_text().splitlines()]
    assert "credentials-profile-missing" in rules
