"""`hb-medic retry-deploy`: finish by hand a deploy retry the agent could not reconstruct."""

from __future__ import annotations

import argparse
import sys

from agent.commands import Arg, command, read_settings, setup_logging


@command("retry-deploy", help="finish a deploy retry the agent could not reconstruct", args=[
    Arg("incident", help="incident id (or a unique prefix)"),
    Arg("--body", help="the deploy request body, as JSON"),
    Arg("--route", choices=["deploy-v2-script", "deploy-v2-controllers"]),
])
def retry_deploy(args: argparse.Namespace) -> int:
    import json

    from agent.actions.base import ActionError
    from agent.service import RulesError, Service, SettingsError
    from agent.settings import BadSettings, Settings

    setup_logging()
    settings = read_settings(set(Settings.model_fields) - {"http_addr"})  # it does not listen
    if settings is None:
        return 2
    body = None
    if args.body is not None:
        try:
            body = json.loads(args.body)
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
    inc = service.store.incidents.get(args.incident)
    if inc is None:
        print(f"hb-medic: no incident {args.incident!r} (see hb-medic incidents)", file=sys.stderr)
        return 2
    runtime = service.stack(inc.stack)
    if runtime is None:
        print(f"hb-medic: incident {inc.id} is of stack {inc.stack}, which the config file no longer lists",
              file=sys.stderr)
        return 2
    try:
        result = runtime.remedy.finish(inc, args.route, body)
    except ActionError as exc:
        print(f"hb-medic: {exc}", file=sys.stderr)
        return 1
    print(f"{inc.id}: {result}")
    return 0
