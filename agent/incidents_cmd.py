"""`hb-medic incidents`: the incidents in the state file, each with its audit trail."""

from __future__ import annotations

import argparse

from agent.commands import STATE_NEEDS, Arg, command, read_settings


@command("incidents", help="incidents and their audit trail", args=[
    Arg("--json", action="store_true", help="one JSON object an incident"),
    Arg("--limit", type=int, default=20),
    Arg("--stack", metavar="NAME", help="only the incidents of this stack"),
])
def incidents(args: argparse.Namespace) -> int:
    import json
    import time

    from agent.state import State

    settings = read_settings(STATE_NEEDS)
    if settings is None:
        return 2
    store = State(settings.state_db)
    for inc in store.incidents.recent(args.limit, stack=args.stack):
        trail = store.incidents.audit_trail(inc.id)
        if args.json:
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
