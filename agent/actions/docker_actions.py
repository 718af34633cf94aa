"""Actions on sibling containers through the Docker API (never a shell)."""

from __future__ import annotations

import re
import time

from docker.errors import NotFound
from pydantic import BaseModel, ConfigDict, Field

from agent.actions.base import ActionContext, ActionError, NeedsHuman
from agent.actions.registry import action
from agent.actions.types import ContainerName, ImageRef
from agent.hummingbot_api import broker_status
from agent.names import CONTAINER_NAME_PATTERN


class ContainerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: ContainerName


class RestartParams(ContainerParams):
    timeout: int = Field(10, ge=0, le=120, description="seconds to wait for a clean stop")


class WaitRunningParams(ContainerParams):
    timeout: float = Field(60, gt=0, le=600)
    healthy: bool = Field(False, description="also wait for a passing HEALTHCHECK, if it has one")


class ExecParams(ContainerParams):
    argv: list[str] = Field(min_length=1, max_length=32, description="program and arguments, no shell")
    user: str = Field("nobody", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$")
    timeout: float = Field(30, gt=0, le=300)


class ImageParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image: ImageRef
    timeout: float = Field(0, ge=0, le=3600, description="keep looking this long (0: look once)")


def _get(ctx: ActionContext, name: str):
    try:
        return ctx.docker.containers.get(name)
    except NotFound as exc:
        raise ActionError(f"container {name} does not exist") from exc


@action
def start_container(params: ContainerParams, ctx: ActionContext) -> str:
    """Start a stopped container (a running one is left alone)."""
    c = _get(ctx, params.name)
    if c.status == "running":
        return f"{params.name} already running"
    c.start()
    return f"started {params.name}"


@action
def restart_container(params: RestartParams, ctx: ActionContext) -> str:
    """Restart a container, giving it `timeout` seconds to stop cleanly."""
    _get(ctx, params.name).restart(timeout=params.timeout)
    return f"restarted {params.name}"


@action
def wait_container_running(params: WaitRunningParams, ctx: ActionContext) -> str:
    """Wait until the container runs (and, if asked, reports healthy)."""
    deadline = time.monotonic() + params.timeout
    while True:
        c = _get(ctx, params.name)
        state = c.attrs.get("State", {})
        health = (state.get("Health") or {}).get("Status")
        if state.get("Running") and (not params.healthy or health in (None, "healthy")):
            return f"{params.name} running" + (f" ({health})" if health else "")
        if time.monotonic() > deadline:
            raise ActionError(f"{params.name} not running after {params.timeout:.0f} s "
                              f"(status {c.status}{', ' + health if health else ''})")
        ctx.pause(0.5)


@action
def docker_exec(params: ExecParams, ctx: ActionContext) -> str:
    """Run a program in a container: an argv list, never a shell string."""
    c = _get(ctx, params.name)
    argv = ["timeout", str(int(params.timeout)), *params.argv]
    result = c.exec_run(argv, user=params.user, demux=False)
    if result.exit_code != 0:
        raise ActionError(f"{params.argv[0]} exited with {result.exit_code}")
    return f"{params.argv[0]} exited 0"


@action
def image_present(params: ImageParams, ctx: ActionContext) -> str:
    """Check that the image is on the engine (never pulls: a pull is the operator's call)."""
    deadline = time.monotonic() + params.timeout
    while True:
        try:
            ctx.docker.images.get(params.image)
            return f"image {params.image} present"
        except NotFound:
            if time.monotonic() >= deadline:
                raise ActionError(f"image {params.image} is not on the engine") from None
        ctx.pause(1.0)


class BrokerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeout: float = Field(30, gt=0, le=300, description="how long the started broker may take to run")


@action
def start_named_broker(params: BrokerParams, ctx: ActionContext) -> str:
    """The broker host hummingbot-api uses (BROKER_HOST, from GET /bot-orchestration/mqtt) does not
    resolve. On a compose network that is a stopped container of that name: start it. Otherwise the
    name names nothing, and starting any container would not help: a person fixes BROKER_HOST."""
    host = _broker_host(ctx)
    if host is None:
        raise NeedsHuman("the broker host hummingbot-api uses does not resolve, and hummingbot-api does not"
                         " say which it is (GET /bot-orchestration/mqtt): check BROKER_HOST in its"
                         " environment")
    try:
        c = ctx.docker.containers.get(host)
    except NotFound:
        raise NeedsHuman(f"BROKER_HOST={host} names nothing: no such host, and no container of that name,"
                         " so no container was started. Set BROKER_HOST in hummingbot-api's environment to"
                         " the broker's name or address (hummingbot-broker in the standard compose file) and"
                         " restart hummingbot-api") from None
    if c.status == "running":
        raise NeedsHuman(f"BROKER_HOST={host} is a running container that hummingbot-api cannot resolve: put"
                         " both on one Docker network (or use the broker's address)")
    c.start()
    wait_container_running(WaitRunningParams(name=host, timeout=params.timeout), ctx)
    return f"started {host}, the stopped container BROKER_HOST names"


def _broker_host(ctx: ActionContext) -> str | None:
    """hummingbot-api's BROKER_HOST, as it reports it; only a plain host name (it goes to Docker)."""
    host = (broker_status(ctx.api) or {}).get("broker_host")
    if isinstance(host, str) and re.fullmatch(CONTAINER_NAME_PATTERN, host):
        return host
    return None
