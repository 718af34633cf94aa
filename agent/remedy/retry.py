"""Re-send the failed deploy, once the fix is verified, exactly as it was sent.

Before sending: is it already done? A client that retried by itself must not
get a second bot, so any bot of the same base name deployed since the failure
(hummingbot-api's bot status, or a container of that name created since) means
done. Sending retries connection errors and 5xx with exponential backoff and
jitter; success means `success: true` and the bot alive (agent.remedy.alive: still
running after the settle time, no failure of its own, heard by hummingbot-api).
"""

from __future__ import annotations

import re
import time
from datetime import datetime

import httpx
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from agent.actions.base import ActionContext, ActionError, NeedsHuman
from agent.names import CONTAINER_NAME_PATTERN, STAMP, base_name
from agent.remedy.alive import bot_lives
from agent.remedy.intent import check_body

CONTAINER_NAME = re.compile(CONTAINER_NAME_PATTERN)
ROUTES = {"deploy-v2-script": "/bot-orchestration/deploy-v2-script",
          "deploy-v2-controllers": "/bot-orchestration/deploy-v2-controllers"}


def _deployed_since(name: str, base: str, since: float) -> bool:
    if name == base:
        return True
    m = STAMP.match(name)
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


def retry_deploy(ctx: ActionContext, route: str, raw_body: str, body: dict, *, since: float,
                 attempts: int = 3) -> str:
    """Send it; return what happened, or raise ActionError."""
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
                        reraise=False)(send)
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
    if not isinstance(name, str) or not CONTAINER_NAME.match(name):
        raise ActionError(f"deploy answered success with an unusable instance name {str(name)[:80]!r}")
    return f"deployed {name}; " + bot_lives(ctx, name, since=sent)
