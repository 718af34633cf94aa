"""Actions on sibling containers through the Docker API (never a shell)."""

from __future__ import annotations

import time

from docker.errors import NotFound
from pydantic import BaseModel, ConfigDict, Field

from agent.actions import action
from agent.actions.base import ActionContext, ActionError
from agent.actions.types import ContainerName, ImageRef


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
        time.sleep(0.5)


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
        time.sleep(1.0)
