"""Checks on the bots hummingbot-api deployed, from what the agent sees of them."""

from __future__ import annotations

import time

from docker.errors import NotFound
from pydantic import BaseModel, ConfigDict, Field

from agent.actions import action
from agent.actions.base import ActionContext, ActionError
from agent.actions.types import ContainerName


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
        time.sleep(0.5)
