"""The broker connection loop: real TCP to BROKER_HOST:BROKER_PORT.

Logs what the real manager logs: one `Disconnected during message iteration`
when a live connection drops, the connect error every interval while the
broker is down, and nothing when it is back. It hears the bots' heartbeats
(`HB <instance>` lines the stand-in broker passes on), for `recently_active`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

import config

logger = logging.getLogger(__name__)


def local_address(host: str) -> str:
    """The broker's address without asking a DNS server (the test bed talks to 127.0.0.1 only): an
    address as it is, a name from /etc/hosts; any other name fails as a real lookup of a name that
    names nothing does (BROKER_HOST naming no host)."""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return host
    except OSError:
        pass
    try:
        with open("/etc/hosts") as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 2 and host in fields[1:]:
                    return fields[0]
    except OSError:
        pass
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def _error_text(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror) or exc.errno is None:
        return str(exc)
    return f"[Errno {exc.errno}] {os.strerror(exc.errno)}"


class MQTTManager:
    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.heard: dict[str, float] = {}  # instance -> monotonic time of its last heartbeat

    def recently_active(self, name: str) -> bool:
        """A heartbeat in the last 30 s, as the real orchestrator counts it."""
        return time.monotonic() - self.heard.get(name, -1e9) < 30

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop()), asyncio.create_task(self._watch_start())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def _watch_start(self) -> None:
        try:
            await asyncio.wait_for(self.connected.wait(), config.MQTT_START_TIMEOUT)
            logger.info("MQTT connection established successfully")
        except TimeoutError:
            logger.warning("MQTT connection not established after 5 seconds")

    async def _loop(self) -> None:
        while True:
            try:
                reader, writer = await asyncio.open_connection(local_address(config.BROKER_HOST),
                                                               config.BROKER_PORT)
            except OSError as exc:
                logger.error(f'MQTT disconnected during message iteration: "{_error_text(exc)}". Reconnecting...')
                await asyncio.sleep(config.MQTT_RECONNECT_INTERVAL)
                continue
            self.connected.set()
            logger.info(f"✓ Connected to MQTT broker at {config.BROKER_HOST}:{config.BROKER_PORT}")
            try:
                while line := await reader.readline():
                    parts = line.decode(errors="replace").split()
                    if len(parts) == 2 and parts[0] == "HB":
                        self.heard[parts[1]] = time.monotonic()
            except OSError:
                pass
            finally:
                writer.close()
                self.connected.clear()
            logger.error('MQTT disconnected during message iteration: "Disconnected during message iteration". Reconnecting...')
            await asyncio.sleep(config.MQTT_RECONNECT_INTERVAL)
