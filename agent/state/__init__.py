"""The agent's state in one SQLite file (agent.state.file), kept by one small repository per
subsystem: where each source resumes, recorded deploys, incidents and their audit trail, the
notification outbox, errors no rule knows."""

from __future__ import annotations

from agent.state.checkpoints import Checkpoints
from agent.state.file import StateFile, StateFileError, StateUnwritable

__all__ = ["Checkpoints", "State", "StateFile", "StateFileError", "StateUnwritable"]
