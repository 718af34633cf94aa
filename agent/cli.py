"""Command line of hb-medic (``hb-medic`` and ``python -m agent``).

The commands are declared beside the code they serve (see agent.commands); this module gathers
them, builds the parser from them and runs the one asked for.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from agent import __version__
from agent.commands import COMMANDS, GROUPS, Command, OneOf, UsageError

# The modules that declare commands, in the order of `hb-medic --help`.
MODULES = (
    "agent.run_cmd",
    "agent.recorder.command",
    "agent.rules_cmd",
    "agent.unknown.command",
    "agent.incidents_cmd",
    "agent.notify.command",
    "agent.doctor_cmd",
    "agent.retry_cmd",
    "agent.preflight.command",
)


def table() -> list[Command]:
    """Every command, once its module has declared it."""
    for module in MODULES:
        importlib.import_module(module)
    return COMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hb-medic",
        description="Watch hummingbot-api, fix known failures, retry the deploy, notify.",
    )
    parser.add_argument("--version", action="version", version=f"hb-medic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = table()
    helps = {g.word: g.help for g in GROUPS}
    groups: dict[str, argparse._SubParsersAction] = {}
    for cmd in commands:
        *above, word = cmd.words
        where = sub
        if above:
            (name,) = above
            if name not in groups:
                groups[name] = sub.add_parser(name, help=helps[name]).add_subparsers(
                    metavar="SUBCOMMAND", required=True)
            where = groups[name]
        command = where.add_parser(word, help=cmd.help)
        command.set_defaults(run=cmd.run)
        for arg in cmd.args:
            if isinstance(arg, OneOf):
                one_of = command.add_mutually_exclusive_group()
                for each in arg.args:
                    one_of.add_argument(*each.names, **each.options)
            else:
                command.add_argument(*arg.names, **arg.options)
    return parser


STATE_FILE_UNUSABLE = 3  # exit status: the state file cannot be used (see the message)


def main(argv: list[str] | None = None) -> int:
    """Run a command; a reader that went away (`| head`, quitting `less`) ends it quietly."""
    try:
        code = _dispatch(argv)
        sys.stdout.flush()  # a broken pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        # Nothing more can be written: point stdout at /dev/null so the interpreter's own
        # final flush stays silent, and exit as a process stopped by SIGPIPE would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except Exception as exc:
        return _said(exc)


def _said(exc: Exception) -> int:
    """A state file or a config file a command cannot use: one message and an exit status, no
    traceback. Their modules load only here: `hb-medic health` never pays for them."""
    from agent.settings import BadSettings
    from agent.state import StateFileError

    if isinstance(exc, StateFileError):  # its own exit status (a restart policy shows it)
        print(f"hb-medic: {exc}", file=sys.stderr)
        return STATE_FILE_UNUSABLE
    if isinstance(exc, BadSettings):  # a command that reads one setting met a config file it cannot read
        for message in exc.problems.values():
            print(f"hb-medic: {message}", file=sys.stderr)
        return 2
    raise exc


def _dispatch(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except UsageError as exc:
        parser.error(str(exc))
