"""Errors no rule knows, one row per (stack, fingerprint), bounded (the least recently seen
are dropped), and when their last digest went out."""

from __future__ import annotations

import heapq
import json

from agent.records import Unknown
from agent.state.file import StateFile

COLUMNS = ("stack, fingerprint, container, containers, stream, kind, logger, level, exceptions, summary,"
           " count, first_seen, last_seen, samples, digested, burst_at, role")
DIGEST_AT = "unknown_digest_at"  # its key in meta


def _row(u: Unknown) -> tuple:
    return (u.stack, u.fingerprint, u.container, json.dumps(u.containers), u.stream, u.kind, u.logger,
            u.level, json.dumps(u.exceptions), u.summary, u.count, u.first_seen, u.last_seen,
            json.dumps(u.samples), u.digested, u.burst_at, u.role)


def _unknown(r: tuple) -> Unknown:
    return Unknown(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7], json.loads(r[8]), r[9], r[10],
                   r[11], r[12], json.loads(r[13]), r[14], r[15], r[16])


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _over_share(rows: list[tuple[int, str, str]], excess: int) -> list[int]:
    """`excess` rowids to drop from (rowid, container, stream) rows, most recently seen first:
    each from the source holding the most at that moment (of equals, the one whose oldest is
    oldest), its least recently seen."""
    by_source: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for age, (rowid, container, stream) in enumerate(rows):
        by_source.setdefault((container, stream), []).append((age, rowid))
    heap = [(-len(ids), -ids[-1][0], ids) for ids in by_source.values()]
    heapq.heapify(heap)
    out: list[int] = []
    while len(out) < excess and heap:
        _, _, ids = heapq.heappop(heap)
        out.append(ids.pop()[1])
        if ids:
            heapq.heappush(heap, (-len(ids), -ids[-1][0], ids))
    return out


class UnknownErrors:
    def __init__(self, file: StateFile) -> None:
        self._file = file

    def get(self, stack: str, fingerprint: str) -> Unknown | None:
        row = self._file.conn().execute(
            f"SELECT {COLUMNS} FROM unknown WHERE stack = ? AND fingerprint = ?",
            (stack, fingerprint)).fetchone()
        return _unknown(row) if row else None

    def find(self, fingerprint: str) -> list[Unknown]:
        """By fingerprint, or a unique prefix of it (in any stack), most recently seen first."""
        rows = self._file.conn().execute(
            f"SELECT {COLUMNS} FROM unknown WHERE fingerprint = ? ORDER BY last_seen DESC",
            (fingerprint,)).fetchall()
        if not rows:
            rows = self._file.conn().execute(
                f"SELECT {COLUMNS} FROM unknown WHERE fingerprint LIKE ? ESCAPE '\\'"
                " ORDER BY last_seen DESC", (_like_prefix(fingerprint),)).fetchall()
            if len({r[1] for r in rows}) > 1:
                return []
        return [_unknown(r) for r in rows]

    def most_frequent(self, since: float = 0.0, limit: int = 1000) -> list[Unknown]:
        """Seen since then, most frequent first."""
        rows = self._file.conn().execute(
            f"SELECT {COLUMNS} FROM unknown WHERE last_seen >= ?"
            " ORDER BY count DESC, last_seen DESC LIMIT ?", (since, limit)).fetchall()
        return [_unknown(r) for r in rows]

    def save(self, entries: list[Unknown], keep: int) -> int:
        """Write entries whole (the agent is their only writer); then, in each stack written
        that holds more than `keep`, drop the least recently seen of the source (container and
        stream) that holds the most, until `keep` are left: a stack full of new errors never
        pushes out another's, nor one source another's. Returns how many were dropped."""
        with self._file.transaction(immediate=False) as conn:
            conn.executemany(
                f"INSERT OR REPLACE INTO unknown ({COLUMNS}) VALUES"
                f" ({','.join('?' * len(COLUMNS.split(',')))})", [_row(e) for e in entries])
            dropped: list[int] = []
            for stack in sorted({e.stack for e in entries}):
                (n,) = conn.execute("SELECT COUNT(*) FROM unknown WHERE stack = ?", (stack,)).fetchone()
                if n > keep:
                    rows = conn.execute("SELECT rowid, container, stream FROM unknown WHERE stack = ?"
                                        " ORDER BY last_seen DESC", (stack,)).fetchall()
                    dropped += _over_share(rows, n - keep)
            conn.executemany("DELETE FROM unknown WHERE rowid = ?", [(r,) for r in dropped])
        return len(dropped)

    def mark_digested(self, keys: list[tuple[str, str, int]]) -> None:
        """(stack, fingerprint, count) included in a digest: later digests count from there."""
        self._file.conn().executemany("UPDATE unknown SET digested = ? WHERE stack = ? AND fingerprint = ?",
                                      [(n, stack, fp) for stack, fp, n in keys])

    def count(self) -> int:
        return int(self._file.conn().execute("SELECT COUNT(*) FROM unknown").fetchone()[0])

    def digest_at(self) -> float | None:
        """When the last digest went out (None before the first)."""
        row = self._file.conn().execute("SELECT value FROM meta WHERE key = ?", (DIGEST_AT,)).fetchone()
        return float(row[0]) if row else None

    def set_digest_at(self, at: float) -> None:
        self._file.conn().execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                  (DIGEST_AT, repr(at)))
