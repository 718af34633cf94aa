"""`hb-medic preflight BODY.json`: the recorder's checks of a deploy, run against the live stack
without forwarding anything, so a script can check a deploy before it sends it."""

from __future__ import annotations

import argparse
import sys

from agent.commands import Arg, command, read_settings, read_stacks

ROUTES = ("deploy-v2-script", "deploy-v2-controllers")
# What the checks read: the stacks (bots folder, engine, hummingbot-api's container), the images
# a deploy may name, the keys placed for hb-medic. A bad value of any other setting never stops it.
NEEDS = {"stacks", "containers", "hummingbot_url", "hummingbot_username", "hummingbot_password",
         "bots_dir", "credentials_dir", "bots", "gateway", "allowed_images", "recorder_addr"}
MARKS = {"ok": "✓", "failed": "✗", "skipped": "?"}


@command("preflight", help="check a deploy request against the live stack (nothing sent); ✗ with the fix",
         args=[Arg("body", metavar="BODY.json", help="the deploy request's JSON body (- for stdin)"),
               Arg("--route", choices=ROUTES, default="deploy-v2-script"),
               Arg("--generation", choices=("auto", "current", "legacy"), default="auto",
                   help="hummingbot-api's generation (legacy: 2026-01 and before, no time stamp on names);"
                        " auto: told by its /openapi.json, as the recorder does"),
               Arg("--stack", metavar="NAME",
                   help="with stacks in the config file: which one (default: the stack default, or the"
                        " only one)"),
               Arg("--json", action="store_true", help="one JSON object a check")])
def preflight(args: argparse.Namespace) -> int:
    import json

    body = _body(args.body)
    if isinstance(body, str):
        print(f"hb-medic: {body}", file=sys.stderr)
        return 2
    settings = read_settings(NEEDS)
    if settings is None:
        return 2
    from agent.preflight.checks import DeployRequest, run

    stacks = read_stacks(settings)
    if stacks is None:
        return 2
    chosen = next((s for s in stacks if s.name == (args.stack or "default")), None)
    if chosen is None and args.stack is None and len(stacks) == 1:
        chosen = stacks[0]
    if chosen is None:
        print(f"hb-medic: no stack {args.stack or 'default'} (stacks: {', '.join(s.name for s in stacks)}):"
              " name one with --stack", file=sys.stderr)
        return 2
    generation = args.generation
    if generation == "auto":
        generation, said = _generation(chosen.hummingbot_url)
        print(f"hummingbot-api: {said}", file=sys.stderr if args.json else sys.stdout)
    findings, _ = run(DeployRequest(args.route, body, generation), _context(settings, chosen))
    failed = [f for f in findings if not f.ok]
    for f in findings:
        outcome = "skipped" if f.skipped else "ok" if f.ok else "failed"
        if args.json:
            print(json.dumps({"check": f.check, "outcome": outcome, "ok": f.ok, "skipped": f.skipped,
                              "says": f.says, "rule": f.rule, "captures": f.captures, "fixable": f.fixable,
                              "fix": f.fix}))
            continue
        print(f"{MARKS[outcome]} {f.says}")
        if not f.ok:
            if f.fix:
                print(f"    fix: {f.fix}")
            if f.rule:
                fixed = " (fixed before the deploy is forwarded)" if f.fixable else ""
                print(f"    foretells: {f.rule}{fixed}")
    return 1 if failed else 0


def _generation(url: str) -> tuple[str, str]:
    """hummingbot-api's generation as its /openapi.json tells it (the recorder's way), and what
    to say of it; current when it cannot be told, as the recorder takes it."""
    import json

    import httpx

    from agent.recorder.generation import FALLBACK, served
    from agent.recorder.routes import generation_of

    try:
        resp = httpx.get(url.rstrip("/") + "/openapi.json", timeout=5.0, follow_redirects=False)
        gen = generation_of(served(json.loads(resp.content))) if resp.status_code == 200 else None
        why = f"its /openapi.json answered HTTP {resp.status_code}" if resp.status_code != 200 else \
            "its /openapi.json has no route only one generation has"
    except (httpx.HTTPError, ValueError) as exc:
        gen, why = None, f"its /openapi.json did not answer ({type(exc).__name__})"
    if gen in ("current", "legacy"):
        return gen, f"{gen} generation (told by its /openapi.json)"
    return FALLBACK, f"generation unknown ({why}): checked as {FALLBACK}"


def _body(path: str) -> dict | str:
    """The body as a JSON object, or the one line that says why not."""
    import json

    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}"
    try:
        body = json.loads(text)
    except ValueError as exc:
        return f"{path} is not JSON: {exc}"
    if not isinstance(body, dict):
        return f"{path} is not a JSON object (a deploy request body is one)"
    return body


def _context(settings, stack):
    """The checks' view of the stack: its bots folder, its engine, hummingbot-api's container."""
    from docker.errors import DockerException

    from agent.preflight.checks import Context
    from agent.stackconf import engine_client

    engine, problem = None, None
    try:
        engine = engine_client(stack, timeout=10)
    except DockerException as exc:  # docker-py asks the engine's version here
        problem = f"{stack.engine()} does not answer: {' '.join(str(exc).split())[:200]}"
    api = next((name for name in stack.containers if name.endswith("hummingbot-api")), None)
    return Context(bots_dir=stack.bots_dir, engine=engine, api_container=api, engine_problem=problem,
                   allowed_images=tuple(settings.allowed_images), credentials_dir=stack.credentials_dir)
