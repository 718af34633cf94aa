"""What every stack's runtime shares with the others, and nothing more: the service builds
one and hands it to each stack, so a stack never reaches into the service.

Everything here is safe to share because none of it can block a stack for long: the state
file (SQLite, short writes), the rules (read-only, swapped whole on reload), the notifier's
outbox (each stack's messages take turns) and the count of errors no rule knows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent.events import Event
from agent.match.library import Library
from agent.records import Incident
from agent.redact import Redactor
from agent.settings import Settings
from agent.state import State

Notify = Callable[[Incident, str, str], None]  # (incident, step, text): log it and queue its message
ObserveUnknown = Callable[[Event, Callable[[Event], bool]], bool]  # an event no rule matched


@dataclass(frozen=True)
class Shared:
    settings: Settings
    store: State
    rules: Callable[[], Library]  # the rules in force now (a reload swaps them)
    notify: Notify
    observe_unknown: ObserveUnknown
    redactor: Redactor
    show_stack: bool  # several stacks (or one not called default): logs and titles name the stack

    def rules_by_id(self) -> dict:
        return {r.id: r for r in self.rules().rules}
