"""Actions through hummingbot-api's own API."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field

from agent.actions.base import ActionContext, ActionError, NeedsHuman
from agent.actions.keyfiles import placed_keys as placed_key_files
from agent.actions.keyfiles import read_key_file
from agent.actions.registry import action
from agent.actions.types import ApiPath, ConnectorName, ProfileName

VERIFICATION_MAX = 64 * 1024  # a .password_verification is about 1 KiB
DAMAGED = "is damaged (not the key file hummingbot-api writes)"

class ProfileParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    profile: ProfileName


class AccountParams(ProfileParams):
    password_verification: bool = Field(
        False, description="also rebuild a profile whose .password_verification is missing or damaged (a"
                           " bot said so; checked on disk when the bots folder is mounted)")


class WaitHttpParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: ApiPath = "/"
    timeout: float = Field(60, gt=0, le=600)
    status: int = Field(200, ge=100, le=599)


def placed_keys(ctx: ActionContext, profile: str) -> dict[str, Path]:
    """Connector -> key file the operator placed for this profile (MEDIC_CREDENTIALS_DIR)."""
    return placed_key_files(ctx.credentials_dir, profile)


@action
def ensure_account(params: AccountParams, ctx: ActionContext) -> str:
    """Make the credentials profile exist, through add-account (never by copying files).

    A half-made profile (listed, but with no connectors folder) is deleted and
    added again. With `password_verification`, so is a profile whose
    .password_verification is missing, unless that would drop exchange keys the
    operator did not place for hb-medic to add back. Verified by listing it afterwards.
    """
    name = params.profile
    accounts = ctx.api.accounts()
    if name in accounts:
        connectors = ctx.api.account_credentials(name)
        if connectors is not None and not (params.password_verification and _no_verification(ctx, name)):
            return f"profile {name} already complete"
        if connectors:
            lost = sorted(set(connectors) - set(placed_keys(ctx, name)))
            if lost:
                raise NeedsHuman(
                    f"profile {name} has no usable .password_verification but holds keys for"
                    f" {', '.join(lost)}:"
                    " rebuilding it (delete-account, add-account) would drop them. Copy"
                    f" bots/credentials/master_account/.password_verification into bots/credentials/{name}/,"
                    f" or place the keys in MEDIC_CREDENTIALS_DIR/{name}/<connector>.json so hb-medic can"
                    " add them back, and deploy the bot again")
        resp = ctx.api.delete_account(name)
        if resp.status_code != 200:
            raise ActionError(f"delete-account {name} answered {resp.status_code}")
        done = (f"repaired half-made profile {name}" if connectors is None
                else f"rebuilt profile {name}, which had no usable .password_verification")
    else:
        done = f"added profile {name}"
    resp = ctx.api.add_account(name)
    if resp.status_code != 201:
        raise ActionError(f"add-account {name} answered {resp.status_code}: {resp.text[:200]}")
    if name not in ctx.api.accounts() or ctx.api.account_credentials(name) is None:
        raise ActionError(f"profile {name} still missing or incomplete after add-account")
    if params.password_verification and ctx.bots_dir is not None and _no_verification(ctx, name):
        raise ActionError(f"profile {name} still has no .password_verification after add-account"
                          " (is bots/credentials/master_account complete?)")
    return done


def _no_verification(ctx: ActionContext, profile: str) -> bool:
    """The profile has no usable .password_verification (missing, or not the hex-encoded key
    file add-account writes): seen on disk when the bots folder is mounted, otherwise taken
    from the bot that said so."""
    if ctx.bots_dir is None:
        return True
    return verification_problem(ctx.bots_dir / "credentials" / profile / ".password_verification") is not None


def verification_problem(path: Path) -> str | None:
    """What is wrong with a .password_verification, in the words of rule bot-password-file-missing
    (its `problem`), or None when it is the hex-encoded key file add-account writes."""
    try:
        if not path.is_file():
            return "does not exist"
        if path.stat().st_size > VERIFICATION_MAX:
            return DAMAGED
        keyfile = json.loads(bytes.fromhex(path.read_text(encoding="ascii").strip()).decode())
    except (OSError, ValueError):  # not hex, not text, not JSON
        return DAMAGED
    return None if isinstance(keyfile, dict) and "crypto" in keyfile else DAMAGED


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
        ctx.pause(0.5)
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
    connector: ConnectorName | None = Field(
        None, description="only this connector's keys, which must have been placed (else a person is"
                          " told the exact add-credential call)")


@action
def provision_credentials(params: CredentialsParams, ctx: ActionContext) -> str:
    """Add the exchange keys the operator placed for this profile (one file per connector,
    `<credentials_dir>/<profile>/<connector>.json` or `.yml`) through add-credential.

    Keys are read here and sent to hummingbot-api only; the result names connectors, never keys.
    """
    placed = placed_keys(ctx, params.profile)
    if params.connector is not None:
        if params.connector not in placed:
            raise NeedsHuman(
                f"no keys were placed for {params.connector} of profile {params.profile}: add them with"
                f" POST /accounts/add-credential/{params.profile}/{params.connector} and a JSON object of"
                f" {_key_fields(ctx, params.connector)} (or place them in MEDIC_CREDENTIALS_DIR/"
                f"{params.profile}/{params.connector}.json for hb-medic), then deploy the bot again")
        placed = {params.connector: placed[params.connector]}
    files = list(placed.values())
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
            text = read_key_file(path)
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
            _refused_upload(ctx, resp, params.profile, connector)
        added.append(connector)
    return f"added keys for {params.profile}: {', '.join(added)}"


def _refused_upload(ctx: ActionContext, resp: httpx.Response, profile: str, connector: str) -> None:
    """An add-credential that did not take the keys. A 4xx with a reason is hummingbot-api's
    verdict on these keys (it checks them against the exchange): sending them again cannot
    change it, so a person is told the reason at once; a 5xx may pass."""
    try:
        detail = resp.json().get("detail") if resp.status_code < 500 else None
    except (ValueError, AttributeError):
        detail = None
    where = f"add-credential {profile}/{connector} answered {resp.status_code}"
    if not isinstance(detail, str) or not detail.strip():
        raise ActionError(where)
    reason = ctx.redactor.text(detail.strip())[:300]
    if "Cannot connect to host" in reason:
        raise NeedsHuman(f"{where}: {reason}. hummingbot-api checks keys by calling the exchange, and this"
                         " host cannot reach it; sending them again cannot help until it can. Once the"
                         f" exchange is reachable, add the keys (POST /accounts/add-credential/{profile}/"
                         f"{connector}) and deploy the bot again")
    raise NeedsHuman(f"{where}: {reason}. hummingbot-api refused these keys, and sending them again cannot"
                     f" change that: correct {connector}'s keys (MEDIC_CREDENTIALS_DIR/{profile}/"
                     f"{connector}.json), then deploy the bot again")


def _key_fields(ctx: ActionContext, connector: str) -> str:
    """The fields add-credential wants for this connector (names only: values are secrets)."""
    try:
        resp = ctx.api.request("GET", f"/connectors/{connector}/config-map")
        fields = [k for k in resp.json() if isinstance(k, str) and re.fullmatch(r"\w{1,64}", k)] \
            if resp.status_code == 200 and isinstance(resp.json(), dict) else []
    except (httpx.HTTPError, ValueError):
        fields = []
    if not fields:
        return "the connector's key fields (GET /connectors/<connector>/config-map)"
    return ", ".join(fields)


class FieldsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connector: ConnectorName
    field: ConnectorName = Field(description="the field name the refused upload used")


@action
def connector_fields(params: FieldsParams, ctx: ActionContext) -> str:
    """Keys were sent under names the connector does not have: say which names it expects (from
    GET /connectors/<connector>/config-map). Only the person who has the keys can send them again,
    so this always ends with what to do."""
    fields = _key_fields(ctx, params.connector)
    raise NeedsHuman(f"{params.connector} has no field {params.field}. It expects {fields}. Send the keys"
                     f" again as a JSON object of exactly these fields (POST /accounts/add-credential/"
                     f"<account>/{params.connector})")
