"""What an action gets to work with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agent.redact import Redactor

if TYPE_CHECKING:
    import docker

    from agent.hummingbot_api import HummingbotAPI


class ActionError(Exception):
    """An action could not do its job; the message says why, without secrets."""


@dataclass
class ActionContext:
    docker: docker.DockerClient
    api: HummingbotAPI
    credentials_dir: Path | None = None
    redactor: Redactor = field(default_factory=Redactor)
