"""What a container's environment says that its logs never will.

hummingbot-api started with an empty CONFIG_PASSWORD prints nothing about it: the first sign is a
deploy answered `{"success": false, "message": "Password not provided..."}`. The follower reads
the environment from the engine whenever it meets a new container of hummingbot-api (the first
attach, a re-created container) and tells what is wrong as one line on the `engine` channel,
which only the agent writes: no log line, whatever it says, can pose as one. Values are never
carried, only whether they are empty.
"""

from __future__ import annotations

import calendar
import time

from agent.events import API, LINE, Event, Origin

ENGINE = "engine"
EMPTY_CONFIG_PASSWORD = ("CONFIG_PASSWORD is empty in the container's environment: every deploy will"
                         " answer \"Password not provided\"")


def environment_events(info: dict, container: str, role: str, stack: str) -> list[Event]:
    """Events for what `docker inspect` of hummingbot-api shows wrong in its environment."""
    if role != API:
        return []
    env = (info.get("Config") or {}).get("Env") or []
    values = dict(item.partition("=")[::2] for item in env if isinstance(item, str))
    if "CONFIG_PASSWORD" not in values or values["CONFIG_PASSWORD"]:
        return []
    ts = _ns((info.get("State") or {}).get("StartedAt") or info.get("Created") or "") or time.time_ns()
    where = Origin(container, ENGINE, API, stack)
    return [Event(container, ENGINE, LINE, [EMPTY_CONFIG_PASSWORD], ts, ts, ts, origin=where)]


def _ns(stamp: str) -> int:
    """Docker's RFC 3339 time (to the second is enough: one event a container start)."""
    if not stamp or stamp.startswith("0001-"):
        return 0
    try:
        return calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) * 10**9
    except ValueError:
        return 0
