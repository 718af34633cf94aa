"""One message per incident in a chat, edited in place as the incident moves, whatever the
service (it is given a Transport).

The notifier's outbox hands each step of an incident to `LivingMessages.deliver`, in order,
once (an edit is an outbox row like a send: nothing lost, nothing doubled, in order, across
restarts). The first step posts the incident's message; each later step replaces its text (the
current state and the steps so far) and its buttons. A new message is posted only when a person
is needed (PERSON_STEPS: the phone should ring, an edit does not make it) and it is the
incident's message from then on; or when the old one cannot be edited any more (EditGone:
deleted, too old). Where each incident's message is (chat, message id) is kept in the state
file, so a restart edits the same message.

Messages of no incident (digests, a test) are posted, never edited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.chat.transport import Button, EditGone, Posted, Transport
from agent.notify import render
from agent.notify.message import Message
from agent.state import State

log = logging.getLogger(__name__)

# Steps that need a person: a new message (a notification on the phone), not an edit.
PERSON_STEPS = frozenset({"gave-up", "needs-you", "observed", "waiting", "awaiting-approval"})
# Messages that are no incident's: always posted on their own.
ONE_OFF_STEPS = frozenset({"digest", "unknown-digest", "unknown-burst", "test"})

Render = Callable[[Message], str]
Buttons = Callable[[str], list[Button]]  # incident id -> the buttons under its message

RENDERERS: dict[str, Render] = {"telegram": lambda m: render.telegram(m, steps=True)[1],
                                "slack": lambda m: render.mrkdwn(m, steps=True)[1]}


def _no_buttons(_incident: str) -> list[Button]:
    return []


class LivingMessages:
    """The living messages of one chat target (a Transport and the notify target it stands for)."""

    def __init__(self, store: State, transport: Transport, target: str, *, render: Render | None = None,
                 buttons: Buttons | None = None) -> None:
        """`target`: the notify target's id (a hash of its URL), the key of its messages in the
        state file. `render`: the message's text as the service reads it (by default the
        service's renderer in RENDERERS). `buttons`: the operator's buttons for an incident."""
        self.store = store
        self.transport = transport
        self.target = target
        self.render = render or RENDERERS[transport.service]
        self.buttons = buttons or _no_buttons
        self.posted = 0  # new messages (a metric, and what the benchmark counts)
        self.edited = 0

    def deliver(self, msg: Message) -> None:
        """Post or edit the incident's message. Raises ChatError (RateLimited when the service
        asks to wait): the outbox tries the same step again later."""
        text = self.render(msg)
        if not msg.incident or msg.step in ONE_OFF_STEPS:
            self.transport.post(text, [])
            self.posted += 1
            return
        buttons = self.buttons(msg.incident)
        where = self.store.chat.where(msg.incident, self.target)
        if where is not None and msg.step not in PERSON_STEPS:
            try:
                self.transport.edit(Posted(*where), text, buttons)
                self.edited += 1
                return
            except EditGone:
                log.info("incident %s: its %s message can no longer be edited; posting a new one",
                         msg.incident, self.transport.service)
        posted = self.transport.post(text, buttons)
        self.posted += 1
        self.store.chat.put(msg.incident, self.target, posted.chat, posted.message)
