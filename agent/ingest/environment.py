"""What a container's environment (and its state) says that its logs never will.

hummingbot-api started with an empty CONFIG_PASSWORD prints nothing about it: the first sign is a
deploy answered `{"success": false, "message": "Password not provided..."}`. The follower reads
the environment from the engine whenever it meets a new container of hummingbot-api (the first
attach, a re-created container) and tells what is wrong as one line on the `engine` channel,
which only the agent writes: no log line, whatever it says, can pose as one. Values are never
carried, only whether they are empty. The gateway's GATEWAY_PASSPHRASE the same way: without it a
gateway that runs secured cannot decrypt its server key. And a container the engine could not
start (a host port already taken) never ran, so it logged nothing: the engine's reason
(`State.Error`) is told the same way, once a container and reason.
"""

from __future__ import annotations

import calendar
import time

from agent.events import API, GATEWAY, LINE, Event, Origin

ENGINE = "engine"
EMPTY_CONFIG_PASSWORD = ("CONFIG_PASSWORD is empty in the container's environment: every deploy will"
                         " answer \"Password not provided\"")


MISSING_GATEWAY_PASSPHRASE = ("GATEWAY_PASSPHRASE is {how} in the gateway's environment while it runs"
                              " secured (DEV is not true): it cannot open its certificates")


def environment_events(info: dict, container: str, role: str, stack: str) -> list[Event]:
    """Events for what `docker inspect` of hummingbot-api or the gateway shows wrong in its
    environment."""
    if role not in (API, GATEWAY):
        return []
    env = (info.get("Config") or {}).get("Env") or []
    values = dict(item.partition("=")[::2] for item in env if isinstance(item, str))
    if role == GATEWAY:
        if values.get("DEV", "").lower() == "true" or values.get("GATEWAY_PASSPHRASE"):
            return []
        text = MISSING_GATEWAY_PASSPHRASE.format(how="empty" if "GATEWAY_PASSPHRASE" in values else "not set")
    elif "CONFIG_PASSWORD" not in values or values["CONFIG_PASSWORD"]:
        return []
    else:
        text = EMPTY_CONFIG_PASSWORD
    ts = _ns((info.get("State") or {}).get("StartedAt") or info.get("Created") or "") or time.time_ns()
    where = Origin(container, ENGINE, role, stack)
    return [Event(container, ENGINE, LINE, [text], ts, ts, ts, origin=where)]


START_FAILED = "the engine could not start the container: {error}"


def start_error_event(info: dict, error: str, container: str, role: str, stack: str) -> Event:
    """The engine's own reason a container did not start (`State.Error`: a host port another
    program holds, a missing mount source...), which the container's logs never show: it never
    ran. One line, cut to 500 characters."""
    text = START_FAILED.format(error=" ".join(error.split())[:500])
    ts = _ns((info.get("State") or {}).get("FinishedAt") or "") or time.time_ns()
    where = Origin(container, ENGINE, role, stack)
    return Event(container, ENGINE, LINE, [text], ts, ts, ts, origin=where)


def _ns(stamp: str) -> int:
    """Docker's RFC 3339 time (to the second is enough: one event a container start)."""
    if not stamp or stamp.startswith("0001-"):
        return 0
    try:
        return calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) * 10**9
    except ValueError:
        return 0
