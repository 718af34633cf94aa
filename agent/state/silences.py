"""Silences: a rule's, or one incident's and its repeats', messages held back until a time a
person chose from the chat. Fixes go on as the mode says: a silence mutes, it never stops."""

from __future__ import annotations

import time
from dataclasses import dataclass

from agent.state.file import StateFile


@dataclass(frozen=True)
class Silence:
    rule: str
    key: str | None  # None: every incident of the rule; else the incident's key (it and its repeats)
    stack: str | None  # None: every stack
    until: float
    by: str
    incident: str = ""  # the incident it was asked for, if any


class Silences:
    def __init__(self, file: StateFile) -> None:
        self._file = file

    def add(self, s: Silence) -> None:
        with self._file.transaction() as conn:
            conn.execute("DELETE FROM silences WHERE rule = ? AND key IS ? AND stack IS ?",
                         (s.rule, s.key, s.stack))
            conn.execute("INSERT INTO silences (rule, key, stack, until, by, incident, at) VALUES"
                         " (?, ?, ?, ?, ?, ?, ?)",
                         (s.rule, s.key, s.stack, s.until, s.by, s.incident, time.time()))

    def active(self, now: float | None = None) -> list[Silence]:
        now = time.time() if now is None else now
        rows = self._file.conn().execute(
            "SELECT rule, key, stack, until, by, incident FROM silences WHERE until > ? ORDER BY until",
            (now,)).fetchall()
        return [Silence(*r) for r in rows]

    def covers(self, rule: str, key: str, stack: str, now: float | None = None) -> Silence | None:
        """The silence that holds back this incident's messages now, if any."""
        now = time.time() if now is None else now
        row = self._file.conn().execute(
            "SELECT rule, key, stack, until, by, incident FROM silences WHERE rule = ? AND until > ?"
            " AND (key IS NULL OR key = ?) AND (stack IS NULL OR stack = ?) LIMIT 1",
            (rule, now, key, stack)).fetchone()
        return None if row is None else Silence(*row)

    def remove(self, rule: str | None = None, key: str | None = None) -> int:
        """End silences: all, a rule's (key None: every one of it) or one incident key's."""
        if rule is None:
            return self._file.conn().execute("DELETE FROM silences").rowcount
        if key is None:
            return self._file.conn().execute("DELETE FROM silences WHERE rule = ?", (rule,)).rowcount
        return self._file.conn().execute("DELETE FROM silences WHERE rule = ? AND key = ?",
                                         (rule, key)).rowcount
