"""`hb-medic recorder`: the deploy recorder alone, beside an agent that does not run it."""

from __future__ import annotations

import argparse
import logging
import sys

from agent.commands import Arg, command, read_settings, read_stacks, setup_logging, signals

# What the recorder reads; a bad value of any other setting never stops it.
NEEDS = {"recorder_addr", "hummingbot_url", "state_db", "log_format", "log_level", "stacks"}


@command("recorder", help="run the deploy recorder alone (MEDIC_RECORDER_ADDR -> MEDIC_HUMMINGBOT_URL)",
         args=[Arg("--stack", metavar="NAME",
                   help="with stacks in the config file: whose recorder (default: the stack default)")])
def recorder(args: argparse.Namespace) -> int:
    from agent.service import RecorderError, start_recorder
    from agent.state import State

    setup_logging()
    settings = read_settings(NEEDS)
    if settings is None:
        return 2
    from agent import logs
    from agent.redact import Redactor

    stacks = read_stacks(settings)
    if stacks is None:
        return 2
    logs.setup(settings.log_format, Redactor([x for c in stacks for x in c.secrets()],
                                             public=[c.hummingbot_username for c in stacks]),
               level=settings.log_level)
    if settings.stacks is None and not settings.recorder_addr:
        print("hb-medic: set MEDIC_RECORDER_ADDR (e.g. 0.0.0.0:8001) for the recorder", file=sys.stderr)
        return 2
    try:
        thread = start_recorder(settings, State(settings.state_db), stack=args.stack)
    except RecorderError as exc:
        print(f"hb-medic: {exc}", file=sys.stderr)
        return 2
    rec = thread.recorder
    logging.getLogger("agent").info("deploy recorder%s on %s:%s -> %s; records in %s",
                                    "" if rec.stack == "default" else f" of stack {rec.stack}", thread.host,
                                    thread.port, rec.upstream, settings.state_db)
    signals().wait()
    thread.stop()
    return 0
