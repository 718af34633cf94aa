"""The broker connection loop: real TCP to BROKER_HOST:BROKER_PORT.

Logs what the real manager logs: one `Disconnected during message iteration`
when a live connection drops, the connect error every interval while the
broker is down, and nothing when it is back. It hears the bots' heartbeats
(`HB <instance>` lines the stand-in broker passes on), for `recently_active`, and their log
records (`LOG <instance> <json>`), kept as the real manager keeps them: the last 100 ERROR records
and the last 100 others per bot, a record repeated within the same second kept once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections import defaultdict, deque

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
        self.error_logs: dict[str, deque] = defaultdict(lambda: deque(maxlen=100))
        self.general_logs: dict[str, deque] = defaultdict(lambda: deque(maxlen=100))
        self._seen: dict[str, float] = {}  # bot:message:second -> when (the real one's deduplication)

    def recently_active(self, name: str) -> bool:
        """A message (heartbeat or record) in the last 30 s, as the real orchestrator counts it."""
        return time.monotonic() - self.heard.get(name, -1e9) < 30

    def _message(self, line: str) -> None:
        """A bot's heartbeat or log record: either one says it is there."""
        parts = line.rstrip("\n").split(" ", 2)
        if len(parts) == 2 and parts[0] == "HB":
            self.heard[parts[1]] = time.monotonic()
        elif len(parts) == 3 and parts[0] == "LOG":
            try:
                record = json.loads(parts[2])
            except ValueError:
                return
            if isinstance(record, dict):
                self.heard[parts[1]] = time.monotonic()
                self._log(parts[1], record)

    def _log(self, bot: str, record: dict) -> None:
        level = record.get("level_name") or "INFO"
        message = record.get("msg") or ""
        timestamp = record.get("timestamp") or time.time()
        now = time.time()
        key = f"{bot}:{message}:{int(timestamp)}"
        if key in self._seen:
            return
        for old in [k for k, t in self._seen.items() if now - t > 300]:
            del self._seen[old]
        self._seen[key] = now
        entry = {"level_name": level, "msg": message, "timestamp": timestamp, **record}
        (self.error_logs if level.upper() == "ERROR" else self.general_logs)[bot].append(entry)

    def logs(self, bot: str) -> tuple[list[dict], list[dict]]:
        """A bot's error_logs and general_logs, as /bot-orchestration/status shows them."""
        return list(self.error_logs.get(bot, [])), list(self.general_logs.get(bot, []))

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
                                                               config.BROKER_PORT, limit=1 << 20)
            except OSError as exc:
                logger.error(f'MQTT disconnected during message iteration: "{_error_text(exc)}". Reconnecting...')
                await asyncio.sleep(config.MQTT_RECONNECT_INTERVAL)
                continue
            self.connected.set()
            logger.info(f"✓ Connected to MQTT broker at {config.BROKER_HOST}:{config.BROKER_PORT}")
            try:
                while line := await reader.readline():
                    self._message(line.decode(errors="replace"))
            except OSError:
                pass
            finally:
                writer.close()
                self.connected.clear()
            logger.error('MQTT disconnected during message iteration: "Disconnected during message iteration". Reconnecting...')
            await asyncio.sleep(config.MQTT_RECONNECT_INTERVAL)
