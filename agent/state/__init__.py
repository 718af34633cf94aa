"""The agent's state in one SQLite file (agent.state.file), kept by one small repository per
subsystem: where each source resumes, recorded deploys, incidents and their audit trail, the
notification outbox, errors no rule knows, approvals waiting for a person and silences, the
chat channels' living messages."""

from __future__ import annotations

from pathlib import Path

from agent.names import DEFAULT_STACK
from agent.state.approvals import Approvals
from agent.state.chat import ChatMessages
from agent.state.checkpoints import Checkpoints
from agent.state.deploys import Deploys
from agent.state.file import StateFile, StateFileError, StateUnwritable
from agent.state.incidents import Incidents
from agent.state.outbox import Outbox
from agent.state.sends import Sends
from agent.state.silences import Silences
from agent.state.unknown import UnknownErrors

__all__ = ["Checkpoints", "State", "StateFile", "StateFileError", "StateUnwritable"]


class State:
    """The state file and its repositories; a file that is not usable raises StateFileError."""

    def __init__(self, path: str | Path) -> None:
        self.file = StateFile(path)
        self.deploys = Deploys(self.file)
        self.incidents = Incidents(self.file)
        self.outbox = Outbox(self.file)
        self.unknown = UnknownErrors(self.file)
        self.sends = Sends(self.file)
        self.approvals = Approvals(self.file)
        self.silences = Silences(self.file)
        self.chat = ChatMessages(self.file)

    def checkpoints(self, stack: str = DEFAULT_STACK) -> Checkpoints:
        """Where each source of a stack resumes."""
        return Checkpoints(self.file, stack)

    def close(self) -> None:
        """Closes this thread's connection (another use opens a new one)."""
        self.file.close()
