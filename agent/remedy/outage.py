"""Is a failure an outage? hummingbot-api or the Docker engine not answering is not a failed
fix: the incident waits for it (its attempts are not used up) and goes on when it is back."""

from __future__ import annotations

import httpx
import requests
from docker.errors import DockerException

from agent import sshengine
from agent.actions.base import ActionContext

API, ENGINE = "hummingbot-api", "the Docker engine"


def outage_of(exc: BaseException) -> str | None:
    """What did not answer, when that is why `exc` happened (its causes included)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, httpx.TransportError):
            return API
        if isinstance(cur, requests.exceptions.ConnectionError):
            return ENGINE
        if isinstance(cur, DockerException) and "Connection" in str(cur):
            return ENGINE  # docker-py wraps "connection refused" / "no such file" of the socket
        if isinstance(cur, sshengine.errors()):
            return ENGINE  # an ssh:// engine's host that does not let the agent in (yet)
        cur = cur.__cause__ or cur.__context__
    return None


def reachable(ctx: ActionContext, what: str) -> bool:
    """One cheap look: any HTTP answer from hummingbot-api (even 401), or the engine's ping."""
    try:
        if what == API:
            ctx.api.request("GET", "/")
        else:
            ctx.docker.ping()
    except (httpx.HTTPError, requests.exceptions.RequestException, DockerException, OSError,
            *sshengine.errors()):
        return False
    return True
