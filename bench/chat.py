"""The chat group: messages a phone gets for one incident, and how soon a button press reaches
the operator, against the local Telegram Bot API server of the tests (tests.telegram_fake)
through the real notifier, outbox, transport and long-polling listener."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from tests.chatbed import OperatorDouble, bed, incident
from tests.stack import wait_until
from tests.telegram_fake import TelegramFake


def messages_per_incident() -> dict:
    """The story of a fix that cannot work (once six messages): new messages and edits in the chat."""
    with tempfile.TemporaryDirectory() as tmp, TelegramFake() as fake, bed(Path(tmp) / "s.db", fake) as b:
        b.tell(incident(b.store, "bench001"))
        wait_until(b.drained, 60, "the story delivered")
        time.sleep(0.5)
        return {"messages": len(fake.of("sendMessage")), "edits": len(fake.of("editMessageText"))}


def approval_latencies(presses: int) -> list[float]:
    """ms from a button press at the Bot API server to the operator's `press` being called.

    Until the chat's real operator is in place this measures up to the call of an operator double
    (tests.chatbed.OperatorDouble); the real one then starts the fix from that call."""
    out = []
    operator = OperatorDouble()
    with (tempfile.TemporaryDirectory() as tmp, TelegramFake() as fake,
          bed(Path(tmp) / "s.db", fake, operator=operator, listen=True)):
        wait_until(lambda: fake.of("getMe"), 10, "the listener polling")
        for i in range(presses):
            operator.pressed.clear()
            pressed = time.time()
            fake.press(4242, f"fix:bench{i:03d}:token")
            if not operator.pressed.wait(10):
                raise AssertionError(f"press {i} never reached the operator")
            out.append((operator.presses[-1][2] - pressed) * 1000)
            time.sleep(0.05)
    return out
