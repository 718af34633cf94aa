"""What the REAL hummingbot-api prints when its surroundings are wrong, through the rules as
`hb-medic rules test` replays it: a bots folder without its `scripts` folder (both generations) and a
port another program holds; and the start-up try
of the doors anyone could open, against the real program and its real broker (mosquitto, open to
anonymous clients as upstream's compose runs its broker)."""

from __future__ import annotations

import contextlib
import shutil

import pytest
from docker.errors import NotFound

from agent.events import Origin
from agent.ingest.exposure import API_OPEN, BROKER_OPEN, open_doors
from agent.ingest.replay import replay_lines
from agent.match.loader import load_rules
from agent.match.matcher import Matcher
from tests.realstack.images import ensure_real_images
from tests.realstack.stack import RealStack
from tests.stack import ADMIN, REPO, labels, wait_until

pytestmark = pytest.mark.docker


def matches(lines: list[str], channel: str = "merged") -> list:
    """The rules' results for hummingbot-api's output, as `rules test` replays a saved log."""
    matcher = Matcher(load_rules(REPO / "rules").rules)
    origin = Origin("hummingbot-api", channel, "hummingbot-api")
    return [r for e in replay_lines(lines, "hummingbot-api", origin=origin if channel != "merged" else None)
            if (r := matcher.match(e)) is not None]


@pytest.fixture(scope="module")
def real_current(docker_client):
    ensure_real_images(docker_client, log=lambda _msg: None)
    with RealStack(docker_client, "current") as stack:
        yield stack


@pytest.mark.parametrize("generation", ["legacy", "current"])
def test_real_a_bots_folder_without_scripts_is_bots_folder_incomplete(docker_client, generation):
    ensure_real_images(docker_client, log=lambda _msg: None)
    with RealStack(docker_client, generation) as stack:
        shutil.rmtree(stack.bots / "scripts")
        answer = stack.http("GET", "/scripts/")
        assert answer.status_code == 500, answer.text
        err = wait_until(lambda: (lines := stack.lines("stderr")) and any(
            "Directory 'scripts' not found" in x for x in lines) and lines, 30, "the traceback")
        found = [r for r in matches(err) if r.rule.id == "bots-folder-incomplete"]
        assert found and found[0].captures["folder"] == "scripts", err[-40:]
        assert found[0].actions == ["bots_skeleton"]


def test_real_a_port_another_program_holds_is_api_port_in_use(docker_client, real_current):
    """A second hummingbot-api on the port the first one listens on (host network): uvicorn's own
    line once its start-up is complete, and the container exits."""
    stack = real_current
    name = f"{stack.api_name}-second"
    second = docker_client.containers.run(
        stack.image, entrypoint=["uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(stack.api_port)],
        name=name, detach=True, network_mode="host", labels=labels(stack.run_id),
        environment=stack._api_env(),
        volumes=[f"{stack.bots}:/hummingbot-api/bots:rw", "/var/run/docker.sock:/var/run/docker.sock:rw"])
    try:
        wait_until(lambda: second.reload() or second.status == "exited", 120, "the second one to exit")
        lines = second.logs(stdout=True, stderr=True).decode(errors="replace").splitlines()
    finally:
        with contextlib.suppress(NotFound):
            second.remove(force=True)
    found = [r for r in matches(lines) if r.rule.id == "api-port-in-use"]
    assert found, lines[-30:]
    assert found[0].captures["port"] == str(stack.api_port) and found[0].captures["address"] == "127.0.0.1"


def test_real_default_login_and_anonymous_broker_are_found_open(real_current):
    stack = real_current
    assert open_doors(stack.url, *ADMIN) == [API_OPEN.format(url=stack.url),
                                             BROKER_OPEN.format(host="127.0.0.1", port=stack.broker_port)]
