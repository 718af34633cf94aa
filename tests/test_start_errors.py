"""A followed container the engine cannot start never runs and logs nothing: the agent reads the
engine's reason (State.Error) and says it once on the engine channel, where a rule reads it
(port-in-use for a taken port). On the real engine, with a running agent."""

from __future__ import annotations

import contextlib
import time
import uuid

import pytest
from docker.errors import APIError, DockerException

from tests.images import TOOLS_IMAGE
from tests.receiver import Receiver
from tests.stack import labels, wait_until
from tests.test_run import start_agent, stop_agent

pytestmark = pytest.mark.docker

RULE = """id: start-failed-here
description: the engine could not start a followed container (a test's own rule)
severity: error
where: {channels: [engine]}
match:
  - kind: line
    line: "^the engine could not start the container: (?P<why>.*executable file not found.*)$"
captures:
  why: {type: text, max_length: 500}
incident: {key: "{container}", cooldown: 3600}
notify: {title: "{container} did not start", text: "{why}"}
"""


def test_the_engines_reason_a_followed_container_did_not_start_is_told_once(docker_client, tmp_path):
    run = uuid.uuid4().hex[:6]
    name = f"medic-se{run}-hummingbot-api"
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "start-failed-here.yml").write_text(RULE)
    box = docker_client.containers.create(TOOLS_IMAGE, entrypoint=["no-such-program"], name=name,
                                          labels=labels(run), network_mode="none")
    try:
        with contextlib.suppress(APIError):
            box.start()  # the engine refuses: the program does not exist
        box.reload()
        assert box.status != "running" and box.attrs["State"]["Error"], box.attrs["State"]
        with Receiver() as rx:
            log = tmp_path / "agent.log"
            agent = start_agent({"MEDIC_CONTAINERS": name, "MEDIC_RULES_DIR": str(rules),
                                 "MEDIC_STATE_DB": str(tmp_path / "s.db"), "MEDIC_NOTIFY_URLS": rx.url,
                                 "MEDIC_MODE": "observe"}, log)
            try:
                wait_until(lambda: any(f"{name} did not start" in t for t in rx.titles()), 60, "the message")
                with contextlib.suppress(APIError):
                    box.start()  # a second try (compose up again) with the same reason
                time.sleep(33)  # past the follower's next look at a stopped container (30 s)
            finally:
                stop_agent(agent)
            assert sum(f"{name} did not start" in t for t in rx.titles()) == 1, rx.titles()
            assert "executable file not found" in rx.messages()[0]
            assert log.read_text().count("rule start-failed-here matched") == 1, log.read_text()[-3000:]
    finally:
        with contextlib.suppress(DockerException):
            box.remove(force=True)


def test_a_port_a_program_of_the_host_holds_is_port_in_use_told_once(docker_client, tmp_path):
    """The real engine cannot publish a port a host program listens on (its userland proxy cannot
    bind): the container is left created, never runs, and the shipped port-in-use says so with the
    port, once, and how to find what holds it."""
    import socket

    from tests.stack import free_port

    run = uuid.uuid4().hex[:6]
    name = f"medic-pu{run}-hummingbot-api"
    port = free_port()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("0.0.0.0", port))
    holder.listen()
    net = docker_client.networks.create(f"medic-pu{run}", driver="bridge", labels=labels(run))
    box = docker_client.containers.create(TOOLS_IMAGE, entrypoint=["sleep", "60"], name=name,
                                          labels=labels(run), network=net.name, ports={"8000/tcp": port})
    try:
        with contextlib.suppress(APIError):
            box.start()
        box.reload()
        assert "address already in use" in box.attrs["State"]["Error"], box.attrs["State"]
        with Receiver() as rx:
            agent = start_agent({"MEDIC_CONTAINERS": name, "MEDIC_STATE_DB": str(tmp_path / "s.db"),
                                 "MEDIC_NOTIFY_URLS": rx.url, "MEDIC_MODE": "observe"},
                                tmp_path / "agent.log")
            try:
                title = f"Port {port} is taken: {name} cannot start"
                wait_until(lambda: any(title in t for t in rx.titles()), 60, "the message")
                time.sleep(3)
            finally:
                stop_agent(agent)
            assert sum(title in t for t in rx.titles()) == 1, rx.titles()
            told = next(m for t, m in zip(rx.titles(), rx.messages(), strict=True) if title in t)
            assert f"ss -ltnp 'sport = :{port}'" in told, told
    finally:
        with contextlib.suppress(DockerException):
            box.remove(force=True)
        with contextlib.suppress(DockerException):
            net.remove()
        holder.close()
