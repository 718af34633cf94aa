"""Follow containers' logs through the Docker API, for real.

One follower thread per watched container name, plus one thread reading the
engine's event stream: a container that starts, restarts, is re-created under
the same name or appears for the first time wakes its follower at once, so the
log stream is attached again within moments. A log stream that ends is
inspected, never blindly re-opened. When the engine itself goes away, every
call is retried with exponential backoff and jitter (tenacity), and that is
logged once when it happens and once when the engine is back.

Each line gets a position (timestamp in ns, shifted, plus its index among the
stream's lines of the same ns), so a resumed stream (Docker's ``since`` is
inclusive) skips exactly what was already handled.
"""

from __future__ import annotations

import calendar
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import docker
import requests
from docker.errors import DockerException, NotFound
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from agent.component import Loop
from agent.events import API, BOT, CONSOLE, DEFAULT_STACK, GATEWAY, Origin, exit_event, role_of
from agent.ingest.assemble import Item
from agent.ingest.bots import BotInfo, BotSelection, logs_folder, maybe_bot, recognise
from agent.ingest.engine import BACKOFF_MAX, EngineHealth, answered, engine_errors, keep_running
from agent.ingest.environment import environment_events, start_error_event
from agent.ingest.files import LogFiles
from agent.ingest.life import LifeEvents
from agent.ingest.source import Close, Ended, Gone, Lines, Ready, Sink
from agent.ingest.split import STDERR, STDOUT, Dechunker, Line, LineSplitter, format_ts
from agent.records import DUP_BITS
from agent.state import Checkpoints

log = logging.getLogger(__name__)
CONTAINER = "container"  # the checkpoints' source name of container streams

READ_SIZE = 256 * 1024
MAX_DUP = (1 << DUP_BITS) - 1


@dataclass
class FollowerStatus:
    name: str
    state: str = "starting"  # starting | absent | stopped | attached | engine-down
    container_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    lines: int = 0
    last_line_at: float | None = None
    skipped_old: int = 0


def origins(name: str, role: str, stack: str = DEFAULT_STACK) -> dict[str, Origin | None]:
    """The origin of each Docker stream of a container: hummingbot-api's of the default stack
    need none (the default); a bot's TTY is its console; a sibling's streams keep their names."""
    if role == API:
        if stack == DEFAULT_STACK:
            return {STDOUT: None, STDERR: None}
        return {STDOUT: Origin(name, STDOUT, API, stack), STDERR: Origin(name, STDERR, API, stack)}
    if role == BOT:
        return {STDOUT: Origin(name, CONSOLE, BOT, stack),
                STDERR: Origin(name, CONSOLE, BOT, stack, file="stderr")}
    return {STDOUT: Origin(name, STDOUT, role, stack), STDERR: Origin(name, STDERR, role, stack)}


class Follower:
    """Keeps one container name's log stream attached, across its whole life: the source of
    its stdout and stderr lines. Its position (per stream, the first line not yet handled) is
    stored once the sink acknowledged the lines before it.

    A bot's follower (`once`) ends when its container no longer runs and its last
    lines are read: bots come and go, and the engine's events start a new one.
    `drained` is set whenever the stream of a container that stopped has been read to its end.
    """

    def __init__(self, name: str, api: docker.APIClient, sink: Sink, health: EngineHealth, *,
                 checkpoints: Checkpoints | None = None, catchup_window: float, max_line: int,
                 backoff_max: float = BACKOFF_MAX, role: str = API, once: bool = False,
                 stack: str = DEFAULT_STACK) -> None:
        self.name = f"follow-{name}" if stack == DEFAULT_STACK else f"follow-{stack}-{name}"
        self._loop = Loop(self.name, self._run, on_stop=self._close_response)
        self.container = name
        self.api = api
        self.sink = sink
        self.health = health
        self.catchup_window = catchup_window
        self.max_line = max_line
        self.backoff_max = backoff_max
        self.status = FollowerStatus(name)
        self.role = role
        self.once = once
        self.origins = origins(name, role, stack)
        self.stack = stack
        self.drained = threading.Event()
        self._stopping = self._loop.stopping
        self._response: requests.Response | None = None
        self._checkpoints = checkpoints
        stored = checkpoints.get(CONTAINER, name) if checkpoints is not None else None
        self._cid: str | None = stored["container_id"] if stored else None
        self._resume = {STDOUT: int(stored["stdout"]), STDERR: int(stored["stderr"])} if stored else None
        self._from_store = stored is not None
        self._dup: dict[str, tuple[int, int]] = {}
        self._start_error: tuple[str, str] | None = None  # (container id, the engine's error) told
        self._acked_cid: str | None = None  # the container the acknowledged positions are of
        self._acked: dict[str, int] = {}  # stream -> first position not yet handled

    # -- control --------------------------------------------------------------------------
    def start(self) -> None:
        self._loop.start()

    def stop(self, deadline: float) -> None:
        self._loop.stop(deadline)

    def wake(self) -> None:
        """Look at the container again now (it started, stopped, was re-created...)."""
        self._loop.wake()

    @property
    def alive(self) -> bool:
        return self._loop.alive

    def _close_response(self) -> None:
        resp = self._response
        if resp is not None:
            with contextlib.suppress(Exception):
                sock = resp.raw._fp.fp.raw._sock  # unblock a read in progress
                sock.shutdown(2)
            with contextlib.suppress(Exception):
                resp.raw._fp.fp.channel.close()  # the same, over an ssh:// engine's channel
            with contextlib.suppress(Exception):
                resp.close()

    # -- the loop ---------------------------------------------------------------------------
    def _run(self) -> None:
        keep_running(self._cycle, self._stopping, on_engine_failure=self._engine_failed,
                     what=f"follower for {self.container}", backoff_max=self.backoff_max)

    def _engine_failed(self, state) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if answered(exc):
            return  # the engine is there; the container is on its way out
        self.status.state = "engine-down"
        if exc is not None:
            self.health.failed(exc)

    def _cycle(self) -> None:
        """Inspect, read or follow the logs, then wait for a reason to look again."""
        try:
            info = self.api.inspect_container(self.container)
        except NotFound:
            info = None
        self.health.ok()
        if info is None:
            self.status.state = "absent"
            self._loop.wait(30)
            return
        cid = info["Id"]
        running = bool(info["State"].get("Running"))
        tty = bool(info["Config"].get("Tty"))
        if cid != self._cid:
            if self._cid is not None:
                self._detached()
            self._cid = cid
            self._resume = None
            self._dup.clear()
            for event in environment_events(info, self.container, self.role, self.stack):
                self.sink.put(Ready(event))  # a new container: what its environment says
        error = "" if running else str(info["State"].get("Error") or "")
        if error and self._start_error != (cid, error):  # the engine could not start it: told once
            self._start_error = (cid, error)
            self.sink.put(Ready(start_error_event(info, error, self.container, self.role, self.stack)))
        self.status.container_id = cid
        self.status.labels = dict(info["Config"].get("Labels") or {})
        since = self._since(info)
        del info  # not held while the stream is read: tens of KiB a follower, for as long as it lives
        if running:
            self.status.state = "attached"
            self.drained.clear()
        started, lines_before = time.monotonic(), self.status.lines
        self._read(cid, tty, follow=running, since_ns=since)
        if self._stopping.is_set():
            return
        if running and self.status.lines == lines_before and time.monotonic() - started < 0.5:
            self._stopping.wait(0.5)  # a stream that ends at once, again and again, must not spin
        # The stream ended: find out why before doing anything else.
        try:
            after = self.api.inspect_container(self.container)
        except NotFound:
            after = None
        if after is not None and after["Id"] == cid and after["State"].get("Running") and running:
            return  # still running: the stream was cut (engine restart?); attach again
        self._detached()
        self.status.state = "stopped" if after is not None else "absent"
        if after is None or not after["State"].get("Running"):
            self.drained.set()
            if self.once:
                self._stopping.set()
                return
            self._loop.wait(30)

    def _detached(self) -> None:
        if self._cid is not None:
            self.sink.put(Close(self.container, generation=self._cid))

    def _since(self, info: dict) -> int:
        """Where to start: the resume point, within the catch-up window."""
        floor_ns = int((time.time() - self.catchup_window) * 1e9)
        since = max(0, min(self._resume.values()) >> DUP_BITS) if self._resume is not None else 0
        if since < floor_ns and (self._from_store or self._resume is None):
            if since > 0:
                self._summarise(info["Id"], since, floor_ns)
            since = floor_ns
            self._resume = None
        self._from_store = False
        return since

    def _summarise(self, cid: str, since: int, until: int) -> None:
        """Lines older than the catch-up window are counted, not replayed."""
        counts = {"lines": 0, "errors": 0}

        def count(_stream: str, lines: list[Line]) -> None:
            counts["lines"] += len(lines)
            counts["errors"] += sum(1 for _, t in lines if " - ERROR - " in t or "Traceback" in t)

        resp = self._open(cid, follow=False, since_ns=since, until_ns=until)
        splitter = LineSplitter(count, tty=False, max_line=self.max_line)
        try:
            for chunk in resp.iter_content(READ_SIZE):
                splitter.feed(chunk)
        finally:
            resp.close()
        self.status.skipped_old += counts["lines"]
        if counts["lines"]:
            log.warning("%s: %d lines (%d error lines) written while the agent was away are older "
                        "than the catch-up window (%.0f s) and were not replayed", self.container,
                        counts["lines"], counts["errors"], self.catchup_window)

    def _open(self, cid: str, *, follow: bool, since_ns: int, until_ns: int | None = None):
        params: dict[str, object] = {"stdout": 1, "stderr": 1, "timestamps": 1,
                                     "follow": int(follow), "tail": "all"}
        if since_ns:
            params["since"] = format_ts(since_ns)
        if until_ns:
            params["until"] = format_ts(until_ns)
        resp = self.api._get(self.api._url("/containers/{0}/logs", cid), params=params,
                             stream=True, timeout=None)
        self.api._raise_for_status(resp)
        return resp

    def _read(self, cid: str, tty: bool, *, follow: bool, since_ns: int) -> None:
        """Read (or follow) the logs from since_ns until the stream ends."""
        resp = self._open(cid, follow=follow, since_ns=since_ns)
        self._response = resp
        self._dup.clear()  # positions are numbered afresh from `since`, as the first time
        if self._resume is None:  # both streams start where this read starts
            self._resume = {STDOUT: since_ns << DUP_BITS, STDERR: since_ns << DUP_BITS}
        splitter = LineSplitter(self._deliver, tty=tty, max_line=self.max_line)
        try:
            fp = resp.raw._fp.fp  # the socket's buffered reader, after the headers
            chunked = "chunked" in resp.headers.get("Transfer-Encoding", "").lower()
            if not hasattr(fp, "read1"):  # another transport (an ssh:// engine's channel)
                self._read_chunks(resp, chunked, splitter)
                return
            dechunk = Dechunker() if chunked else None
            while not self._stopping.is_set():
                block = fp.read1(READ_SIZE)
                if not block:
                    break
                if dechunk is not None:
                    block = dechunk.feed(block)
                if block:
                    splitter.feed(block)
                if dechunk is not None and dechunk.done:
                    break
            splitter.close()
        except Exception as exc:  # the connection was cut: the caller inspects why
            log.debug("%s: log stream ended: %r", self.container, exc)
        finally:
            self._response = None
            with contextlib.suppress(Exception):
                resp.close()

    def _read_chunks(self, resp, chunked: bool, splitter: LineSplitter) -> None:
        """The portable way, chunk by chunk through urllib3: for a transport whose reader cannot
        return what it has at once (paramiko's), slower than the socket's own reader but live."""
        chunks = resp.raw.read_chunked(decode_content=False) if chunked else \
            resp.raw.stream(READ_SIZE, decode_content=False)
        for block in chunks:
            if self._stopping.is_set():
                break
            splitter.feed(block)
        splitter.close()

    def _deliver(self, stream: str, lines: list[Line]) -> None:
        """Number the lines, drop the ones already handled, pass on the rest."""
        last_ts, dup = self._dup.get(stream, (-1, 0))
        resume = self._resume[stream] if self._resume is not None else -1
        items: list[Item] = []
        for ts, text in lines:
            if ts == last_ts:
                dup = min(dup + 1, MAX_DUP)
            else:
                last_ts, dup = ts, 0
            pos = ts << DUP_BITS | dup
            if pos >= resume:
                items.append((pos, ts, text))
        self._dup[stream] = (last_ts, dup)
        if not items:
            return
        if self._resume is None:
            self._resume = {STDOUT: 0, STDERR: 0}
        self._resume[stream] = items[-1][0] + 1
        self.status.lines += len(items)
        self.status.last_line_at = time.time()
        cid, origin = self._cid or "", self.origins[stream]
        ack = partial(self._handled, cid, stream) if self._checkpoints is not None else None
        self.sink.put(Lines(self.container, origin.channel if origin is not None else stream, origin, items,
                            items[-1][0] + 1, ack, generation=cid))

    def _handled(self, cid: str, stream: str, position: int) -> None:
        """The sink's acknowledgement (in its thread): a stream with nothing handled yet resumes
        where the other one does."""
        if cid != self._acked_cid:
            self._acked_cid, self._acked = cid, {}
        self._acked[stream] = position
        top = max(self._acked.values())
        if top and self._checkpoints is not None:
            self._checkpoints.put(CONTAINER, self.container, {
                "container_id": cid, STDOUT: self._acked.get(STDOUT) or top,
                STDERR: self._acked.get(STDERR) or top})


class Ingest:
    """Every source of lines and events on one engine: the followers of the named containers,
    the bots hummingbot-api deployed (their consoles and, with the bots folder, their log
    files), and the engine's life events, which it answers as their `ContainerLife`."""

    def __init__(self, names: list[str], sink: Sink, *, checkpoints: Checkpoints | None = None,
                 client_factory: Callable[[], docker.DockerClient] | None = None,
                 catchup_window: float = 600.0, max_line: int = 64 * 1024,
                 bots: BotSelection | None = None, bots_dir: Path | None = None,
                 stack: str = DEFAULT_STACK, address: str = "", background: bool = False) -> None:
        """`address`: the engine's, as /healthz names it. `background`: even the first try to
        connect is made in a thread of its own, so the caller (and the other stacks) never wait
        for an engine that is slow to answer."""
        self.name = "ingest" if stack == DEFAULT_STACK else f"ingest-{stack}"
        self.names = names
        self.sink = sink
        self.engine = EngineHealth(stack)
        self.address = address
        self.background = background
        # Every followed container holds one connection: the pool must be as wide as that.
        self._client_factory = client_factory or (lambda: docker.from_env(max_pool_size=MAX_STREAMS))
        self._client: docker.DockerClient | None = None
        self._checkpoints = checkpoints
        self.catchup_window = catchup_window
        self.max_line = max_line
        self.bots = bots
        self.bots_dir = bots_dir
        self.stack = stack
        self.followers: dict[str, Follower] = {}
        self._bots: dict[str, BotInfo] = {}  # followed bots by name
        self._not_bots: set[str] = set()  # container ids looked at that are no bots
        self._gateways: set[str] = set()  # names of the gateway containers on the engine
        self._gateways_seen = False  # the engine's containers were listed once
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connected = threading.Event()  # set once a client was made (or when stopping)
        self._connector: Loop | None = None
        self.files = LogFiles(sink, checkpoints=checkpoints, catchup_window=catchup_window,
                              max_line=max_line, root=bots_dir) \
            if bots is not None and bots_dir is not None else None
        self._started_at = time.time()
        self._watcher = LifeEvents(self, client=lambda: self.client, health=self.engine,
                                   checkpoints=checkpoints, catchup_window=catchup_window, stack=stack)

    @property
    def client(self) -> docker.DockerClient:
        assert self._client is not None
        return self._client

    # -- the component -----------------------------------------------------------------------------
    def start(self) -> None:
        """Connect and start every source. An engine that does not answer yet (another host's,
        down, or refusing the certificate) is tried again with backoff in a thread of its own."""
        if not self.background:
            try:
                self._client = self._client_factory()
            except engine_errors() as exc:
                self.engine.failed(exc)
            else:
                self._start_sources()
                return
        self._connector = Loop(f"engine-{self.stack}", self._connect)
        self._connector.start()

    def _connect(self) -> None:
        def once() -> None:
            self._client = self._client_factory()
            self._connected.set()

        keep_running(once, self._connected, on_engine_failure=lambda st: self.engine.failed(
            st.outcome.exception()), what=f"connecting to the engine of stack {self.stack}")
        if self._client is not None and not self._stopping.is_set():
            self.engine.ok()
            self._start_sources()

    def _start_sources(self) -> None:
        if self._stopping.is_set():
            return
        self._scan_gateways()  # before any line is read: the rules about the gateway need to know
        for name in self.names:
            self._follow(name, role_of(name))
        if self.files is not None:
            self.files.start()
        self._watcher.start()

    def stop(self, deadline: float) -> None:
        """Stop every source by the deadline, however many bots are followed."""
        self._stopping.set()
        self._connected.set()
        if self._connector is not None:
            self._connector.stop(deadline)
        self._watcher.stop(time.monotonic())  # asked first: it starts no follower meanwhile
        with self._lock:
            followers = list(self.followers.values())
        now = time.monotonic()
        for f in followers:  # all asked at once, then each waited for
            f.stop(now)
        for f in followers:
            f.stop(deadline)
        if self.files is not None:
            self.files.stop(deadline)
        self._watcher.stop(deadline)
        if self._client is not None:
            self._client.close()

    def threads(self) -> dict[str, threading.Thread | None]:
        """The engine's event thread, once the engine was reached (followers of bots come and go)."""
        return {"docker-events": self._watcher.thread} if self._client is not None else {}

    def health(self) -> list[str]:
        """Streams not attached to a container that runs, an engine not reached at all, and the
        bots folder gone."""
        status = self.status()
        problems = [f"{name}: {st.state}" for name, st in status.items()
                    if st.state not in ("attached", "absent", "stopped")]
        down = self.engine.down_since
        if down is not None and not status:
            problems.append(f"Docker engine at {self.address} unreachable for"
                            f" {time.monotonic() - down:.0f} s: {self.engine.error}")
        if self.files is not None:
            problems += self.files.health()
        return problems

    def metrics(self) -> Iterable[Metric]:
        lines = CounterMetricFamily("hb_medic_lines", "Log lines read", labels=["stack", "container"])
        attached = GaugeMetricFamily("hb_medic_stream_attached", "1 while the log stream is attached",
                                     labels=["stack", "container", "state"])
        age = GaugeMetricFamily("hb_medic_last_line_age_seconds", "Seconds since the last line",
                                labels=["stack", "container"])
        engine = GaugeMetricFamily("hb_medic_engine_up", "1 while the stack's Docker engine answers",
                                   labels=["stack"])
        now = time.time()
        for name, st in self.status().items():
            lines.add_metric([self.stack, name], st.lines)
            attached.add_metric([self.stack, name, st.state], 1.0 if st.state == "attached" else 0.0)
            if st.last_line_at:
                age.add_metric([self.stack, name], now - st.last_line_at)
        engine.add_metric([self.stack], 0.0 if self.engine.down_since is not None else 1.0)
        return [lines, attached, age, engine]

    # -- what it knows ---------------------------------------------------------------------------
    def status(self) -> dict[str, FollowerStatus]:
        with self._lock:
            return {name: f.status for name, f in self.followers.items()}

    def labels(self, name: str) -> dict[str, str]:
        """Labels of the followed container of that name, as last inspected."""
        f = self.followers.get(name)
        return f.status.labels if f is not None else {}

    def has_gateway(self) -> bool | None:
        """Whether a gateway container exists on the engine (None: not looked yet)."""
        with self._lock:
            return bool(self._gateways) if self._gateways_seen else None

    def _scan_gateways(self) -> None:
        try:
            listed = self.client.api.containers(all=True)
        except DockerException:
            return  # the engine went away meanwhile: the next connection looks again
        for c in listed:
            self._gateway_seen((c.get("Names") or ["/"])[0].lstrip("/"), c.get("Image") or "")
        with self._lock:
            self._gateways_seen = True

    def _gateway_seen(self, name: str, image: str) -> None:
        """A container of the gateway (by its name, or its image `<owner>/gateway:<tag>`): noted,
        and followed as the gateway when it is not among the named containers."""
        if role_of(name) != GATEWAY and not is_gateway_image(image):
            return
        with self._lock:
            self._gateways.add(name)
            follower = self.followers.get(name)
        if name not in self.names and (follower is None or not follower.alive) \
                and not self._stopping.is_set():
            log.info("following the gateway %s", name)
            self._follow(name, GATEWAY)

    def followed_bots(self) -> list[str]:
        with self._lock:
            return list(self._bots)

    # -- followers --------------------------------------------------------------------------------
    def _follow(self, name: str, role: str, *, once: bool = False) -> Follower:
        f = Follower(name, self.client.api, self.sink, self.engine, checkpoints=self._checkpoints,
                     catchup_window=self.catchup_window, max_line=self.max_line, role=role, once=once,
                     stack=self.stack)
        with self._lock:
            self.followers[name] = f
        f.start()
        return f

    # -- the life events (ContainerLife) --------------------------------------------------------------
    def wake(self, name: str) -> None:
        f = self.followers.get(name)
        if f is not None and name in self.names:
            f.wake()

    def connected(self) -> None:
        """The event stream is (again) attached: wake everyone, and find the bots there are."""
        for name in self.names:
            self.wake(name)
        self._scan_gateways()
        if self.bots is None:
            return
        floor = time.time() - self.catchup_window
        for c in self.client.api.containers(all=True):
            name = (c.get("Names") or ["/"])[0].lstrip("/")
            if name in self._bots or c["Id"] in self._not_bots:
                continue
            if not maybe_bot(c):  # the listing says enough: no need to inspect it
                self._not_bots.add(c["Id"])
                continue
            running = c.get("State") == "running"
            if not running and c.get("Created", 0) < floor and not self._recently_exited(c["Id"], floor):
                continue
            self._consider(c["Id"], fresh=False)

    def _recently_exited(self, cid: str, floor: float) -> bool:
        try:
            finished = self.client.api.inspect_container(cid)["State"].get("FinishedAt") or ""
        except DockerException:
            return False
        return _epoch(finished) >= floor

    def started(self, cid: str, name: str) -> None:
        if role_of(name) == GATEWAY:
            self._gateway_seen(name, "")
        if self.bots is not None and name not in self.names:
            self._consider(cid, fresh=True)

    def _consider(self, cid: str, *, fresh: bool) -> BotInfo | None:
        """Follow the container if it is a bot this agent should follow."""
        try:
            info = self.client.api.inspect_container(cid)
        except NotFound:
            return None
        bot = recognise(info)
        if bot is None or self.bots is None or not self.bots.wants(bot.name) or bot.name in self.names:
            self._not_bots.add(cid)
            return None
        with self._lock:
            known = self._bots.get(bot.name)
            follower = self.followers.get(bot.name)
            self._bots[bot.name] = bot
        if follower is None or not follower.alive:
            self._follow(bot.name, BOT, once=True)
        folder = logs_folder(self.bots_dir, bot)
        if self.files is not None and folder is not None:
            created = _epoch(info.get("Created") or "")
            self.files.watch(bot.name, folder, fresh=fresh or created >= self._started_at,
                             stack=self.stack)
        if known is None:
            log.info("following bot %s%s", bot.name, "" if folder is None else f" and its {folder}")
        return bot

    def died(self, cid: str, name: str, *, exit_code: int, stopped: bool, oom: bool, at: int) -> None:
        """A container exited. A bot's end is told after its last lines (in its own thread:
        reading them may take a moment, and the event stream must not wait)."""
        if self.bots is None or cid in self._not_bots:
            return
        with self._lock:
            followed = name in self._bots
        if not followed and self._consider(cid, fresh=False) is None:
            return
        Loop(f"end-{name}", partial(self._ended, cid, name, exit_code, stopped, oom, at)).start()

    def _ended(self, cid: str, name: str, exit_code: int, stopped: bool, oom: bool, at: int) -> None:
        try:
            follower = self.followers.get(name)
            if follower is not None:
                follower.wake()
                follower.drained.wait(DRAIN_WAIT)
            if self.files is not None:
                self.files.drain(name)
            try:
                state = self.client.api.inspect_container(cid)
            except NotFound:
                state = {}
            st = state.get("State") or {}
            started, finished = _epoch(st.get("StartedAt") or ""), _epoch(st.get("FinishedAt") or "")
            lived = finished - started if started and finished >= started else None
            oom = oom or bool(st.get("OOMKilled"))
            if state and st.get("Running"):
                return  # started again meanwhile (docker restart): the start said it all
            event = exit_event(name, exit_code=exit_code, ts=at, lived=lived, oom_killed=oom,
                               stack=self.stack, stopped=stopped, container_id=cid,
                               created=_epoch(state.get("Created") or "") or None,
                               image=(state.get("Config") or {}).get("Image"),
                               memory_limit=(state.get("HostConfig") or {}).get("Memory") or None,
                               **_terminal(state))
            if stopped:
                log.info("bot %s was stopped (exit code %d): not a death", name, exit_code)
            self.sink.put(Ended(event))
        except Exception:
            log.exception("telling the end of bot %s failed", name)
        finally:
            if self.files is not None:
                self.files.unwatch(name)
            with self._lock:
                f = self.followers.get(name)
                if f is not None and not f.alive:
                    del self.followers[name]
                self._bots.pop(name, None)

    def removed(self, cid: str, name: str) -> None:
        self._not_bots.discard(cid)
        with self._lock:
            self._gateways.discard(name)
            gone = name in self._bots or (name in self.followers and name not in self.names)
        if gone:
            if self.files is not None:
                self.files.unwatch(name)
            with self._lock:
                self._bots.pop(name, None)
                f = self.followers.pop(name, None)
            if f is not None:
                f.stop(time.monotonic())  # asked only: the event stream must not wait for it
            self.sink.put(Gone(name))


def is_gateway_image(image: str) -> bool:
    """`hummingbot/gateway:latest`, `local/gateway:real`, `gateway:dev`."""
    return image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0] == "gateway"


DRAIN_WAIT = 2.0  # how long a bot's end waits for the last lines of its console
MAX_STREAMS = 512


def _epoch(stamp: str) -> float:
    """Docker's RFC 3339 time (nanoseconds, Z) to epoch seconds; 0 when unset or unreadable."""
    if not stamp or stamp.startswith("0001-"):
        return 0.0
    head, _, frac = stamp.rstrip("Z").partition(".")
    try:
        secs = calendar.timegm(time.strptime(head[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0.0
    digits = "".join(ch for ch in frac if ch.isdigit())[:9]
    return secs + (int(digits.ljust(9, "0")) / 1e9 if digits else 0.0)


def _terminal(state: dict) -> dict[str, bool]:
    """Whether a dead bot's container had a terminal, and whether its client ran without its prompt
    (hummingbot_quickstart.py's --headless, or HEADLESS_MODE=true): a client with its prompt and no
    terminal cannot start (rule bot-no-tty). Nothing when the container is gone."""
    config = state.get("Config") or {}
    if not config:
        return {}
    args = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    env = dict(e.partition("=")[::2] for e in config.get("Env") or [])
    headless = any("--headless" in a.split() for a in args) or env.get("HEADLESS_MODE", "").lower() == "true"
    return {"terminal": bool(config.get("Tty")), "headless": headless}
