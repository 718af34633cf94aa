"""What an action gets to work with."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from agent.redact import Redactor

if TYPE_CHECKING:
    import docker

    from agent.hummingbot_api import HummingbotAPI


class ActionError(Exception):
    """An action could not do its job; the message says why, without secrets."""


class NeedsHuman(ActionError):
    """The fix cannot go on without a person (trying again would not help); the message says
    exactly what to do."""


class Stopped(Exception):
    """The agent is stopping: a wait inside an action ended early. Not the fix failing: the
    incident is saved where it stands and goes on at the next start."""


@dataclass(frozen=True)
class BotMatch:
    """A bot rule that matched a line of a bot: which, what, and when the line was written."""

    rule: str
    summary: str
    at: float  # wall clock: when the bot wrote the line (not when the agent read it)
    # A condition of the bot's surroundings with an incident of its own (a rule whose incident
    # lasts while its lines come, such as an exchange out of reach): not the bot's own failure.
    condition: bool = False

    def __str__(self) -> str:
        return f"{self.rule}: {self.summary}"


class BotWatch(Protocol):
    """What the agent saw of its bots lately: rule matches and deaths, per container."""

    def matches_since(self, container: str, since: float, rule: str | None = None) -> list[BotMatch]:
        """The bot rules matched on lines the container wrote since then (wall clock), oldest
        first; one record the bot wrote to two channels (console and log file) is one match."""

    def death(self, container: str) -> dict | None:
        """How the container died by itself, if it did: exit code, life, the rule that knows why."""


@dataclass
class ActionContext:
    docker: docker.DockerClient
    api: HummingbotAPI
    credentials_dir: Path | None = None
    redactor: Redactor = field(default_factory=Redactor)
    bots_dir: Path | None = None  # hummingbot-api's bots/ folder, read-only
    allowed_images: tuple[str, ...] = ()  # images a deploy retry may name besides the default
    watch: BotWatch | None = None
    settle: float = 30.0  # how long a (re)deployed bot must live before it counts as fixed
    # Set when the agent stops: every wait of an action (settle time, heartbeat, backoff) ends
    # at once, so a stop never waits for a fix (Docker's grace is 10 s).
    stopping: threading.Event = field(default_factory=threading.Event)

    def pause(self, seconds: float) -> None:
        """Sleep, or raise Stopped as soon as the agent stops."""
        if self.stopping.wait(max(0.0, seconds)):
            raise Stopped("the agent is stopping")
