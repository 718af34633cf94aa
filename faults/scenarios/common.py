"""Small things every scenario uses."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from agent.chat.decisions import Decisions
from agent.chat.transport import Who
from agent.redact import Redactor
from agent.state import State

ALICE = Who("telegram", "1001", "-500", "alice")  # the person the scenarios' agents allow
ALLOWED = {"telegram": ["1001"]}


def log(text: str) -> None:
    """Progress, on stderr (stdout carries the result)."""
    print(f"  {text}", file=sys.stderr, flush=True)


def settle(done: Callable[[], object], timeout: float, interval: float = 0.5) -> bool:
    """Poll until done() is true or the time is up; whether it got there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(interval)
    return bool(done())


def approver(store: State, library) -> Decisions:
    """A chat transport's side of approvals (another process than the agent's): ALICE's presses."""
    return Decisions(store, lambda: {r.id: r for r in library.rules}, allowed=ALLOWED, ttl=3600,
                     redactor=Redactor())


def fix_button(op: Decisions, inc: str | None) -> str:
    """The incident's Fix now button (its data), or "" when it has none."""
    return next((b.data for b in op.buttons(inc) if b.data.startswith("fix:")), "") if inc else ""
