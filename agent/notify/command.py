"""`hb-medic notify test`: a sample message to each notification target, to see it arrive."""

from __future__ import annotations

import argparse
import sys

from agent.commands import Arg, command, group, read_settings, setup_logging

# What the command reads; a bad value of any other setting never stops it.
NEEDS = {"notify_urls", "notify_config"}

group("notify", help="notifications")


@command("notify", "test", help="send a sample message to the configured targets",
         args=[Arg("--url", help="one apprise URL instead of the configured targets")])
def notify_test(args: argparse.Namespace) -> int:
    setup_logging()
    from agent.notify.notifier import deliver
    from agent.notify.sample import sample_message
    from agent.notify.targets import TargetError, parse_urls
    from agent.redact import Redactor
    from agent.service import notify_targets

    settings = read_settings(NEEDS)
    if settings is None:
        return 2
    redactor = Redactor()
    try:
        targets = parse_urls(args.url) if args.url else notify_targets(settings, redactor)
    except TargetError as exc:
        print(f"hb-medic: {exc}", file=sys.stderr)
        return 2
    if not targets:
        print("hb-medic: no notification target: set MEDIC_NOTIFY_URLS or MEDIC_NOTIFY_CONFIG, or give --url",
              file=sys.stderr)
        return 2
    failed = 0
    for target in targets:
        ok, error = deliver(target, sample_message())
        failed += not ok
        print(f"{'ok    ' if ok else 'FAILED'}  {target.private}" + (f"  ({error})" if error else ""))
    return 1 if failed else 0
