"""The hardened compose's Docker socket proxy (docker-proxy/haproxy.cfg, built here from
Debian's haproxy): what hb-medic does passes through it, anything else is refused
before it reaches the engine."""

from __future__ import annotations

import http.client
import os
import re
import socket
import urllib.request
import uuid

import docker
import pytest
from docker.errors import APIError

from agent.actions import registry
from agent.actions.base import ActionContext, NeedsHuman
from tests.images import PROXY_IMAGE, TOOLS_IMAGE
from tests.stack import free_port, labels, start_raiser, wait_until
from tests.test_run import start_agent, stop_agent

pytestmark = pytest.mark.docker
ACTIONS = registry()


@pytest.fixture
def proxy(docker_client):
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        pytest.skip("the proxy test mounts the engine's socket")
    sock = host.removeprefix("unix://")
    port = free_port()
    c = docker_client.containers.run(  # as compose.hardened.yaml runs it
        PROXY_IMAGE, detach=True, network_mode="host", labels=labels(f"proxy-{port}"), read_only=True,
        cap_drop=["ALL"], security_opt=["no-new-privileges:true"],
        group_add=[str(os.stat(sock).st_gid)], environment={"DOCKER_PROXY_BIND": f"127.0.0.1:{port}"},
        volumes={sock: {"bind": "/var/run/docker.sock", "mode": "ro"}})
    try:
        wait_until(lambda: _listening(port), 30, "the proxy to listen")
        yield port
    finally:
        c.remove(force=True)


@pytest.fixture
def raiser(docker_client):
    name = f"medic-proxy-{uuid.uuid4().hex[:6]}"
    c = start_raiser(docker_client, name, name, BEAT=3600)  # its lines come from its starts only
    yield c
    c.remove(force=True)


def test_what_hb_medic_does_passes(proxy, raiser, docker_client, tmp_path):
    """The agent follows a container through the proxy (inspect, logs, events), re-attaches
    after a restart, and the Docker actions of the shipped rules work."""
    log = tmp_path / "agent.log"
    agent = start_agent({"DOCKER_HOST": f"tcp://127.0.0.1:{proxy}", "MEDIC_CONTAINERS": raiser.name,
                         "MEDIC_STATE_DB": str(tmp_path / "state.db")}, log)
    try:
        # Lines read through the proxy (no rule reads this sibling's streams, so nothing is reported).
        first = wait_until(lambda: _lines_read(raiser.name), 60, "the lines of the first start")
        raiser.restart(timeout=1)  # by someone else: the agent hears of it through /events
        wait_until(lambda: _lines_read(raiser.name) >= 2 * first, 60, "the lines of the second start")
    finally:
        stop_agent(agent)
    assert "403 Client Error" not in log.read_text() and "Forbidden" not in log.read_text()
    client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{proxy}", timeout=30)
    ctx = ActionContext(docker=client, api=None)  # type: ignore[arg-type]
    run = lambda action, **p: ACTIONS[action].func(ACTIONS[action].params.model_validate(p), ctx)  # noqa: E731
    assert run("restart_container", name=raiser.name, timeout=1) == f"restarted {raiser.name}"
    docker_client.containers.get(raiser.id).stop(timeout=1)
    assert run("start_container", name=raiser.name) == f"started {raiser.name}"
    assert run("wait_container_running", name=raiser.name, timeout=20) == f"{raiser.name} running"
    assert run("image_present", image=TOOLS_IMAGE) == f"image {TOOLS_IMAGE} present"
    assert client.containers.list(all=True, filters={"name": raiser.name})[0].id == raiser.id
    client.close()


def test_restoring_client_config_is_refused_and_needs_a_person(proxy, raiser):
    """Reading and writing files of a container (the archive calls restore_client_config makes) are
    as much as an exec: the proxy refuses them, and the action says at once (no retries) that a person
    copies the file."""
    client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{proxy}", timeout=30)
    ctx = ActionContext(docker=client, api=None)  # type: ignore[arg-type]
    spec = ACTIONS["restore_client_config"]
    params = spec.params.model_validate({"container": raiser.name,
                                         "conf_dir": "/usr/local/lib/python3.11/site-packages/conf"})
    with pytest.raises(NeedsHuman, match=r"refused to read or write files of containers \(403"):
        spec.func(params, ctx)
    with pytest.raises(APIError) as caught:
        client.api.put_archive(raiser.id, "/tmp", b"")
    assert caught.value.status_code == 403
    client.close()


def test_recreating_with_a_terminal_is_refused_and_needs_a_person(proxy, docker_client):
    """bot-no-tty's fix renames, creates and removes containers, which the proxy never lets through:
    the action says at once that a person re-creates it, and the container is left as it was."""
    box = docker_client.containers.create(TOOLS_IMAGE, entrypoint=["true"], labels=labels("proxy-notty"),
                                          name=f"medic-notty-{uuid.uuid4().hex[:6]}")
    client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{proxy}", timeout=30)
    ctx = ActionContext(docker=client, api=None)  # type: ignore[arg-type]
    spec = ACTIONS["recreate_with_terminal"]
    try:
        refused = r"refuses to stop, rename or create containers .*nothing was changed"
        with pytest.raises(NeedsHuman, match=refused):
            spec.func(spec.params.model_validate({"name": box.name, "check": 0}), ctx)
        box.reload()
        assert box.name == docker_client.containers.get(box.id).name and not box.attrs["Config"]["Tty"]
    finally:
        client.close()
        box.remove(force=True)


def test_anything_else_is_refused(proxy, raiser, docker_client):
    client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{proxy}", timeout=30)
    api = client.api
    refused = {
        "create a container": lambda: client.containers.create(TOOLS_IMAGE, ["true"], privileged=True,
                                                               volumes={"/": {"bind": "/host"}}),
        "exec in a container": lambda: api.exec_create(raiser.id, ["id"]),
        "delete a container": lambda: api.remove_container(raiser.id, force=True),
        "stop a container": lambda: api.stop(raiser.id, timeout=1),
        "kill a container": lambda: api.kill(raiser.id),
        "update a container": lambda: api.update_container(raiser.id, mem_limit="1g"),
        "pull an image": lambda: api.pull("127.0.0.1:9/nope", tag="latest"),
        "list volumes": lambda: client.volumes.list(),
        "list networks": lambda: client.networks.list(),
        "engine info": lambda: client.info(),
    }
    for what, call in refused.items():
        with pytest.raises(APIError) as caught:
            call()
        assert caught.value.status_code == 403, what
    # Paths dressed up as allowed ones.
    for method, path in [("POST", "/v1.41/containers/x/../create"), ("POST", "/containers/%2e%2e/create"),
                         ("POST", "/containers/create?x=/a/start"), ("POST", "//containers/create"),
                         ("POST", f"/containers/{raiser.id}/start/../../create"),
                         ("GET", "/images/..%2F..%2Fcontainers/json"), ("DELETE", f"/containers/{raiser.id}"),
                         ("POST", f"/containers/{raiser.id}/exec"), ("POST", "/build")]:
        conn = http.client.HTTPConnection("127.0.0.1", proxy, timeout=10)
        conn.request(method, path, body=b"{}", headers={"Content-Type": "application/json"})
        assert conn.getresponse().status == 403, (method, path)
        conn.close()
    raiser.reload()
    assert raiser.status == "running"
    assert [c.id for c in docker_client.containers.list(all=True, filters={"ancestor": TOOLS_IMAGE})
            if c.attrs["Config"].get("Cmd") == ["true"]] == []
    client.close()


def _lines_read(container: str) -> int:
    """hb_medic_lines_total of the agent started here (its health address is the test's)."""
    try:
        with urllib.request.urlopen(f"http://{os.environ['MEDIC_HTTP_ADDR']}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return 0
    name = re.escape(container)
    m = re.search(rf'^hb_medic_lines_total{{container="{name}",stack="default"}} ([0-9.e+]+)$', text, re.M)
    return int(float(m[1])) if m else 0


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
