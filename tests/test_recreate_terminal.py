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
from agent.chat.transport import Who
from agent.hummingbot_api import HummingbotAPI
from tests.compose import COMPOSE
from tests.images import BASE_IMAGE
from tests.realstack.images import BOT_IMAGE, ensure_real_images
from tests.stack import labels, wait_until
from tests.test_breadth import DONE, actions, agent, incidents, one, said  # noqa: F401 (agent: a fixture)

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
    # a second run (a resumed attempt) finds the terminal there and running: done, nothing changed
    assert recreate(ctx, name) == f"{name} already has a terminal and runs: nothing re-created"
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


def test_a_run_cut_off_after_the_old_one_was_put_aside_gives_it_its_name_back_and_finishes(
        docker_client, ctx, made, tmp_path):
    """The agent killed between putting the old container aside and making the new one: the next
    run (the resumed attempt) finds it aside, gives it its name back, and re-creates it."""
    name = f"{made}-cut"
    old = no_tty(docker_client, name, tmp_path)
    docker_client.api.rename(old.id, f"{name}-notty-1796000000")  # where the kill left it
    said = recreate(ctx, name)
    assert said.startswith(f"recreated {name} with a terminal"), said
    assert docker_client.api.inspect_container(name)["Config"]["Tty"] is True
    assert [c.name for c in docker_client.containers.list(all=True, filters={"name": made})] == [name]


def test_a_run_cut_off_after_the_new_one_started_keeps_it_and_removes_the_old(docker_client, ctx, made,
                                                                              tmp_path):
    name = f"{made}-cut2"
    old = no_tty(docker_client, name, tmp_path)
    docker_client.api.rename(old.id, f"{name}-notty-1796000000")
    new = docker_client.containers.run(BASE_IMAGE, PROMPT, name=name, detach=True, tty=True, stdin_open=True,
                                       network_mode="none", labels=labels(name))
    said = recreate(ctx, name, check=1)
    assert "finished after an interruption" in said and new.id[:12] in said, said
    assert [c.id for c in docker_client.containers.list(all=True, filters={"name": made})] == [new.id]


def test_a_container_merely_named_like_one_put_aside_is_not_taken_for_it(docker_client, ctx, made, tmp_path):
    name = f"{made}-x"
    other = docker_client.containers.create(BASE_IMAGE, ["true"], name=f"{name}-notty-12ab",
                                            labels=labels(name))
    no_tty(docker_client, name, tmp_path)
    assert recreate(ctx, name).startswith(f"recreated {name} with a terminal")
    assert docker_client.api.inspect_container(other.id)["Name"] == f"/{name}-notty-12ab"


def test_a_container_its_restart_policy_starts_again_and_again_is_stopped_and_recreated(
        docker_client, ctx, made):
    """`restart: always` without a terminal: each start dies at the prompt, the engine restarts it
    (State.Restarting); the loop is stopped and the container re-created, its policy kept."""
    name = f"{made}-loop"
    docker_client.containers.run(BASE_IMAGE, PROMPT, name=name, detach=True, network_mode="none",
                                 labels=labels(made), restart_policy={"Name": "always"})
    wait_until(lambda: docker_client.api.inspect_container(name)["RestartCount"] >= 2, 60, "its restarts")
    said = recreate(ctx, name)
    after = docker_client.api.inspect_container(name)
    assert said.startswith(f"recreated {name}") and after["Config"]["Tty"] is True
    assert after["HostConfig"]["RestartPolicy"]["Name"] == "always" and after["State"]["Running"] is True
    assert after["RestartCount"] == 0


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


def test_a_client_whose_words_the_agent_cannot_read_is_known_by_its_container(
        docker_client, make_stack, agent, receiver, made):  # noqa: F811
    """A compose bot's logs folder is not under the bots folder and a current client's console is
    empty: the engine alone says it. A client with its prompt in a container without a terminal that
    died is bot-no-tty; the same container run headless is not (its death is bot-died's)."""
    from tests.images import BOT_IMAGE as STANDIN_BOT

    stack = make_stack()
    service = agent(stack, mode="ask")
    silent = ["sh", "-c", "test -t 0 && exec sleep 3600; exit 1"]  # says nothing, wherever
    name, headless = f"b{stack.run_id}_silent", f"b{stack.run_id}_headless"
    for n, env in ((name, {}), (headless, {"HEADLESS_MODE": "true"})):
        docker_client.containers.run(STANDIN_BOT, entrypoint=silent, name=n, detach=True, network_mode="none",
                                     labels={**labels(made), "com.docker.compose.project": "mybots"},
                                     environment=env)
    inc = one(service, "bot-no-tty", states=("awaiting-approval",))
    assert inc.container == name and "exited by itself with code 1" in inc.captures["fate"]
    died = one(service, "bot-died", states=DONE)
    assert died.container == headless
    told = incidents(service, "bot-no-tty", states=(*DONE, "awaiting-approval"))
    assert [i.container for i in told] == [name]


# -- end to end: the real Hummingbot client, the real agent, a person's approval ---------------------
ALICE = Who("telegram", "1001", "-500", "alice")


def test_real_client_run_without_a_terminal_is_recreated_with_one_on_approval(
        docker_client, make_stack, agent, receiver, made):  # noqa: F811
    """The real client (`docker run` without -it, its logs folder where the agent reads bots' logs)
    dies at its prompt; the incident waits for approval whatever happens; Fix now re-creates it with
    a terminal, and the client then waits at its prompt for the whole check."""
    ensure_real_images(docker_client, log=lambda _msg: None)
    stack = make_stack()
    service = agent(stack, mode="ask", chat_telegram_users=["1001"])
    name = f"b{stack.run_id}_notty"
    logs = stack.bots / "instances" / name / "logs"
    logs.mkdir(parents=True)
    bot = docker_client.containers.run(
        BOT_IMAGE, name=name, detach=True, network_mode="none",
        labels={**labels(made), "com.docker.compose.project": "mybots", "com.docker.compose.service": "bot"},
        volumes={str(logs): {"bind": "/home/hummingbot/logs", "mode": "rw"}})
    inc = one(service, "bot-no-tty", states=("awaiting-approval",))
    assert inc.container == name and "exited by itself with code 1" in inc.captures["fate"]
    bot.reload()
    assert bot.status == "exited" and bot.attrs["Config"]["Tty"] is False
    assert actions(service, inc) == []  # nothing is done before a person says so
    assert service.store.approvals.get(inc.id).plan[0] == f"recreate_with_terminal(name='{name}')"
    wait_until(lambda: said(receiver, "has no terminal"), 30, "the message")
    (msg,) = said(receiver, "has no terminal")
    assert "Fix now re-creates the container" in msg["message"] and "stdin_open: true" in msg["message"]
    assert not incidents(service, "bot-died", states=DONE)  # one failure, one message
    press = next(b.data for b in service.operator.buttons(inc.id) if b.data.startswith("fix:"))
    pressed = time.monotonic()
    assert service.operator.press(ALICE, press).startswith(f"Fixing incident {inc.id}")
    done = wait_until(lambda: service.store.incidents.get(inc.id).state in ("resolved", "gave-up", "failed")
                      and service.store.incidents.get(inc.id), 120, "the fix and its check")
    took = time.monotonic() - pressed
    assert done.state == "resolved", done.detail
    assert actions(service, inc) == [("action", "recreate_with_terminal", True),
                                     ("verify", "bot_quiet", True)]
    recreated = next(a["result"] for a in service.store.incidents.audit_trail(inc.id)
                     if a["name"] == "recreate_with_terminal")
    print(f"approval to resolved: {took:.1f} s; {recreated}")
    now = docker_client.api.inspect_container(name)
    assert now["Id"] != bot.id and now["Config"]["Tty"] is True and now["State"]["Running"] is True
    assert now["Config"]["Labels"] == bot.attrs["Config"]["Labels"]
    assert now["HostConfig"]["Binds"] == bot.attrs["HostConfig"]["Binds"]
    assert [c.name for c in docker_client.containers.list(all=True, filters={"name": name})] == [name]
    wait_until(lambda: any("Fixed" in t for t in (m["title"] for m in receiver.accepted)), 30, "Fixed")
