"""Shared fixtures: the real Docker engine and the stand-in test bed."""

from __future__ import annotations

import contextlib
import os

import docker
import pytest
from docker.errors import DockerException

from tests.images import BASE_IMAGE, ensure_images
from tests.receiver import Receiver
from tests.stack import REPO, Stack, free_port, prefixed_rules, sweep

AGENT_IMAGE = f"medic-test/hb-medic:run-{os.getpid()}"  # this run's build, whatever other checkouts build


@pytest.fixture(autouse=True)
def agent_env(monkeypatch):
    """What every agent started by a test needs: hummingbot-api's password (the stand-in's
    default) and a health port of its own; no start-up try of default credentials; a short settle
    time for a retried bot (30 s by default); and the engine's bots left alone unless a test follows
    its own (tests/test_bots.py): other tests' bots share the engine."""
    monkeypatch.setenv("MEDIC_HUMMINGBOT_PASSWORD", "admin")
    monkeypatch.setenv("MEDIC_HTTP_ADDR", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("MEDIC_BOT_SETTLE", "3")
    monkeypatch.setenv("MEDIC_BOTS", "off")
    # The stand-in's login is admin/admin: the start-up probe of default credentials would tell it in
    # every test; tests/test_exposure.py turns it on.
    monkeypatch.setenv("MEDIC_PROBE_DEFAULTS", "false")


@pytest.fixture(scope="session")
def docker_client():
    """The real engine. Under CI a missing engine fails the tests, never skips them."""
    try:
        client = docker.from_env()
        client.ping()
    except DockerException as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a Docker engine and none answers: {exc}")
        pytest.skip(f"no Docker engine answers: {exc}")
    ensure_images(client, log=lambda _msg: None)
    sweep(client)
    yield client
    client.close()


@pytest.fixture(scope="session")
def agent_image(docker_client):
    """The shipped image, built from the Dockerfile on the local base once per run (Docker's
    layer cache makes a rebuild quick); removed at the end."""
    img, _ = docker_client.images.build(path=str(REPO), tag=AGENT_IMAGE, buildargs={"BASE": BASE_IMAGE},
                                        network_mode="host", rm=True, forcerm=True)
    yield img
    with contextlib.suppress(DockerException):
        docker_client.images.remove(AGENT_IMAGE, noprune=True)


@pytest.fixture
def make_stack(docker_client):
    """Factory for stacks; every stack made is closed after the test."""
    made: list[Stack] = []

    def make(**options) -> Stack:
        stack = Stack(docker_client, **options)
        made.append(stack)
        return stack.start()

    yield make
    for stack in made:
        stack.close()


@pytest.fixture
def stack(make_stack) -> Stack:
    return make_stack()


@pytest.fixture
def receiver():
    """A local notification receiver (apprise json://), closed after the test."""
    with Receiver() as rx:
        yield rx


@pytest.fixture
def start_service():
    """Starts an agent (Service) in this process; each one started is stopped after the test
    (`start.stop(service)` stops one sooner). `drive`: no remedy worker, the test runs the
    attempts itself."""
    from agent.service import Service

    made: list = []

    def start(settings, *, drive: bool = False):
        service = Service(settings)
        if drive:
            service.remedy.start = lambda: None
        service.start()
        made.append(service)
        return service

    def stop(service) -> None:
        """Stop one before the test ends (a restart of the agent, say)."""
        made.remove(service)
        service.stop()

    start.stop = stop
    yield start
    for service in made:
        service.stop()


@pytest.fixture
def driven_agent(tmp_path, start_service):
    """An agent following a test bed stack's hummingbot-api with its recorder in front, the
    test running the attempts itself (`drive`); a re-sent bot must live 3 s (not 30): these
    tests are about incidents."""
    from agent.settings import Settings

    def start(stack, *, drive: bool = True, **extra):
        settings = Settings(
            containers=[stack.prefix + "hummingbot-api"], state_db=tmp_path / "state.db",
            rules_dir=prefixed_rules(stack.prefix, tmp_path / "rules"), hummingbot_url=stack.url,
            catchup_window=120, recorder_addr=f"127.0.0.1:{free_port()}", **{"bot_settle": 3, **extra})
        return start_service(settings, drive=drive)

    return start
