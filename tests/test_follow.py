"""Following real containers through a real engine: streams, tracebacks, the
container's whole life (late start, restart, stop/start, re-create), the
engine going away, and the agent restarting from its checkpoint."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections import defaultdict

import docker
import pytest

from agent.events import LINE, TRACEBACK
from agent.ingest.follow import Ingest
from agent.ingest.pipeline import Pipeline
from agent.ingest.source import Lines
from agent.state import State
from tests.images import TOOLS_IMAGE as TOOLS
from tests.proxy import EngineProxy
from tests.stack import LABEL, labels, start_raiser, wait_until
from tests.tracebacks import RAISERS

pytestmark = pytest.mark.docker
REATTACH_LIMIT = 2.0


class Agent:
    """Ingest and pipeline wired as the agent wires them, recording what passes."""

    def __init__(self, names, *, store=None, window=600.0, client_factory=docker.from_env):
        self.events = []
        self.seen = defaultdict(list)  # (container_id, stream) -> [text]
        self.received = []  # (wall time, container_id, stream, ts_ns, text)
        self.pipeline = Pipeline(self.events.append, store=store)
        self.ingest = Ingest(names, self, checkpoints=store.checkpoints() if store else None,
                             catchup_window=window, client_factory=client_factory)

    # the Sink interface
    def put(self, batch):
        if isinstance(batch, Lines):
            now, cid, stream = time.time(), batch.generation, batch.channel
            for _pos, ts, text in batch.items:
                self.seen[(cid, stream)].append(text)
                self.received.append((now, cid, stream, ts, text))
        self.pipeline.put(batch)

    def start(self):
        self.pipeline.start()
        self.ingest.start()
        return self

    def stop(self):
        self.ingest.stop(time.monotonic() + 5.0)
        self.pipeline.stop(time.monotonic() + 5.0)

    def first_line_lag(self, text_prefix: str) -> float:
        """Seconds from the engine's timestamp of a line to its delivery here."""
        for now, _cid, _stream, ts, text in self.received:
            if text.startswith(text_prefix):
                return now - ts / 1e9
        raise AssertionError(f"no line {text_prefix!r}")


@pytest.fixture
def raiser(docker_client):
    run_id = uuid.uuid4().hex[:8]

    def run(name, tty=False, **env):
        return start_raiser(docker_client, name, run_id, tty=tty, **env)

    yield run
    for c in docker_client.containers.list(all=True, filters={"label": f"{LABEL}={run_id}"}):
        c.remove(force=True)


_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z ")


def truth(container, stream):
    """The engine's own lines. With timestamps every entry is told apart, also a last line a
    stopped process never ended with a newline (plain `docker logs` runs it into the next).
    (The raiser's own lines hold no RFC 3339 timestamp, so each match starts an entry.)"""
    raw = container.logs(stdout=stream == "stdout", stderr=stream == "stderr", timestamps=True)
    text = raw.decode().replace("\r\n", "\n")
    marks = list(_STAMP.finditer(text))
    lines = []
    for m, nxt in zip(marks, [*marks[1:], None], strict=False):
        entry = text[m.end():nxt.start() if nxt else len(text)]
        lines.append(entry[:-1] if entry.endswith("\n") else entry)
    return lines


def boot_of(container) -> str:
    line = wait_until(lambda: next((x for x in truth(container, "stdout") if x.startswith("boot ")), None),
                      20, "the boot line")
    return line.split()[1]


def complete(agent, container, streams=("stdout", "stderr")):
    """Wait until the agent has every line of the container, then compare exactly."""
    container.reload()
    for stream in streams:
        wait_until(lambda s=stream: len(agent.seen[(container.id, s)]) >= len(truth(container, s)),
                   20, f"all {stream} lines")
        assert agent.seen[(container.id, stream)] == truth(container, stream), stream


def test_tracebacks_and_noise_from_a_running_container(docker_client, raiser):
    name = f"medic-raise-{uuid.uuid4().hex[:6]}"
    agent = Agent([name]).start()
    try:
        c = raiser(name, ROUNDS=2, BEAT=0.05)
        boot = boot_of(c)
        wait_until(lambda: sum(e.kind == TRACEBACK for e in agent.events) >= 2 * len(RAISERS), 20,
                   "all tracebacks")
        wait_until(lambda: any("tick" in line for line in truth(c, "stderr")), 10, "a tick record")
        assert agent.ingest.labels(name) == c.labels  # for rules' where.labels
        c.stop(timeout=1)
        complete(agent, c)
    finally:
        agent.stop()
    tbs = [e for e in agent.events if e.kind == TRACEBACK]
    expected = [RAISERS[n][1] for _ in range(2) for n in sorted(RAISERS)]
    assert [[x.type for x in e.exceptions] for e in tbs] == expected
    err = truth(c, "stderr")
    for e in tbs:
        assert e.stream == "stderr" and e.container == name
        assert e.header.logger == "services.raiser" and e.header.level == "ERROR"
        assert e.header.message.startswith("failed ") and boot in e.header.message
        start = err.index(e.lines[0])
        assert err[start:start + len(e.lines)] == e.lines  # whole, nothing interleaved
    out_events = [e for e in agent.events if e.stream == "stdout"]
    assert all(e.kind == LINE for e in out_events)
    assert [e.lines[0] for e in out_events] == truth(c, "stdout")
    ticks = [e for e in agent.events if e.kind == LINE and e.stream == "stderr"]
    assert ticks and all(e.level == "WARNING" and "tick" in e.message for e in ticks)


def test_late_start_restart_stop_start_and_recreate(docker_client, raiser):
    name = f"medic-life-{uuid.uuid4().hex[:6]}"
    agent = Agent([name]).start()
    lags = {}
    try:
        wait_until(lambda: agent.ingest.status()[name].state == "absent", 10, "absent state")
        c = raiser(name, BEAT=0.05)  # late start: the container did not exist
        lags["late start"] = _lag(agent, c)

        c.restart(timeout=1)
        lags["restart"] = _lag(agent, c)

        c.stop(timeout=1)
        wait_until(lambda: agent.ingest.status()[name].state == "stopped", 10, "stopped state")
        c.start()
        lags["stop/start"] = _lag(agent, c)
        c.stop(timeout=1)
        complete(agent, c)
        first_id = c.id

        c.remove()
        c2 = raiser(name, BEAT=0.05)  # re-created under the same name: a new id
        lags["re-create"] = _lag(agent, c2)
        c2.stop(timeout=1)
        complete(agent, c2)
        assert c2.id != first_id
    finally:
        agent.stop()
    print("re-attach lag (s):", {k: round(v, 4) for k, v in lags.items()})
    assert max(lags.values()) < REATTACH_LIMIT, lags


def _lag(agent, container) -> float:
    boot = boot_of(container)
    wait_until(lambda: any(t.startswith(f"boot {boot}") for *_, t in agent.received), 10,
               "the new boot line at the agent")
    return agent.first_line_lag(f"boot {boot}")


def test_agent_restart_resumes_without_duplicate_or_gap(docker_client, raiser, tmp_path):
    name = f"medic-resume-{uuid.uuid4().hex[:6]}"
    store = State(tmp_path / "state.db")
    c = raiser(name, BEAT=0.01)
    first = Agent([name], store=store).start()
    boot_of(c)
    time.sleep(1.0)
    first.stop()
    time.sleep(1.0)  # lines written while the agent is down
    second = Agent([name], store=State(tmp_path / "state.db")).start()
    time.sleep(1.0)
    c.stop(timeout=1)
    try:
        for stream in ("stdout", "stderr"):
            want = truth(c, stream)
            wait_until(lambda s=stream, w=want: len(first.seen[(c.id, s)]) + len(second.seen[(c.id, s)])
                       >= len(w), 20, f"all {stream} lines across both runs")
            got = first.seen[(c.id, stream)] + second.seen[(c.id, stream)]
            assert got == want, stream
            assert first.seen[(c.id, stream)] and second.seen[(c.id, stream)]
    finally:
        second.stop()
    tb_lines = [line for e in first.events + second.events if e.kind == TRACEBACK for line in e.lines]
    assert len([x for x in tb_lines if x.startswith("Traceback")]) >= len(RAISERS)


def test_catch_up_window_summarises_older_lines(docker_client, raiser, tmp_path, caplog):
    name = f"medic-window-{uuid.uuid4().hex[:6]}"
    c = raiser(name, BEAT=0.01)
    first = Agent([name], store=State(tmp_path / "s.db")).start()
    boot_of(c)
    time.sleep(0.5)
    first.stop()
    time.sleep(3.0)
    restarted = time.time()
    caplog.set_level(logging.WARNING, logger="agent.ingest.follow")
    second = Agent([name], store=State(tmp_path / "s.db"), window=1.0).start()
    try:
        wait_until(lambda: second.received, 10, "lines after the restart")
        status = second.ingest.status()[name]
        wait_until(lambda: status.skipped_old > 0, 10, "the summary")
        assert min(ts for _, _, _, ts, _ in second.received) / 1e9 >= restarted - 1.0 - 0.2
        assert any("older than the catch-up window" in r.getMessage() for r in caplog.records)
    finally:
        second.stop()


def test_engine_going_away_is_retried_and_logged_once(docker_client, raiser, tmp_path, caplog):
    proxy = EngineProxy(str(tmp_path / "engine.sock"))
    proxy.start()
    name = f"medic-engine-{uuid.uuid4().hex[:6]}"
    c = raiser(name, BEAT=0.02)
    caplog.set_level(logging.WARNING, logger="agent.ingest.engine")
    agent = Agent([name], client_factory=lambda: docker.DockerClient(base_url=proxy.url)).start()
    try:
        boot_of(c)
        wait_until(lambda: agent.ingest.status()[name].state == "attached", 10, "attached")
        time.sleep(0.5)
        proxy.stop()
        time.sleep(2.0)
        proxy.start()
        wait_until(lambda: agent.ingest.status()[name].state == "attached"
                   and agent.ingest.engine.down_since is None, 15, "re-attached")
        time.sleep(0.5)
        c.stop(timeout=1)
        complete(agent, c)
    finally:
        agent.stop()
        proxy.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("engine unreachable" in m for m in messages) == 1, messages
    assert sum("reachable again" in m for m in messages) == 1, messages


@pytest.mark.parametrize("tty", [False, True])
def test_long_lines_merged_and_tty_line_ends(docker_client, raiser, tty):
    name = f"medic-long-{uuid.uuid4().hex[:6]}"
    agent = Agent([name]).start()
    try:
        c = raiser(name, tty=tty, LONG_LINE=40_000, BEAT=0.2)
        boot = boot_of(c)
        wait_until(lambda: any(t.startswith(f"long {boot}") for *_, t in agent.received), 10, "long line")
    finally:
        agent.stop()
    long = next(t for *_, t in agent.received if t.startswith(f"long {boot}"))
    assert long == f"long {boot} " + "L" * 40_000
    assert not any(t.endswith("\r") for *_, t in agent.received)
    if tty:  # one stream only: stderr is merged into the terminal
        assert {s for _, _, s, _, _ in agent.received} == {"stdout"}


def test_reattach_never_replays_lines_older_than_the_first_read(docker_client):
    """A stream quiet at the first attach must not be re-read from the container's start
    after a restart (lines older than the catch-up window stay out)."""
    name = f"medic-quiet-{uuid.uuid4().hex[:6]}"
    code = ("import sys, time, uuid\nb = uuid.uuid4().hex[:6]\n"
            "print('old', b, flush=True)\ntime.sleep(2.0)\n"
            "while True:\n    print('err', b, file=sys.stderr, flush=True)\n    time.sleep(0.1)\n")
    c = docker_client.containers.run(TOOLS, entrypoint=["python3", "-u", "-c", code], name=name,
                                     detach=True, network_mode="none", labels=labels(name))
    try:
        time.sleep(1.5)  # the first boot's stdout line is now older than the window below
        agent = Agent([name], window=1.0).start()
        try:
            wait_until(lambda: any(t.startswith("err") for *_, t in agent.received), 15, "stderr lines")
            first_boot = agent.received[0][4].split()[1]
            c.restart(timeout=1)
            wait_until(lambda: any(t.startswith("err") and t.split()[1] != first_boot
                                   for *_, t in agent.received), 15, "the second boot")
        finally:
            agent.stop()
        texts = [t for *_, t in agent.received]
        assert f"old {first_boot}" not in texts
        assert [t for t in texts if t.startswith("old")] == [f"old {texts[-1].split()[1]}"]  # the new boot's
    finally:
        c.remove(force=True)
