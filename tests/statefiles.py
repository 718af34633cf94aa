"""State files made bad on purpose, for the state-file tests and the fault suite's scenario:
each kind of damage the agent must refuse with one message, leaving the file untouched."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
from pathlib import Path

from agent.state import State
from agent.state.file import SCHEMA

KINDS = ("garbage", "half", "directory", "empty", "foreign", "read-only")
STACKS_VERSION = 30  # the schema version whose rows carry their stack
CHECKPOINTS_VERSION = 31  # the one with a single checkpoints table for every source


def older_state(path: Path, version: int) -> sqlite3.Connection:
    """A state file as the hb-medic of that schema version created it (empty); the connection
    is left open to fill it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for number, step in enumerate(SCHEMA[:version], start=1):
        assert not callable(step), "older files are built from SQL only"
        for statement in (step,) if isinstance(step, str) else step:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
    return conn


def before_checkpoints(path: Path) -> None:
    """A state file of the version before the single checkpoints table, with a checkpoint of
    each kind it kept: containers (and the deploy feed's, a container named `recorder`), followed
    files, and the engine events' in `meta` (with the unknown errors' digest time beside it)."""
    conn = older_state(path, CHECKPOINTS_VERSION - 1)
    conn.executemany("INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
        ("default", "hummingbot-api", "cid", 1_700_000_000_000_000_000, 3, 1_700_000_000_500_000_000, 0, 1),
        ("eu-1", "hummingbot-api", "cid2", 5, 1, 6, 2, 2.0),
        ("default", "recorder", "deploys", 0, 42, 0, 42, 3.0),
        ("eu-1", "recorder", "deploys", 0, 7, 0, 7, 4.0),
    ])
    conn.execute("INSERT INTO file_checkpoints VALUES (?, ?, ?, ?, ?, ?, ?)",
                 ("/bots/rb_a/logs/logs_rb.log", "rb_a", 64, 99, 1234, 5.0, "eu-1"))
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [("engine-events", "1700000000123456789"),
                                                         ("engine-events:eu-1", "17"),
                                                         ("unknown_digest_at", "12.5")])
    conn.execute("INSERT INTO incidents (id, rule, key, state, severity, container, summary, fingerprint,"
                 " captures, created, updated)"
                 " VALUES ('inc1', 'r', 'k', 'failed', 'error', 'c', 's', 'f', '{}', 1, 1)")
    conn.close()


def good_state(path: Path, rows: int = 2000) -> None:
    """A real state file with `rows` audit rows (enough pages to cut one in half)."""
    store = State(path)
    for n in range(rows):
        store.incidents.audit(None, "decision", f"filler {n}", {"pad": "x" * 200})
    store.close()


def damage(kind: str, path: Path) -> None:
    """Make `path` a state file of this kind of damage (`read-only` needs `chattr`; undo with
    `chattr -i`)."""
    if kind == "garbage":
        path.write_bytes(os.urandom(4096))
    elif kind == "half":
        good_state(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "foreign":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE notes (x)")
        conn.commit()
        conn.close()
    elif kind == "read-only":
        good_state(path, 10)
        subprocess.run(["chattr", "+i", str(path)], check=True)
    else:
        raise ValueError(f"no such damage: {kind}")


def digest(path: Path) -> str:
    """What must not change: the content and modification time (a folder's entries)."""
    if path.is_dir():
        return "dir:" + ",".join(sorted(os.listdir(path)))
    return hashlib.sha256(path.read_bytes()).hexdigest() + f":{path.stat().st_mtime_ns}"
