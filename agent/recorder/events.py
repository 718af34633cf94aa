"""A recorded deploy exchange as an event for the matcher (kind ``response``)."""

from __future__ import annotations

import json
import time

from agent.events import API, RESPONSE, Event, Origin
from agent.names import DEFAULT_STACK
from agent.store import Deploy

CONTAINER = "recorder"
STREAM = "http"


def event_from_deploy(d: Deploy, stack: str = DEFAULT_STACK) -> Event:
    """Position is the record id, so `first_line` tells which exchange it was."""
    body = d.body() or {}
    summary = f"POST {d.path} -> {d.status}: {d.message}"
    return Event(CONTAINER, STREAM, RESPONSE, [summary], d.id, d.id, int(d.at * 1e9),
                 data={"route": d.route, "status": d.status, "message": d.message, "request": body,
                       "deploy_id": d.id},
                 origin=None if stack == DEFAULT_STACK else Origin(CONTAINER, STREAM, API, stack))


def event_from_exchange(route: str, status: int, request: dict, message: str, n: int = 1) -> Event:
    """The same, from a description (golden samples, tests)."""
    d = Deploy(n, time.time(), route, f"/bot-orchestration/{route}", json.dumps(request), status, "", True,
               message, request.get("credentials_profile"), request.get("instance_name"))
    return event_from_deploy(d)

