"""The checks a deploy passes before it is forwarded, each a plain function of the request and
the stack's state (reads only: the bots folder, hummingbot-api's API, the engine).

A check foretells a failure a rule would recognise after the fact: its finding names that rule
and the rule's captures, so a fix before forwarding is the rule's own fix (the same actions,
budget, audit and messages), never a second copy of it. The checks live in modules named for
what they read (profile, scripts, names, connectors, engine); this one gathers them in the order
hummingbot-api and then the bot would meet their failures.
"""

from __future__ import annotations

import time

from agent.preflight.connectors import live_keys
from agent.preflight.engine import config_password, image_present, name_conflict
from agent.preflight.model import Check, Context, DeployRequest, Finding
from agent.preflight.names import instance_name
from agent.preflight.profile import password_verification, profile_complete, profile_exists
from agent.preflight.scripts import controller_configs_exist, script_config_exists, script_exists

__all__ = ["CHECKS", "Check", "Context", "DeployRequest", "Finding", "profile_exists", "run"]

CHECKS: tuple[Check, ...] = (
    instance_name,            # hummingbot-api's 422, before anything
    profile_exists,           # its copy of the profile
    profile_complete,         # its read of conf_client.yml
    script_config_exists,     # its copy of the script config (a warning, then the bot stops)
    controller_configs_exist,
    config_password,          # its refusal to start a bot without one
    image_present,            # Docker's answers
    name_conflict,
    password_verification,    # the bot's own start
    script_exists,
    live_keys,
)


def run(req: DeployRequest, ctx: Context, deadline: float | None = None,
        checks: tuple[Check, ...] = CHECKS) -> tuple[list[Finding], bool]:
    """Every check that applies, in order, until `deadline` (time.monotonic()): the findings,
    and whether all checks ran (False: the deadline cut them short)."""
    found: list[Finding] = []
    for check in checks:
        if deadline is not None and time.monotonic() >= deadline:
            return found, False
        finding = check(req, ctx)
        if finding is not None:
            found.append(finding)
    return found, True
