"""The chat's test bed, shared by the tests and the benchmark: the real notifier and outbox, the
real Telegram transport and its listener, against the local Bot API server (tests.telegram_fake)
and optionally an apprise receiver (tests.receiver); the story of a fix that cannot work; and an
operator double that records what reached it (a test double of agent.chat.operator.Operator, the
protocol the chat hands presses and commands to)."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from agent.chat.channels import Channels, build
from agent.chat.transport import Button, Who
from agent.match.loader import load_rules
from agent.notify.notifier import Notifier
from agent.notify.targets import parse_urls
from agent.records import Incident, IncidentState
from agent.redact import Redactor
from agent.state import State
from tests.stack import REPO
from tests.telegram_fake import TelegramFake

RULES = {r.id: r for r in load_rules(REPO / "rules").rules}

# A fix that cannot work: three attempts, then a person is needed. Once six messages.
STORY = [("acting", 1, "running ensure_account -> retry_deploy (attempt 1 of 3)"),
         ("failed", 1, "retry_deploy: answered 500 (Internal Server Error); next attempt in 5 s"),
         ("acting", 2, "running ensure_account -> retry_deploy (attempt 2 of 3)"),
         ("failed", 2, "retry_deploy: answered 500 (Internal Server Error); next attempt in 10 s"),
         ("acting", 3, "running ensure_account -> retry_deploy (attempt 3 of 3)"),
         ("gave-up", 3, "retry_deploy answered 500 (after 3 attempts)")]


@dataclass
class OperatorDouble:
    """Records each press and command with the time it arrived; answers like an operator would."""

    presses: list[tuple[Who, str, float]] = field(default_factory=list)
    commands: list[tuple[Who, str, float]] = field(default_factory=list)
    pressed: threading.Event = field(default_factory=threading.Event)

    def press(self, who: Who, data: str) -> str:
        self.presses.append((who, data, time.time()))
        self.pressed.set()
        choice, _, rest = data.partition(":")
        return f"{choice} incident {rest.split(':')[0]}: done"

    def command(self, who: Who, text: str) -> str:
        self.commands.append((who, text, time.time()))
        return f"answer to {text} <b>not markup</b>"

    def buttons(self, incident: str) -> list[Button]:
        return [Button("Fix now", f"fix:{incident}:t0k3n"), Button("Ignore", f"ignore:{incident}:t0k3n")]


def incident(store: State, ident: str, rule: str = "credentials-profile-missing", **kw) -> Incident:
    inc = Incident(id=ident, rule=rule, key="client_sharp", state=IncidentState.ACTING,
                   severity=RULES[rule].severity, container="hummingbot-api", fingerprint="v1:x",
                   captures={"profile": "client_sharp"},
                   summary="credentials-profile-missing in hummingbot-api: FileNotFoundError: [Errno 2] "
                           "No such file or directory: 'bots/credentials/client_sharp'", **kw)
    return store.incidents.create(inc)


@dataclass
class Bed:
    store: State
    notifier: Notifier
    channels: Channels
    fake: TelegramFake

    def tell(self, inc: Incident, story=STORY, pause: float = 0.0) -> list[float]:
        """The story's steps as the remedy tells them; how long each `step` call took (s)."""
        took = []
        for step, attempt, text in story:
            inc.attempts = attempt
            start = time.perf_counter()
            self.notifier.step(inc, step, text)
            took.append(time.perf_counter() - start)
            if pause:
                time.sleep(pause)
        return took

    def drained(self) -> bool:
        counts = self.store.outbox.counts()
        return not counts.get("pending") and not counts.get("folded")


@contextmanager
def bed(path: Path, fake: TelegramFake, *, plain_url: str = "", operator=None, listen: bool = False,
        redactor: Redactor | None = None, **kw):
    """A notifier whose Telegram target is a living chat (and `plain_url` an apprise target);
    `listen`: the chat's listener runs too, handing presses and commands to `operator`."""
    store = State(path)
    targets = parse_urls(",".join(u for u in (fake.notify_url(), plain_url) if u))
    redactor = redactor or Redactor()
    channels = build(["telegram"], store, targets, redactor, operator if listen else None,
                     telegram_api_url=fake.url)
    if operator is not None and not listen:
        for chat in channels.chats.values():
            chat.buttons = operator.buttons
    for listener in channels.listeners:
        listener.transport.poll_seconds = 2
    notifier = Notifier(store, targets, rules=lambda: RULES, redactor=redactor, chats=channels.chats, **kw)
    notifier.start()
    for listener in channels.listeners:
        listener.start()
    try:
        yield Bed(store, notifier, channels, fake)
    finally:
        for listener in channels.listeners:
            listener.stop()
        notifier.stop()
