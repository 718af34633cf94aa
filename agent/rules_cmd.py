"""`hb-medic rules check | test | schema`: the tools people use to write rules."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from typing import TYPE_CHECKING, TextIO

from agent.commands import Arg, UsageError, command, group
from agent.events import BOT, EXIT, RESPONSE, TRACEBACK, Event, Origin
from agent.ingest.replay import open_input, replay_lines
from agent.logs import printable

if TYPE_CHECKING:  # the rules load when a command reads them: `hb-medic health` does not
    from agent.match.matcher import Result

group("rules", help="check, test and describe rule files")

ROLES = ["hummingbot-api", "bot", "gateway", "sibling"]
CHANNELS = ["console", "errors", "log"]
ROLE_AND_CHANNEL = "--role bot needs --channel console|errors|log (and --channel needs --role bot)"


def rules_arg() -> Arg:
    """--rules, of every command that reads the rules."""
    return Arg("--rules", default=None, metavar="DIR",
               help="your rules folder, over the shipped rules (default: MEDIC_RULES_DIR)")


def user_rules(given: str | None) -> str | None:
    """The folder of --rules, else that of the settings (MEDIC_RULES_DIR), else None."""
    from agent.settings import load

    if given is not None:
        return given
    folder = load({"rules_dir"}).rules_dir
    return None if folder is None else str(folder)


@command("rules", "check", help="validate every rule; errors name file and line", args=[rules_arg()])
def rules_check(args: argparse.Namespace) -> int:
    return check(user_rules(args.rules))


@command("rules", "test", help="replay saved `docker logs` output (and RECORDED/EXITED lines: recorded "
                                "exchanges, bots' deaths) through the rules", args=[
    Arg("logfiles", nargs="+", metavar="LOGFILE", help="a file, or - for stdin"),
    rules_arg(),
    Arg("--json", action="store_true", help="one JSON object a line"),
    Arg("--container", default=None,
        help="container the log came from (default hummingbot-api, or bot for --role bot)"),
    Arg("--role", choices=ROLES, default="hummingbot-api",
        help="what wrote the log (default hummingbot-api)"),
    Arg("--channel", choices=CHANNELS,
        help="for --role bot: a saved console (docker logs, -t or not), logs/errors.log, or a "
             "logs/logs_*.log file"),
    Arg("--gateway", choices=["present", "absent"],
        help="whether the stack has a gateway (the agent sees it on the engine; a replay is told): "
             "without it, the rules that depend on it do not match"),
])
def rules_test(args: argparse.Namespace) -> int:
    if (args.role == "bot") != (args.channel is not None):
        raise UsageError(ROLE_AND_CHANNEL)
    origin = origin_for(args.role, args.channel, args.container)
    return run_test(args.logfiles, user_rules(args.rules), args.json, origin, gateway=args.gateway)


@command("rules", "schema", help="JSON Schema of the rule format")
def rules_schema(args: argparse.Namespace) -> int:
    return print_schema()


def check(rules_dir: str | None, out: TextIO = sys.stdout) -> int:
    """Validate the shipped rules and the user's folder; name the shipped rules it replaces."""
    from agent.match.library import load_library

    result = load_library(rules_dir)
    for err in result.errors:
        print(err, file=out)
    if result.errors:
        print(f"{len(result.errors)} error(s) in {' and '.join(map(str, result.folders()))}", file=out)
        return 1
    print(f"{len(result.rules)} rules OK: {result.shipped_count} shipped ({result.shipped})"
          + (f", {result.user_count} from {result.user}" if result.user is not None else ""), file=out)
    for rule_id in result.overridden:
        print(f"{rule_id}: the shipped rule is overridden by {result.user}/{rule_id}.yml", file=out)
    return 0


def print_schema(out: TextIO = sys.stdout) -> int:
    from agent.match.model import schema

    json.dump(schema(), out, indent=2)
    out.write("\n")
    return 0


def reportable(event: Event, result: Result | None) -> bool:
    """What `rules test` shows: every match, and what no rule matched that is worth a look (a
    traceback, an ERROR record, a recorded exchange or a bot's death: those the user asked about)."""
    return result is not None or event.kind in (TRACEBACK, RESPONSE, EXIT) \
        or event.level in ("ERROR", "CRITICAL")


class _Style:
    def __init__(self, enabled: bool) -> None:
        self.on = enabled

    def __call__(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.on else text


def gateway_fact(given: str | None):
    """`--gateway present|absent` as the matcher asks it (None: not known)."""
    return None if given is None else (lambda: given == "present")


def origin_for(role: str, channel: str | None, container: str | None) -> Origin | None:
    """Where a replayed file came from; None for hummingbot-api's `docker logs` (merged streams)."""
    if channel is None and role == "hummingbot-api":
        return None if container in (None, "hummingbot-api") else Origin(container, "merged", role)
    name = container or ("bot" if role == BOT else role)
    return Origin(name, channel or "merged", role)


def run_test(paths: list[str], rules_dir: str | None, as_json_lines: bool,
             origin: Origin | str | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr,
             gateway: str | None = None) -> int:
    """`origin`: where the files came from (a container name alone: hummingbot-api's streams);
    `gateway`: present or absent, whether the stack has one (None: not known)."""
    from agent.match.library import load_library
    from agent.match.matcher import Matcher
    from agent.match.samples import as_json

    if isinstance(origin, str):
        origin = origin_for("hummingbot-api", None, origin)
    loaded = load_library(rules_dir)
    if loaded.errors:
        for e in loaded.errors:
            print(e, file=err)
        return 1
    style = _Style(out.isatty() and not os.environ.get("NO_COLOR"))
    counts: Counter[str] = Counter()
    for path in paths:
        # each file is its own log: no state carried over
        matcher = Matcher(loaded.rules, gateway=gateway_fact(gateway))
        try:
            fh = open_input(path)
        except OSError as exc:
            print(f"hb-medic: cannot read {path}: {exc.strerror}", file=err)
            return 2
        if not as_json_lines and len(paths) > 1:
            print(style(f"== {path}", "1"), file=out)
        with fh:
            container = origin.container if origin is not None else "hummingbot-api"
            for event in replay_lines(fh, container, origin=origin):
                result = matcher.match(event)
                if not reportable(event, result):
                    continue
                counts[result.rule.id if result else "(no rule)"] += 1
                if as_json_lines:
                    print(json.dumps(as_json(event, result)), file=out)
                else:
                    _human(event, result, style, out)
    if not as_json_lines:
        summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "nothing to report"
        print(style(f"-- {sum(counts.values())} reported events ({summary})", "2"), file=out)
    return 0


def _human(event: Event, r: Result | None, s: _Style, out: TextIO) -> None:
    span = f"lines {event.first_pos}-{event.last_pos}" if event.last_pos != event.first_pos \
        else f"line {event.first_pos}"
    head = event.outermost.type if event.kind == TRACEBACK and event.outermost else event.level
    key_line = event.key_line
    print(f"{s(span, '2')}  {event.kind} {s(head or '', '1')}  {s(event.fingerprint, '2')}", file=out)
    print(f"    {printable(key_line[:200])}", file=out)
    if r is None:
        print(f"    rule      {s('none', '33')}", file=out)
        print(file=out)
        return
    colour = "31" if r.rule.severity == "critical" else "33"
    print(f"    rule      {s(r.rule.id, '1;' + colour)} ({r.rule.severity})", file=out)
    if r.captures:
        print("    captures  " + " ".join(f"{k}={v!r}" for k, v in r.captures.items()), file=out)
    if r.refused:
        print(f"    refused   {s(printable(r.refused), '1;31')} (no action would run)", file=out)
    elif r.below_threshold:
        t = r.rule.threshold
        print(f"    waiting   below threshold ({t.count} within {t.window:.0f} s): no action yet", file=out)
    if r.deploy:
        print(f"    deploy    {r.deploy['route']} {json.dumps(r.deploy['body'])}", file=out)
    for name, params, missing in (r.action_params() if r.actions else []):
        shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
        note = s(f"  (needs {', '.join(missing)}: from the deploy recorder)", "33") if missing else ""
        print(f"    action    {name}({shown}){note}", file=out)
    if "retry_deploy" in r.actions:
        how = "with the body above" if r.deploy else "with the recorded request (not in this log)"
        print(f"    action    retry_deploy {how}", file=out)
    print(f"    notify    {printable(r.text(r.rule.notify.title))}", file=out)
    print(file=out)
