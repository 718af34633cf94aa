"""recreate_with_terminal against the real engine: a container started without a TTY, whose
program (like the Hummingbot client at its prompt) dies without one and waits with one, is
re-created with a terminal and everything else it had; a create or a start that fails leaves the
original in place under its name; what must not be re-created is refused with nothing changed;
and docker-compose sees no drift in the re-created container of its service."""

from __future__ import annotations

import subprocess
import time
import uuid

import docker
import pytest
import yaml
from docker.errors import NotFound

from agent.actions import registry
from agent.actions.base import ActionContext, ActionError, NeedsHuman
from agent.hummingbot_api import HummingbotAPI
from tests.compose import COMPOSE
from tests.images import BASE_IMAGE
from tests.stack import labels, wait_until

pytestmark = pytest.mark.docker
SPEC = registry()["recreate_with_terminal"]
# The client's shape: with a terminal on fd 0 it waits (at its prompt); without one it dies.
PROMPT = ["sh", "-c", "test -t 0 && exec sleep 3600; echo 'Input is not a terminal (fd=0).' >&2; exit 1"]


def recreate(ctx: ActionContext, name: str, **params) -> str:
    return SPEC.func(SPEC.params.model_validate({"name": name, **params}), ctx)


@pytest.fixture
def ctx():
    client = docker.from_env()
    api = HummingbotAPI("http://127.0.0.1:9", "admin", "admin")  # never called by this action
    yield ActionContext(docker=client, api=api)
    api.close()


@pytest.fixture
def made(docker_client):
    """Containers (by name prefix) and networks this test makes, removed after it."""
    tag = f"medic-rt-{uuid.uuid4().hex[:6]}"
    yield tag
    for c in docker_client.containers.list(all=True, filters={"name": tag}):
        c.remove(force=True)
    for n in docker_client.networks.list(names=[f"{tag}-net"]):
        n.remove()


def exited(container) -> None:
    wait_until(lambda: (container.reload(), container.status == "exited")[1], 30, f"{container.name} exits")


def no_tty(client, name: str, tmp_path, *, network: str = "none", command=PROMPT, **extra):
    (tmp_path / "data").mkdir(exist_ok=True)
    c = client.containers.run(
        BASE_IMAGE, command, name=name, detach=True, network=network if network != "none" else None,
        network_mode="none" if network == "none" else None,
        labels={**labels(name), "com.docker.compose.config-hash": "c0ffee", "custom": "kept"},
        environment={"CONFIG_PASSWORD": "x", "SCRIPT_CONFIG": "conf.yml"},
        volumes={str(tmp_path / "data"): {"bind": "/data", "mode": "rw"}},
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 1},
        log_config={"type": "json-file", "config": {"max-size": "1m", "max-file": "2"}}, **extra)
    exited(c)
    return c


def test_a_container_without_a_tty_is_recreated_with_one_and_all_else_it_had(docker_client, ctx, made,
                                                                            tmp_path):
    net = docker_client.networks.create(f"{made}-net", internal=True, labels=labels(made))
    name = f"{made}-bot"
    old = no_tty(docker_client, name, tmp_path, network=net.name)
    net.disconnect(old)
    net.connect(old, aliases=["hummingbot", "bot-one"])
    before = docker_client.api.inspect_container(name)
    assert before["Config"]["Tty"] is False and before["State"]["ExitCode"] == 1
    started = time.monotonic()
    said = recreate(ctx, name)
    took = time.monotonic() - started
    after = docker_client.api.inspect_container(name)
    assert said.startswith(f"recreated {name} with a terminal") and after["Id"] != before["Id"]
    print(f"recreate took {took:.1f} s ({said})")
    assert after["Config"]["Tty"] is True and after["Config"]["OpenStdin"] is True
    assert after["State"]["Running"] is True  # the program found its terminal and waits
    assert after["Name"] == f"/{name}"
    assert after["Config"]["Labels"] == before["Config"]["Labels"]
    assert after["Config"]["Env"] == before["Config"]["Env"]
    assert after["Config"]["Cmd"] == PROMPT and after["Config"]["Image"] == before["Config"]["Image"]
    for key in ("Binds", "RestartPolicy", "NetworkMode", "LogConfig"):
        assert after["HostConfig"][key] == before["HostConfig"][key], key
    assert after["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 1}
    assert set(after["NetworkSettings"]["Networks"]) == {net.name}
    assert {"hummingbot", "bot-one"} <= set(after["NetworkSettings"]["Networks"][net.name]["Aliases"])
    with pytest.raises(NotFound):  # the old one is gone, and nothing was left aside
        docker_client.api.inspect_container(before["Id"])
    assert [c.name for c in docker_client.containers.list(all=True, filters={"name": made})] == [name]
    # a second press finds the terminal there and changes nothing
    with pytest.raises(NeedsHuman, match="already has a terminal"):
        recreate(ctx, name)
    assert docker_client.api.inspect_container(name)["Id"] == after["Id"]


def test_a_create_the_engine_refuses_leaves_the_original_in_place(docker_client, ctx, made, tmp_path):
    net = docker_client.networks.create(f"{made}-net", internal=True, labels=labels(made))
    name = f"{made}-gone-net"
    old = no_tty(docker_client, name, tmp_path, network=net.name)
    net.remove()  # its network is gone: the engine refuses a create that names it
    with pytest.raises(ActionError, match="it is left as it was") as err:
        recreate(ctx, name)
    assert "not found" in str(err.value)
    assert docker_client.api.inspect_container(name)["Id"] == old.id
    assert docker_client.api.inspect_container(name)["Config"]["Tty"] is False
    assert [c.name for c in docker_client.containers.list(all=True, filters={"name": made})] == [name]


def test_a_new_container_that_dies_at_once_is_removed_and_the_original_restored(docker_client, ctx, made,
                                                                               tmp_path):
    name = f"{made}-dies"
    old = no_tty(docker_client, name, tmp_path, command=["sh", "-c", "exit 3"])
    with pytest.raises(ActionError, match=r"as it was: the new container stopped at once \(exit code 3\)"):
        recreate(ctx, name, check=3)
    assert docker_client.api.inspect_container(name)["Id"] == old.id
    assert [c.name for c in docker_client.containers.list(all=True, filters={"name": made})] == [name]


def test_what_must_not_be_recreated_is_refused_with_nothing_changed(docker_client, ctx, made, tmp_path):
    with pytest.raises(ActionError, match="does not exist"):
        recreate(ctx, f"{made}-none")
    running = docker_client.containers.run(BASE_IMAGE, ["sleep", "60"], name=f"{made}-runs", detach=True,
                                           network_mode="none", labels=labels(made))
    with pytest.raises(NeedsHuman, match="is running"):
        recreate(ctx, running.name)
    tty = docker_client.containers.run(BASE_IMAGE, ["true"], name=f"{made}-tty", detach=True, tty=True,
                                       network_mode="none", labels=labels(made))
    exited(tty)
    with pytest.raises(NeedsHuman, match="already has a terminal"):
        recreate(ctx, tty.name)
    deployed = f"{made}-api"  # as hummingbot-api deploys: its conf from bots/instances/<name>/conf
    conf = tmp_path / "bots" / "instances" / deployed / "conf"
    conf.mkdir(parents=True)
    api_bot = docker_client.containers.run(
        BASE_IMAGE, ["true"], name=deployed, detach=True, network_mode="none", labels=labels(made),
        volumes={str(conf): {"bind": "/home/hummingbot/conf", "mode": "rw"}})
    exited(api_bot)
    with pytest.raises(NeedsHuman, match="hummingbot-api deployed"):
        recreate(ctx, deployed)
    for c in (running, tty, api_bot):
        assert docker_client.api.inspect_container(c.name)["Id"] == c.id
    with pytest.raises(Exception, match="String should match pattern"):  # a name from nowhere else
        SPEC.params.model_validate({"name": "x; rm -rf /"})


@pytest.mark.skipif(COMPOSE is None, reason="docker-compose is not installed (scripts/prepare installs it)")
def test_docker_compose_sees_no_drift_in_the_recreated_container(docker_client, ctx, made, tmp_path):
    """Its labels (the config hash) kept: `docker-compose up -d` leaves the re-created container as
    it is (same id, its terminal kept); only --force-recreate goes back to the file's definition."""
    project = made.replace("-", "")
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump({"version": "3.8", "services": {"bot": {
        "image": BASE_IMAGE, "command": PROMPT, "network_mode": "none", "labels": labels(made),
        "container_name": f"{made}-compose", "environment": {"CONFIG_PASSWORD": "x"}}}}))

    def compose(*args: str) -> None:
        subprocess.run([COMPOSE, "-p", project, *args], cwd=tmp_path, check=True, capture_output=True,
                       timeout=120)

    try:
        compose("up", "-d")
        exited(docker_client.containers.get(f"{made}-compose"))
        recreate(ctx, f"{made}-compose")
        again = docker_client.api.inspect_container(f"{made}-compose")
        compose("up", "-d")
        after = docker_client.api.inspect_container(f"{made}-compose")
        assert after["Id"] == again["Id"] and after["Config"]["Tty"] is True and after["State"]["Running"]
    finally:
        compose("down")
