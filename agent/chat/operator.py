"""The operator's side of the chat, whatever the service: commands and button presses become
decisions on incidents, checked against the allow-list and single-use tokens, and written to the
incident's audit trail. Transports call these two methods and show the returned text."""

from __future__ import annotations

from typing import Protocol

from agent.chat.transport import Button, Who

# Button data: "<choice>:<incident id>:<token>", choice one of these.
CHOICES = {"fix": "Fix now", "retry": "Retry", "ignore": "Ignore", "silence": "Silence 1 h"}


class Operator(Protocol):
    def press(self, who: Who, data: str) -> str:
        """A button press: act on it if `who` may and the token is fresh; the short answer to
        show ("Fixing incident 12", "not allowed", "expired: ...")."""

    def command(self, who: Who, text: str) -> str:
        """A command without its slash ("status", "incident 12", "silence bot-died 1h"): the
        answer, short and readable on a phone."""

    def buttons(self, incident: str) -> list[Button]:
        """The buttons under an incident's message as it stands now (their data single-use):
        Fix now / Ignore / Silence 1 h while it awaits approval, Retry / Silence 1 h after a
        give-up, none otherwise. Transports draw them under the living message."""
