"""The Hummingbot Gateway, through hummingbot-api: recreate it so hummingbot-api makes the shared
certificate set it lacks.

hummingbot-api's `POST /gateway/restart` with a configuration removes its `gateway` container and starts
it anew, making bots/gateway-files/certs with CONFIG_PASSWORD first when the set is missing (the real
program's services/gateway_service.py). It replaces the container hummingbot-api manages, whatever
crashed: so the action acts only when the crashing container is that one, and tells a person otherwise.
"""

from __future__ import annotations

import time

import httpx
from docker.errors import DockerException, NotFound
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.actions.base import ActionContext, ActionError, NeedsHuman
from agent.actions.registry import action
from agent.actions.types import ContainerName, ImageRef


class GatewayParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    container: ContainerName = Field(description="the gateway container that fails (the incident's)")
    port: int = Field(15888, ge=1, le=65535)
    settle: float = Field(10, gt=0, le=300, description="how long the new gateway must run without a restart")
    timeout: float = Field(90, gt=0, le=600)


class _Image(BaseModel):
    image: ImageRef


@action
def recreate_gateway(params: GatewayParams, ctx: ActionContext) -> str:
    """POST /gateway/restart with the image hummingbot-api runs, when the failing container is the
    gateway hummingbot-api manages; verified by the new container running `settle` seconds with no
    restart."""
    status = _json(ctx.api.request("GET", "/gateway/status"), "GET /gateway/status")
    try:
        failing = ctx.docker.api.inspect_container(params.container)["Id"]
    except NotFound:
        raise ActionError(f"container {params.container} is gone") from None
    if status.get("container_id") != failing:
        raise NeedsHuman(
            f"{params.container} is not the gateway hummingbot-api manages (GET /gateway/status names"
            f" {'no container' if not status.get('container_id') else 'another one'}): recreating through"
            " hummingbot-api would start a second gateway beside it. Copy bots/gateway-files/certs into its"
            " certs folder (or let hummingbot-api run the gateway: POST /gateway/start)")
    try:
        image = _Image(image=status.get("image") or "").image
    except ValidationError:
        raise ActionError("GET /gateway/status names no image hb-medic can send back") from None
    resp = ctx.api.request("POST", "/gateway/restart", json={"image": image, "port": params.port},
                           timeout=params.timeout)
    answer = _json(resp, "POST /gateway/restart")
    new = answer.get("container_id")
    if not answer.get("success") or not isinstance(new, str) or new == failing:
        raise ActionError("POST /gateway/restart did not start a new gateway:"
                          f" {str(answer.get('message'))[:200]}")
    return _settled(ctx, new, params)


def _settled(ctx: ActionContext, container_id: str, params: GatewayParams) -> str:
    deadline = time.monotonic() + params.timeout
    running_since = None
    while time.monotonic() < deadline:
        try:
            info = ctx.docker.api.inspect_container(container_id)
        except DockerException as exc:
            raise ActionError(f"the new gateway is gone: {type(exc).__name__}") from None
        state = info.get("State") or {}
        if info.get("RestartCount", 0) > 0 or (state.get("Status") == "exited"):
            raise ActionError(f"the new gateway exited (code {state.get('ExitCode')}): it cannot start"
                              " with hummingbot-api's certificates either")
        if state.get("Running"):
            running_since = running_since or time.monotonic()
            if time.monotonic() - running_since >= params.settle:
                return (f"hummingbot-api recreated the gateway ({info.get('Name', '').lstrip('/')}), running"
                        f" {params.settle:.0f} s without a restart")
        ctx.pause(0.5)
    raise ActionError(f"the new gateway did not run {params.settle:.0f} s within {params.timeout:.0f} s")


def _json(resp: httpx.Response, what: str) -> dict:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if resp.status_code != 200 or not isinstance(body, dict):
        raise ActionError(f"{what} answered {resp.status_code}")
    return body
