"""Shared fixtures: the real Docker engine and the stand-in test bed."""

from __future__ import annotations

import os

import docker
import pytest
from docker.errors import DockerException

from tests.images import ensure_images
from tests.stack import Stack, free_port, sweep


@pytest.fixture(autouse=True)
def agent_env(monkeypatch):
    """What every agent started by a test needs: hummingbot-api's password (the stand-in's
    default) and a health port of its own."""
    monkeypatch.setenv("MEDIC_HUMMINGBOT_PASSWORD", "admin")
    monkeypatch.setenv("MEDIC_HTTP_ADDR", f"127.0.0.1:{free_port()}")


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
