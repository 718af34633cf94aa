"""What anyone who reaches the stack could do without knowing a password, found by trying it.

hummingbot-api's default login (admin/admin) and a broker that takes clients without a login
(EMQX's and mosquitto's default as upstream's compose runs them) break nothing, so no log says
them: the legacy generation prints nothing at all, the current one only that its own defaults are
in use. At start the agent tries both once, as anyone could: `GET /accounts/` with admin/admin,
and an MQTT CONNECT without a user name to the broker hummingbot-api names
(`GET /bot-orchestration/mqtt`), closed at once (it subscribes to nothing and publishes nothing).
Each open door is one line on the `engine` channel of hummingbot-api, which only the agent
writes, so no log line can pose as it; `insecure-default-credentials` tells it with the steps.
Nothing is changed. A hummingbot-api with other credentials logs the one refused try (401).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid

import httpx

from agent.component import Loop, OneLoop
from agent.events import API, LINE, Event, Origin
from agent.ingest.environment import ENGINE
from agent.ingest.source import Ready, Sink
from agent.redact import shown_url

log = logging.getLogger("agent")

DEFAULT_LOGIN = ("admin", "admin")  # hummingbot-api's SecuritySettings defaults, both generations
API_OPEN = "hummingbot-api at {url} accepts the default login admin/admin"
BROKER_OPEN = "the MQTT broker at {host}:{port} accepts clients without a login"
RECHECK = 30.0  # seconds between tries while hummingbot-api does not answer
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})$|^\[?[0-9A-Fa-f:.]+\]?$")


def api_accepts_default_login(url: str, timeout: float = 5.0) -> bool | None:
    """True when hummingbot-api at `url` lets admin/admin in; None when it cannot be told."""
    try:
        resp = httpx.get(url.rstrip("/") + "/accounts/", auth=DEFAULT_LOGIN, timeout=timeout)
    except httpx.HTTPError:
        return None
    if resp.status_code in (401, 403):
        return False
    return True if resp.is_success else None


def broker_accepts_anonymous(host: str, port: int, timeout: float = 5.0) -> bool | None:
    """True when the MQTT broker answers a CONNECT without a user name with "accepted", False
    when it refuses it, None when it cannot be told (nothing listens, no answer in time)."""
    import paho.mqtt.client as mqtt  # loaded only for the probe

    answer: list = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"hb-medic-probe-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv311)
    client.connect_timeout = timeout
    client.on_connect = lambda _c, _u, _f, code, _p: answer.append(code)
    try:
        client.connect(host, port, keepalive=max(5, int(timeout)))
        deadline = time.monotonic() + timeout
        while not answer and time.monotonic() < deadline:
            if client.loop(timeout=0.2) != mqtt.MQTT_ERR_SUCCESS:
                break  # the broker closed the connection without answering
    except (OSError, ValueError):
        return None
    finally:
        with contextlib.suppress(Exception):  # a polite DISCONNECT, then the socket closed whatever came
            client.disconnect()
            client.loop(timeout=0.1)
        sock = client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
    if not answer:
        return None
    return not answer[0].is_failure


def broker_address(data: dict | None) -> tuple[str, int] | None:
    """The broker hummingbot-api says it uses, when it is a plain host and port."""
    if not isinstance(data, dict):
        return None
    host, port = data.get("broker_host"), data.get("broker_port")
    if not isinstance(host, str) or not _HOST.match(host):
        return None
    if isinstance(port, bool) or not isinstance(port, int):
        return None
    return (host, port) if 0 < port < 65536 else None


def open_doors(url: str, username: str, password: str, timeout: float = 5.0) -> list[str] | None:
    """The lines for what is open, or None when hummingbot-api does not answer (try again later).
    The broker's address is asked with the agent's own login; without it, the broker is not tried."""
    from agent.hummingbot_api import HummingbotAPI, broker_reply

    default = api_accepts_default_login(url, timeout)
    if default is None:
        return None
    lines = [API_OPEN.format(url=shown_url(url.rstrip("/")))] if default else []
    api = HummingbotAPI(url, username, password, timeout=timeout)
    try:
        address = broker_address(broker_reply(api)[0])
    finally:
        api.close()
    if address is not None and broker_accepts_anonymous(*address, timeout=timeout):
        lines.append(BROKER_OPEN.format(host=address[0], port=address[1]))
    return lines


class ExposureProbe(OneLoop):
    """A source: tries the doors once hummingbot-api answers, puts one event a door found open,
    and ends (its thread is not one that must stay alive)."""

    def __init__(self, sink: Sink, *, url: str, username: str, password: str, container: str,
                 stack: str) -> None:
        self.name = f"exposure-{stack}"
        self.sink = sink
        self.url, self.username, self.password = url, username, password
        self.origin = Origin(container, ENGINE, API, stack)
        self.loop = Loop(self.name, self._run)

    def threads(self) -> dict:
        return {}

    def _run(self) -> None:
        while not self.loop.stopping.is_set():
            lines = open_doors(self.url, self.username, self.password)
            if lines is not None:
                for text in lines:
                    log.warning("%s", text)
                    ts = time.time_ns()
                    self.sink.put(Ready(Event(self.origin.container, ENGINE, LINE, [text], ts, ts, ts,
                                              origin=self.origin)))
                return
            if self.loop.wait(RECHECK):
                return
