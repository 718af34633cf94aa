"""The agent's state in one SQLite file: checkpoints, recorded deploys, incidents and their
audit trail, the notification outbox, errors no rule knows.

One connection per thread (sqlite3 objects are not shared across threads),
WAL so readers never block the writer, and the schema versioned with
``PRAGMA user_version``. A file that cannot be used (not a database, damaged,
empty, a directory, read-only) stops the start with one message naming it and
what to do, and is never modified; only a missing file is new, and it is
created whole. A write that fails while running is logged once, shown on
/healthz, and raised as StateUnwritable so callers can wait for it quietly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agent.names import CREDENTIAL_ROUTE, DEFAULT_STACK, base_name
from agent.state.checkpoints import Checkpoints
from agent.state.file import StateFile
from agent.state.file import StateFileError as StateFileError  # until every caller imports agent.state
from agent.state.file import StateUnwritable as StateUnwritable

log = logging.getLogger(__name__)

PENDING, ANSWERED, LOST = "pending", "answered", "lost"


# The recorder also keeps the answers of credential uploads (CREDENTIAL_ROUTE, no request body):
# evidence for the matcher, never a request a retry may send.
DEPLOYS_ONLY = f"route != '{CREDENTIAL_ROUTE}'"


@dataclass(frozen=True)
class Deploy:
    """One deploy request and, once it came, hummingbot-api's answer, as the recorder saw them.

    `state`: pending (forwarded, no answer yet), answered, or lost (the recorder stopped
    before the answer came). `authenticated`: the request carried hummingbot-api's login
    (checked by the recorder) or its answer proves it did (the deploy handler ran).
    """

    id: int
    at: float
    route: str
    path: str
    request_body: str
    status: int
    response_body: str
    failed: bool
    message: str
    profile: str | None
    instance: str | None
    state: str = ANSWERED
    authenticated: bool = True

    def body(self) -> dict | None:
        """The request body as sent, if it was a JSON object."""
        try:
            value = json.loads(self.request_body)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    @property
    def retryable(self) -> bool:
        """May a retry re-send it? Only an authenticated request that failed, or whose answer
        was lost with the recorder (the failure then shows in hummingbot-api's log)."""
        return self.authenticated and (self.state == LOST or (self.state == ANSWERED and self.failed))


class Store(StateFile):
    def checkpoints(self, stack: str = DEFAULT_STACK) -> Checkpoints:
        """Where each source of a stack resumes."""
        return Checkpoints(self, stack)

    # -- deploys (the recorder) ----------------------------------------------------------------
    _DEPLOY_COLUMNS = ("id, at, route, path, request_body, status, response_body, failed, message, "
                       "profile, instance, state, authenticated")

    @staticmethod
    def _deploy(row: tuple) -> Deploy:
        return Deploy(*row[:7], bool(row[7]), *row[8:12], bool(row[12]))

    def deploy_requested(self, *, route: str, path: str, request_body: str, profile: str | None,
                         instance: str | None, authenticated: bool, at: float | None = None,
                         stack: str = DEFAULT_STACK) -> int:
        """Write ahead: the request is stored before it is forwarded, so a crash before the
        answer never loses it. Returns the record id."""
        cur = self.conn().execute(
            "INSERT INTO deploys (at, route, path, request_body, status, response_body, failed, message,"
            " profile, instance, state, authenticated, stack)"
            " VALUES (?, ?, ?, ?, 0, '', 0, '', ?, ?, ?, ?, ?)",
            (time.time() if at is None else at, route, path, request_body, profile, instance, PENDING,
             int(authenticated), stack))
        return int(cur.lastrowid)

    def deploy_answered(self, deploy_id: int, *, status: int, response_body: str, failed: bool,
                        message: str) -> None:
        """hummingbot-api's answer, which proves the request authenticated (the handler ran).
        Answered records get the next `seq`, the order in which the feed reads them."""
        self.conn().execute(
            "UPDATE deploys SET status = ?, response_body = ?, failed = ?, message = ?, state = ?,"
            " authenticated = 1, seq = (SELECT COALESCE(MAX(seq), 0) + 1 FROM deploys) WHERE id = ?",
            (status, response_body, int(failed), message, ANSWERED, deploy_id))

    def deploy_dropped(self, deploy_id: int) -> None:
        """Not a deploy to keep: refused (401/403, 422...), or hummingbot-api never answered."""
        self.conn().execute("DELETE FROM deploys WHERE id = ?", (deploy_id,))

    def deploys_lost(self, stack: str = DEFAULT_STACK) -> int:
        """At a recorder's start: requests of a previous run whose answers will never come."""
        return self.conn().execute("UPDATE deploys SET state = ? WHERE state = ? AND stack = ?",
                                    (LOST, PENDING, stack)).rowcount

    def record_deploy(self, *, route: str, path: str, request_body: str, status: int,
                      response_body: str, failed: bool, message: str, profile: str | None,
                      instance: str | None, at: float | None = None, stack: str = DEFAULT_STACK) -> int:
        """A whole answered exchange at once (tests, golden samples)."""
        deploy_id = self.deploy_requested(route=route, path=path, request_body=request_body, profile=profile,
                                          instance=instance, authenticated=True, at=at, stack=stack)
        self.deploy_answered(deploy_id, status=status, response_body=response_body, failed=failed,
                             message=message)
        return deploy_id

    def get_deploy(self, deploy_id: int) -> Deploy | None:
        row = self.conn().execute(f"SELECT {self._DEPLOY_COLUMNS} FROM deploys WHERE id = ?",
                                   (deploy_id,)).fetchone()
        return self._deploy(row) if row else None

    def deploys_in_flight(self, instance: str, *, within: float = 600.0,
                          stack: str = DEFAULT_STACK) -> list[Deploy]:
        """Deploys of this instance base name (as the client sent it) forwarded in the last
        `within` seconds and not answered yet, oldest first. Poll `get_deploy(id)` for the answer."""
        rows = self.conn().execute(
            f"SELECT {self._DEPLOY_COLUMNS} FROM deploys WHERE instance = ? AND state = ? AND at >= ?"
            " AND stack = ? ORDER BY id", (instance, PENDING, time.time() - within, stack)).fetchall()
        return [self._deploy(r) for r in rows]

    def deploys_after(self, last_seq: int, limit: int = 100,
                      stack: str = DEFAULT_STACK) -> list[tuple[int, Deploy]]:
        """Answered deploys of a stack in the order their answers came, after `last_seq`."""
        rows = self.conn().execute(
            f"SELECT seq, {self._DEPLOY_COLUMNS} FROM deploys WHERE seq > ? AND stack = ? ORDER BY seq"
            " LIMIT ?", (last_seq, stack, limit)).fetchall()
        return [(r[0], self._deploy(r[1:])) for r in rows]

    def deploy_seq_until(self, until: float, stack: str = DEFAULT_STACK) -> int:
        """The last `seq` of deploys requested before then (the feed's first start skips them)."""
        row = self.conn().execute("SELECT MAX(seq) FROM deploys WHERE at <= ? AND stack = ?",
                                   (until, stack)).fetchone()
        return int(row[0] or 0)

    def find_deploy(self, *, profile: str | None = None, instances: tuple[str, ...] = (),
                    route: str | None = None, since: float = 0.0,
                    until: float | None = None, stack: str = DEFAULT_STACK) -> Deploy | None:
        """The latest deploy a retry may re-send (see `Deploy.retryable`) that fits: by profile, by
        instance name (exactly one of `instances`: the caller gives the logged name and the base
        name the client sent), route and time."""
        where = ["at >= ?", "authenticated = 1", "(state = ? OR (state = ? AND failed = 1))", "stack = ?",
                 DEPLOYS_ONLY]
        args: list = [since, LOST, ANSWERED, stack]
        _narrow(where, args, until, profile, instances)
        if route is not None:
            where.append("route = ?")
            args.append(route)
        row = self.conn().execute(
            f"SELECT {self._DEPLOY_COLUMNS} FROM deploys WHERE {' AND '.join(where)}"
            " ORDER BY at DESC, id DESC LIMIT 1", args).fetchone()
        return self._deploy(row) if row else None

    def deploys_of(self, *, profile: str | None = None, instances: tuple[str, ...] = (), since: float,
                   until: float | None = None, stack: str = DEFAULT_STACK) -> list[Deploy]:
        """Every authenticated deploy request of this profile (or instance names) in the window,
        answered or not, oldest first: an incident retries each one that failed (and waits for
        the answers still to come)."""
        if profile is None and not instances:
            return []
        where, args = ["at >= ?", "authenticated = 1", "stack = ?", DEPLOYS_ONLY], [since, stack]
        _narrow(where, args, until, profile, instances)
        rows = self.conn().execute(
            f"SELECT {self._DEPLOY_COLUMNS} FROM deploys WHERE {' AND '.join(where)} ORDER BY id LIMIT 500",
            args).fetchall()
        return [self._deploy(r) for r in rows]

    def prune_deploys(self, *, max_age: float, max_count: int) -> int:
        """Retention: drop deploys older than `max_age` seconds, and all but the newest
        `max_count` (requests still pending are kept)."""
        conn = self.conn()
        n = conn.execute("DELETE FROM deploys WHERE at < ? AND state != ?",
                         (time.time() - max_age, PENDING)).rowcount
        n += conn.execute(
            "DELETE FROM deploys WHERE state != ? AND id <= (SELECT id FROM deploys WHERE state != ?"
            " ORDER BY id DESC LIMIT 1 OFFSET ?)", (PENDING, PENDING, max_count)).rowcount
        return n

    # -- incidents and the audit trail -----------------------------------------------------------
    def create_incident(self, inc: Incident, events: tuple[str, ...] = ()) -> Incident:
        """The incident and the keys of the event that opened it, in one transaction: a replay
        of that event after a kill finds it, whenever the kill came."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                f"INSERT INTO incidents ({Incident.COLUMNS}) VALUES ({','.join('?' * len(inc.row()))})",
                inc.row())
            self._remember_events(conn, inc.id, events)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return inc

    def save_incident(self, inc: Incident) -> None:
        inc.updated = time.time()
        self.conn().execute(
            "UPDATE incidents SET state=?, captures=?, deploy=?, attempts=?, next_attempt=?,"
            " detail=?, updated=?, closed=?, outage=?, outage_since=? WHERE id=?",
            (inc.state, json.dumps(inc.captures), json.dumps(inc.deploy) if inc.deploy else None,
             inc.attempts, inc.next_attempt, inc.detail, inc.updated, inc.closed, inc.outage,
             inc.outage_since, inc.id))

    @staticmethod
    def _remember_events(conn: sqlite3.Connection, incident: str, events: tuple[str, ...]) -> None:
        now = time.time()
        for key in events:
            conn.execute("INSERT OR IGNORE INTO incident_events (key, incident, at) VALUES (?, ?, ?)",
                         (key, incident, now))

    def incident_of_event(self, events: tuple[str, ...]) -> str | None:
        """The incident an event was already handled by (opened or counted), if any."""
        if not events:
            return None
        row = self.conn().execute(
            f"SELECT incident FROM incident_events WHERE key IN ({','.join('?' * len(events))}) LIMIT 1",
            events).fetchone()
        return row[0] if row else None

    def forget_events(self, before: float) -> int:
        """Keys of events handled long ago (no replay reaches back that far)."""
        return self.conn().execute("DELETE FROM incident_events WHERE at < ?", (before,)).rowcount

    # -- the deploys an incident retries -----------------------------------------------------------
    def incident_deploys(self, incident: str) -> list[dict]:
        rows = self.conn().execute(
            "SELECT deploy_id, base, state, result, sent_at, updated FROM incident_deploys WHERE incident = ?"
            " ORDER BY updated, deploy_id", (incident,)).fetchall()
        return [{"deploy_id": r[0], "base": r[1], "state": r[2], "result": r[3], "sent_at": r[4],
                 "updated": r[5]} for r in rows]

    def mark_incident_deploy(self, incident: str, deploy_id: int, base: str, state: str, result: str = "",
                             sent_at: float | None = None) -> None:
        """`state`: sending (written before the request goes out), done, failed."""
        self.conn().execute(
            "INSERT INTO incident_deploys (incident, deploy_id, base, state, result, sent_at, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (incident, deploy_id, base) DO UPDATE SET"
            " state = excluded.state, result = excluded.result,"
            " sent_at = COALESCE(excluded.sent_at, incident_deploys.sent_at), updated = excluded.updated",
            (incident, deploy_id, base, state, result, sent_at, time.time()))

    def deploys_done(self, deploy_ids: list[int]) -> set[int]:
        """Which of these recorded deploys some incident already retried successfully."""
        if not deploy_ids:
            return set()
        rows = self.conn().execute(
            f"SELECT deploy_id FROM incident_deploys WHERE state = 'done' AND deploy_id IN"
            f" ({','.join('?' * len(deploy_ids))})", deploy_ids).fetchall()
        return {r[0] for r in rows}

    def claim_incident(self, incident: str, from_states: tuple[str, ...], to_state: str) -> bool:
        """Move an incident on only if it is still in one of these states: one actor at a time."""
        marks = ",".join("?" * len(from_states))
        cur = self.conn().execute(
            f"UPDATE incidents SET state = ?, updated = ? WHERE id = ? AND state IN ({marks})",
            (to_state, time.time(), incident, *from_states))
        return cur.rowcount == 1

    def count_event(self, incident: str, events: tuple[str, ...] = ()) -> None:
        """One more matching event: counted in SQL, so no other writer's save can lose it; its keys
        are kept, so its replay is not counted again."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("UPDATE incidents SET events = events + 1, updated = ? WHERE id = ?",
                         (time.time(), incident))
            self._remember_events(conn, incident, events)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _incidents(self, where: str, args: tuple, limit: int = 1) -> list[Incident]:
        rows = self.conn().execute(
            f"SELECT {Incident.COLUMNS} FROM incidents WHERE {where} ORDER BY created DESC LIMIT ?",
            (*args, limit)).fetchall()
        return [Incident.from_row(r) for r in rows]

    def latest_incident(self, rule: str, key: str, stack: str = DEFAULT_STACK) -> Incident | None:
        found = self._incidents("stack = ? AND rule = ? AND key = ?", (stack, rule, key))
        return found[0] if found else None

    def get_incident(self, ident: str) -> Incident | None:
        """By id, or by a unique prefix of it."""
        found = self._incidents("id LIKE ?", (ident.replace("%", "") + "%",), limit=2)
        return found[0] if len(found) == 1 else None

    def incidents(self, limit: int = 50, stack: str | None = None) -> list[Incident]:
        if stack is not None:
            return self._incidents("stack = ?", (stack,), limit)
        return self._incidents("1 = 1", (), limit)

    def ongoing_incidents(self, stack: str = DEFAULT_STACK) -> list[Incident]:
        """Conditions still going on (each ends once its lines stop: see Incident.quiet)."""
        return self._incidents("stack = ? AND state = 'ongoing'", (stack,), limit=500)

    def due_incidents(self, now: float, stack: str = DEFAULT_STACK) -> list[Incident]:
        """Failed attempts whose backoff is over, and incidents waiting out an outage whose next
        look is due (of one stack: each stack has its own worker)."""
        return self._incidents("stack = ? AND state IN ('failed', 'outage') AND next_attempt <= ?",
                               (stack, now), limit=20)

    def audit(self, incident: str | None, kind: str, name: str, params: dict | None = None,
              ok: bool | None = None, result: str = "", duration_ms: float | None = None) -> None:
        self.conn().execute(  # the row carries its incident's stack
            "INSERT INTO audit (incident, at, kind, name, params, ok, result, duration_ms, stack)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, COALESCE((SELECT stack FROM incidents WHERE id = ?), ?))",
            (incident, time.time(), kind, name, json.dumps(params or {}, default=str),
             None if ok is None else int(ok), result, duration_ms, incident, DEFAULT_STACK))

    def audit_trail(self, incident: str) -> list[dict]:
        rows = self.conn().execute(
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
        row = self.conn().execute(
            "SELECT SUM(CASE kind WHEN 'attempt' THEN 1 ELSE -1 END) FROM audit"
            " WHERE kind IN ('attempt', 'refund') AND at >= ? AND stack = ?", (since, stack)).fetchone()
        return max(0, int(row[0] or 0))


    # -- the notification outbox -----------------------------------------------------------------
    _OUTBOX_COLUMNS = ("id, incident, rule, target, message, status, created, attempts, next_at,"
                       " sent_at, last_error")

    def outbox_enqueue(self, *, incident: str | None, rule: str, target: str, message: str,
                       status: str = "pending", stack: str = DEFAULT_STACK) -> int:
        now = time.time()
        cur = self.conn().execute(
            "INSERT INTO outbox (incident, rule, target, message, status, created, next_at, stack)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (incident, rule, target, message, status, now, now, stack))
        return int(cur.lastrowid)

    def outbox_due(self, now: float, limit: int = 50) -> list[tuple]:
        """Messages to send now: only the first pending one of each incident and target, so an
        incident's messages arrive in the order of its steps; the stacks take turns (each one's
        oldest first, then each one's second...), so a stack with many messages never makes
        another's wait behind all of them."""
        return self.conn().execute(
            f"SELECT {self._OUTBOX_COLUMNS} FROM (SELECT *,"
            " ROW_NUMBER() OVER (PARTITION BY stack ORDER BY id) AS turn"
            " FROM outbox AS o WHERE status = 'pending' AND next_at <= ?"
            " AND NOT EXISTS (SELECT 1 FROM outbox AS e WHERE e.status = 'pending' AND e.target = o.target"
            " AND e.incident IS o.incident AND e.id < o.id))"
            " ORDER BY turn, id LIMIT ?", (now, limit)).fetchall()

    def outbox_retry_now(self, target: str) -> None:
        """A target answers again: everything waiting for it is due now (its backoff is over)."""
        self.conn().execute("UPDATE outbox SET next_at = 0 WHERE target = ? AND status = 'pending'"
                             " AND next_at > 0", (target,))

    def outbox_mark(self, row_id: int, *, status: str, attempts: int, next_at: float,
                    error: str = "") -> None:
        self.conn().execute(
            "UPDATE outbox SET status = ?, attempts = ?, next_at = ?, last_error = ?,"
            " sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END WHERE id = ?",
            (status, attempts, next_at, error, status, time.time(), row_id))

    def outbox_recent(self, rule: str, since: float, stack: str = DEFAULT_STACK) -> int:
        """Messages of a rule in a stack since then (one per step, whatever the number of targets)."""
        return int(self.conn().execute(
            "SELECT COUNT(DISTINCT message) FROM outbox WHERE rule = ? AND stack = ? AND created >= ?"
            " AND status != 'held'", (rule, stack, since)).fetchone()[0])

    def outbox_held(self) -> list[tuple]:
        return self.conn().execute(
            f"SELECT {self._OUTBOX_COLUMNS} FROM outbox WHERE status = 'held' ORDER BY id").fetchall()

    def outbox_oldest_pending(self) -> float | None:
        row = self.conn().execute("SELECT MIN(created) FROM outbox WHERE status = 'pending'").fetchone()
        return row[0] if row else None

    def action_counts(self) -> dict[tuple[str, str, bool], int]:
        """(stack, action, ok) -> how many."""
        rows = self.conn().execute(
            "SELECT stack, name, ok, COUNT(*) FROM audit WHERE kind IN ('action', 'verify', 'retry')"
            " AND ok IS NOT NULL GROUP BY stack, name, ok").fetchall()
        return {(stack, name, bool(ok)): n for stack, name, ok, n in rows}

    def open_incident_counts(self) -> dict[tuple[str, str], int]:
        """(stack, rule) -> incidents not closed."""
        marks = ",".join("?" * len(OPEN_STATES))
        rows = self.conn().execute(
            f"SELECT stack, rule, COUNT(*) FROM incidents WHERE state IN ({marks}) GROUP BY stack, rule",
            OPEN_STATES).fetchall()
        return {(stack, rule): n for stack, rule, n in rows}

    def outbox_counts(self) -> dict[str, int]:
        return dict(self.conn().execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())

    # -- errors no rule knows -------------------------------------------------------------------
    def unknown_get(self, stack: str, fingerprint: str) -> Unknown | None:
        row = self.conn().execute(
            f"SELECT {Unknown.COLUMNS} FROM unknown WHERE stack = ? AND fingerprint = ?",
            (stack, fingerprint)).fetchone()
        return Unknown.from_row(row) if row else None

    def unknown_find(self, fingerprint: str) -> list[Unknown]:
        """By fingerprint, or a unique prefix of it (in any stack), most recently seen first."""
        rows = self.conn().execute(
            f"SELECT {Unknown.COLUMNS} FROM unknown WHERE fingerprint = ? ORDER BY last_seen DESC",
            (fingerprint,)).fetchall()
        if not rows:
            rows = self.conn().execute(
                f"SELECT {Unknown.COLUMNS} FROM unknown WHERE fingerprint LIKE ? ESCAPE '\\'"
                " ORDER BY last_seen DESC", (_like_prefix(fingerprint),)).fetchall()
            if len({r[1] for r in rows}) > 1:
                return []
        return [Unknown.from_row(r) for r in rows]

    def unknown_list(self, since: float = 0.0, limit: int = 1000) -> list[Unknown]:
        """Seen since then, most frequent first."""
        rows = self.conn().execute(
            f"SELECT {Unknown.COLUMNS} FROM unknown WHERE last_seen >= ?"
            " ORDER BY count DESC, last_seen DESC LIMIT ?", (since, limit)).fetchall()
        return [Unknown.from_row(r) for r in rows]

    def unknown_save(self, entries: list[Unknown], keep: int) -> int:
        """Write entries whole (the agent is their only writer); then drop the least recently
        seen beyond `keep` of each stack written (a stack full of new errors never pushes out
        another's). Returns how many were dropped."""
        conn = self.conn()
        conn.execute("BEGIN")
        try:
            conn.executemany(
                f"INSERT OR REPLACE INTO unknown ({Unknown.COLUMNS}) VALUES"
                f" ({','.join('?' * len(Unknown.COLUMNS.split(',')))})", [e.row() for e in entries])
            dropped = 0
            for stack in sorted({e.stack for e in entries}):
                dropped += conn.execute(
                    "DELETE FROM unknown WHERE rowid IN (SELECT rowid FROM unknown WHERE stack = ?"
                    " ORDER BY last_seen DESC LIMIT -1 OFFSET ?)", (stack, keep)).rowcount
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # a failed write has closed the connection
                conn.execute("ROLLBACK")
            raise
        return dropped

    def unknown_mark_digested(self, keys: list[tuple[str, str, int]]) -> None:
        """(stack, fingerprint, count) included in a digest: later digests count from there."""
        self.conn().executemany("UPDATE unknown SET digested = ? WHERE stack = ? AND fingerprint = ?",
                                 [(n, stack, fp) for stack, fp, n in keys])

    def unknown_count(self) -> int:
        return int(self.conn().execute("SELECT COUNT(*) FROM unknown").fetchone()[0])

    def meta_get(self, key: str) -> str | None:
        row = self.conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def meta_set(self, key: str, value: str) -> None:
        self.conn().execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def _narrow(where: list[str], args: list, until: float | None, profile: str | None,
            instances: tuple[str, ...]) -> None:
    """The deploy queries' common conditions: before `until`, of this profile, of these instances."""
    if until is not None:
        where.append("at <= ?")
        args.append(until)
    if profile is not None:
        where.append("profile = ?")
        args.append(profile)
    if instances:
        where.append(f"instance IN ({','.join('?' * len(instances))})")
        args += list(instances)


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass
class Unknown:
    """One error no rule knows, as stored: counted by fingerprint, with up to 3 samples
    (redacted and size-capped: the first, one in between, the latest)."""

    stack: str
    fingerprint: str
    container: str  # where it was seen last
    containers: list[str]  # every container it was seen in (the latest first, a few at most)
    stream: str
    kind: str  # line | traceback | response
    logger: str | None
    level: str | None
    exceptions: list[str]  # the chain, the outermost last
    summary: str  # one line: the outermost exception, or the record's message
    count: int
    first_seen: float
    last_seen: float
    samples: list[dict] = field(default_factory=list)  # {"at", "container", "stream", "text"}
    digested: int = 0  # the count when it was last in a digest
    burst_at: float | None = None  # when its burst message went out
    role: str = "hummingbot-api"  # what wrote it: hummingbot-api, bot, sibling, recorder

    COLUMNS: ClassVar[str] = ("stack, fingerprint, container, containers, stream, kind, logger, level,"
                              " exceptions, summary, count, first_seen, last_seen, samples, digested,"
                              " burst_at, role")

    def row(self) -> tuple:
        return (self.stack, self.fingerprint, self.container, json.dumps(self.containers), self.stream,
                self.kind, self.logger, self.level, json.dumps(self.exceptions), self.summary, self.count,
                self.first_seen, self.last_seen, json.dumps(self.samples), self.digested, self.burst_at,
                self.role)

    @classmethod
    def from_row(cls, r: tuple) -> Unknown:
        return cls(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7], json.loads(r[8]), r[9],
                   r[10], r[11], r[12], json.loads(r[13]), r[14], r[15], r[16])


# ongoing: a condition that lasts (an exchange out of reach) and ends by itself (Incident.quiet).
OPEN_STATES = ("detected", "acting", "verifying", "retrying", "failed", "waiting", "outage", "ongoing")


@dataclass
class Incident:
    """One incident per (rule, key) at a time; its row in the state file."""

    id: str
    rule: str
    key: str
    state: str
    severity: str
    container: str
    summary: str
    fingerprint: str
    captures: dict
    deploy: dict | None = None
    attempts: int = 0
    events: int = 1
    next_attempt: float = 0.0
    detail: str = ""
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    closed: float | None = None
    outage: str | None = None  # what it waits for: "hummingbot-api" or "the Docker engine"
    outage_since: float | None = None
    stack: str = DEFAULT_STACK

    COLUMNS: ClassVar[str] = ("id, rule, key, state, severity, container, summary, fingerprint, captures,"
                              " deploy, attempts, events, next_attempt, detail, created, updated, closed,"
                              " outage, outage_since, stack")

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES

    def values(self) -> dict[str, Any]:
        """What a rule's templates may name, for this incident (remedy and notify both render them)."""
        values: dict[str, Any] = {"container": self.container, "rule": self.rule, "severity": self.severity,
                                  "bot": base_name(self.container), "stack": self.stack}
        values.update(self.captures)
        if self.deploy and self.deploy.get("body"):
            values.update({f"deploy.{k}": v for k, v in self.deploy["body"].items()})
        return values

    def row(self) -> tuple:
        return (self.id, self.rule, self.key, self.state, self.severity, self.container, self.summary,
                self.fingerprint, json.dumps(self.captures),
                json.dumps(self.deploy) if self.deploy else None, self.attempts, self.events,
                self.next_attempt, self.detail, self.created, self.updated, self.closed, self.outage,
                self.outage_since, self.stack)

    @classmethod
    def from_row(cls, r: tuple) -> Incident:
        return cls(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8]),
                   json.loads(r[9]) if r[9] else None, *r[10:])

