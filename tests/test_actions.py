"""The Docker and HTTP actions against the real engine and the stand-in."""

from __future__ import annotations

import uuid

import docker
import pytest
from pydantic import ValidationError

from agent.actions import registry
from agent.actions.base import ActionContext, ActionError
from agent.hummingbot_api import HummingbotAPI
from tests.stack import start_raiser

pytestmark = pytest.mark.docker
ACTIONS = registry()


def run(action: str, ctx: ActionContext, **params) -> str:
    spec = ACTIONS[action]
    return spec.func(spec.params.model_validate(params), ctx)


@pytest.fixture
def ctx(stack):
    client = docker.from_env()
    api = HummingbotAPI(stack.url, "admin", "admin")
    yield ActionContext(docker=client, api=api)
    api.close()


def test_registry_reads_params_from_signatures():
    assert {"ensure_account", "provision_credentials", "start_container", "restart_container",
            "wait_container_running", "wait_http", "docker_exec", "http_request",
            "image_present"} <= set(ACTIONS)
    assert ACTIONS["docker_exec"].params.model_fields["argv"].annotation == list[str]


def test_container_actions(docker_client, ctx):
    name = f"medic-act-{uuid.uuid4().hex[:6]}"
    c = start_raiser(docker_client, name, name, BEAT=0.2)
    try:
        assert run("wait_container_running", ctx, name=name, timeout=20) == f"{name} running"
        assert run("restart_container", ctx, name=name, timeout=1) == f"restarted {name}"
        c.stop(timeout=1)
        assert run("start_container", ctx, name=name) == f"started {name}"
        assert run("start_container", ctx, name=name) == f"{name} already running"
        assert run("docker_exec", ctx, name=name, argv=["test", "-d", "/w/tests"]) == "test exited 0"
        with pytest.raises(ActionError, match="exited with 1"):
            run("docker_exec", ctx, name=name, argv=["test", "-d", "/nonexistent"])
        with pytest.raises(ActionError, match="exited with 124"):  # the timeout is enforced
            run("docker_exec", ctx, name=name, argv=["sleep", "30"], timeout=1)
        with pytest.raises(ActionError, match="does not exist"):
            run("start_container", ctx, name="medic-no-such-container")
    finally:
        c.remove(force=True)


def test_parameters_are_validated_before_any_call():
    for name, params in [("start_container", {"name": "x; rm -rf /"}),
                         ("docker_exec", {"name": "c", "argv": []}),
                         ("docker_exec", {"name": "c", "argv": ["id"], "user": "root;id"}),
                         ("http_request", {"path": "/../etc/passwd"}),
                         ("http_request", {"path": "http://elsewhere/"}),
                         ("ensure_account", {"profile": "../x"}),
                         ("image_present", {"image": "a b"})]:
        with pytest.raises(ValidationError):
            ACTIONS[name].params.model_validate(params)


def test_http_actions_against_the_standin(ctx):
    assert run("wait_http", ctx, path="/", timeout=5) == "GET / answered 200"
    assert run("http_request", ctx, path="/accounts/") == "GET /accounts/ answered 200"
    with pytest.raises(ActionError, match="answered 404"):
        run("http_request", ctx, path="/accounts/ghost/credentials")
    assert run("ensure_account", ctx, profile="fresh") == "added profile fresh"
    assert run("ensure_account", ctx, profile="fresh") == "profile fresh already complete"
    for template in ("master_account", "Master_Account"):  # refused before anything is called
        with pytest.raises(ValidationError, match="protected profile"):
            run("ensure_account", ctx, profile=template)
    with pytest.raises(ActionError, match="is not on the engine"):
        run("image_present", ctx, image="127.0.0.1:9/nope:latest")


def test_key_files_are_read_only_from_safe_regular_files(stack, ctx, tmp_path):
    """A key file that is a link (to any file the agent can read), or that others may change, is
    refused with a clear message and nothing goes to hummingbot-api."""
    stack.http("POST", "/accounts/add-account", params={"account_name": "keyed"})
    outside = tmp_path / "not-keys.json"
    outside.write_text('{"binance_api_key": "stolen-1", "binance_api_secret": "stolen-2"}')
    root = tmp_path / "keys"
    (root / "keyed").mkdir(parents=True)
    ctx.credentials_dir = root
    link = root / "keyed" / "binance.json"
    link.symlink_to(outside)
    with pytest.raises(ActionError, match="symbolic link: refused"):
        run("provision_credentials", ctx, profile="keyed")
    link.unlink()
    (root / "other").symlink_to(root / "keyed", target_is_directory=True)
    with pytest.raises(ActionError, match="symbolic link: refused"):
        run("provision_credentials", ctx, profile="other")
    key = root / "keyed" / "binance.json"
    key.write_text('{"binance_api_key": "k", "binance_api_secret": "s"}')
    key.chmod(0o664)
    with pytest.raises(ActionError, match=r"changed by its group or by others \(mode 664\).*chmod go-w"):
        run("provision_credentials", ctx, profile="keyed")
    assert stack.http("GET", "/accounts/keyed/credentials").json() == []  # nothing was sent
    key.chmod(0o600)
    assert run("provision_credentials", ctx, profile="keyed") == "added keys for keyed: binance"
    assert stack.http("GET", "/accounts/keyed/credentials").json() == ["binance"]
