"""The notification outbox: every message is written before it is sent, so nothing is lost
to an outage or a restart. A message's status (pending, sent, held, failed...) is the
outbox's own, not an incident's state."""

from __future__ import annotations

import time

from agent.names import DEFAULT_STACK
from agent.state.file import StateFile

COLUMNS = "id, incident, rule, target, message, status, created, attempts, next_at, sent_at, last_error"


class Outbox:
    def __init__(self, file: StateFile) -> None:
        self._file = file

    def enqueue(self, *, incident: str | None, rule: str, target: str, message: str,
                status: str = "pending", stack: str = DEFAULT_STACK, next_at: float | None = None) -> int:
        """`next_at`: a folded message's bound (see release_folded)."""
        now = time.time()
        cur = self._file.conn().execute(
            "INSERT INTO outbox (incident, rule, target, message, status, created, next_at, stack)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (incident, rule, target, message, status, now, now if next_at is None else next_at, stack))
        return int(cur.lastrowid)

    def due(self, now: float, limit: int = 50, skip: frozenset[str] | set[str] = frozenset()) -> list[tuple]:
        """Messages to send now: only the first pending one of each incident and target, so an
        incident's messages arrive in the order of its steps; the stacks take turns (each one's
        oldest first, then each one's second...), so a stack with many messages never makes
        another's wait behind all of them. Targets in `skip` wait (down or rate limited): their
        messages never crowd out another target's."""
        skipped = sorted(skip)
        return self._file.conn().execute(
            f"SELECT {COLUMNS} FROM (SELECT *,"
            " ROW_NUMBER() OVER (PARTITION BY stack ORDER BY id) AS turn"
            " FROM outbox AS o WHERE status = 'pending' AND next_at <= ?"
            f" AND target NOT IN ({', '.join('?' * len(skipped))})"
            " AND NOT EXISTS (SELECT 1 FROM outbox AS e WHERE e.status = 'pending' AND e.target = o.target"
            " AND e.incident IS o.incident AND e.id < o.id))"
            " ORDER BY turn, id LIMIT ?", (now, *skipped, limit)).fetchall()

    def next_tries(self, now: float) -> dict[str, tuple[float, str]]:
        """Targets whose next try is still ahead (a message of theirs failed): target -> (when,
        that message's error). What a restart needs to keep a target's backoff or rate limit."""
        rows = self._file.conn().execute(
            "SELECT target, next_at, last_error FROM outbox WHERE status = 'pending' AND next_at > ?"
            " ORDER BY next_at", (now,)).fetchall()
        return {target: (next_at, error or "") for target, next_at, error in rows}

    def retry_now(self, target: str) -> None:
        """A target answers again: everything waiting for it is due now (its backoff is over)."""
        self._file.conn().execute("UPDATE outbox SET next_at = 0 WHERE target = ? AND status = 'pending'"
                                  " AND next_at > 0", (target,))

    def mark(self, row_id: int, *, status: str, attempts: int, next_at: float,
             error: str = "") -> None:
        self._file.conn().execute(
            "UPDATE outbox SET status = ?, attempts = ?, next_at = ?, last_error = ?,"
            " sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END WHERE id = ?",
            (status, attempts, next_at, error, status, time.time(), row_id))

    def fold_in(self, incident: str, target: str) -> int:
        """The incident's folded messages to a target are told by the message queued now (it lists
        the steps so far): they are not sent on their own."""
        return self._file.conn().execute(
            "UPDATE outbox SET status = 'folded-in' WHERE status = 'folded' AND incident = ? AND target = ?",
            (incident, target)).rowcount

    def release_folded(self, now: float) -> int:
        """Folded messages whose bound passed with no later message of their incident: sent as they
        are (before anything of that incident queued later: they are older)."""
        return self._file.conn().execute(
            "UPDATE outbox SET status = 'pending' WHERE status = 'folded' AND next_at <= ?", (now,)).rowcount

    def recent(self, rule: str, since: float, stack: str = DEFAULT_STACK) -> int:
        """Messages of a rule in a stack since then (one per step, whatever the number of targets)."""
        return int(self._file.conn().execute(
            "SELECT COUNT(DISTINCT message) FROM outbox WHERE rule = ? AND stack = ? AND created >= ?"
            " AND status != 'held'", (rule, stack, since)).fetchone()[0])

    def of_incident(self, incident: str, targets: list[str]) -> list[str]:
        """The messages queued for an incident (whatever became of them): what it was told, in
        the order of its steps."""
        if not targets:
            return []
        marks = ",".join("?" * len(targets))
        return [r[0] for r in self._file.conn().execute(
            f"SELECT message FROM outbox WHERE target IN ({marks}) AND incident = ?"
            " GROUP BY message ORDER BY MIN(id)", (*targets, incident)).fetchall()]

    def held(self) -> list[tuple]:
        return self._file.conn().execute(
            f"SELECT {COLUMNS} FROM outbox WHERE status = 'held' ORDER BY id").fetchall()

    def oldest_pending(self) -> float | None:
        row = self._file.conn().execute("SELECT MIN(created) FROM outbox WHERE status = 'pending'").fetchone()
        return row[0] if row else None

    def counts(self) -> dict[str, int]:
        rows = self._file.conn().execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall()
        return dict(rows)
