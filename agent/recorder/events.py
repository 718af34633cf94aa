"""A recorded deploy exchange as an event for the matcher (kind ``response``)."""

from __future__ import annotations

import json
import re
import time

from agent.events import API, RESPONSE, Event, Origin
from agent.names import CREDENTIAL_ROUTE, DEFAULT_STACK, GATEWAY_ROUTE, ROUTE_MISSING
from agent.recorder.routes import known
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
    said = f"POST {d.path}"
    if d.route == GATEWAY_ROUTE:  # hummingbot-api's answer on a gateway route: its path is all
        body, said = {"path": d.path}, d.path
    elif d.route == CREDENTIAL_ROUTE:
        body = credential_target(d.path) or {}
    elif d.route == ROUTE_MISSING:
        body = missing_target(d)
        said = f"{body['method']} {body['template']}" if body else "(not a route of the table)"
    else:
        body = d.body() or {}
    summary = f"{said} -> {d.status}: {d.message}"
    return Event(CONTAINER, STREAM, RESPONSE, [summary], d.id, d.id, int(d.at * 1e9),
                 data={"route": d.route, "status": d.status, "message": d.message, "request": body,
                       "deploy_id": d.id},
                 origin=None if stack == DEFAULT_STACK else Origin(CONTAINER, STREAM, API, stack))


def missing_target(d: Deploy) -> dict[str, str]:
    """{method, template, generations} of a 404 on another generation's route, as the table has
    them (a record that does not name a route of the table says nothing)."""
    stored = d.body() or {}
    found = known(str(stored.get("method")), str(stored.get("template")))
    if found is None or d.path != found.template:
        return {}
    return {"method": found.method, "template": found.template, "generations": " ".join(found.generations)}


def event_from_exchange(route: str, status: int, request: dict, message: str, n: int = 1) -> Event:
    """The same, from a description (golden samples, tests)."""
    if route == GATEWAY_ROUTE:
        d = Deploy(n, time.time(), route, request.get("path", "/gateway/connectors"), "", status, "", True,
                   message, None, None)
        return event_from_deploy(d)
    if route == ROUTE_MISSING:
        d = Deploy(n, time.time(), route, str(request.get("template", "")), json.dumps(request), status, "",
                   True, message, None, None)
        return event_from_deploy(d)
    if route == CREDENTIAL_ROUTE:
        path = f"/accounts/add-credential/{request.get('account', '')}/{request.get('connector', '')}"
        d = Deploy(n, time.time(), route, path, "", status, "", True, message, None, None)
        return event_from_deploy(d)
    d = Deploy(n, time.time(), route, f"/bot-orchestration/{route}", json.dumps(request), status, "", True,
               message, request.get("credentials_profile"), request.get("instance_name"))
    return event_from_deploy(d)

