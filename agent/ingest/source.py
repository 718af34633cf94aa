"""The one contract between the sources of an engine and the pipeline.

Every source (container streams, bot log files, the engine's life events, the deploy feed,
a replay) hands batches to one sink, `Sink.put`. A batch that moves a source's position
carries an `Ack`: the sink calls it once what the batch held is durably handled (for lines:
emitted as events and handled, not merely held by the assembler), with the position the
source resumes from. Only then does the source store that position, its own shape, through
the stack's `agent.state.Checkpoints`. So a kill at any moment neither loses what was still
being assembled nor repeats what was handled, and the sink never knows what a source's
position looks like.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from agent.events import Event, Origin
from agent.ingest.assemble import Item

Ack = Callable[[int], None]
"""Called by the sink, in its own thread: everything of the batch's input before this
position is handled. It may raise StateUnwritable: the sink calls it again later."""


@dataclass(frozen=True, slots=True)
class Lines:
    """Lines of one input of a container (a stream, a log file), in order. `next` is where the
    input goes on after them; `generation` is the container's id where a new container under the
    same name starts anew (None: the input outlives containers, like a file)."""

    container: str
    channel: str
    origin: Origin | None
    items: list[Item]
    next: int
    ack: Ack | None = None
    generation: str | None = None


@dataclass(frozen=True, slots=True)
class Close:
    """An input paused or ended: what is open of it is closed as it is (`origin` None: every
    input of the container, such as a log stream that ended)."""

    container: str
    origin: Origin | None = None
    generation: str | None = None


@dataclass(frozen=True, slots=True)
class Ready:
    """A ready-made event (a recorded deploy, what a container's environment says). `ack` is
    called with `position` once it was handled."""

    event: Event
    ack: Ack | None = None
    position: int = 0


@dataclass(frozen=True, slots=True)
class Ended:
    """A bot's death, after every line it wrote before it (put before this)."""

    event: Event


@dataclass(frozen=True, slots=True)
class Gone:
    """A container that is gone for good: its state goes too."""

    container: str


Batch = Lines | Close | Ready | Ended | Gone


class Sink(Protocol):
    """Where every source puts its batches (the pipeline); blocks while the sink is full, so a
    source that gets ahead waits instead of filling memory."""

    def put(self, batch: Batch) -> None: ...


class Source(Protocol):
    """What every source is: started once, stopped by a common deadline (time.monotonic())."""

    name: str

    def start(self) -> None: ...

    def stop(self, deadline: float) -> None: ...
