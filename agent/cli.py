"""Command line of hb-medic (``hb-medic`` and ``python -m agent``)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from pydantic import ValidationError

from agent import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hb-medic",
        description="Watch hummingbot-api, fix known failures, retry the deploy, notify.",
    )
    parser.add_argument("--version", action="version", version=f"hb-medic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="run the agent (settings from MEDIC_* environment variables)")
    return parser


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def cmd_run() -> int:
    from agent.service import Service
    from agent.settings import Settings

    _setup_logging()
    try:
        settings = Settings()
    except ValidationError as exc:
        for err in exc.errors():
            name = "MEDIC_" + "_".join(str(p) for p in err["loc"]).upper()
            print(f"hb-medic: bad setting {name}: {err['msg']}", file=sys.stderr)
        return 2
    service = Service(settings)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    service.start()
    done.wait()
    service.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        return cmd_run()
    parser.print_help()
    return 2
