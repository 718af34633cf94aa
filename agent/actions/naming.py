"""What to call a deploy's refused name instead (rule invalid-deploy-name).

hummingbot-api (current generation) refuses with 422 an instance name, profile or config file
name that is not letters, digits, _ and -. The machine-safe fix is a name it takes: proposed,
never sent, since which name a bot trades under is its owner's choice. The refused value comes
from a log line, so it is hostile text: it is never repeated in the advice, only the name made
from it, which holds nothing but those safe characters, from the value with its secrets masked.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.actions.base import ActionContext
from agent.actions.registry import action
from agent.names import PROFILE_PATTERN

UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
PROFILE = re.compile(PROFILE_PATTERN)
MAX_NAME = 64
MAX_LISTED = 10  # profiles named in the advice, at most


class NameParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    field: Literal["instance_name", "credentials_profile", "script_config", "controllers_config"]
    value: str = Field(max_length=200, description="the refused value, as hummingbot-api quoted it")


def safe_name(value: str) -> str:
    """The refused name with each run of other characters made one `_` (a config's `.yml` left
    out), trimmed; `bot` when nothing is left."""
    base = value[:-4] if value.endswith(".yml") else value
    made = UNSAFE.sub("_", base).strip("_")[:MAX_NAME].strip("_")
    return made or "bot"


def _profiles(ctx: ActionContext) -> list[str] | None:
    """The credentials profiles in the bots folder, when it is mounted (names a profile may have)."""
    folder = ctx.bots_dir / "credentials" if ctx.bots_dir is not None else None
    if folder is None or not folder.is_dir():
        return None
    return sorted(p.name for p in folder.iterdir()
                  if p.is_dir() and not p.is_symlink() and PROFILE.fullmatch(p.name))


@action(tells=True)
def suggest_name(params: NameParams, ctx: ActionContext) -> str:
    """The one change that makes hummingbot-api take the deploy: the name to send instead. Made
    from the value as masked (a secret a client pasted into a name stays out: once its `=` is an
    `_`, no mask would find it any more)."""
    safe = safe_name(ctx.redactor.text(params.value))
    if params.field == "instance_name":
        return (f"deploy again with instance_name {safe} (the same name with only letters, digits, _ and"
                " -), everything else unchanged")
    if params.field == "credentials_profile":
        profiles = _profiles(ctx)
        if profiles is None:
            return ("deploy again with the name of an existing credentials profile (GET /accounts/ lists"
                    " them); a profile's name is only letters, digits, _ and -")
        listed = ", ".join(profiles[:MAX_LISTED]) + (" ..." if len(profiles) > MAX_LISTED else "")
        if safe in profiles:
            return f"deploy again with credentials_profile {safe} (it exists)"
        return f"deploy again with one of the existing credentials profiles: {listed or '(none yet)'}"
    where = "bots/conf/scripts" if params.field == "script_config" else "bots/conf/controllers"
    return (f"save that config under the name {safe}.yml (in {where}, or through hummingbot-api's config"
            f" routes), then deploy again with {params.field} {safe}")
