"""Command line of hb-medic (``hb-medic`` and ``python -m agent``)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from agent import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hb-medic",
        description="Watch hummingbot-api, fix known failures, retry the deploy, notify.",
    )
    parser.add_argument("--version", action="version", version=f"hb-medic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="run the agent (settings from MEDIC_* environment variables)")
    sub.add_parser("health", help="exit 0 when the running agent's /healthz says healthy (HEALTHCHECK)")
    recorder = sub.add_parser("recorder", help="run the deploy recorder alone (MEDIC_RECORDER_ADDR -> "
                                               "MEDIC_HUMMINGBOT_URL)")
    recorder.add_argument("--stack", metavar="NAME",
                          help="with stacks in the config file: whose recorder (default: the stack default)")
    rules = sub.add_parser("rules", help="check, test and describe rule files").add_subparsers(
        dest="rules_command", metavar="SUBCOMMAND", required=True)
    default = os.environ.get("MEDIC_RULES_DIR") or None
    own = "your rules folder, over the shipped rules (default: MEDIC_RULES_DIR)"
    check = rules.add_parser("check", help="validate every rule; errors name file and line")
    check.add_argument("--rules", default=default, metavar="DIR", help=own)
    test = rules.add_parser("test", help="replay saved `docker logs` output through the rules")
    test.add_argument("logfiles", nargs="+", metavar="LOGFILE", help="a file, or - for stdin")
    test.add_argument("--rules", default=default, metavar="DIR", help=own)
    test.add_argument("--json", action="store_true", help="one JSON object a line")
    test.add_argument("--container", default=None,
                      help="container the log came from (default hummingbot-api, or bot for --role bot)")
    test.add_argument("--role", choices=["hummingbot-api", "bot", "sibling"], default="hummingbot-api",
                      help="what wrote the log (default hummingbot-api)")
    test.add_argument("--channel", choices=["console", "errors", "log"],
                      help="for --role bot: a saved console (docker logs, -t or not), logs/errors.log, or a "
                           "logs/logs_*.log file")
    rules.add_parser("schema", help="JSON Schema of the rule format")
    suggest = rules.add_parser("suggest", help="draft a rule (and its samples) from an error no rule knows")
    suggest.add_argument("fingerprint", nargs="?",
                         help="a fingerprint from hb-medic unknown (or a unique prefix)")
    suggest.add_argument("--from", dest="from_file", metavar="LOGFILE",
                         help="saved `docker logs` output instead of the state file: a draft for each"
                              " recurring error no rule knows (- for stdin)")
    suggest.add_argument("--id", dest="rule_id", metavar="ID",
                         help="the draft's rule id (default: made from the error)")
    where = suggest.add_mutually_exclusive_group()
    where.add_argument("--out", default="drafts", metavar="DIR", help="where to write (default: drafts)")
    where.add_argument("--stdout", action="store_true", help="print the draft instead of writing it")
    suggest.add_argument("--rules", default=default, metavar="DIR", help=own)
    suggest.add_argument("--container", default=None,
                         help="with --from: the container the log came from (default hummingbot-api)")
    suggest.add_argument("--role", choices=["hummingbot-api", "bot", "sibling"], default="hummingbot-api",
                         help="with --from: what wrote the log (default hummingbot-api)")
    suggest.add_argument("--channel", choices=["console", "errors", "log"],
                         help="with --from and --role bot: a console, logs/errors.log or logs_*.log file")
    unknown = sub.add_parser("unknown", help="errors no rule knows, most frequent first")
    unknown.add_argument("--json", action="store_true", help="one JSON object a fingerprint")
    unknown.add_argument("--since", metavar="DURATION", help="only those seen within, e.g. 30m, 6h, 2d")
    incidents = sub.add_parser("incidents", help="incidents and their audit trail")
    incidents.add_argument("--json", action="store_true", help="one JSON object an incident")
    incidents.add_argument("--limit", type=int, default=20)
    incidents.add_argument("--stack", metavar="NAME", help="only the incidents of this stack")
    notify = sub.add_parser("notify", help="notifications").add_subparsers(
        dest="notify_command", metavar="SUBCOMMAND", required=True)
    ntest = notify.add_parser("test", help="send a sample message to the configured targets")
    ntest.add_argument("--url", help="one apprise URL instead of the configured targets")
    doctor = sub.add_parser("doctor", help="check that the agent can do its job here; each ✗ with its fix")
    doctor.add_argument("--send", action="store_true", help="also send a test message to every notify target")
    retry = sub.add_parser("retry-deploy", help="finish a deploy retry the agent could not reconstruct")
    retry.add_argument("incident", help="incident id (or a unique prefix)")
    retry.add_argument("--body", help="the deploy request body, as JSON")
    retry.add_argument("--route", choices=["deploy-v2-script", "deploy-v2-controllers"])
    return parser


def _setup_logging() -> None:
    """Until the settings are read: the text format, escaped (apprise, which logs URLs with
    their tokens, stays quiet; hb-medic reports delivery itself, URLs in privacy form)."""
    from agent import logs

    logs.setup("text")


# What each command reads; a bad value of any other setting never stops it.
RECORDER_NEEDS = {"recorder_addr", "hummingbot_url", "state_db", "log_format", "log_level", "stacks"}
STATE_NEEDS = {"state_db"}
NOTIFY_NEEDS = {"notify_urls", "notify_config"}


def _settings(needs: set[str] | None = None):
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


def _engine_problem(done: threading.Event, patience: float = 10.0) -> str | None:
    """None when the Docker engine answers (a socket proxy over TCP, started beside the agent,
    gets a few seconds to come up; a local socket answers or not); else one line with the fix,
    instead of a traceback."""
    import time

    import docker
    from docker.errors import DockerException

    from agent.doctor import docker_fix

    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    deadline = time.monotonic() + (0 if host.startswith("unix://") else patience)
    while True:
        try:
            docker.from_env(timeout=10).close()
            return None
        except DockerException as exc:
            if done.is_set():
                return None  # asked to stop meanwhile: no complaint
            if time.monotonic() > deadline or done.wait(1.0):
                if done.is_set():
                    return None
                return f"the Docker engine at {host} does not answer: {exc}\n    fix: {docker_fix(host)}"


def _signals() -> threading.Event:
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    return done


def _wait_for_signal() -> None:
    _signals().wait()


def cmd_run() -> int:
    from agent import logs
    from agent.notify.targets import TargetError
    from agent.service import RecorderError, RulesError, Service, SettingsError
    from agent.settings import BadSettings

    done = _signals()  # before anything slow: a stop during start-up is honoured
    _setup_logging()
    settings = _settings()
    if settings is None:
        return 2
    try:
        service = Service(settings)
        logs.setup(settings.log_format, service.redactor, level=settings.log_level)
    except RulesError as exc:
        print(f"hb-medic: the rules have errors:\n{exc}", file=sys.stderr)
        return 2
    except (RecorderError, TargetError, SettingsError, BadSettings, OSError) as exc:
        print(f"hb-medic: {exc}", file=sys.stderr)
        return 2
    # One stack on the environment's engine (the setup of a container beside hummingbot-api): an
    # engine that does not answer at start is a setup problem, said once. With several stacks,
    # each stack's engine is its own business: the others start anyway.
    problem = _engine_problem(done) if not service.show_stack else None
    if problem:  # nothing has started yet: the process ends here
        print(f"hb-medic: {problem}", file=sys.stderr)
        return 2
    if done.is_set():  # stopped while starting: nothing runs yet, so nothing to stop
        service.store.close()
        return 0
    service.start()
    done.wait()
    service.stop()
    return 0


def cmd_recorder(stack: str | None = None) -> int:
    from agent.service import RecorderError, start_recorder
    from agent.state import State

    _setup_logging()
    settings = _settings(RECORDER_NEEDS)
    if settings is None:
        return 2
    from agent import logs
    from agent.redact import Redactor
    from agent.settings import BadSettings

    try:
        stacks = settings.stack_list()
    except BadSettings as exc:
        for message in exc.problems.values():
            print(f"hb-medic: {message}", file=sys.stderr)
        return 2
    logs.setup(settings.log_format, Redactor([x for c in stacks for x in c.secrets()],
                                             public=[c.hummingbot_username for c in stacks]),
               level=settings.log_level)
    if settings.stacks is None and not settings.recorder_addr:
        print("hb-medic: set MEDIC_RECORDER_ADDR (e.g. 0.0.0.0:8001) for the recorder", file=sys.stderr)
        return 2
    try:
        thread = start_recorder(settings, State(settings.state_db), stack=stack)
    except RecorderError as exc:
        print(f"hb-medic: {exc}", file=sys.stderr)
        return 2
    rec = thread.recorder
    logging.getLogger("agent").info("deploy recorder%s on %s:%s -> %s; records in %s",
                                    "" if rec.stack == "default" else f" of stack {rec.stack}", thread.host,
                                    thread.port, rec.upstream, settings.state_db)
    _wait_for_signal()
    thread.stop()
    return 0


def cmd_health() -> int:
    import urllib.request

    addr = os.environ.get("MEDIC_HTTP_ADDR", "127.0.0.1:9108")
    host, _, port = addr.rpartition(":")
    host = "127.0.0.1" if host in ("", "0.0.0.0") else host
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=3) as resp:
            print(resp.read().decode())
            return 0
    except Exception as exc:  # 503 (unhealthy) and connection errors alike
        body = exc.read().decode() if hasattr(exc, "read") else str(exc)
        print(body, file=sys.stderr)
        return 1


def cmd_incidents(as_json: bool, limit: int, stack: str | None = None) -> int:
    import json
    import time

    from agent.state import State

    settings = _settings(STATE_NEEDS)
    if settings is None:
        return 2
    store = State(settings.state_db)
    for inc in store.incidents.recent(limit, stack=stack):
        trail = store.incidents.audit_trail(inc.id)
        if as_json:
            print(json.dumps({**{k: v for k, v in vars(inc).items()}, "audit": trail}, default=str))
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(inc.created))
        print(f"{inc.id}  {when}  {inc.stack}  {inc.state:<9} {inc.severity:<8} {inc.rule}  key={inc.key}"
              f"  events={inc.events} attempts={inc.attempts}")
        print(f"    {inc.summary}")
        if inc.detail:
            print(f"    -> {inc.detail}")
        for a in trail:
            at = time.strftime("%H:%M:%S", time.localtime(a["at"]))
            ok = {True: "ok", False: "FAILED", None: ""}[a["ok"]]
            params = json.dumps(a["params"]) if a["params"] else ""
            took = f" {a['duration_ms']:.0f} ms" if a["duration_ms"] is not None else ""
            print(f"    {at} {a['kind']:<8} {a['name']} {params} {ok}{took} {a['result']}".rstrip())
        print()
    return 0


def cmd_unknown(as_json: bool, since_text: str | None) -> int:
    from agent.state import State
    from agent.unknown.report import parse_duration, show

    since = None
    if since_text is not None:
        try:
            since = parse_duration(since_text)
        except ValueError as exc:
            print(f"hb-medic: --since: {exc}", file=sys.stderr)
            return 2
    settings = _settings(STATE_NEEDS)
    if settings is None:
        return 2
    return show(State(settings.state_db), since, as_json)


def cmd_suggest(args) -> int:
    from agent.rules_cmd import origin_for
    from agent.unknown.suggest import SuggestError, suggest

    if (args.role == "bot") != (args.channel is not None):
        print("hb-medic: --role bot needs --channel console|errors|log (and --channel needs --role bot)",
              file=sys.stderr)
        return 2
    if args.fingerprint is None and args.from_file is None:
        print("hb-medic: rules suggest needs a FINGERPRINT (from hb-medic unknown) or --from LOGFILE",
              file=sys.stderr)
        return 2
    store = None
    if args.from_file is None:
        from agent.state import State

        settings = _settings(STATE_NEEDS)
        if settings is None:
            return 2
        store = State(settings.state_db)
    try:
        return suggest(fingerprint=args.fingerprint, from_file=args.from_file, store=store,
                       rule_id=args.rule_id, out_dir=None if args.stdout else args.out,
                       rules_dir=args.rules, container=args.container or "hummingbot-api",
                       origin=origin_for(args.role, args.channel, args.container))
    except SuggestError as exc:
        print(f"hb-medic: {exc}", file=sys.stderr)
        return 1


def cmd_retry_deploy(ident: str, body_text: str | None, route: str | None) -> int:
    import json

    from agent.actions.base import ActionError
    from agent.service import RulesError, Service, SettingsError
    from agent.settings import BadSettings, Settings

    _setup_logging()
    settings = _settings(set(Settings.model_fields) - {"http_addr"})  # it does not listen
    if settings is None:
        return 2
    body = None
    if body_text is not None:
        try:
            body = json.loads(body_text)
        except ValueError as exc:
            print(f"hb-medic: --body is not JSON: {exc}", file=sys.stderr)
            return 2
    try:
        service = Service(settings, listen=False)
    except RulesError as exc:
        print(f"hb-medic: the rules have errors:\n{exc}", file=sys.stderr)
        return 2
    except (SettingsError, BadSettings) as exc:
        print(f"hb-medic: {exc}", file=sys.stderr)
        return 2
    inc = service.store.incidents.get(ident)
    if inc is None:
        print(f"hb-medic: no incident {ident!r} (see hb-medic incidents)", file=sys.stderr)
        return 2
    runtime = service.stack(inc.stack)
    if runtime is None:
        print(f"hb-medic: incident {inc.id} is of stack {inc.stack}, which the config file no longer lists",
              file=sys.stderr)
        return 2
    try:
        result = runtime.remedy.finish(inc, route, body)
    except ActionError as exc:
        print(f"hb-medic: {exc}", file=sys.stderr)
        return 1
    print(f"{inc.id}: {result}")
    return 0


def cmd_notify_test(url: str | None) -> int:
    _setup_logging()
    from agent.notify.notifier import deliver
    from agent.notify.sample import sample_message
    from agent.notify.targets import TargetError, parse_urls
    from agent.redact import Redactor
    from agent.service import notify_targets

    settings = _settings(NOTIFY_NEEDS)
    if settings is None:
        return 2
    redactor = Redactor()
    try:
        targets = parse_urls(url) if url else notify_targets(settings, redactor)
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


STATE_FILE_UNUSABLE = 3  # exit status: the state file cannot be used (see the message)


def main(argv: list[str] | None = None) -> int:
    """Run a command; a reader that went away (`| head`, quitting `less`) ends it quietly."""
    from agent.state import StateFileError

    try:
        code = _dispatch(argv)
        sys.stdout.flush()  # a broken pipe shows here, not at interpreter exit
        return code
    except StateFileError as exc:  # one message, its own exit status (a restart policy shows it)
        print(f"hb-medic: {exc}", file=sys.stderr)
        return STATE_FILE_UNUSABLE
    except BrokenPipeError:
        # Nothing more can be written: point stdout at /dev/null so the interpreter's own
        # final flush stays silent, and exit as a process stopped by SIGPIPE would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _dispatch(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        return cmd_run()
    if args.command == "recorder":
        return cmd_recorder(args.stack)
    if args.command == "health":
        return cmd_health()
    if args.command == "notify":
        return cmd_notify_test(args.url)
    if args.command == "incidents":
        return cmd_incidents(args.json, args.limit, args.stack)
    if args.command == "unknown":
        return cmd_unknown(args.json, args.since)
    if args.command == "doctor":
        from agent import doctor

        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        logging.getLogger("apprise").setLevel(logging.CRITICAL + 1)
        return doctor.run(send=args.send)
    if args.command == "retry-deploy":
        return cmd_retry_deploy(args.incident, args.body, args.route)
    if args.command == "rules":
        from agent import rules_cmd

        if args.rules_command == "check":
            return rules_cmd.check(args.rules)
        if args.rules_command == "schema":
            return rules_cmd.print_schema()
        if args.rules_command == "suggest":
            return cmd_suggest(args)
        if (args.role == "bot") != (args.channel is not None):
            parser.error("--role bot needs --channel console|errors|log (and --channel needs --role bot)")
        origin = rules_cmd.origin_for(args.role, args.channel, args.container)
        return rules_cmd.run_test(args.logfiles, args.rules, args.json, origin)
    parser.print_help()
    return 2
