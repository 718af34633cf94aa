"""`hb-medic unknown` (errors no rule knows) and `hb-medic rules suggest` (a draft rule for one)."""

from __future__ import annotations

import argparse
import sys

from agent.commands import STATE_NEEDS, Arg, OneOf, command, read_settings
from agent.rules_cmd import CHANNELS, ROLE_AND_CHANNEL, ROLES, origin_for, rules_arg, user_rules


@command("rules", "suggest", help="draft a rule (and its samples) from an error no rule knows", args=[
    Arg("fingerprint", nargs="?", help="a fingerprint from hb-medic unknown (or a unique prefix)"),
    Arg("--from", dest="from_file", metavar="LOGFILE",
        help="saved `docker logs` output instead of the state file: a draft for each"
             " recurring error no rule knows (- for stdin)"),
    Arg("--id", dest="rule_id", metavar="ID", help="the draft's rule id (default: made from the error)"),
    OneOf(Arg("--out", default="drafts", metavar="DIR", help="where to write (default: drafts)"),
          Arg("--stdout", action="store_true", help="print the draft instead of writing it")),
    rules_arg(),
    Arg("--container", default=None,
        help="with --from: the container the log came from (default hummingbot-api)"),
    Arg("--role", choices=ROLES, default="hummingbot-api",
        help="with --from: what wrote the log (default hummingbot-api)"),
    Arg("--channel", choices=CHANNELS,
        help="with --from and --role bot: a console, logs/errors.log or logs_*.log file"),
])
def rules_suggest(args: argparse.Namespace) -> int:
    from agent.unknown.suggest import SuggestError, suggest

    if (args.role == "bot") != (args.channel is not None):
        print(f"hb-medic: {ROLE_AND_CHANNEL}", file=sys.stderr)
        return 2
    if args.fingerprint is None and args.from_file is None:
        print("hb-medic: rules suggest needs a FINGERPRINT (from hb-medic unknown) or --from LOGFILE",
              file=sys.stderr)
        return 2
    store = None
    if args.from_file is None:
        from agent.state import State

        settings = read_settings(STATE_NEEDS)
        if settings is None:
            return 2
        store = State(settings.state_db)
    try:
        return suggest(fingerprint=args.fingerprint, from_file=args.from_file, store=store,
                       rule_id=args.rule_id, out_dir=None if args.stdout else args.out,
                       rules_dir=user_rules(args.rules), container=args.container or "hummingbot-api",
                       origin=origin_for(args.role, args.channel, args.container))
    except SuggestError as exc:
        print(f"hb-medic: {exc}", file=sys.stderr)
        return 1


@command("unknown", help="errors no rule knows, most frequent first", args=[
    Arg("--json", action="store_true", help="one JSON object a fingerprint"),
    Arg("--since", metavar="DURATION", help="only those seen within, e.g. 30m, 6h, 2d"),
])
def unknown(args: argparse.Namespace) -> int:
    from agent.state import State
    from agent.unknown.report import parse_duration, show

    since = None
    if args.since is not None:
        try:
            since = parse_duration(args.since)
        except ValueError as exc:
            print(f"hb-medic: --since: {exc}", file=sys.stderr)
            return 2
    settings = read_settings(STATE_NEEDS)
    if settings is None:
        return 2
    return show(State(settings.state_db), since, args.json)
