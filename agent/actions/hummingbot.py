"""Actions through hummingbot-api's own API."""

from __future__ import annotations

import json
import re
import time
from typing import Any, Literal

import httpx
import yaml
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


class HttpParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Literal["GET", "POST", "PUT", "DELETE"] = "GET"
    path: ApiPath
    query: dict[str, str] = Field(default_factory=dict)
    json_body: dict[str, Any] | None = None
    expect: list[int] = Field(default_factory=lambda: [200])


@action
def http_request(params: HttpParams, ctx: ActionContext) -> str:
    """One request to hummingbot-api (its configured base URL only; the path is validated)."""
    resp = ctx.api.request(params.method, params.path, params=params.query or None,
                           json=params.json_body)
    if resp.status_code not in params.expect:
        raise ActionError(f"{params.method} {params.path} answered {resp.status_code}")
    return f"{params.method} {params.path} answered {resp.status_code}"


class CredentialsParams(ProfileParams):
    required: bool = Field(False, description="fail when no keys were placed for this profile")


@action
def provision_credentials(params: CredentialsParams, ctx: ActionContext) -> str:
    """Add the exchange keys the operator placed for this profile (one file per connector,
    `<credentials_dir>/<profile>/<connector>.json` or `.yml`) through add-credential.

    Keys are read here and sent to hummingbot-api only; the result names connectors, never keys.
    """
    folder = ctx.credentials_dir / params.profile if ctx.credentials_dir else None
    files = sorted(p for p in folder.iterdir() if p.suffix in (".json", ".yml", ".yaml")) \
        if folder is not None and folder.is_dir() else []
    if not files:
        if params.required:
            raise ActionError(f"no exchange keys were placed for profile {params.profile}")
        return f"no exchange keys placed for {params.profile}: the bot cannot trade until they are added"
    added = []
    for path in files:
        connector = path.stem
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", connector):
            raise ActionError(f"credentials file {path.name}: not a connector name")
        try:
            text = path.read_text()
            keys = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError):
            # The parser's message would quote the line, keys and all: never pass it on.
            raise ActionError(f"credentials file {path.name}: not readable JSON/YAML") from None
        if not isinstance(keys, dict) or not keys:
            raise ActionError(f"credentials file {path.name}: expected a mapping of key names to values")
        for value in keys.values():
            ctx.redactor.add(str(value))
        resp = ctx.api.request("POST", f"/accounts/add-credential/{params.profile}/{connector}",
                               json={k: str(v) for k, v in keys.items()})
        if resp.status_code != 201:
            raise ActionError(f"add-credential {params.profile}/{connector} answered {resp.status_code}")
        added.append(connector)
    return f"added keys for {params.profile}: {', '.join(added)}"
