"""The deploy requests the recorder saw and hummingbot-api's answers (never the Authorization
header): written ahead, kept only when the answer proves the request authenticated."""

from __future__ import annotations

import sqlite3
import time

from agent.names import DEFAULT_STACK, EVIDENCE_ROUTES
from agent.records import ANSWERED, LOST, PENDING, Deploy
from agent.state.file import StateFile

COLUMNS = ("id, at, route, path, request_body, status, response_body, failed, message, profile, instance,"
           " state, authenticated")

# The recorder also keeps the answers of credential uploads (no request body) and 404s on routes of
# another generation (EVIDENCE_ROUTES): evidence for the matcher, never a request a retry may send.
DEPLOYS_ONLY = "route NOT IN ({})".format(", ".join(f"'{r}'" for r in EVIDENCE_ROUTES))


def _deploy(row: tuple) -> Deploy:
    return Deploy(*row[:7], bool(row[7]), *row[8:12], bool(row[12]))


def insert_request(conn: sqlite3.Connection, *, route: str, path: str, request_body: str,
                   profile: str | None, instance: str | None, authenticated: bool, at: float,
                   stack: str) -> int:
    """A request written ahead (pending), on a connection that may be inside a transaction."""
    cur = conn.execute(
        "INSERT INTO deploys (at, route, path, request_body, status, response_body, failed, message,"
        " profile, instance, state, authenticated, stack)"
        " VALUES (?, ?, ?, ?, 0, '', 0, '', ?, ?, ?, ?, ?)",
        (at, route, path, request_body, profile, instance, PENDING, int(authenticated), stack))
    return int(cur.lastrowid)


def in_flight(conn: sqlite3.Connection, instance: str, *, within: float, stack: str) -> list[Deploy]:
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM deploys WHERE instance = ? AND state = ? AND at >= ?"
        " AND stack = ? ORDER BY id", (instance, PENDING, time.time() - within, stack)).fetchall()
    return [_deploy(r) for r in rows]


class Deploys:
    def __init__(self, file: StateFile) -> None:
        self._file = file

    def requested(self, *, route: str, path: str, request_body: str, profile: str | None,
                  instance: str | None, authenticated: bool, at: float | None = None,
                  stack: str = DEFAULT_STACK) -> int:
        """Write ahead: the request is stored before it is forwarded, so a crash before the
        answer never loses it. Returns the record id."""
        return insert_request(self._file.conn(), route=route, path=path, request_body=request_body,
                              profile=profile, instance=instance, authenticated=authenticated,
                              at=time.time() if at is None else at, stack=stack)

    def answered(self, deploy_id: int, *, status: int, response_body: str, failed: bool,
                 message: str) -> None:
        """hummingbot-api's answer, which proves the request authenticated (the handler ran).
        Answered records get the next `seq`, the order in which the feed reads them."""
        self._file.conn().execute(
            "UPDATE deploys SET status = ?, response_body = ?, failed = ?, message = ?, state = ?,"
            " authenticated = 1, seq = (SELECT COALESCE(MAX(seq), 0) + 1 FROM deploys) WHERE id = ?",
            (status, response_body, int(failed), message, ANSWERED, deploy_id))

    def drop(self, deploy_id: int) -> None:
        """Not a deploy to keep: refused (401/403, 422...), or hummingbot-api never answered."""
        self._file.conn().execute("DELETE FROM deploys WHERE id = ?", (deploy_id,))

    def mark_lost(self, stack: str = DEFAULT_STACK) -> int:
        """At a recorder's start: requests of a previous run whose answers will never come."""
        return self._file.conn().execute("UPDATE deploys SET state = ? WHERE state = ? AND stack = ?",
                                    (LOST, PENDING, stack)).rowcount

    def record(self, *, route: str, path: str, request_body: str, status: int,
               response_body: str, failed: bool, message: str, profile: str | None,
               instance: str | None, at: float | None = None, stack: str = DEFAULT_STACK) -> int:
        """A whole answered exchange at once (tests, golden samples)."""
        deploy_id = self.requested(route=route, path=path, request_body=request_body, profile=profile,
                                   instance=instance, authenticated=True, at=at, stack=stack)
        self.answered(deploy_id, status=status, response_body=response_body, failed=failed,
                      message=message)
        return deploy_id

    def get(self, deploy_id: int) -> Deploy | None:
        row = self._file.conn().execute(f"SELECT {COLUMNS} FROM deploys WHERE id = ?",
                                   (deploy_id,)).fetchone()
        return _deploy(row) if row else None

    def in_flight(self, instance: str, *, within: float = 600.0,
                  stack: str = DEFAULT_STACK) -> list[Deploy]:
        """Deploys of this instance base name (as the client sent it) forwarded in the last
        `within` seconds and not answered yet, oldest first. Poll `get(id)` for the answer."""
        return in_flight(self._file.conn(), instance, within=within, stack=stack)

    def after(self, last_seq: int, limit: int = 100,
              stack: str = DEFAULT_STACK) -> list[tuple[int, Deploy]]:
        """Answered deploys of a stack in the order their answers came, after `last_seq`."""
        rows = self._file.conn().execute(
            f"SELECT seq, {COLUMNS} FROM deploys WHERE seq > ? AND stack = ? ORDER BY seq"
            " LIMIT ?", (last_seq, stack, limit)).fetchall()
        return [(r[0], _deploy(r[1:])) for r in rows]

    def seq_until(self, until: float, stack: str = DEFAULT_STACK) -> int:
        """The last `seq` of deploys requested before then (the feed's first start skips them)."""
        row = self._file.conn().execute("SELECT MAX(seq) FROM deploys WHERE at <= ? AND stack = ?",
                                   (until, stack)).fetchone()
        return int(row[0] or 0)

    def find(self, *, profile: str | None = None, instances: tuple[str, ...] = (),
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
        row = self._file.conn().execute(
            f"SELECT {COLUMNS} FROM deploys WHERE {' AND '.join(where)}"
            " ORDER BY at DESC, id DESC LIMIT 1", args).fetchone()
        return _deploy(row) if row else None

    def of(self, *, profile: str | None = None, instances: tuple[str, ...] = (), since: float,
           until: float | None = None, stack: str = DEFAULT_STACK) -> list[Deploy]:
        """Every authenticated deploy request of this profile (or instance names) in the window,
        answered or not, oldest first: an incident retries each one that failed (and waits for
        the answers still to come)."""
        if profile is None and not instances:
            return []
        where, args = ["at >= ?", "authenticated = 1", "stack = ?", DEPLOYS_ONLY], [since, stack]
        _narrow(where, args, until, profile, instances)
        rows = self._file.conn().execute(
            f"SELECT {COLUMNS} FROM deploys WHERE {' AND '.join(where)} ORDER BY id LIMIT 500",
            args).fetchall()
        return [_deploy(r) for r in rows]

    def prune(self, *, max_age: float, max_count: int) -> int:
        """Retention: drop deploys older than `max_age` seconds, and all but the newest
        `max_count` (requests still pending are kept)."""
        conn = self._file.conn()
        n = conn.execute("DELETE FROM deploys WHERE at < ? AND state != ?",
                         (time.time() - max_age, PENDING)).rowcount
        n += conn.execute(
            "DELETE FROM deploys WHERE state != ? AND id <= (SELECT id FROM deploys WHERE state != ?"
            " ORDER BY id DESC LIMIT 1 OFFSET ?)", (PENDING, PENDING, max_count)).rowcount
        return n


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
