"""The agent's state in one SQLite file: checkpoints now, incidents and the rest later.

One connection per thread (sqlite3 objects are not shared across threads),
WAL so readers never block the writer, and the schema versioned with
``PRAGMA user_version``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = [
    # version 1
    """
    CREATE TABLE checkpoints (
        container    TEXT PRIMARY KEY,
        container_id TEXT NOT NULL,
        stdout_ts    INTEGER NOT NULL,
        stdout_dup   INTEGER NOT NULL,
        stderr_ts    INTEGER NOT NULL,
        stderr_dup   INTEGER NOT NULL,
        updated      REAL NOT NULL
    )
    """,
]

DUP_BITS = 10  # a line position is ts_ns << DUP_BITS | index among lines of that ns


@dataclass(frozen=True)
class Checkpoint:
    """Per stream, the position of the first line not yet handled."""

    container: str
    container_id: str
    stdout: int
    stderr: int

    @property
    def since_ns(self) -> int:
        return min(self.stdout, self.stderr) >> DUP_BITS


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def _migrate(self) -> None:
        conn = self._conn()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, ddl in enumerate(SCHEMA[version:], start=version + 1):
            with conn:
                conn.execute("BEGIN")
                conn.execute(ddl)
                conn.execute(f"PRAGMA user_version = {number}")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- checkpoints ------------------------------------------------------------------
    def checkpoint(self, container: str) -> Checkpoint | None:
        row = self._conn().execute(
            "SELECT container_id, stdout_ts, stdout_dup, stderr_ts, stderr_dup FROM checkpoints"
            " WHERE container = ?", (container,)).fetchone()
        if row is None:
            return None
        cid, ots, odup, ets, edup = row
        return Checkpoint(container, cid, ots << DUP_BITS | odup, ets << DUP_BITS | edup)

    def save_checkpoint(self, cp: Checkpoint) -> None:
        mask = (1 << DUP_BITS) - 1
        self._conn().execute(
            "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(container) DO UPDATE SET"
            " container_id=excluded.container_id, stdout_ts=excluded.stdout_ts,"
            " stdout_dup=excluded.stdout_dup, stderr_ts=excluded.stderr_ts,"
            " stderr_dup=excluded.stderr_dup, updated=excluded.updated",
            (cp.container, cp.container_id, cp.stdout >> DUP_BITS, cp.stdout & mask,
             cp.stderr >> DUP_BITS, cp.stderr & mask, time.time()))
