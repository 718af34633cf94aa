"""The state file: one SQLite file holding everything the agent keeps (see the repositories
beside this module), its schema and the migrations of older files, the checks before it is
used, and the health of writes to it.

One connection per thread (sqlite3 objects are not shared across threads),
WAL so readers never block the writer, and the schema versioned with
``PRAGMA user_version``. A file that cannot be used (not a database, damaged,
empty, a directory, read-only) stops the start with one message naming it and
what to do, and is never modified; only a missing file is new, and it is
created whole. A write that fails while running is logged once, shown on
/healthz, and raised as StateUnwritable so callers can wait for it quietly; a full
disk is one such state until its filesystem has room again (a few small writes that
still fit do not end it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_CONTAINER_DUP_BITS = 10  # how the old checkpoints table split a line position (ts_ns, dup)


def _one_checkpoints_table(conn: sqlite3.Connection) -> None:
    """Every source's "where to resume" in one table, (stack, source, key) -> position: the
    containers' checkpoints, the deploy feed's (a container named `recorder` whose id was
    `deploys`), the followed files' and the engine events' (meta `engine-events[:stack]`)."""
    conn.execute("""
        CREATE TABLE positions (
            stack    TEXT NOT NULL,
            source   TEXT NOT NULL,
            key      TEXT NOT NULL,
            position TEXT NOT NULL,
            updated  REAL NOT NULL,
            PRIMARY KEY (stack, source, key)
        )
        """)
    rows: list[tuple[str, str, str, str, float]] = []
    for stack, container, cid, ots, odup, ets, edup, updated in conn.execute(
            "SELECT stack, container, container_id, stdout_ts, stdout_dup, stderr_ts, stderr_dup, updated"
            " FROM checkpoints").fetchall():
        stdout, stderr = ots << _CONTAINER_DUP_BITS | odup, ets << _CONTAINER_DUP_BITS | edup
        if container == "recorder" and cid == "deploys":
            rows.append((stack, "deploys", "", json.dumps({"seq": stdout}), updated))
        else:
            rows.append((stack, "container", container,
                         json.dumps({"container_id": cid, "stdout": stdout, "stderr": stderr}), updated))
    for stack, path, container, dev, ino, offset, updated in conn.execute(
            "SELECT stack, path, container, dev, ino, offset, updated FROM file_checkpoints").fetchall():
        rows.append((stack, "file", path,
                     json.dumps({"container": container, "dev": dev, "ino": ino, "offset": offset}), updated))
    engine_events = "key = 'engine-events' OR key LIKE 'engine-events:%'"
    for key, value in conn.execute(f"SELECT key, value FROM meta WHERE {engine_events}").fetchall():
        with contextlib.suppress(ValueError):
            rows.append((key.partition(":")[2] or "default", "engine-events", "",
                         json.dumps({"since": int(value)}), time.time()))
    conn.executemany("INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?, ?)", rows)
    conn.execute("DROP TABLE checkpoints")
    conn.execute("DROP TABLE file_checkpoints")
    conn.execute(f"DELETE FROM meta WHERE {engine_events}")
    conn.execute("ALTER TABLE positions RENAME TO checkpoints")


Migration = str | tuple[str, ...] | Callable[[sqlite3.Connection], None]

SCHEMA: list[Migration] = [
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
    # one table for every source's checkpoint (see _one_checkpoints_table)
    _one_checkpoints_table,
    # what its templates name of the event that opened an incident: stream, message, exception
    "ALTER TABLE incidents ADD COLUMN opened_by TEXT NOT NULL DEFAULT '{}'",
    # ask mode: plans waiting for a person, the chat buttons' single-use tokens, and silences
    (
        """
        CREATE TABLE approvals (
            incident    TEXT PRIMARY KEY,
            stack       TEXT NOT NULL,
            plan        TEXT NOT NULL,
            asked       REAL NOT NULL,
            expires     REAL NOT NULL,
            approved    REAL,
            approved_by TEXT NOT NULL DEFAULT ''
        )
        """,
        """
        CREATE TABLE chat_tokens (
            token    TEXT PRIMARY KEY,
            incident TEXT NOT NULL,
            choice   TEXT NOT NULL,
            created  REAL NOT NULL,
            used     REAL,
            used_by  TEXT NOT NULL DEFAULT ''
        )
        """,
        "CREATE INDEX chat_tokens_incident ON chat_tokens (incident, choice, used)",
        """
        CREATE TABLE silences (
            rule     TEXT NOT NULL,
            key      TEXT,
            stack    TEXT,
            until    REAL NOT NULL,
            by       TEXT NOT NULL,
            incident TEXT NOT NULL DEFAULT '',
            at       REAL NOT NULL
        )
        """,
    ),
    # a chat's living message of each incident (Telegram's message_id, Slack's ts), so a restart
    # edits the same message instead of posting a second one
    """
    CREATE TABLE chat_messages (
        incident TEXT NOT NULL,
        target   TEXT NOT NULL,
        chat     TEXT NOT NULL,
        message  TEXT NOT NULL,
        updated  REAL NOT NULL,
        PRIMARY KEY (incident, target)
    )
    """,
]


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema up to date, one version a transaction."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, step in enumerate(SCHEMA[version:], start=version + 1):
        conn.execute("BEGIN")
        try:
            if callable(step):
                step(conn)
            else:
                for statement in (step,) if isinstance(step, str) else step:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


class StateFileError(Exception):
    """The state file cannot be used at all; the agent does not start (exit code 3) and
    leaves the file as it is."""

    def __init__(self, path: str | Path, problem: str, fix: str) -> None:
        super().__init__(f"the state file {path} {problem}; it was left untouched. {fix}")
        self.path, self.problem, self.fix = str(path), problem, fix


class StateUnwritable(sqlite3.OperationalError):
    """A write to the state file failed while running (read-only, disk full, I/O error, locked
    too long). The state file has said so once in the log, and /healthz says so until it heals."""


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "COMMIT", "BEGIN")
_LANDS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "COMMIT")  # BEGIN alone proves nothing
ROOM = 256 * 1024  # free bytes its filesystem needs before a full disk counts as healed


def _is(sql: str, kinds: tuple[str, ...]) -> bool:
    return sql.lstrip()[:7].upper().startswith(kinds)


class _Connection(sqlite3.Connection):
    """Reports write failures (and the first committed write that works again) to its state
    file, whoever the writer is, so "cannot be written" is logged once and shown on /healthz.
    A failed write closes it; a writer still holding it gets StateUnwritable, never sqlite3's
    "Cannot operate on a closed database"."""

    state_file: StateFile
    closed = False

    def close(self) -> None:
        self.closed = True
        super().close()

    def execute(self, sql: str, parameters=(), /) -> sqlite3.Cursor:  # type: ignore[override]
        if self.closed:
            raise self.state_file._unwritable()
        try:
            cur = super().execute(sql, parameters)
        except sqlite3.DatabaseError as exc:
            if _is(sql, _WRITES):
                raise self.state_file._write_failed(exc) from exc
            raise
        if self.state_file.write_problem is not None and _is(sql, _LANDS) and not self.in_transaction:
            self.state_file._write_ok()
        return cur

    def executemany(self, sql: str, seq, /) -> sqlite3.Cursor:  # type: ignore[override]
        if self.closed:
            raise self.state_file._unwritable()
        try:
            cur = super().executemany(sql, seq)
        except sqlite3.DatabaseError as exc:
            raise self.state_file._write_failed(exc) from exc
        if self.state_file.write_problem is not None and not self.in_transaction:
            self.state_file._write_ok()
        return cur


def _move_aside(path: Path) -> str:
    return (f"If its content is not needed, move it aside (mv {path} {path}.bad) and hb-medic starts with"
            " empty state; otherwise restore it from a backup.")


class StateFile:
    """The file itself: the connection of each thread, and whether writes to it work. The
    repositories (one per subsystem) each keep their tables in it."""

    def __init__(self, path: str | Path) -> None:
        """Opens (or creates) the state file; a file that is not usable raises StateFileError."""
        self.path = str(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self.write_problem: str | None = None  # why the last write failed, until one works
        self._problem_since = 0.0
        self._problem_at = 0.0  # the same, as wall-clock time (what /healthz shows)
        self._disk_full = False  # the problem is a full filesystem: it ends only when there is ROOM
        try:
            if self.path != ":memory:" and self._check_file(Path(self.path)):
                self._check_content()
            migrate(self.conn())
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
                migrate(conn)
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
            self.conn().execute("PRAGMA user_version = "
                                 f"{int(self.conn().execute('PRAGMA user_version').fetchone()[0])}")
        except sqlite3.OperationalError as exc:
            raise StateFileError(self.path, f"cannot be written ({exc})",
                                 "Make it, and its folder, writable for the user hb-medic runs as.") from None

    def _unusable(self, exc: sqlite3.DatabaseError) -> StateFileError:
        text = str(exc)
        if "readonly" in text or "unable to open" in text:
            return StateFileError(self.path, f"cannot be opened for writing ({text})",
                                  "Make it, and its folder, writable for the user hb-medic runs as.")
        return StateFileError(self.path, f"is damaged ({text})", _move_aside(Path(self.path)))

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 objects are not shared across threads); a closed
        one is replaced, never reused."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, factory=_Connection)
            conn.state_file = self
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn


    # -- writes that fail while running ------------------------------------------------------
    # One state from the first failed write until a write lands again and, where the disk was
    # full, its filesystem has ROOM again: a full disk still takes the odd small write (SQLite
    # reuses its log's space), and those must not end it (nor the next failure start it again).
    def _write_failed(self, exc: sqlite3.DatabaseError) -> StateUnwritable:
        # SQLite may keep treating this connection as read-only: the next use opens a new one.
        self.close()
        with self._lock:
            if self.write_problem is None:
                self.write_problem = str(exc)
                self._problem_since = time.monotonic()
                self._problem_at = time.time()
                free = self.free_bytes()
                self._disk_full = free is not None and free < ROOM
                room = f"; {free // 1024} KiB free on its filesystem" if self._disk_full else ""
                log.error("state file %s cannot be written (%s%s): nothing new is saved (incidents,"
                          " checkpoints, notifications) until it can, events wait in memory; /healthz"
                          " says so", self.path, exc, room)
        return StateUnwritable(str(exc))

    def _unwritable(self) -> StateUnwritable:
        """For a writer still holding the connection a failed write closed."""
        return StateUnwritable(self.write_problem or "its connection was closed by a failed write")

    def free_bytes(self) -> int | None:
        """Free space on the state file's filesystem (None where it cannot be known)."""
        if self.path == ":memory:":
            return None
        try:
            st = os.statvfs(Path(self.path).absolute().parent)
        except OSError:
            return None
        return st.f_bavail * st.f_frsize

    def health(self) -> list[str]:
        """For /healthz: the agent runs on, but what it learns is not kept."""
        with self._lock:
            if self.write_problem is None:
                return []
            since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self._problem_at))
            free = self.free_bytes() if self._disk_full else None
            room = f"; {free // 1024} KiB free on its filesystem" if free is not None else ""
            return [f"state file {self.path} cannot be written since {since}"
                    f" ({time.monotonic() - self._problem_since:.0f} s): {self.write_problem}{room}"]

    def probe_write(self) -> bool:
        """One small write (the header's own version again): True when the file can be
        written (and, after a full disk, its filesystem has room again), which also ends a
        reported problem."""
        try:
            conn = self.conn()
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute(f"PRAGMA user_version = {int(version)}")
        except sqlite3.DatabaseError as exc:
            self._write_failed(exc)
            return False
        return self._write_ok()

    def _write_ok(self) -> bool:
        """A write landed: the problem ends, unless the disk was full and still has no room."""
        with self._lock:
            if self.write_problem is None:
                return True
            if self._disk_full and (free := self.free_bytes()) is not None and free < ROOM:
                return False
            log.warning("state file %s can be written again (after %.0f s)", self.path,
                        time.monotonic() - self._problem_since)
            self.write_problem = None
            self._disk_full = False
            return True

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextlib.contextmanager
    def transaction(self, immediate: bool = True) -> Iterator[sqlite3.Connection]:
        """Several writes that land together or not at all."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if not conn.closed:  # a failed write closes it, which rolls back
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
