"""The state file's disk fills while the agent runs: a small tmpfs mounted by the test, filled
until writes fail, then freed. A full disk is one state (logged once each way, /healthz 503 with
the reason while it lasts); events wait in memory up to a bound and are handled once there is
room; what is dropped past the bound is counted, logged once and said on /healthz."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.events import Event
from agent.ingest.pipeline import Pipeline
from agent.ingest.source import Ready
from agent.state import State, StateUnwritable
from tests.stack import free_port, prefixed_rules, wait_until
from tests.test_state_file import _health

# Room for the state file (about 150 KiB) and its write-ahead log, which SQLite lets grow to about
# 4 MiB between checkpoints: a smaller filesystem is full again as soon as the agent writes at all.
SIZE = "8m"
FAILURE = ("{now} - root - ERROR - Error deploying V2 script: [Errno 2] No such file or directory:"
           " 'bots/credentials/{p}'")


@contextlib.contextmanager
def small_disk(prefix: str = "medic-test-full-disk-") -> Iterator[Path]:
    """A tmpfs of its own, unmounted and removed afterwards. Where mounting is impossible the
    test skips with the reason, except under CI, where it fails."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0755", "medic-test", str(folder)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        folder.rmdir()
        reason = ("mounting a tmpfs is needed to fill a filesystem (root):"
                  f" {out.stderr.strip() or out.returncode}")
        if os.environ.get("CI"):
            pytest.fail(f"CI needs this: {reason}")
        pytest.skip(reason)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        folder.rmdir()


def fill(folder: Path) -> Path:
    """Everything left on the filesystem, in one file (removed to free it)."""
    filler = folder / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True)
    assert os.statvfs(folder).f_bavail == 0
    return filler


def _lines(caplog, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records)


def test_a_full_disk_is_one_state_until_there_is_room(caplog):
    caplog.set_level(logging.INFO)
    with small_disk() as disk:
        store = State(disk / "state.db")
        checkpoints = store.checkpoints()
        filler = fill(disk)
        failed = ok = 0
        for i in range(300):  # small writes still fit into the log's space now and then
            try:
                if i % 2:
                    checkpoints.put_many([("container", f"m{i}-{j}", {"x": "y" * 50 * j}) for j in range(4)])
                else:
                    checkpoints.put("container", f"p{i}", {"x": "z" * 10 * i})
                ok += 1
            except StateUnwritable:
                failed += 1
        assert failed, "the disk never failed a write"
        assert _lines(caplog, "cannot be written") == 1
        assert _lines(caplog, "can be written again") == 0
        [problem] = store.file.health()
        assert problem.startswith(f"state file {disk / 'state.db'} cannot be written since "), problem
        assert "disk is full" in problem and "KiB free on its filesystem" in problem, problem
        assert not store.file.probe_write()
        # a failed write's connection is replaced, not reused
        with pytest.raises(StateUnwritable), store.file.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('big', ?)", ("x" * 200_000,))
            conn.execute("SELECT 1")
        filler.unlink()
        assert store.file.probe_write()
        assert store.file.health() == []
        checkpoints.put("container", "after", {"x": 1})
        assert checkpoints.get("container", "after") == {"x": 1}
        assert _lines(caplog, "cannot be written") == 1
        assert _lines(caplog, "can be written again") == 1
        store.close()


def test_events_wait_for_room_and_what_passes_the_bound_is_counted(caplog):
    caplog.set_level(logging.INFO)
    with small_disk() as disk:
        store = State(disk / "state.db")
        handled: list[str] = []
        acked: list[int] = []

        def handle(event: Event) -> None:  # what the agent does with an event: a write
            store.file.conn().execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                      (event.lines[0], "x" * 2000))
            handled.append(event.lines[0])

        pipeline = Pipeline(handle, store=store, max_unsaved=5, checkpoint_interval=0.1)
        pipeline.start()
        try:
            filler = fill(disk)
            with contextlib.suppress(StateUnwritable):
                for i in range(1000):
                    store.checkpoints().put("container", f"c{i}", {"x": "y" * 5000})
            assert store.file.write_problem is not None
            for i in range(1, 9):
                pipeline.put(Ready(_event(f"full-{i}"), acked.append, i))
            wait_until(lambda: pipeline.dropped == 3, 10, "the events past the bound to be dropped")
            problems = pipeline.health()
            assert problems == ["5 events wait for the state file to be written (at most 5); 3 more were"
                                " dropped"], problems
            metrics = {m.name: m.samples[0].value for m in pipeline.metrics()}
            assert metrics == {"hb_medic_events_waiting": 5, "hb_medic_events_dropped": 3}
            assert handled == [] and acked == []
            filler.unlink()
            wait_until(lambda: len(handled) == 5, 10, "the waiting events to be handled")
            assert handled == [f"full-{i}" for i in range(1, 6)]  # in order; none lost without a count
            assert acked == [1, 2, 3, 4, 5]
            assert pipeline.health() == [] and store.file.health() == []
            assert {m.name: m.samples[0].value for m in pipeline.metrics()}["hb_medic_events_dropped"] == 3
            assert _lines(caplog, "later ones are dropped") == 1
            assert _lines(caplog, "cannot be written") == 1
            assert _lines(caplog, "can be written again") == 1
        finally:
            pipeline.stop(time.monotonic() + 5)
            store.close()


def _event(text: str) -> Event:
    return Event("medic-test-full-disk", "stderr", "line", [text], 0, 0)


@pytest.mark.docker
def test_a_full_disk_under_a_running_agent(docker_client, make_stack, tmp_path):
    """Failure lines written while the disk is full open their incidents once it has room;
    the log says it once each way, /healthz is 503 then 200."""
    stack = make_stack()
    port = free_port()
    log = tmp_path / "agent.log"
    with small_disk() as disk:
        state = disk / "state.db"
        env = {**os.environ, "MEDIC_STATE_DB": str(state),
               "MEDIC_CONTAINERS": stack.prefix + "hummingbot-api",
               "MEDIC_RULES_DIR": str(prefixed_rules(stack.prefix, tmp_path / "rules")),
               "MEDIC_HTTP_ADDR": f"127.0.0.1:{port}",
               "MEDIC_HUMMINGBOT_URL": stack.url, "MEDIC_LOG_LEVEL": "INFO"}
        with log.open("wb") as fh:
            agent = subprocess.Popen([sys.executable, "-m", "agent", "run"], env=env, stdout=fh,
                                     stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: _health(port)[0] == 200, 60, "the agent to be healthy")
            tag = os.urandom(2).hex()
            filler = fill(disk)
            _failure(stack, f"first_{tag}")  # something to write
            _status, body = wait_until(lambda: (h := _health(port))[0] == 503 and h, 30,
                                       "/healthz to say 503")
            said = f"state file {state} cannot be written since"
            assert any(p.startswith(said) for p in body["problems"]), body
            profiles = [f"full{i}_{tag}" for i in range(6)]
            for p in profiles:
                _failure(stack, p)
                time.sleep(0.3)
            time.sleep(3)  # writers that save every second have had their chances to flip it
            status, body = _health(port)
            assert status == 503, body
            assert any("events wait for the state file" in p for p in body["problems"]), body
            assert not set(profiles) & _incident_keys(state)  # they wait: nothing half-kept
            filler.unlink()
            wait_until(lambda: _health(port)[0] == 200, 60, f"/healthz to be 200 again: {_health(port)}")
            wait_until(lambda: set(profiles) <= _incident_keys(state), 60,
                       f"incidents for the lines written while full: {_incident_keys(state)}")
            text = log.read_text()
            assert text.count("cannot be written") == 1, text
            assert text.count("can be written again") == 1, text
            assert "Traceback" not in text and "closed database" not in text, text
        finally:
            agent.terminate()
            agent.wait(30)


def _failure(stack, profile: str) -> None:
    """A failure line in hummingbot-api's stderr, as it writes one."""
    now = time.strftime("%Y-%m-%d %H:%M:%S,000", time.gmtime())
    code, out = stack.api.exec_run(["sh", "-c", 'printf "%s\\n" "$0" > /proc/1/fd/2',
                                    FAILURE.format(now=now, p=profile)])
    assert code == 0, out


def _incident_keys(state: Path) -> set[str]:
    import sqlite3

    conn = sqlite3.connect(state.absolute().as_uri() + "?mode=ro", uri=True, timeout=10)
    try:
        return {k for (k,) in conn.execute("SELECT key FROM incidents")}
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        return set()
    finally:
        conn.close()
