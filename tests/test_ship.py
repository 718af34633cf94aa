"""What a newcomer runs: the demo, and the compose files beside hummingbot-api's."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.stack import REPO


@pytest.mark.docker
def test_demo_shows_the_seed_incident_fixed(docker_client):
    out = subprocess.run([sys.executable, "-m", "tests.demo"], capture_output=True, text=True, cwd=REPO,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert "hummingbot-api answered 500" in text
    assert "bot containers running now: sharp-bot-" in text
    assert "[CRITICAL] Fixed: Deploy failed: credentials profile client_sharp did not exist" in text
    assert "retry_deploy" in text and "resolved" in text  # the incident listing
    assert not docker_client.containers.list(all=True, filters={"name": "^hummingbot-api$"})


def test_compose_beside_hummingbot_api():
    c = yaml.safe_load((REPO / "compose.yaml").read_text())
    svc = c["services"]["hb-medic"]
    assert svc["restart"] == "unless-stopped"
    assert "/var/run/docker.sock:/var/run/docker.sock" in svc["volumes"]
    assert any(v.endswith(":/bots:ro") for v in svc["volumes"])
    assert svc["environment"]["MEDIC_HUMMINGBOT_URL"] == "http://hummingbot-api:8000"
    assert svc["environment"]["MEDIC_RECORDER_ADDR"] == "0.0.0.0:8001"
    assert "127.0.0.1:8001:8001" in svc["ports"]
    assert {s["target"] for s in svc["secrets"]} == {"medic_hummingbot_password", "medic_notify_urls"}
    assert c["networks"]["hummingbot"] == {"name": "hummingbot-api_emqx-bridge", "external": True}
    assert "PASSWORD" not in str(svc["environment"]).replace("MEDIC_HUMMINGBOT_USERNAME", "")


def test_hardened_compose_keeps_the_socket_away_from_the_agent():
    c = yaml.safe_load((REPO / "compose.hardened.yaml").read_text())
    agent, proxy = c["services"]["hb-medic"], c["services"]["docker-proxy"]
    assert not any("docker.sock" in v for v in agent["volumes"])
    assert agent["environment"]["DOCKER_HOST"] == "tcp://docker-proxy:2375"
    assert proxy["volumes"] == ["/var/run/docker.sock:/var/run/docker.sock:ro"]
    # The proxy is built here (tests/test_docker_proxy.py runs the same image): no public image.
    assert proxy["build"] == "./docker-proxy" and "image" in proxy and "/" not in proxy["image"]
    assert proxy["read_only"] is True and proxy["cap_drop"] == ["ALL"]
    assert proxy["security_opt"] == ["no-new-privileges:true"] and proxy["networks"] == ["medic-internal"]
    assert c["networks"]["medic-internal"]["internal"] is True
    dockerfile = (REPO / "docker-proxy" / "Dockerfile").read_text()
    assert "ARG BASE=debian:bookworm-slim" in dockerfile and "USER haproxy" in dockerfile


def test_dockerfile_contract():
    text = (REPO / "Dockerfile").read_text()
    assert "ARG BASE=python:3.12-slim" in text
    assert 'ENTRYPOINT ["hb-medic"]' in text and "USER medic" in text
    assert 'HEALTHCHECK' in text and 'CMD ["hb-medic", "health"]' in text
    assert "COPY rules /src/rules" in text and 'VOLUME ["/data"]' in text  # rules ship in the package
    assert "MEDIC_RULES_DIR" not in text.replace("named by MEDIC_RULES_DIR", "")
