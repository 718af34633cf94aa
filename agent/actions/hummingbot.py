"""Actions through hummingbot-api's own API."""

from __future__ import annotations

import time

import httpx
from pydantic import BaseModel, ConfigDict, Field

from agent.actions import action
from agent.actions.base import ActionContext, ActionError
from agent.actions.types import ApiPath, ProfileName


class ProfileParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    profile: ProfileName


class WaitHttpParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: ApiPath = "/"
    timeout: float = Field(60, gt=0, le=600)
    status: int = Field(200, ge=100, le=599)


@action
def ensure_account(params: ProfileParams, ctx: ActionContext) -> str:
    """Make the credentials profile exist, through add-account (never by copying files).

    A half-made profile (listed, but with no connectors folder) is deleted and
    added again. Verified by listing it afterwards.
    """
    name = params.profile
    if name == "master_account":
        raise ActionError("refusing to touch master_account")
    accounts = ctx.api.accounts()
    if name in accounts:
        if ctx.api.account_credentials(name) is not None:
            return f"profile {name} already complete"
        resp = ctx.api.delete_account(name)
        if resp.status_code != 200:
            raise ActionError(f"delete-account {name} answered {resp.status_code}")
        done = f"repaired half-made profile {name}"
    else:
        done = f"added profile {name}"
    resp = ctx.api.add_account(name)
    if resp.status_code != 201:
        raise ActionError(f"add-account {name} answered {resp.status_code}: {resp.text[:200]}")
    if name not in ctx.api.accounts() or ctx.api.account_credentials(name) is None:
        raise ActionError(f"profile {name} still missing or incomplete after add-account")
    return done


@action
def wait_http(params: WaitHttpParams, ctx: ActionContext) -> str:
    """GET a path on hummingbot-api until it answers the expected status."""
    deadline = time.monotonic() + params.timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            resp = ctx.api.request("GET", params.path)
            if resp.status_code == params.status:
                return f"GET {params.path} answered {resp.status_code}"
            last = f"status {resp.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.5)
    raise ActionError(f"GET {params.path}: {last} after {params.timeout:.0f} s")
