"""A recorded deploy exchange as an event for the matcher (kind ``response``)."""

from __future__ import annotations

import json
import re
import time

from agent.events import API, RESPONSE, Event, Origin
from agent.names import CREDENTIAL_ROUTE, DEFAULT_STACK, GATEWAY_ROUTE
from agent.records import Deploy

CONTAINER = "recorder"
STREAM = "http"


CREDENTIAL_PATH = re.compile(r"^/accounts/add-credential/([^/]+)/([^/]+)/?$")


def credential_target(path: str) -> dict[str, str] | None:
    """{account, connector} of a credential upload's path (its body is never kept)."""
    m = CREDENTIAL_PATH.fullmatch(path)
    return {"account": m[1], "connector": m[2]} if m else None


def event_from_deploy(d: Deploy, stack: str = DEFAULT_STACK) -> Event:
    """Position is the record id, so `first_line` tells which exchange it was. For a credential
    upload, `request` is what its path says (account, connector): the body held the keys."""
    if d.route == GATEWAY_ROUTE:  # hummingbot-api's answer on a gateway route: its path is all
        body, summary = {"path": d.path}, f"{d.path} -> {d.status}: {d.message}"
    else:
        body = (credential_target(d.path) or {}) if d.route == CREDENTIAL_ROUTE else (d.body() or {})
        summary = f"POST {d.path} -> {d.status}: {d.message}"
    return Event(CONTAINER, STREAM, RESPONSE, [summary], d.id, d.id, int(d.at * 1e9),
                 data={"route": d.route, "status": d.status, "message": d.message, "request": body,
                       "deploy_id": d.id},
                 origin=None if stack == DEFAULT_STACK else Origin(CONTAINER, STREAM, API, stack))


def event_from_exchange(route: str, status: int, request: dict, message: str, n: int = 1) -> Event:
    """The same, from a description (golden samples, tests)."""
    if route == GATEWAY_ROUTE:
        d = Deploy(n, time.time(), route, request.get("path", "/gateway/connectors"), "", status, "", True,
                   message, None, None)
        return event_from_deploy(d)
    if route == CREDENTIAL_ROUTE:
        path = f"/accounts/add-credential/{request.get('account', '')}/{request.get('connector', '')}"
        d = Deploy(n, time.time(), route, path, "", status, "", True, message, None, None)
        return event_from_deploy(d)
    d = Deploy(n, time.time(), route, f"/bot-orchestration/{route}", json.dumps(request), status, "", True,
               message, request.get("credentials_profile"), request.get("instance_name"))
    return event_from_deploy(d)

