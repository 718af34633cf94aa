"""Approvals waiting for a person (ask mode), and the single-use tokens of the chat's buttons.

An incident that asks keeps its plan here until it is approved, ignored or expires; each step
is one write that checks where the incident stands in the same statement, so two answers (two
people, a replayed press, the expiry) never both win. The tokens make a button's data
unguessable and good for one press; they live only in the state file, never in a log.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

from agent.records import IncidentState
from agent.state.file import StateFile

AWAITING = str(IncidentState.AWAITING_APPROVAL)
WARNED = str(IncidentState.WARNED)


@dataclass(frozen=True)
class Approval:
    incident: str
    stack: str
    plan: list[str]
    asked: float
    expires: float
    approved: float | None = None
    approved_by: str = ""


class Use(StrEnum):
    """What a press's token turned out to be."""

    OK = "ok"  # fresh, and now used
    USED = "used"  # pressed before: a replay
    EXPIRED = "expired"  # older than its time to live
    UNKNOWN = "unknown"  # never given for this incident and choice: forged, or another incident's


class Approvals:
    def __init__(self, file: StateFile) -> None:
        self._file = file

    # -- approvals ---------------------------------------------------------------------------------
    def ask(self, incident: str, stack: str, plan: list[str], expires: float) -> None:
        self._file.conn().execute(
            "INSERT OR REPLACE INTO approvals (incident, stack, plan, asked, expires) VALUES (?, ?, ?, ?, ?)",
            (incident, stack, json.dumps(plan), time.time(), expires))

    def get(self, incident: str) -> Approval | None:
        row = self._file.conn().execute(
            "SELECT incident, stack, plan, asked, expires, approved, approved_by FROM approvals"
            " WHERE incident = ?", (incident,)).fetchone()
        return None if row is None else Approval(row[0], row[1], json.loads(row[2]), *row[3:])

    def replan(self, incident: str, plan: list[str]) -> None:
        """The rule plans otherwise now: what the next approval runs."""
        self._file.conn().execute("UPDATE approvals SET plan = ? WHERE incident = ? AND approved IS NULL",
                                  (json.dumps(plan), incident))

    def approve(self, incident: str, by: str, now: float | None = None, *, offer: bool = False) -> bool:
        """Approved, if it still waits and has not expired (one winner). `offer`: the Fix now of a
        preflight's warning (ask mode), whose incident stays `warned`."""
        now = time.time() if now is None else now
        cur = self._file.conn().execute(
            "UPDATE approvals SET approved = ?, approved_by = ? WHERE incident = ? AND approved IS NULL"
            " AND expires > ? AND EXISTS (SELECT 1 FROM incidents WHERE id = ? AND state = ?)",
            (now, by, incident, now, incident, WARNED if offer else AWAITING))
        return cur.rowcount == 1

    def drop(self, incident: str, condition: str = "1") -> bool:
        """A warning's offer of a fix ends (used, ignored, expired): one winner, its unused
        buttons with it. `condition`: "approved IS NOT NULL" claims an approved one to run it."""
        with self._file.transaction() as conn:
            cur = conn.execute(f"DELETE FROM approvals WHERE incident = ? AND {condition}", (incident,))
            if cur.rowcount != 1:
                return False
            conn.execute("DELETE FROM chat_tokens WHERE incident = ? AND used IS NULL", (incident,))
        return True

    def approved(self, stack: str) -> list[str]:
        """Approved incidents whose attempt has not begun (an approval from another process, or
        one a kill came between)."""
        rows = self._file.conn().execute(
            "SELECT incident FROM approvals WHERE stack = ? AND approved IS NOT NULL ORDER BY approved",
            (stack,)).fetchall()
        return [r[0] for r in rows]

    def start(self, incident: str) -> bool:
        """An approved incident goes on as a detected one would in act mode (one winner)."""
        return self._end(incident, IncidentState.DETECTED, "approved IS NOT NULL")

    def ignore(self, incident: str) -> bool:
        """Closed by a person before anything ran (one winner); the caller tells it."""
        return self._end(incident, IncidentState.OBSERVED, "approved IS NULL")

    def expiring(self, now: float, stack: str) -> list[str]:
        rows = self._file.conn().execute(
            "SELECT incident FROM approvals WHERE stack = ? AND approved IS NULL AND expires <= ?",
            (stack, now)).fetchall()
        return [r[0] for r in rows]

    def expire(self, incident: str, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return self._end(incident, IncidentState.EXPIRED, "approved IS NULL AND expires <= ?", (now,))

    def _end(self, incident: str, to: IncidentState, condition: str, args: tuple = ()) -> bool:
        with self._file.transaction() as conn:
            cur = conn.execute(
                f"UPDATE incidents SET state = ?, updated = ? WHERE id = ? AND state = ? AND EXISTS"
                f" (SELECT 1 FROM approvals WHERE incident = ? AND {condition})",
                (str(to), time.time(), incident, AWAITING, incident, *args))
            if cur.rowcount != 1:
                return False
            conn.execute("DELETE FROM approvals WHERE incident = ?", (incident,))
            conn.execute("DELETE FROM chat_tokens WHERE incident = ? AND used IS NULL", (incident,))
        return True

    def pending(self, stack: str | None = None) -> list[Approval]:
        rows = self._file.conn().execute(
            "SELECT incident, stack, plan, asked, expires, approved, approved_by FROM approvals"
            + (" WHERE stack = ?" if stack is not None else "") + " ORDER BY asked",
            (stack,) if stack is not None else ()).fetchall()
        return [Approval(r[0], r[1], json.loads(r[2]), *r[3:]) for r in rows]

    # -- the buttons' tokens -----------------------------------------------------------------------
    def token(self, incident: str, choice: str) -> str:
        """The live token of this incident's choice, or a new one: the same buttons however often
        a message is drawn again."""
        with self._file.transaction() as conn:
            row = conn.execute("SELECT token FROM chat_tokens WHERE incident = ? AND choice = ?"
                               " AND used IS NULL", (incident, choice)).fetchone()
            if row is not None:
                return row[0]
            token = secrets.token_urlsafe(12)  # 16 characters; the button's data stays far below 64 bytes
            conn.execute("INSERT INTO chat_tokens (token, incident, choice, created) VALUES (?, ?, ?, ?)",
                         (token, incident, choice, time.time()))
            return token

    def use(self, token: str, incident: str, choice: str, by: str, ttl: float,
            now: float | None = None) -> tuple[Use, str]:
        """Use a press's token once: (what it was, who used it before when it was a replay)."""
        now = time.time() if now is None else now
        with self._file.transaction() as conn:
            row = conn.execute("SELECT created, used, used_by FROM chat_tokens WHERE token = ?"
                               " AND incident = ? AND choice = ?", (token, incident, choice)).fetchone()
            if row is None:
                return Use.UNKNOWN, ""
            created, used, used_by = row
            if used is not None:
                return Use.USED, used_by
            if now - created > ttl:
                return Use.EXPIRED, ""
            conn.execute("UPDATE chat_tokens SET used = ?, used_by = ? WHERE token = ?", (now, by, token))
        return Use.OK, ""

    def forget(self, before: float) -> None:
        """Tokens of long ago (their incidents closed or their time to live over)."""
        self._file.conn().execute("DELETE FROM chat_tokens WHERE created < ?", (before,))
