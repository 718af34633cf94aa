"""The engine's life events of containers: the source that says when a bot lived and died.

One thread reads the engine's event stream. It wakes the followers of named
containers, starts following a bot the moment it starts, and tells a bot that
died by itself from one that was stopped: `docker stop` (what hummingbot-api's
stop does) and `docker kill` send a `kill` event before the `die`; an exit of
the bot's own (whatever its code) or the kernel's out-of-memory kill (an `oom`
event) has none. What it learns goes to a `ContainerLife` (the engine's ingest),
and once that has taken an event, the event's time is the source's position: after
a restart the engine replays what happened meanwhile (within the catch-up window).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import docker
import requests

from agent.component import Loop
from agent.ingest.engine import EngineHealth, keep_running
from agent.ingest.split import format_ts
from agent.names import DEFAULT_STACK
from agent.state import Checkpoints, StateUnwritable

log = logging.getLogger(__name__)
SOURCE = "engine-events"  # the checkpoints' source name
SAVE_EVERY = 1.0


class ContainerLife(Protocol):
    """What the life events tell, as they happen."""

    def connected(self) -> None:
        """The event stream is (again) attached: anything may have happened meanwhile."""

    def wake(self, name: str) -> None:
        """Something happened to the container of that name: look at it again."""

    def started(self, cid: str, name: str) -> None: ...

    def died(self, cid: str, name: str, *, exit_code: int, stopped: bool, oom: bool, at: int) -> None: ...

    def removed(self, cid: str, name: str) -> None: ...


class LifeEvents:
    def __init__(self, life: ContainerLife, *, client: Callable[[], docker.DockerClient],
                 health: EngineHealth, checkpoints: Checkpoints | None, catchup_window: float,
                 stack: str = DEFAULT_STACK) -> None:
        self.name = "docker-events" if stack == DEFAULT_STACK else f"docker-events-{stack}"
        self.life = life
        self.client = client
        self.health = health
        self.checkpoints = checkpoints
        self.catchup_window = catchup_window
        self._loop = Loop(self.name, self._run, on_stop=self._close)
        self._stream = None
        self._last = 0  # ns of the latest event handled
        self._handled_before = 0  # events up to this were handled before (the replay repeats them)
        self._saved_at = 0.0
        self._killed: dict[str, int] = {}  # container id -> ns of the last kill since its start
        self._oom: set[str] = set()

    @property
    def thread(self) -> threading.Thread:
        return self._loop.thread

    def start(self) -> None:
        self._loop.start()

    def stop(self, deadline: float) -> None:
        self._loop.stop(deadline)
        self._save(force=True)

    def _close(self) -> None:
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()

    def _run(self) -> None:
        keep_running(self._once, self._loop.stopping,
                     on_engine_failure=lambda s: self.health.failed(s.outcome.exception()),
                     what="docker event watcher")

    def _since(self) -> str:
        floor = time.time_ns() - int(self.catchup_window * 1e9)
        if not self._last and self.checkpoints is not None:
            with contextlib.suppress(ValueError, TypeError):
                self._last = int((self.checkpoints.get(SOURCE, "") or {}).get("since") or 0)
        self._handled_before = self._last
        return format_ts(max(self._last, floor))

    def _once(self) -> None:
        stream = self.client().events(decode=True, filters={"type": "container"}, since=self._since())
        self.health.ok()
        self._stream = stream
        try:
            # Anything may have happened while nobody listened: look at everything once.
            self.life.connected()
            for event in stream:
                self._handle(event)
        finally:
            self._stream = None
            with contextlib.suppress(Exception):
                stream.close()
        if not self._loop.stopping.is_set():
            raise requests.exceptions.ConnectionError("event stream ended")

    def _handle(self, event: dict) -> None:
        at = int(event.get("timeNano") or 0)
        if at and at <= self._handled_before:
            return  # replayed: handled before (live events may come a little out of time order)
        action = event.get("Action") or ""
        cid = event.get("id") or (event.get("Actor") or {}).get("ID") or ""
        attrs = (event.get("Actor") or {}).get("Attributes") or {}
        name = attrs.get("name", "")
        if action in ("create", "start", "restart", "die", "stop", "destroy", "rename", "unpause"):
            self.life.wake(name)
        if action == "kill":
            self._killed[cid] = at
        elif action == "oom":
            self._oom.add(cid)
        elif action == "start":
            self._killed.pop(cid, None)
            self._oom.discard(cid)
            self.life.started(cid, name)
        elif action == "die":
            code = attrs.get("exitCode")
            self.life.died(cid, name, exit_code=int(code) if str(code).lstrip("-").isdigit() else -1,
                           stopped=cid in self._killed, oom=cid in self._oom, at=at or time.time_ns())
        elif action == "destroy":
            self._killed.pop(cid, None)
            self._oom.discard(cid)
            self.life.removed(cid, name)
        if at > self._last:
            self._last = at
            self._save()

    def _save(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.checkpoints is None or not self._last or (not force and now - self._saved_at < SAVE_EVERY):
            return
        self._saved_at = now
        try:
            self.checkpoints.put(SOURCE, "", {"since": self._last})
        except StateUnwritable:
            pass  # the store said so once, and /healthz says so until it heals
        except Exception:
            log.exception("saving the engine events checkpoint failed")
