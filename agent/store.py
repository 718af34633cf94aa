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
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from agent.names import CREDENTIAL_ROUTE, DEFAULT_STACK, base_name

log = logging.getLogger(__name__)

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
    # version 2: deploy exchanges seen by the recorder (never the Authorization header)
    """
    CREATE TABLE deploys (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        at            REAL NOT NULL,
        route         TEXT NOT NULL,
        path          TEXT NOT NULL,
        request_body  TEXT NOT NULL,
        status        INTEGER NOT NULL,
        response_body TEXT NOT NULL,
        failed        INTEGER NOT NULL,
        message       TEXT NOT NULL,
        profile       TEXT,
        instance      TEXT
    )
    """,
    "CREATE INDEX deploys_profile ON deploys (profile, at)",
    # version 4: incidents and their audit trail
    """
    CREATE TABLE incidents (
        id            TEXT PRIMARY KEY,
        rule          TEXT NOT NULL,
        key           TEXT NOT NULL,
        state         TEXT NOT NULL,
        severity      TEXT NOT NULL,
        container     TEXT NOT NULL,
        summary       TEXT NOT NULL,
        fingerprint   TEXT NOT NULL,
        captures      TEXT NOT NULL,
        deploy        TEXT,
        attempts      INTEGER NOT NULL DEFAULT 0,
        events        INTEGER NOT NULL DEFAULT 1,
        next_attempt  REAL NOT NULL DEFAULT 0,
        detail        TEXT NOT NULL DEFAULT '',
        created       REAL NOT NULL,
        updated       REAL NOT NULL,
        closed        REAL
    )
    """,
    "CREATE INDEX incidents_rule_key ON incidents (rule, key, created)",
    """
    CREATE TABLE audit (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        incident    TEXT,
        at          REAL NOT NULL,
        kind        TEXT NOT NULL,
        name        TEXT NOT NULL,
        params      TEXT NOT NULL DEFAULT '{}',
        ok          INTEGER,
        result      TEXT NOT NULL DEFAULT '',
        duration_ms REAL
    )
    """,
    "CREATE INDEX audit_incident ON audit (incident, id)",
    "CREATE INDEX audit_at ON audit (kind, at)",
    # the notification outbox: written before sending, so nothing is lost to an outage or a restart
    """
    CREATE TABLE outbox (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        incident   TEXT,
        rule       TEXT NOT NULL,
        target     TEXT NOT NULL,
        message    TEXT NOT NULL,
        status     TEXT NOT NULL,
        created    REAL NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        next_at    REAL NOT NULL,
        sent_at    REAL,
        last_error TEXT NOT NULL DEFAULT ''
    )
    """,
    "CREATE INDEX outbox_due ON outbox (status, next_at)",
    # errors no rule knows, one row per (stack, fingerprint); bounded, least recently seen dropped
    """
    CREATE TABLE unknown (
        stack       TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        container   TEXT NOT NULL,
        containers  TEXT NOT NULL DEFAULT '[]',
        stream      TEXT NOT NULL,
        kind        TEXT NOT NULL,
        logger      TEXT,
        level       TEXT,
        exceptions  TEXT NOT NULL DEFAULT '[]',
        summary     TEXT NOT NULL,
        count       INTEGER NOT NULL,
        first_seen  REAL NOT NULL,
        last_seen   REAL NOT NULL,
        samples     TEXT NOT NULL DEFAULT '[]',
        digested    INTEGER NOT NULL DEFAULT 0,
        burst_at    REAL,
        PRIMARY KEY (stack, fingerprint)
    )
    """,
    "CREATE INDEX unknown_last_seen ON unknown (last_seen)",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # followed files (a bot's logs): where to resume, while the file is the same one (device, inode)
    """
    CREATE TABLE file_checkpoints (
        path      TEXT PRIMARY KEY,
        container TEXT NOT NULL,
        dev       INTEGER NOT NULL,
        ino       INTEGER NOT NULL,
        offset    INTEGER NOT NULL,
        updated   REAL NOT NULL
    )
    """,
    # Deploys are written ahead (state 'pending' until hummingbot-api answers) and kept only
    # when the answer came from hummingbot-api and proves the request was authenticated.
    "ALTER TABLE deploys ADD COLUMN state TEXT NOT NULL DEFAULT 'answered'",
    "ALTER TABLE deploys ADD COLUMN authenticated INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE deploys ADD COLUMN seq INTEGER",
    # earlier records: only what the deploy handler answered (2xx, 500) proves a login
    "DELETE FROM deploys WHERE NOT (status BETWEEN 200 AND 299 OR status = 500)",
    "UPDATE deploys SET authenticated = 1, seq = id",
    "CREATE INDEX deploys_seq ON deploys (seq)",
    "CREATE INDEX deploys_instance ON deploys (instance, state)",
    # an incident's messages go out in order: the first pending one per incident and target
    "CREATE INDEX outbox_order ON outbox (target, incident, status, id)",
    # an error no rule knows also says what wrote it (a bot's errors tell apart by role and channel)
    "ALTER TABLE unknown ADD COLUMN role TEXT NOT NULL DEFAULT 'hummingbot-api'",
    # events an incident was opened or counted for: a replay after a restart joins it, never
    # opens a second one (keys: container/stream/position/timestamp, and fingerprint@timestamp)
    """
    CREATE TABLE incident_events (
        key      TEXT PRIMARY KEY,
        incident TEXT NOT NULL,
        at       REAL NOT NULL
    )
    """,
    "CREATE INDEX incident_events_at ON incident_events (at)",
    # every failed deploy an incident retries, with its outcome (one incident may own several);
    # deploy_id is the recorder's record, 0 for a request known otherwise (log, bots folder, person)
    """
    CREATE TABLE incident_deploys (
        incident  TEXT NOT NULL,
        deploy_id INTEGER NOT NULL,
        base      TEXT NOT NULL,
        state     TEXT NOT NULL,
        result    TEXT NOT NULL DEFAULT '',
        sent_at   REAL,
        updated   REAL NOT NULL,
        PRIMARY KEY (incident, deploy_id, base)
    )
    """,
    "CREATE INDEX incident_deploys_deploy ON incident_deploys (deploy_id, state)",
    # an incident waiting for hummingbot-api or the Docker engine to answer again
    "ALTER TABLE incidents ADD COLUMN outage TEXT",
    "ALTER TABLE incidents ADD COLUMN outage_since REAL",
    # several stacks from one agent: everything stored carries its stack; what was there before
    # is the stack `default` (the environment's). One version: a file is migrated whole or not.
    (
        """
        CREATE TABLE checkpoints_by_stack (
            stack        TEXT NOT NULL DEFAULT 'default',
            container    TEXT NOT NULL,
            container_id TEXT NOT NULL,
            stdout_ts    INTEGER NOT NULL,
            stdout_dup   INTEGER NOT NULL,
            stderr_ts    INTEGER NOT NULL,
            stderr_dup   INTEGER NOT NULL,
            updated      REAL NOT NULL,
            PRIMARY KEY (stack, container)
        )
        """,
        "INSERT INTO checkpoints_by_stack SELECT 'default', container, container_id, stdout_ts, stdout_dup,"
        " stderr_ts, stderr_dup, updated FROM checkpoints",
        "DROP TABLE checkpoints",
        "ALTER TABLE checkpoints_by_stack RENAME TO checkpoints",
        "ALTER TABLE incidents ADD COLUMN stack TEXT NOT NULL DEFAULT 'default'",
        "CREATE INDEX incidents_stack ON incidents (stack, rule, key, created)",
        "ALTER TABLE audit ADD COLUMN stack TEXT NOT NULL DEFAULT 'default'",
        "ALTER TABLE outbox ADD COLUMN stack TEXT NOT NULL DEFAULT 'default'",
        "ALTER TABLE deploys ADD COLUMN stack TEXT NOT NULL DEFAULT 'default'",
        "CREATE INDEX deploys_stack ON deploys (stack, seq)",
        "ALTER TABLE file_checkpoints ADD COLUMN stack TEXT NOT NULL DEFAULT 'default'",
    ),
]

def _migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema up to date, one version a transaction."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, ddl in enumerate(SCHEMA[version:], start=version + 1):
        conn.execute("BEGIN")
        try:
            for statement in (ddl,) if isinstance(ddl, str) else ddl:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


DUP_BITS = 10  # a line position is ts_ns << DUP_BITS | index among lines of that ns


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


@dataclass(frozen=True)
class Checkpoint:
    """Per stream, the position of the first line not yet handled."""

    container: str
    container_id: str
    stdout: int
    stderr: int
    stack: str = DEFAULT_STACK


class StateFileError(Exception):
    """The state file cannot be used at all; the agent does not start (exit code 3) and
    leaves the file as it is."""

    def __init__(self, path: str | Path, problem: str, fix: str) -> None:
        super().__init__(f"the state file {path} {problem}; it was left untouched. {fix}")
        self.path, self.problem, self.fix = str(path), problem, fix


class StateUnwritable(sqlite3.OperationalError):
    """A write to the state file failed while running (read-only, disk full, I/O error, locked
    too long). The store has said so once in the log, and /healthz says so until it heals."""


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "COMMIT", "BEGIN")


class _Connection(sqlite3.Connection):
    """Reports write failures (and the first write that works again) to its store, whoever
    the writer is, so "cannot be written" is logged once and shown on /healthz."""

    store: Store

    def execute(self, sql: str, parameters=(), /) -> sqlite3.Cursor:  # type: ignore[override]
        try:
            cur = super().execute(sql, parameters)
        except sqlite3.DatabaseError as exc:
            if sql.lstrip()[:7].upper().startswith(_WRITES):
                raise self.store._write_failed(exc) from exc
            raise
        if self.store.write_problem is not None and sql.lstrip()[:7].upper().startswith(_WRITES):
            self.store._write_ok()
        return cur

    def executemany(self, sql: str, seq, /) -> sqlite3.Cursor:  # type: ignore[override]
        try:
            cur = super().executemany(sql, seq)
        except sqlite3.DatabaseError as exc:
            raise self.store._write_failed(exc) from exc
        if self.store.write_problem is not None:
            self.store._write_ok()
        return cur


def _move_aside(path: Path) -> str:
    return (f"If its content is not needed, move it aside (mv {path} {path}.bad) and hb-medic starts with"
            " empty state; otherwise restore it from a backup.")
@dataclass(frozen=True)
class FileCheckpoint:
    """A followed file: the offset of the first line not yet handled, in this very file."""

    path: str
    container: str
    dev: int
    ino: int
    offset: int
    stack: str = DEFAULT_STACK


class Store:
    def __init__(self, path: str | Path) -> None:
        """Opens (or creates) the state file; a file that is not usable raises StateFileError."""
        self.path = str(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self.write_problem: str | None = None  # why the last write failed, until one works
        self._problem_since = 0.0
        try:
            if self.path != ":memory:" and self._check_file(Path(self.path)):
                self._check_content()
            self._migrate()
            if self.path != ":memory:":
                self._check_writable()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise self._unusable(exc) from None

    # -- opening ---------------------------------------------------------------------------
    def _check_file(self, path: Path) -> bool:
        """What can be known before SQLite opens it; a missing file is created whole (and
        False returned: nothing more to check)."""
        if path.is_dir():
            raise StateFileError(path, "is a directory",
                                 f"Set MEDIC_STATE_DB to a file, for example {path / 'state.db'}.")
        if not path.exists():
            self._create(path)
            return False
        try:
            with path.open("rb") as fh:
                head = fh.read(16)
        except OSError as exc:
            raise StateFileError(path, f"cannot be read ({exc.strerror})",
                                 "Give the user hb-medic runs as read and write access to it and its"
                                 " folder.") from None
        if not head:
            raise StateFileError(path, "is empty (0 bytes): not a state file hb-medic wrote (it creates"
                                       " its file whole)",
                                 f"If a new state file was meant, remove it (rm {path}) and hb-medic creates"
                                 " one; if it should hold state, restore it from a backup.")
        if head != b"SQLite format 3\x00":
            raise StateFileError(path, "is not a SQLite database", _move_aside(path))
        return True

    def _create(self, path: Path) -> None:
        """Built under a temporary name and linked into place, so a kill never leaves a
        half-made (or 0-byte) state file behind."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.new-{os.getpid()}-{threading.get_ident()}")
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                _migrate(conn)
            finally:
                conn.close()
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process made it meanwhile: use theirs
            finally:
                tmp.unlink()
        except (OSError, sqlite3.Error) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise StateFileError(path, f"cannot be created ({reason})",
                                 "Make its folder writable for the user hb-medic runs as.") from None

    def _check_content(self) -> None:
        """Read-only, before anything is written: whose file, which version, is it whole."""
        path = Path(self.path)
        conn = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True, isolation_level=None)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0 and conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
                raise StateFileError(path, "is a SQLite database of another program",
                                     "Set MEDIC_STATE_DB to a file of hb-medic's own.")
            if version > len(SCHEMA):
                raise StateFileError(path, f"was written by a newer hb-medic (schema {version}, this one"
                                           f" knows {len(SCHEMA)})",
                                     "Run that version of hb-medic. " + _move_aside(path))
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StateFileError(path, f"is damaged ({check})", _move_aside(path))
        finally:
            conn.close()

    def _check_writable(self) -> None:
        try:  # rewrites the header's version with its own value
            self._conn().execute("PRAGMA user_version = "
                                 f"{int(self._conn().execute('PRAGMA user_version').fetchone()[0])}")
        except sqlite3.OperationalError as exc:
            raise StateFileError(self.path, f"cannot be written ({exc})",
                                 "Make it, and its folder, writable for the user hb-medic runs as.") from None

    def _unusable(self, exc: sqlite3.DatabaseError) -> StateFileError:
        text = str(exc)
        if "readonly" in text or "unable to open" in text:
            return StateFileError(self.path, f"cannot be opened for writing ({text})",
                                  "Make it, and its folder, writable for the user hb-medic runs as.")
        return StateFileError(self.path, f"is damaged ({text})", _move_aside(Path(self.path)))

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, factory=_Connection)
            conn.store = self
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def _migrate(self) -> None:
        _migrate(self._conn())

    # -- writes that fail while running ------------------------------------------------------
    def _write_failed(self, exc: sqlite3.DatabaseError) -> StateUnwritable:
        # SQLite may keep treating this connection as read-only: the next use opens a new one.
        self.close()
        with self._lock:
            if self.write_problem is None:
                self.write_problem = str(exc)
                self._problem_since = time.monotonic()
                log.error("state file %s cannot be written (%s): nothing new is saved (incidents,"
                          " checkpoints, notifications) until it can; /healthz says so", self.path, exc)
        return StateUnwritable(str(exc))

    def probe_write(self) -> bool:
        """One small write (the header's own version again): True when the file can be
        written, which also ends a reported problem."""
        try:
            conn = self._conn()
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute(f"PRAGMA user_version = {int(version)}")
        except sqlite3.DatabaseError as exc:
            self._write_failed(exc)
            return False
        self._write_ok()
        return True

    def _write_ok(self) -> None:
        with self._lock:
            if self.write_problem is not None:
                log.warning("state file %s can be written again (after %.0f s)", self.path,
                            time.monotonic() - self._problem_since)
                self.write_problem = None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- checkpoints ------------------------------------------------------------------
    def checkpoint(self, container: str, stack: str = DEFAULT_STACK) -> Checkpoint | None:
        row = self._conn().execute(
            "SELECT container_id, stdout_ts, stdout_dup, stderr_ts, stderr_dup FROM checkpoints"
            " WHERE stack = ? AND container = ?", (stack, container)).fetchone()
        if row is None:
            return None
        cid, ots, odup, ets, edup = row
        return Checkpoint(container, cid, ots << DUP_BITS | odup, ets << DUP_BITS | edup, stack)

    def save_checkpoint(self, cp: Checkpoint) -> None:
        mask = (1 << DUP_BITS) - 1
        self._conn().execute(
            "INSERT INTO checkpoints (container, container_id, stdout_ts, stdout_dup, stderr_ts, stderr_dup,"
            " updated, stack) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(stack, container) DO UPDATE SET"
            " container_id=excluded.container_id, stdout_ts=excluded.stdout_ts,"
            " stdout_dup=excluded.stdout_dup, stderr_ts=excluded.stderr_ts,"
            " stderr_dup=excluded.stderr_dup, updated=excluded.updated",
            (cp.container, cp.container_id, cp.stdout >> DUP_BITS, cp.stdout & mask,
             cp.stderr >> DUP_BITS, cp.stderr & mask, time.time(), cp.stack))

    def checkpoints(self, stack: str = DEFAULT_STACK) -> StackCheckpoints:
        """One stack's source positions, in the shapes the sources speak."""
        return StackCheckpoints(self, stack)

    def file_checkpoint(self, path: str) -> FileCheckpoint | None:
        row = self._conn().execute(
            "SELECT container, dev, ino, offset, stack FROM file_checkpoints WHERE path = ?",
            (path,)).fetchone()
        return FileCheckpoint(path, *row) if row else None

    def save_file_checkpoint(self, cp: FileCheckpoint) -> None:
        self._conn().execute(
            "INSERT INTO file_checkpoints (path, container, dev, ino, offset, updated, stack)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET"
            " container=excluded.container, dev=excluded.dev, ino=excluded.ino, offset=excluded.offset,"
            " updated=excluded.updated, stack=excluded.stack",
            (cp.path, cp.container, cp.dev, cp.ino, cp.offset, time.time(), cp.stack))

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
        cur = self._conn().execute(
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
        self._conn().execute(
            "UPDATE deploys SET status = ?, response_body = ?, failed = ?, message = ?, state = ?,"
            " authenticated = 1, seq = (SELECT COALESCE(MAX(seq), 0) + 1 FROM deploys) WHERE id = ?",
            (status, response_body, int(failed), message, ANSWERED, deploy_id))

    def deploy_dropped(self, deploy_id: int) -> None:
        """Not a deploy to keep: refused (401/403, 422...), or hummingbot-api never answered."""
        self._conn().execute("DELETE FROM deploys WHERE id = ?", (deploy_id,))

    def deploys_lost(self, stack: str = DEFAULT_STACK) -> int:
        """At a recorder's start: requests of a previous run whose answers will never come."""
        return self._conn().execute("UPDATE deploys SET state = ? WHERE state = ? AND stack = ?",
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
        row = self._conn().execute(f"SELECT {self._DEPLOY_COLUMNS} FROM deploys WHERE id = ?",
                                   (deploy_id,)).fetchone()
        return self._deploy(row) if row else None

    def deploys_in_flight(self, instance: str, *, within: float = 600.0,
                          stack: str = DEFAULT_STACK) -> list[Deploy]:
        """Deploys of this instance base name (as the client sent it) forwarded in the last
        `within` seconds and not answered yet, oldest first. Poll `get_deploy(id)` for the answer."""
        rows = self._conn().execute(
            f"SELECT {self._DEPLOY_COLUMNS} FROM deploys WHERE instance = ? AND state = ? AND at >= ?"
            " AND stack = ? ORDER BY id", (instance, PENDING, time.time() - within, stack)).fetchall()
        return [self._deploy(r) for r in rows]

    def deploys_after(self, last_seq: int, limit: int = 100,
                      stack: str = DEFAULT_STACK) -> list[tuple[int, Deploy]]:
        """Answered deploys of a stack in the order their answers came, after `last_seq`."""
        rows = self._conn().execute(
            f"SELECT seq, {self._DEPLOY_COLUMNS} FROM deploys WHERE seq > ? AND stack = ? ORDER BY seq"
            " LIMIT ?", (last_seq, stack, limit)).fetchall()
        return [(r[0], self._deploy(r[1:])) for r in rows]

    def deploy_seq_until(self, until: float, stack: str = DEFAULT_STACK) -> int:
        """The last `seq` of deploys requested before then (the feed's first start skips them)."""
        row = self._conn().execute("SELECT MAX(seq) FROM deploys WHERE at <= ? AND stack = ?",
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
        row = self._conn().execute(
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
        rows = self._conn().execute(
            f"SELECT {self._DEPLOY_COLUMNS} FROM deploys WHERE {' AND '.join(where)} ORDER BY id LIMIT 500",
            args).fetchall()
        return [self._deploy(r) for r in rows]

    def prune_deploys(self, *, max_age: float, max_count: int) -> int:
        """Retention: drop deploys older than `max_age` seconds, and all but the newest
        `max_count` (requests still pending are kept)."""
        conn = self._conn()
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
        conn = self._conn()
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
        self._conn().execute(
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
        row = self._conn().execute(
            f"SELECT incident FROM incident_events WHERE key IN ({','.join('?' * len(events))}) LIMIT 1",
            events).fetchone()
        return row[0] if row else None

    def forget_events(self, before: float) -> int:
        """Keys of events handled long ago (no replay reaches back that far)."""
        return self._conn().execute("DELETE FROM incident_events WHERE at < ?", (before,)).rowcount

    # -- the deploys an incident retries -----------------------------------------------------------
    def incident_deploys(self, incident: str) -> list[dict]:
        rows = self._conn().execute(
            "SELECT deploy_id, base, state, result, sent_at, updated FROM incident_deploys WHERE incident = ?"
            " ORDER BY updated, deploy_id", (incident,)).fetchall()
        return [{"deploy_id": r[0], "base": r[1], "state": r[2], "result": r[3], "sent_at": r[4],
                 "updated": r[5]} for r in rows]

    def mark_incident_deploy(self, incident: str, deploy_id: int, base: str, state: str, result: str = "",
                             sent_at: float | None = None) -> None:
        """`state`: sending (written before the request goes out), done, failed."""
        self._conn().execute(
            "INSERT INTO incident_deploys (incident, deploy_id, base, state, result, sent_at, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (incident, deploy_id, base) DO UPDATE SET"
            " state = excluded.state, result = excluded.result,"
            " sent_at = COALESCE(excluded.sent_at, incident_deploys.sent_at), updated = excluded.updated",
            (incident, deploy_id, base, state, result, sent_at, time.time()))

    def deploys_done(self, deploy_ids: list[int]) -> set[int]:
        """Which of these recorded deploys some incident already retried successfully."""
        if not deploy_ids:
            return set()
        rows = self._conn().execute(
            f"SELECT deploy_id FROM incident_deploys WHERE state = 'done' AND deploy_id IN"
            f" ({','.join('?' * len(deploy_ids))})", deploy_ids).fetchall()
        return {r[0] for r in rows}

    def claim_incident(self, incident: str, from_states: tuple[str, ...], to_state: str) -> bool:
        """Move an incident on only if it is still in one of these states: one actor at a time."""
        marks = ",".join("?" * len(from_states))
        cur = self._conn().execute(
            f"UPDATE incidents SET state = ?, updated = ? WHERE id = ? AND state IN ({marks})",
            (to_state, time.time(), incident, *from_states))
        return cur.rowcount == 1

    def count_event(self, incident: str, events: tuple[str, ...] = ()) -> None:
        """One more matching event: counted in SQL, so no other writer's save can lose it; its keys
        are kept, so its replay is not counted again."""
        conn = self._conn()
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
        rows = self._conn().execute(
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
        self._conn().execute(  # the row carries its incident's stack
            "INSERT INTO audit (incident, at, kind, name, params, ok, result, duration_ms, stack)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, COALESCE((SELECT stack FROM incidents WHERE id = ?), ?))",
            (incident, time.time(), kind, name, json.dumps(params or {}, default=str),
             None if ok is None else int(ok), result, duration_ms, incident, DEFAULT_STACK))

    def audit_trail(self, incident: str) -> list[dict]:
        rows = self._conn().execute(
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
        row = self._conn().execute(
            "SELECT SUM(CASE kind WHEN 'attempt' THEN 1 ELSE -1 END) FROM audit"
            " WHERE kind IN ('attempt', 'refund') AND at >= ? AND stack = ?", (since, stack)).fetchone()
        return max(0, int(row[0] or 0))


    # -- the notification outbox -----------------------------------------------------------------
    _OUTBOX_COLUMNS = ("id, incident, rule, target, message, status, created, attempts, next_at,"
                       " sent_at, last_error")

    def outbox_enqueue(self, *, incident: str | None, rule: str, target: str, message: str,
                       status: str = "pending", stack: str = DEFAULT_STACK) -> int:
        now = time.time()
        cur = self._conn().execute(
            "INSERT INTO outbox (incident, rule, target, message, status, created, next_at, stack)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (incident, rule, target, message, status, now, now, stack))
        return int(cur.lastrowid)

    def outbox_due(self, now: float, limit: int = 50) -> list[tuple]:
        """Messages to send now: only the first pending one of each incident and target, so an
        incident's messages arrive in the order of its steps; the stacks take turns (each one's
        oldest first, then each one's second...), so a stack with many messages never makes
        another's wait behind all of them."""
        return self._conn().execute(
            f"SELECT {self._OUTBOX_COLUMNS} FROM (SELECT *,"
            " ROW_NUMBER() OVER (PARTITION BY stack ORDER BY id) AS turn"
            " FROM outbox AS o WHERE status = 'pending' AND next_at <= ?"
            " AND NOT EXISTS (SELECT 1 FROM outbox AS e WHERE e.status = 'pending' AND e.target = o.target"
            " AND e.incident IS o.incident AND e.id < o.id))"
            " ORDER BY turn, id LIMIT ?", (now, limit)).fetchall()

    def outbox_retry_now(self, target: str) -> None:
        """A target answers again: everything waiting for it is due now (its backoff is over)."""
        self._conn().execute("UPDATE outbox SET next_at = 0 WHERE target = ? AND status = 'pending'"
                             " AND next_at > 0", (target,))

    def outbox_mark(self, row_id: int, *, status: str, attempts: int, next_at: float,
                    error: str = "") -> None:
        self._conn().execute(
            "UPDATE outbox SET status = ?, attempts = ?, next_at = ?, last_error = ?,"
            " sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END WHERE id = ?",
            (status, attempts, next_at, error, status, time.time(), row_id))

    def outbox_recent(self, rule: str, since: float, stack: str = DEFAULT_STACK) -> int:
        """Messages of a rule in a stack since then (one per step, whatever the number of targets)."""
        return int(self._conn().execute(
            "SELECT COUNT(DISTINCT message) FROM outbox WHERE rule = ? AND stack = ? AND created >= ?"
            " AND status != 'held'", (rule, stack, since)).fetchone()[0])

    def outbox_held(self) -> list[tuple]:
        return self._conn().execute(
            f"SELECT {self._OUTBOX_COLUMNS} FROM outbox WHERE status = 'held' ORDER BY id").fetchall()

    def outbox_oldest_pending(self) -> float | None:
        row = self._conn().execute("SELECT MIN(created) FROM outbox WHERE status = 'pending'").fetchone()
        return row[0] if row else None

    def action_counts(self) -> dict[tuple[str, str, bool], int]:
        """(stack, action, ok) -> how many."""
        rows = self._conn().execute(
            "SELECT stack, name, ok, COUNT(*) FROM audit WHERE kind IN ('action', 'verify', 'retry')"
            " AND ok IS NOT NULL GROUP BY stack, name, ok").fetchall()
        return {(stack, name, bool(ok)): n for stack, name, ok, n in rows}

    def open_incident_counts(self) -> dict[tuple[str, str], int]:
        """(stack, rule) -> incidents not closed."""
        marks = ",".join("?" * len(OPEN_STATES))
        rows = self._conn().execute(
            f"SELECT stack, rule, COUNT(*) FROM incidents WHERE state IN ({marks}) GROUP BY stack, rule",
            OPEN_STATES).fetchall()
        return {(stack, rule): n for stack, rule, n in rows}

    def outbox_counts(self) -> dict[str, int]:
        return dict(self._conn().execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())

    # -- errors no rule knows -------------------------------------------------------------------
    def unknown_get(self, stack: str, fingerprint: str) -> Unknown | None:
        row = self._conn().execute(
            f"SELECT {Unknown.COLUMNS} FROM unknown WHERE stack = ? AND fingerprint = ?",
            (stack, fingerprint)).fetchone()
        return Unknown.from_row(row) if row else None

    def unknown_find(self, fingerprint: str) -> list[Unknown]:
        """By fingerprint, or a unique prefix of it (in any stack), most recently seen first."""
        rows = self._conn().execute(
            f"SELECT {Unknown.COLUMNS} FROM unknown WHERE fingerprint = ? ORDER BY last_seen DESC",
            (fingerprint,)).fetchall()
        if not rows:
            rows = self._conn().execute(
                f"SELECT {Unknown.COLUMNS} FROM unknown WHERE fingerprint LIKE ? ESCAPE '\\'"
                " ORDER BY last_seen DESC", (_like_prefix(fingerprint),)).fetchall()
            if len({r[1] for r in rows}) > 1:
                return []
        return [Unknown.from_row(r) for r in rows]

    def unknown_list(self, since: float = 0.0, limit: int = 1000) -> list[Unknown]:
        """Seen since then, most frequent first."""
        rows = self._conn().execute(
            f"SELECT {Unknown.COLUMNS} FROM unknown WHERE last_seen >= ?"
            " ORDER BY count DESC, last_seen DESC LIMIT ?", (since, limit)).fetchall()
        return [Unknown.from_row(r) for r in rows]

    def unknown_save(self, entries: list[Unknown], keep: int) -> int:
        """Write entries whole (the agent is their only writer); then drop the least recently
        seen beyond `keep` of each stack written (a stack full of new errors never pushes out
        another's). Returns how many were dropped."""
        conn = self._conn()
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
        self._conn().executemany("UPDATE unknown SET digested = ? WHERE stack = ? AND fingerprint = ?",
                                 [(n, stack, fp) for stack, fp, n in keys])

    def unknown_count(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM unknown").fetchone()[0])

    def meta_get(self, key: str) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def meta_set(self, key: str, value: str) -> None:
        self._conn().execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


class StackCheckpoints:
    """The positions of one stack's sources (`get`/`put` by source and key), kept in this
    file's tables of old: container streams, followed files, the engine events' mark in
    `meta`, the deploy feed's `seq` as the container checkpoint "recorder"."""

    def __init__(self, store: Store, stack: str) -> None:
        self.store, self.stack = store, stack
        self._mark = "engine-events" if stack == DEFAULT_STACK else f"engine-events:{stack}"

    def get(self, source: str, key: str) -> dict[str, Any] | None:
        if source == "container":
            cp = self.store.checkpoint(key, self.stack)
            return None if cp is None else {"container_id": cp.container_id, "stdout": cp.stdout,
                                            "stderr": cp.stderr}
        if source == "file":
            fc = self.store.file_checkpoint(key)
            return None if fc is None else {"container": fc.container, "dev": fc.dev, "ino": fc.ino,
                                            "offset": fc.offset}
        if source == "engine-events":
            value = self.store.meta_get(self._mark)
            return None if value is None else {"since": int(value)}
        if source == "deploys":
            cp = self.store.checkpoint("recorder", self.stack)
            return None if cp is None else {"seq": cp.stdout}
        raise KeyError(source)

    def put(self, source: str, key: str, position: dict[str, Any]) -> None:
        if source == "container":
            self.store.save_checkpoint(Checkpoint(key, position["container_id"], position["stdout"],
                                                  position["stderr"], self.stack))
        elif source == "file":
            self.store.save_file_checkpoint(FileCheckpoint(key, position["container"], position["dev"],
                                                           position["ino"], position["offset"], self.stack))
        elif source == "engine-events":
            self.store.meta_set(self._mark, str(position["since"]))
        elif source == "deploys":
            seq = position["seq"]
            self.store.save_checkpoint(Checkpoint("recorder", "deploys", seq, seq, self.stack))
        else:
            raise KeyError(source)

    def put_many(self, items: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        for source, key, position in items:
            self.put(source, key, position)


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

