"""The commands of hb-medic, each declared beside the code it serves; `agent.cli` gathers them.

A command is its words, its help, its arguments and the function it runs, in one declaration.
Adding one is that declaration in the feature's module, e.g. in agent/incidents_cmd.py::

    @command("incidents", help="incidents and their audit trail",
             args=[Arg("--json", action="store_true", help="one JSON object an incident"),
                   Arg("--limit", type=int, default=20)])
    def incidents(args: argparse.Namespace) -> int:
        ...

Words of a group (``rules``, ``notify``) are declared once with :func:`group`; a command under
it names both words (``@command("rules", "check", ...)``). A module declaring its first command
is named once in ``agent.cli.MODULES``, whose order is that of ``hb-medic --help``. Every such
module is imported to run any command, `hb-medic health` (the image's HEALTHCHECK) too: what is
slow to import is imported inside the function that runs the command.

This module imports no feature, so features import it without a cycle. It also holds what
several commands share: reading their settings, the text log format until then, the stop
signals.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

Run = Callable[[argparse.Namespace], int]


class Arg:
    """One ``add_argument`` call: its names and keywords, as argparse takes them."""

    def __init__(self, *names: str, **options: Any) -> None:
        self.names = names
        self.options = options


class OneOf:
    """Arguments of which at most one may be given (an argparse mutually exclusive group)."""

    def __init__(self, *args: Arg) -> None:
        self.args = args


@dataclass(frozen=True)
class Group:
    """A word that only gathers commands (``rules``): its help, and a required subcommand."""

    word: str
    help: str


@dataclass(frozen=True)
class Command:
    """One command of the table: what `agent.cli` makes a parser of and runs."""

    words: tuple[str, ...]  # ("incidents",) or, under a group, ("rules", "check")
    help: str
    run: Run
    args: tuple[Arg | OneOf, ...] = field(default=())


class UsageError(Exception):
    """Arguments that argparse accepts but that do not go together: said as argparse says its
    own mistakes (the usage, exit status 2)."""


GROUPS: list[Group] = []
COMMANDS: list[Command] = []


def group(word: str, *, help: str) -> Group:
    declared = Group(word, help)
    GROUPS.append(declared)
    return declared


def command(*words: str, help: str, args: Collection[Arg | OneOf] = ()) -> Callable[[Run], Run]:
    """Declare the decorated function as the command `words`; it returns the exit status."""
    def declare(run: Run) -> Run:
        COMMANDS.append(Command(words, help, run, tuple(args)))
        return run
    return declare


# -- what commands share ---------------------------------------------------------------------------

STATE_NEEDS = {"state_db"}


def setup_logging() -> None:
    """Until the settings are read: the text format, escaped (apprise, which logs URLs with
    their tokens, stays quiet; hb-medic reports delivery itself, URLs in privacy form)."""
    from agent import logs

    logs.setup("text")


def read_settings(needs: set[str] | None = None):
    """The settings a command reads (None: all), or None once what is wrong has been said."""
    from agent.settings import BadSettings, load

    config = os.environ.get("MEDIC_CONFIG_FILE")
    if config and not os.path.isfile(config):
        print(f"hb-medic: MEDIC_CONFIG_FILE {config} does not exist", file=sys.stderr)
        return None
    try:
        return load(needs)
    except BadSettings as exc:
        for message in exc.problems.values():
            print(f"hb-medic: {message}", file=sys.stderr)
        return None


def read_stacks(settings) -> list | None:
    """The stacks of the settings, or None once what is wrong with them has been said."""
    from agent.settings import BadSettings

    try:
        return settings.stack_list()
    except BadSettings as exc:
        for message in exc.problems.values():
            print(f"hb-medic: {message}", file=sys.stderr)
        return None


def signals() -> threading.Event:
    """Set on SIGTERM or SIGINT: the way a long-running command is told to stop."""
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    return done
