"""Checks on the bots hummingbot-api deployed, from what the agent sees of them."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time

import yaml
from docker.errors import NotFound
from pydantic import BaseModel, ConfigDict, Field

from agent.actions.base import ActionContext, ActionError, NeedsHuman
from agent.actions.registry import action
from agent.actions.types import ContainerName
from agent.hummingbot_api import broker_status

HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")
CONF_MAX = 64 * 1024  # a bot's conf_client.yml is a few KiB


class QuietParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: ContainerName
    rule: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$", description="the rule that must stay silent")
    seconds: float = Field(15, gt=0, le=600)


@action
def bot_quiet(params: QuietParams, ctx: ActionContext) -> str:
    """The bot keeps running and the rule matches nothing of it for `seconds` (a fix of its
    surroundings, such as the broker, worked for the bot itself)."""
    if ctx.watch is None:
        raise ActionError("bot_quiet needs the running agent's view of its bots")
    since = time.time()
    deadline = time.monotonic() + params.seconds
    while True:
        try:
            running = ctx.docker.containers.get(params.name).status == "running"
        except NotFound:
            raise ActionError(f"{params.name} no longer exists") from None
        if not running:
            raise ActionError(f"{params.name} is no longer running")
        seen = ctx.watch.matches_since(params.name, since, params.rule)
        if seen:
            raise ActionError(f"{params.name} still: {seen[-1]}")
        if time.monotonic() >= deadline:
            return f"{params.name}: no {params.rule} for {params.seconds:.0f} s"
        ctx.pause(0.5)


class BrokerDownParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: ContainerName = Field(description="the bot that cannot reach the broker")


@action
def broker_down(params: BrokerDownParams, ctx: ActionContext) -> str:
    """Go on (to start the broker) only when hummingbot-api cannot reach its broker either.

    A bot reads its broker's address from its own conf_client.yml; hummingbot-api from its
    environment. When hummingbot-api is connected, the broker runs, and starting it cannot
    help the bot: its own mqtt settings are the reason, and a person is told them at once."""
    data = broker_status(ctx.api)
    if data is None or data.get("mqtt_connected") is not True:
        return "hummingbot-api is not connected to its broker either: the broker is down"
    api_side = _address(data.get("broker_host"), data.get("broker_port"))
    bot_side = _bot_broker(ctx, params.name)
    raise NeedsHuman(
        f"the broker runs (hummingbot-api is connected to it{' at ' + api_side if api_side else ''}), yet"
        f" {params.name} cannot reach it{': its conf_client.yml says ' + bot_side if bot_side else ''}."
        " Starting the broker cannot help: set mqtt_bridge.mqtt_host and mqtt_port in the bot's"
        " credentials profile (conf_client.yml) to the broker's address, then deploy the bot again")


def _address(host: object, port: object) -> str:
    """host:port when both are plain values (they go into a message)."""
    if isinstance(host, str) and HOST.fullmatch(host) and isinstance(port, int) and 0 < port < 65536:
        return f"{host}:{port}"
    return ""


def _bot_broker(ctx: ActionContext, name: str) -> str:
    """mqtt_host:mqtt_port from the bot's conf/conf_client.yml, when the bots folder is mounted.
    The file is the bot's own: a link or anything but a small regular file is not read."""
    if ctx.bots_dir is None:
        return ""
    path = ctx.bots_dir / "instances" / name / "conf" / "conf_client.yml"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > CONF_MAX:
            return ""
        raw = os.read(fd, CONF_MAX)
    except OSError:
        return ""
    finally:
        os.close(fd)
    doc = None
    with contextlib.suppress(yaml.YAMLError, ValueError):
        doc = yaml.safe_load(raw.decode("utf-8", "replace"))
    bridge = doc.get("mqtt_bridge") if isinstance(doc, dict) else None
    if not isinstance(bridge, dict):
        return ""
    return _address(bridge.get("mqtt_host"), bridge.get("mqtt_port"))
