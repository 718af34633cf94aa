"""Command line of hb-medic (``hb-medic`` and ``python -m agent``)."""

from __future__ import annotations

import argparse
import logging
import os
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
    sub.add_parser("recorder", help="run the deploy recorder alone (MEDIC_RECORDER_ADDR -> "
                                    "MEDIC_HUMMINGBOT_URL)")
    rules = sub.add_parser("rules", help="check, test and describe rule files").add_subparsers(
        dest="rules_command", metavar="SUBCOMMAND", required=True)
    default = os.environ.get("MEDIC_RULES_DIR", "rules")
    check = rules.add_parser("check", help="validate every rule; errors name file and line")
    check.add_argument("--rules", default=default, metavar="DIR")
    test = rules.add_parser("test", help="replay saved `docker logs` output through the rules")
    test.add_argument("logfiles", nargs="+", metavar="LOGFILE", help="a file, or - for stdin")
    test.add_argument("--rules", default=default, metavar="DIR")
    test.add_argument("--json", action="store_true", help="one JSON object a line")
    test.add_argument("--container", default="hummingbot-api",
                      help="container the log came from (default hummingbot-api)")
    rules.add_parser("schema", help="JSON Schema of the rule format")
    return parser


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _settings():
    from agent.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        for err in exc.errors():
            name = "MEDIC_" + "_".join(str(p) for p in err["loc"]).upper()
            print(f"hb-medic: bad setting {name}: {err['msg']}", file=sys.stderr)
        return None


def _wait_for_signal() -> None:
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()


def cmd_run() -> int:
    from agent.service import RecorderError, RulesError, Service

    _setup_logging()
    settings = _settings()
    if settings is None:
        return 2
    try:
        service = Service(settings)
    except RulesError as exc:
        print(f"hb-medic: the rules in {settings.rules_dir} have errors:\n{exc}", file=sys.stderr)
        return 2
    except RecorderError as exc:
        print(f"hb-medic: {exc}", file=sys.stderr)
        return 2
    service.start()
    _wait_for_signal()
    service.stop()
    return 0


def cmd_recorder() -> int:
    from agent.service import RecorderError, start_recorder
    from agent.store import Store

    _setup_logging()
    settings = _settings()
    if settings is None:
        return 2
    if not settings.recorder_addr:
        print("hb-medic: set MEDIC_RECORDER_ADDR (e.g. 0.0.0.0:8001) for the recorder", file=sys.stderr)
        return 2
    try:
        thread = start_recorder(settings, Store(settings.state_db))
    except RecorderError as exc:
        print(f"hb-medic: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("agent").warning("deploy recorder on %s -> %s; records in %s",
                                       settings.recorder_addr, settings.hummingbot_url, settings.state_db)
    _wait_for_signal()
    thread.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        return cmd_run()
    if args.command == "recorder":
        return cmd_recorder()
    if args.command == "rules":
        from agent import rules_cmd

        if args.rules_command == "check":
            return rules_cmd.check(args.rules)
        if args.rules_command == "schema":
            return rules_cmd.print_schema()
        return rules_cmd.run_test(args.logfiles, args.rules, args.json, args.container)
    parser.print_help()
    return 2
