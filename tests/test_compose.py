"""compose.yaml and compose.hardened.yaml brought up for real beside the stand-in named
hummingbot-api: secrets as files, the seed incident fixed through the recorder, `hb-medic doctor`
inside the container; the hardened one through the socket proxy built from docker-proxy/."""

from __future__ import annotations

import os

import docker
import httpx
import pytest
import yaml
from docker.errors import APIError

from tests.compose import ComposeUp, port_or_free
from tests.conftest import AGENT_IMAGE
from tests.images import PROXY_IMAGE
from tests.receiver import Receiver
from tests.stack import ADMIN, free_port, wait_until

pytestmark = pytest.mark.docker
# The image checks every 15 s; the test need not wait that long for the first check.
QUICK_HEALTHCHECK = {"interval": "1s", "start_period": "1s", "timeout": "3s", "retries": 2}


def _health(client, name: str) -> str:
    c = client.containers.get(name)
    return (c.attrs["State"].get("Health") or {}).get("Status", "")


def _seed_incident_fixed(client, recorder: int) -> list:
    """The seed incident through the agent's recorder: the deploy fails (500) for the missing
    profile, then the agent's re-sent deploy runs as a bot (returned)."""
    resp = httpx.post(f"http://127.0.0.1:{recorder}/bot-orchestration/deploy-v2-script", auth=ADMIN,
                      json={"instance_name": "sharp-bot", "credentials_profile": "client_sharp"}, timeout=60)
    assert resp.status_code == 500
    return wait_until(lambda: client.containers.list(filters={"name": "^sharp-bot-"}), 90,
                      "the bot the agent deployed")


def test_compose_yaml_fixes_the_seed_incident(agent_image, docker_client, make_stack):
    stack = make_stack(real_names=True)
    recorder, http = port_or_free(8001), port_or_free(9108)
    with Receiver() as receiver:
        compose = ComposeUp("compose.yaml", stack.run_id, override={
            "services": {"hb-medic": {
                "image": AGENT_IMAGE, "healthcheck": QUICK_HEALTHCHECK,
                "environment": {"MEDIC_HUMMINGBOT_URL": stack.url, "MEDIC_BOT_SETTLE": "3",
                                "MEDIC_PREFLIGHT": "off",
                                "MEDIC_BOTS": "off", "MEDIC_RECORDER_ADDR": f"127.0.0.1:{recorder}",
                                "MEDIC_HTTP_ADDR": f"127.0.0.1:{http}"},
                "volumes": [f"{stack.bots}:/bots:ro"]}},
            "volumes": {"hb-medic-state": {"name": f"medic-t{stack.run_id}-state"}},
        }, secrets={"hummingbot_password": "admin", "notify_urls": receiver.url})
        try:
            svc = compose.config["services"]["hb-medic"]
            assert "MEDIC_HUMMINGBOT_PASSWORD" not in svc["environment"]  # from the secret file only
            compose.up()
            wait_until(lambda: _health(docker_client, "hb-medic") == "healthy", 90, "hb-medic healthy")
            _seed_incident_fixed(docker_client, recorder)
            wait_until(lambda: any("Fixed" in t for t in receiver.titles()), 60, "the 'fixed' message")
            agent = docker_client.containers.get("hb-medic")
            code, out = agent.exec_run(["hb-medic", "doctor"])
            assert code == 0, out.decode()
            assert "✓ container hummingbot-api: running" in out.decode()
            assert f"✓ deploy recorder: 127.0.0.1:{recorder} is the running agent's" in out.decode()
            assert "✓ notify target json://127.0.0.1:" in out.decode()
            _assert_locked_down(agent, out.decode())
            code, out = agent.exec_run(["hb-medic", "incidents"])
            assert code == 0 and "resolved" in out.decode() and "credentials-profile-missing" in out.decode()
            assert agent.attrs["Config"]["User"] == "medic"
        finally:
            _show_logs(docker_client, "hb-medic")  # pytest shows it when the test failed
            compose.close()
    assert not docker_client.containers.list(all=True, filters={"name": "^hb-medic$"})
    assert not docker_client.volumes.list(filters={"name": f"medic-t{stack.run_id}-state"})



def test_compose_yaml_with_a_stacks_file_fixes_the_seed_incident_under_the_stacks_name(
        agent_image, docker_client, make_stack, tmp_path):
    """The shipped compose file with the config file its comment describes (mounted read-only):
    the agent looks after the one stack listed, by its name, with the password from the secret."""
    stack = make_stack(real_names=True)
    recorder, http = port_or_free(8001), port_or_free(9108)
    stacks = tmp_path / "stacks.yml"
    stacks.write_text(yaml.safe_dump({"stacks": [{
        "name": "eu-1", "docker_host": "unix:///var/run/docker.sock", "containers": ["hummingbot-api"],
        "hummingbot_url": stack.url, "hummingbot_password_file": "/run/secrets/medic_hummingbot_password",
        "recorder_addr": f"127.0.0.1:{recorder}", "bots_dir": "/bots", "bots": "off"}]}))
    stacks.chmod(0o644)
    with Receiver() as receiver:
        compose = ComposeUp("compose.yaml", stack.run_id, override={
            "services": {"hb-medic": {
                "image": AGENT_IMAGE, "healthcheck": QUICK_HEALTHCHECK,
                "environment": {"MEDIC_CONFIG_FILE": "/etc/hb-medic/stacks.yml", "MEDIC_BOT_SETTLE": "3",
                                "MEDIC_PREFLIGHT": "off",
                                "MEDIC_HTTP_ADDR": f"127.0.0.1:{http}"},
                "volumes": [f"{stack.bots}:/bots:ro", f"{stacks}:/etc/hb-medic/stacks.yml:ro"]}},
            "volumes": {"hb-medic-state": {"name": f"medic-t{stack.run_id}-state"}},
        }, secrets={"hummingbot_password": "admin", "notify_urls": receiver.url})
        try:
            compose.up()
            wait_until(lambda: _health(docker_client, "hb-medic") == "healthy", 90, "hb-medic healthy")
            health = httpx.get(f"http://127.0.0.1:{http}/healthz", timeout=10).json()
            assert list(health["stacks"]) == ["eu-1"], health
            _seed_incident_fixed(docker_client, recorder)
            fixed = wait_until(lambda: [t for t in receiver.titles() if "Fixed" in t], 60,
                               "the 'fixed' message")
            assert "eu-1" in fixed[0], fixed
            agent = docker_client.containers.get("hb-medic")
            code, out = agent.exec_run(["hb-medic", "incidents", "--stack", "eu-1"])
            assert code == 0 and "resolved" in out.decode() and "credentials-profile-missing" in out.decode()
            code, out = agent.exec_run(["hb-medic", "doctor"])
            assert code == 0, out.decode()
            assert "✓ stack eu-1: container hummingbot-api: running" in out.decode(), out.decode()
        finally:
            _show_logs(docker_client, "hb-medic")
            compose.close()


def _show_logs(client, name: str) -> None:
    try:
        print(client.containers.get(name).logs(tail=60).decode(errors="replace"))
    except Exception as exc:
        print(f"no logs of {name}: {exc}")


def test_compose_hardened_yaml_fixes_it_through_the_socket_proxy(agent_image, docker_client, make_stack):
    """The agent without the socket, behind the proxy built from docker-proxy/: the seed incident
    is fixed through it, and what the allow-list forbids is refused before the engine."""
    stack = make_stack(real_names=True)
    recorder, http, proxy = port_or_free(8001), port_or_free(9108), free_port()
    engine = f"tcp://127.0.0.1:{proxy}"
    compose = ComposeUp("compose.hardened.yaml", stack.run_id, override={
        "services": {
            "docker-proxy": {"image": PROXY_IMAGE,
                             "environment": {"DOCKER_PROXY_BIND": f"127.0.0.1:{proxy}"}},
            "hb-medic": {
                "image": AGENT_IMAGE, "healthcheck": QUICK_HEALTHCHECK,
                "environment": {"DOCKER_HOST": engine, "MEDIC_HUMMINGBOT_URL": stack.url,
                                "MEDIC_BOT_SETTLE": "3", "MEDIC_PREFLIGHT": "off", "MEDIC_BOTS": "off",
                                "MEDIC_RECORDER_ADDR": f"127.0.0.1:{recorder}",
                                "MEDIC_HTTP_ADDR": f"127.0.0.1:{http}"},
                "volumes": [f"{stack.bots}:/bots:ro"]}},
        "volumes": {"hb-medic-state": {"name": f"medic-t{stack.run_id}-state"}},
    }, secrets={"hummingbot_password": "admin", "notify_urls": ""})
    try:
        agent_svc = compose.config["services"]["hb-medic"]
        assert not any("docker.sock" in str(v) for v in agent_svc.get("volumes", []))
        compose.up()
        wait_until(lambda: _health(docker_client, "hb-medic") == "healthy", 90, "hb-medic healthy")
        bots = _seed_incident_fixed(docker_client, recorder)
        agent = docker_client.containers.get("hb-medic")
        code, out = agent.exec_run(["hb-medic", "doctor"])
        assert code == 0, out.decode()
        assert f"at {engine}" in out.decode() and "✓ container hummingbot-api: running" in out.decode()
        # The proxy is plain tcp:// (a private network in the shipped file): said, not failed.
        assert f"! DOCKER_HOST={engine} without TLS" in out.decode()
        assert agent.logs().decode().count(f"DOCKER_HOST={engine} without TLS") == 1  # once, at start
        _assert_locked_down(agent, out.decode())
        # Through the proxy: what the allow-list forbids never reaches the engine.
        via = docker.DockerClient(base_url=engine, timeout=30)
        try:
            with pytest.raises(APIError) as refused:
                via.api.exec_create(stack.api.id, ["true"])
            assert refused.value.status_code == 403
            with pytest.raises(APIError) as refused:
                via.api.remove_container(bots[0].id, force=True)
            assert refused.value.status_code == 403
            assert via.containers.get("hummingbot-api").status == "running"  # inspect is allowed
        finally:
            via.close()
        assert docker_client.containers.get(bots[0].id).status == "running"
    finally:
        _show_logs(docker_client, "hb-medic")
        compose.close()
    assert not docker_client.containers.list(all=True, filters={"name": "^hb-medic-docker-proxy$"})


def _assert_locked_down(agent, doctor: str) -> None:
    """As both compose files run it: no new privileges, no capabilities, a read-only root with /data
    and /tmp writable, no setuid program in the image, the secrets for its user's eyes only."""
    host = agent.attrs["HostConfig"]
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"], host
    assert "no-new-privileges:true" in host["SecurityOpt"] and "/tmp" in host["Tmpfs"], host
    for writable in ("/data", "/tmp"):
        assert agent.exec_run(["sh", "-c", f"touch {writable}/.probe && rm {writable}/.probe"])[0] == 0
    code, out = agent.exec_run(["find", "/", "-xdev", "-perm", "/6000", "-type", "f"], user="root")
    assert code == 0 and out.decode().strip() == "", out.decode()
    if os.geteuid() == 0:  # the test bed wrote them as the docs say (0600, the agent's user)
        assert "✓ secret files: 2, readable by their owner only" in doctor, doctor
