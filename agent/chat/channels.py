"""The chat channels the settings enable (MEDIC_CHAT), built from the notify targets that name
them: each such target's messages become living messages (agent.chat.living), and each bot's
presses and commands are read by a Listener component and handed to the operator.

Telegram: a `tgram://TOKEN/CHAT_ID` target of MEDIC_NOTIFY_URLS (or its secret file, or the
apprise config file) is the chat; its token is the bot's.

Slack: the app's tokens and channel are settings of their own (MEDIC_SLACK_BOT_TOKEN,
MEDIC_SLACK_APP_TOKEN, MEDIC_SLACK_CHANNEL), not an apprise URL: the chat becomes a notify
target of its own (Channels.targets), which the notifier delivers to only as living messages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

from agent.chat import slack
from agent.chat.living import LivingMessages
from agent.chat.operator import Operator
from agent.chat.telegram import BadURL, Offsets, Telegram, from_url
from agent.component import Loop, OneLoop
from agent.notify.targets import Target
from agent.redact import Redactor
from agent.state import State

log = logging.getLogger(__name__)
SERVICES = ("telegram", "slack")
UNREACHABLE = 300.0  # seconds a chat may fail to answer before /healthz says so


class ChatSetupError(ValueError):
    """MEDIC_CHAT names a service no notify target is for."""


class Listener(OneLoop):
    """Reads one bot's presses and commands (the transport's `listen`) and hands them to the
    operator. Nothing of a fix waits for it: a chat service gone for minutes only delays the
    answers to presses. A stop returns by its deadline; a long poll then in progress ends by
    itself within POLL_SECONDS (its thread is a daemon) and hands nothing more to the operator."""

    def __init__(self, transport: Telegram | slack.SlackTransport, operator: Operator) -> None:
        self.transport = transport
        self.operator = operator
        self.name = f"chat-{transport.service}"
        self.pressed = 0
        self.commands = 0
        self.loop = Loop(self.name, self._run, on_stop=transport.close)

    def _run(self) -> None:
        while not self.loop.stopping.is_set():
            try:
                self.transport.listen(self._press, self._command, self.loop.stopping.is_set)
            except Exception:
                log.exception("%s: reading presses and commands failed; starting again", self.name)
            self.loop.wait(1.0)

    def _press(self, who, data: str) -> str:
        self.pressed += 1
        return self.operator.press(who, data)

    def _command(self, who, text: str) -> str:
        self.commands += 1
        return self.operator.command(who, text)

    def health(self) -> list[str]:
        problem, since = self.transport.problem, self.transport.problem_since
        if problem and time.time() - since > UNREACHABLE:
            return [f"{self.transport.service} chat: presses and commands unread for"
                    f" {time.time() - since:.0f} s ({problem})"]
        return []

    def metrics(self) -> Iterator[Metric]:
        service = self.transport.service
        yield _counter("hb_medic_chat_presses", "Button presses read from the chat", service, self.pressed)
        yield _counter("hb_medic_chat_commands", "Commands read from the chat", service, self.commands)


def _counter(name: str, doc: str, service: str, value: int) -> Metric:
    family = CounterMetricFamily(name, doc, labels=["service"])
    family.add_metric([service], value)
    return family


@dataclass
class Channels:
    chats: dict[str, LivingMessages] = field(default_factory=dict)  # notify target id -> its messages
    listeners: list[Listener] = field(default_factory=list)
    described: list[str] = field(default_factory=list)  # for the start-up summary
    targets: list[Target] = field(default_factory=list)  # chats that are no apprise target (Slack)


def telegram_targets(targets: list[Target]) -> list[tuple[Target, str, str]]:
    """(target, token, chat) of each Telegram notify target."""
    out = []
    for t in targets:
        if t.kind != "telegram":
            continue
        try:
            token, chat = from_url(t.plugin.url(privacy=False))
        except BadURL as exc:
            raise ChatSetupError(f"{t.private}: {exc}") from None
        out.append((t, token, chat))
    return out


def build(services: list[str], store: State, targets: list[Target], redactor: Redactor,
          operator: Operator | None, *, telegram_api_url: str, settings: Any = None) -> Channels:
    """The living messages of every chat target, and one listener per bot (when an operator
    answers presses and commands). `settings`: where Slack's tokens and channel are."""
    channels = Channels()
    if "slack" in services:
        try:
            transport = slack.from_settings(settings)
        except ValueError as exc:
            raise ChatSetupError(str(exc)) from None
        redactor.add(settings.slack_bot_token.get_secret_value())
        redactor.add(settings.slack_app_token.get_secret_value())
        target = slack.target(transport)
        channels.targets.append(target)
        channels.chats[target.id] = LivingMessages(store, transport, target.id,
                                                   buttons=getattr(operator, "buttons", None))
        if operator is not None:  # posting and listening share it: close() ends only the listening
            channels.listeners.append(Listener(transport, operator))
        channels.described.append(f"chat: slack, channel {transport.channel}: one message per incident"
                                  + (", buttons and commands answered" if operator is not None else ""))
    if "telegram" in services:
        found = telegram_targets(targets)
        if not found:
            raise ChatSetupError("MEDIC_CHAT names telegram, but no notify target is a Telegram one: add"
                                 " tgram://BOT_TOKEN/CHAT_ID to MEDIC_NOTIFY_URLS (or its secret file)")
        buttons = getattr(operator, "buttons", None)
        bots: set[str] = set()
        for target, token, chat in found:
            redactor.add(token)
            bot = token.split(":")[0]
            # Two clients: the listener's is closed by a stop while the notifier may still post.
            channels.chats[target.id] = LivingMessages(
                store, Telegram(token, chat, api_url=telegram_api_url), target.id, buttons=buttons)
            if operator is not None and bot not in bots:  # one reader per bot: Telegram allows one
                bots.add(bot)
                channels.listeners.append(Listener(Telegram(token, chat, api_url=telegram_api_url,
                                                            offsets=Offsets(store, f"telegram:{bot}")),
                                                   operator))
            channels.described.append(f"chat: telegram, bot {bot}, chat {chat}: one message per incident"
                                      + (", buttons and commands answered" if operator is not None else ""))
    return channels
