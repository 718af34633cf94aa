"""What a chat service must do for hb-medic: post a message, edit it, and hand back what people
press or type. One class per service (Telegram, Slack) implements it; everything above it
(which message to edit, what a press means) is the same for all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Button:
    """A button under a message. `data` is opaque to the transport (agent.chat.operator makes
    and checks it: the incident, the choice and a single-use token), at most 64 bytes (Telegram's
    callback_data limit)."""

    label: str
    data: str


@dataclass(frozen=True, slots=True)
class Posted:
    """Where a message landed: enough to edit it later (stored in the state file)."""

    chat: str
    message: str  # Telegram's message_id, Slack's ts


@dataclass(frozen=True, slots=True)
class Who:
    """Who pressed or typed, as the service says (never trusted for more than the allow-list)."""

    service: str  # telegram | slack
    user: str  # the service's user id
    chat: str  # where it was pressed or typed
    name: str = ""  # display name, for the audit trail only


class ChatError(Exception):
    """The service refused or could not be reached."""


class RateLimited(ChatError):
    def __init__(self, retry_after: float | None) -> None:
        super().__init__(f"rate limited (429), retry after {retry_after} s")
        self.retry_after = retry_after


class EditGone(ChatError):
    """The message cannot be edited any more (deleted, too old): post a new one instead."""


class Transport(Protocol):
    service: str

    def post(self, text: str, buttons: list[Button]) -> Posted:
        """A new message in the configured chat."""

    def edit(self, where: Posted, text: str, buttons: list[Button]) -> None:
        """Replace a message's text and buttons; EditGone when it cannot be."""

    def listen(self, on_press: Callable[[Who, str], str], on_command: Callable[[Who, str], str],
               stopping: Callable[[], bool]) -> None:
        """Until `stopping()`: hand each button press (its data) and each command (its text,
        e.g. "status", "fix 12") to the callbacks and show their answer to the person."""
