"""Command line of hb-medic (``hb-medic`` and ``python -m agent``)."""

from __future__ import annotations

import argparse

from agent import __version__


def build_parser() -> argparse.ArgumentParser:
    """The parser; each capability adds its sub-command here as it lands."""
    parser = argparse.ArgumentParser(
        prog="hb-medic",
        description="Watch hummingbot-api, fix known failures, retry the deploy, notify.",
    )
    parser.add_argument("--version", action="version", version=f"hb-medic {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return 0
