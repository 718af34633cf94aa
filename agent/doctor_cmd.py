"""`hb-medic doctor`, declared apart from its checks: every command's module is imported to
build the command line, and the checks load the settings and docker-py, which `hb-medic
health` (the image's HEALTHCHECK, every 15 s) must not pay for."""

from __future__ import annotations

import argparse
import logging
import sys

from agent.commands import Arg, command


@command("doctor", help="check that the agent can do its job here; each ✗ with its fix",
         args=[Arg("--send", action="store_true", help="also send a test message to every notify target")])
def doctor_command(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("apprise").setLevel(logging.CRITICAL + 1)
    from agent.doctor import run

    return run(send=args.send)
