"""Incidents and what belongs to each: the keys of the events it was opened or counted for,
the failed deploys it retries, and the audit trail of what was decided and done (its
attempts are what a stack's budget counts)."""

from __future__ import annotations

import json
import sqlite3
import time

from agent.names import DEFAULT_STACK
from agent.records import OPEN_STATES, Incident, IncidentState
from agent.state.file import StateFile

COLUMNS = ("id, rule, key, state, severity, container, summary, fingerprint, captures, deploy, attempts,"
           " events, next_attempt, detail, created, updated, closed, outage, outage_since, stack, opened_by")


def _row(inc: Incident) -> tuple:
    return (inc.id, inc.rule, inc.key, str(inc.state), inc.severity, inc.container, inc.summary,
            inc.fingerprint, json.dumps(inc.captures), json.dumps(inc.deploy) if inc.deploy else None,
            inc.attempts, inc.events, inc.next_attempt, inc.detail, inc.created, inc.updated, inc.closed,
            inc.outage, inc.outage_since, inc.stack, json.dumps(inc.opened_by))


def _incident(r: tuple) -> Incident:
    return Incident(r[0], r[1], r[2], IncidentState(r[3]), r[4], r[5], r[6], r[7], json.loads(r[8]),
                    json.loads(r[9]) if r[9] else None, *r[10:20], json.loads(r[20]))


def mark_deploy(conn: sqlite3.Connection, incident: str, deploy_id: int, base: str, state: str,
                result: str = "", sent_at: float | None = None) -> None:
    """An incident's deploy and where its re-send stands, on a connection that may be inside a
    transaction."""
    conn.execute(
        "INSERT INTO incident_deploys (incident, deploy_id, base, state, result, sent_at, updated)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (incident, deploy_id, base) DO UPDATE SET"
        " state = excluded.state, result = excluded.result,"
        " sent_at = COALESCE(excluded.sent_at, incident_deploys.sent_at), updated = excluded.updated",
        (incident, deploy_id, base, state, result, sent_at, time.time()))


def _remember_events(conn: sqlite3.Connection, incident: str, events: tuple[str, ...]) -> None:
    now = time.time()
    for key in events:
        conn.execute("INSERT OR IGNORE INTO incident_events (key, incident, at) VALUES (?, ?, ?)",
                     (key, incident, now))


class Incidents:
    def __init__(self, file: StateFile) -> None:
        self._file = file

    def create(self, inc: Incident, events: tuple[str, ...] = ()) -> Incident:
        """The incident and the keys of the event that opened it, in one transaction: a replay
        of that event after a kill finds it, whenever the kill came."""
        with self._file.transaction() as conn:
            conn.execute(f"INSERT INTO incidents ({COLUMNS}) VALUES ({','.join('?' * len(_row(inc)))})",
                         _row(inc))
            _remember_events(conn, inc.id, events)
        return inc

    def save(self, inc: Incident) -> None:
        inc.updated = time.time()
        self._file.conn().execute(
            "UPDATE incidents SET state=?, captures=?, deploy=?, attempts=?, next_attempt=?,"
            " detail=?, updated=?, closed=?, outage=?, outage_since=? WHERE id=?",
            (inc.state, json.dumps(inc.captures), json.dumps(inc.deploy) if inc.deploy else None,
             inc.attempts, inc.next_attempt, inc.detail, inc.updated, inc.closed, inc.outage,
             inc.outage_since, inc.id))

    def of_event(self, events: tuple[str, ...]) -> str | None:
        """The incident an event was already handled by (opened or counted), if any."""
        if not events:
            return None
        row = self._file.conn().execute(
            f"SELECT incident FROM incident_events WHERE key IN ({','.join('?' * len(events))}) LIMIT 1",
            events).fetchone()
        return row[0] if row else None

    def forget_events(self, before: float) -> int:
        """Keys of events handled long ago (no replay reaches back that far)."""
        return self._file.conn().execute("DELETE FROM incident_events WHERE at < ?", (before,)).rowcount

    # -- the deploys an incident retries
    def deploys(self, incident: str) -> list[dict]:
        rows = self._file.conn().execute(
            "SELECT deploy_id, base, state, result, sent_at, updated FROM incident_deploys WHERE incident = ?"
            " ORDER BY updated, deploy_id", (incident,)).fetchall()
        return [{"deploy_id": r[0], "base": r[1], "state": r[2], "result": r[3], "sent_at": r[4],
                 "updated": r[5]} for r in rows]

    def mark_deploy(self, incident: str, deploy_id: int, base: str, state: str, result: str = "",
                    sent_at: float | None = None) -> None:
        """`state`: sending (written before the request goes out), done, failed."""
        mark_deploy(self._file.conn(), incident, deploy_id, base, state, result, sent_at)

    def deploys_done(self, deploy_ids: list[int]) -> set[int]:
        """Which of these recorded deploys some incident already retried successfully."""
        if not deploy_ids:
            return set()
        rows = self._file.conn().execute(
            f"SELECT deploy_id FROM incident_deploys WHERE state = 'done' AND deploy_id IN"
            f" ({','.join('?' * len(deploy_ids))})", deploy_ids).fetchall()
        return {r[0] for r in rows}

    def claim(self, incident: str, from_states: tuple[IncidentState, ...],
              to_state: IncidentState) -> bool:
        """Move an incident on only if it is still in one of these states: one actor at a time."""
        marks = ",".join("?" * len(from_states))
        cur = self._file.conn().execute(
            f"UPDATE incidents SET state = ?, updated = ? WHERE id = ? AND state IN ({marks})",
            (to_state, time.time(), incident, *from_states))
        return cur.rowcount == 1

    def reopen(self, incident: str, from_state: IncidentState) -> bool:
        """A closed incident tried again by hand (a person's retry): its next attempt due now, if it
        is still where the person saw it."""
        cur = self._file.conn().execute(
            "UPDATE incidents SET state = ?, next_attempt = ?, closed = NULL, updated = ? WHERE id = ?"
            " AND state = ?", (IncidentState.FAILED, time.time(), time.time(), incident, from_state))
        return cur.rowcount == 1

    def count_event(self, incident: str, events: tuple[str, ...] = ()) -> None:
        """One more matching event: counted in SQL, so no other writer's save can lose it; its keys
        are kept, so its replay is not counted again."""
        with self._file.transaction() as conn:
            conn.execute("UPDATE incidents SET events = events + 1, updated = ? WHERE id = ?",
                         (time.time(), incident))
            _remember_events(conn, incident, events)

    def _select(self, where: str, args: tuple, limit: int = 1) -> list[Incident]:
        rows = self._file.conn().execute(
            f"SELECT {COLUMNS} FROM incidents WHERE {where} ORDER BY created DESC LIMIT ?",
            (*args, limit)).fetchall()
        return [_incident(r) for r in rows]

    def latest(self, rule: str, key: str, stack: str = DEFAULT_STACK) -> Incident | None:
        found = self._select("stack = ? AND rule = ? AND key = ?", (stack, rule, key))
        return found[0] if found else None

    def get(self, ident: str) -> Incident | None:
        """By id, or by a unique prefix of it."""
        found = self._select("id LIKE ?", (ident.replace("%", "") + "%",), limit=2)
        return found[0] if len(found) == 1 else None

    def recent(self, limit: int = 50, stack: str | None = None) -> list[Incident]:
        if stack is not None:
            return self._select("stack = ?", (stack,), limit)
        return self._select("1 = 1", (), limit)

    def ongoing(self, stack: str = DEFAULT_STACK) -> list[Incident]:
        """Conditions still going on (each ends once its lines stop: see Incident.quiet)."""
        return self._select("stack = ? AND state = ?", (stack, IncidentState.ONGOING), limit=500)

    def due(self, now: float, stack: str = DEFAULT_STACK) -> list[Incident]:
        """Failed attempts whose backoff is over, and incidents waiting out an outage whose next
        look is due (of one stack: each stack has its own worker)."""
        return self._select("stack = ? AND state IN (?, ?) AND next_attempt <= ?",
                            (stack, IncidentState.FAILED, IncidentState.OUTAGE, now), limit=20)

    def audit(self, incident: str | None, kind: str, name: str, params: dict | None = None,
              ok: bool | None = None, result: str = "", duration_ms: float | None = None) -> None:
        self._file.conn().execute(  # the row carries its incident's stack
            "INSERT INTO audit (incident, at, kind, name, params, ok, result, duration_ms, stack)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, COALESCE((SELECT stack FROM incidents WHERE id = ?), ?))",
            (incident, time.time(), kind, name, json.dumps(params or {}, default=str),
             None if ok is None else int(ok), result, duration_ms, incident, DEFAULT_STACK))

    def audit_trail(self, incident: str) -> list[dict]:
        rows = self._file.conn().execute(
            "SELECT at, kind, name, params, ok, result, duration_ms FROM audit WHERE incident = ?"
            " ORDER BY id", (incident,)).fetchall()
        return [{"at": r[0], "kind": r[1], "name": r[2], "params": json.loads(r[3]),
                 "ok": None if r[4] is None else bool(r[4]), "result": r[5], "duration_ms": r[6]}
                for r in rows]

    def attempts_since(self, since: float, stack: str = DEFAULT_STACK) -> int:
        """Fix attempts started since then, all incidents of a stack together: its budget counts
        these (one attempt is one unit, whatever the number of its steps), less the ones given
        back (an attempt cut short by a restart, or that found hummingbot-api or the engine
        not answering, fixed nothing)."""
        row = self._file.conn().execute(
            "SELECT SUM(CASE kind WHEN 'attempt' THEN 1 ELSE -1 END) FROM audit"
            " WHERE kind IN ('attempt', 'refund') AND at >= ? AND stack = ?", (since, stack)).fetchone()
        return max(0, int(row[0] or 0))


    def action_counts(self) -> dict[tuple[str, str, bool], int]:
        """(stack, action, ok) -> how many."""
        rows = self._file.conn().execute(
            "SELECT stack, name, ok, COUNT(*) FROM audit WHERE kind IN ('action', 'verify', 'retry')"
            " AND ok IS NOT NULL GROUP BY stack, name, ok").fetchall()
        return {(stack, name, bool(ok)): n for stack, name, ok, n in rows}

    def open_counts(self) -> dict[tuple[str, str], int]:
        """(stack, rule) -> incidents not closed."""
        marks = ",".join("?" * len(OPEN_STATES))
        rows = self._file.conn().execute(
            f"SELECT stack, rule, COUNT(*) FROM incidents WHERE state IN ({marks}) GROUP BY stack, rule",
            sorted(OPEN_STATES)).fetchall()
        return {(stack, rule): n for stack, rule, n in rows}
