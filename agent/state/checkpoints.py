"""Where each source resumes after a restart, one table for all of them: (stack, source, key)
-> position, a JSON object whose shape the source decides.

The sources and their positions:
  "container"      key: the container's name   {"container_id": str, "stdout": int, "stderr": int}
                   (line positions: ts_ns << DUP_BITS | index among the lines of that ns)
  "file"           key: the file's path        {"container": str, "dev": int, "ino": int, "offset": int}
  "engine-events"  key: ""                     {"since": int} (ns of the last event handled)
  "deploys"        key: ""                     {"seq": int} (the last recorded deploy handled)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from agent.names import DEFAULT_STACK
from agent.state.file import StateFile


class Checkpoints:
    """The checkpoints of one stack."""

    def __init__(self, file: StateFile, stack: str = DEFAULT_STACK) -> None:
        self._file = file
        self.stack = stack

    def get(self, source: str, key: str) -> dict[str, Any] | None:
        row = self._file.conn().execute(
            "SELECT position FROM checkpoints WHERE stack = ? AND source = ? AND key = ?",
            (self.stack, source, key)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, source: str, key: str, position: dict[str, Any]) -> None:
        self._file.conn().execute(_PUT, (self.stack, source, key, json.dumps(position), time.time()))

    def put_many(self, items: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Several positions in one transaction: all of them move, or none."""
        now = time.time()
        rows = [(self.stack, source, key, json.dumps(position), now) for source, key, position in items]
        if not rows:
            return
        with self._file.transaction() as conn:
            conn.executemany(_PUT, rows)


_PUT = ("INSERT INTO checkpoints (stack, source, key, position, updated) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (stack, source, key) DO UPDATE SET position = excluded.position,"
        " updated = excluded.updated")
