"""Re-send the failed deploy, once the fix is verified, exactly as it was sent.

`retry_deploy` is an action like the others, with one difference: its parameters are
the failed request itself, which only the evidence gives (the recorder's record, a
logged body, the bots folder, or the operator's --body), never the rule. A rule lists
it bare, last (it runs after the verify steps), or says `retry_deploy: true`.

Every field of a body is checked before it is sent (`check_body`): hb-medic sends it
with its own login and hummingbot-api runs it with the Docker socket.

Before sending: is it already done? A client that retried by itself must not
get a second bot, so any bot of the same base name deployed since the failure
(hummingbot-api's bot status, or a container of that name created since) means
done. Sending retries connection errors and 5xx with exponential backoff and
jitter; success means `success: true` and the bot alive (agent.actions.alive: still
running after the settle time, no failure of its own, heard by hummingbot-api).
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from agent.actions.alive import bot_lives
from agent.actions.base import ActionContext, ActionError, NeedsHuman
from agent.actions.registry import action
from agent.match import captures as capture_check
from agent.match.deploy import DEPLOY_NAME, FIELDS
from agent.match.model import Capture
from agent.names import CONTAINER_NAME_PATTERN, STAMP, base_name

CONTAINER_NAME = re.compile(CONTAINER_NAME_PATTERN)
ROUTES = {"deploy-v2-script": "/bot-orchestration/deploy-v2-script",
          "deploy-v2-controllers": "/bot-orchestration/deploy-v2-controllers"}
SEND_TRIES = 3  # connection errors and 5xx answers are tried again, with backoff
DEFAULT_IMAGE = "hummingbot/hummingbot:latest"  # what hummingbot-api deploys when no image is given
FILE_NAME = Capture(type="file", max_length=128)


class DeployParams(BaseModel):
    """The failed request, exactly as it was sent, and when it failed (a bot of that name
    deployed since then means done). Filled from the evidence, never written in a rule."""

    model_config = ConfigDict(extra="forbid")
    from_evidence: ClassVar[bool] = True

    route: str  # deploy-v2-script or deploy-v2-controllers, checked with the body (check_body)
    body: dict[str, Any]
    raw: str  # the bytes sent, as they were sent
    since: float  # wall clock


def image_allowed(image: str, allowed: tuple[str, ...] = ()) -> bool:
    """The default image, or one on MEDIC_ALLOWED_IMAGES: an exact reference, or `repo:*` for
    any tag of that repository."""
    if image == DEFAULT_IMAGE or image in allowed:
        return True
    repo, sep, _tag = image.rpartition(":")
    return bool(sep) and "/" not in _tag and f"{repo}:*" in allowed


def check_body(route: str, body: object, allowed_images: tuple[str, ...] = ()) -> str | None:
    """None when the body is a deploy request hb-medic may re-send, else why not.

    hb-medic sends it with its own login and hummingbot-api runs it with the Docker socket,
    the profile's keys and CONFIG_PASSWORD: every field is checked, not only the names."""
    if route not in FIELDS:
        return f"unknown deploy route {route!r}"
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    unknown = set(body) - FIELDS[route]
    if unknown:
        return f"unknown fields for {route}: {', '.join(sorted(unknown))}"
    for name in ("instance_name", "credentials_profile"):
        value = body.get(name)
        if not isinstance(value, str) or not DEPLOY_NAME.fullmatch(value):
            return f"{name} must be letters, digits, _ or - (got {capture_check.shown(str(value))})"
    image = body.get("image")
    if image is not None and (not isinstance(image, str) or not image_allowed(image, allowed_images)):
        return (f"image {capture_check.shown(str(image))} is neither {DEFAULT_IMAGE} nor on"
                " MEDIC_ALLOWED_IMAGES (add it there to let hb-medic re-send deploys of it)")
    files = [("script", body.get("script")), ("script_config", body.get("script_config"))]
    if route == "deploy-v2-controllers":
        controllers = body.get("controllers_config")
        if not isinstance(controllers, list):
            return "controllers_config must be a list"
        files += [("controllers_config", c) for c in controllers]
    for name, value in files:
        if value is None and name != "controllers_config":
            continue
        reason = "is not text" if not isinstance(value, str) else capture_check.check(FILE_NAME, value)
        if reason:
            return f"{name} must be a plain file name: {capture_check.shown(str(value))} {reason}"
    if not isinstance(body.get("headless", False), bool):
        return "headless must be true or false"
    for name in ("max_global_drawdown_quote", "max_controller_drawdown_quote"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"{name} must be a number"
    return None


def _deployed_since(name: str, base: str, since: float) -> bool:
    if name == base:
        return True
    m = STAMP.fullmatch(name)
    if not m or m["base"] != base:
        return False
    return datetime.strptime(m["ts"], "%Y%m%d-%H%M%S").timestamp() >= since - 2


def already_deployed(ctx: ActionContext, base: str, since: float) -> str | None:
    """The name of a running bot of that base name deployed since `since`, if any (a dead one,
    such as a redeployed bot that died again, does not count)."""
    try:
        resp = ctx.api.request("GET", "/bot-orchestration/status")
        if resp.status_code == 200:
            for name in (resp.json().get("data") or {}):
                if _deployed_since(name, base, since):
                    return name
    except (httpx.HTTPError, ValueError, AttributeError):
        pass
    # One listing of the running ones (inspecting each would race with containers going away).
    for c in ctx.docker.api.containers(filters={"name": base}):
        name = (c.get("Names") or ["/"])[0].lstrip("/")
        at = float(c.get("Created") or 0)
        if (name == base or _deployed_since(name, base, since)) and at >= since - 2:
            return name
    return None


class _ServerError(Exception):
    """A 5xx answer: worth another try, like a connection error."""


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError | _ServerError)


@action
def retry_deploy(params: DeployParams, ctx: ActionContext) -> str:
    """Send it; return what happened, or raise ActionError."""
    route, raw_body, body, since, attempts = params.route, params.raw, params.body, params.since, SEND_TRIES
    problem = check_body(route, body, ctx.allowed_images)
    if problem:
        raise ActionError(f"will not re-send this deploy: {problem}")
    base = base_name(body["instance_name"])
    began = time.time()  # this attempt's own verdict rests only on what the bot writes from now on
    done = already_deployed(ctx, base, since)
    if done:
        return f"already deployed as {done} (not sent again); " + bot_lives(ctx, done, since=began)
    sent = time.time()

    def send() -> httpx.Response:
        resp = ctx.api.request("POST", ROUTES[route], content=raw_body.encode(),
                               headers={"content-type": "application/json"})
        if resp.status_code >= 500:
            raise _ServerError(f"{resp.status_code}: {resp.text[:300]}")
        return resp

    try:
        resp = Retrying(retry=retry_if_exception(_transient), stop=stop_after_attempt(attempts),
                        wait=wait_exponential_jitter(multiplier=0.5, max=10, jitter=0.5),
                        sleep=ctx.pause, reraise=False)(send)  # a stop ends the backoff (Stopped)
    except RetryError as exc:
        last = exc.last_attempt.exception()
        # chained: an unreachable hummingbot-api makes the incident wait instead of failing it
        raise ActionError(f"deploy retry failed after {attempts} tries: {last}") from last
    try:
        data = resp.json()
    except ValueError:
        data = {}
    if resp.status_code != 200 or not isinstance(data, dict) or data.get("success") is not True:
        message = data.get("message") or data.get("detail") if isinstance(data, dict) else None
        if isinstance(message, str) and "Conflict" in message and "already in use" in message:
            raise NeedsHuman(f"a container named {body['instance_name']} already exists (the bot that died:"
                             " this hummingbot-api does not add a time to instance names), and hb-medic"
                             f" never removes containers: remove it (docker rm {body['instance_name']}) and"
                             " deploy the bot again")
        raise ActionError(f"deploy retry answered {resp.status_code}: {message or resp.text[:300]}")
    name = data.get("unique_instance_name") or body["instance_name"]
    if not isinstance(name, str) or not CONTAINER_NAME.fullmatch(name):
        raise ActionError(f"deploy answered success with an unusable instance name {str(name)[:80]!r}")
    return f"deployed {name}; " + bot_lives(ctx, name, since=sent)
