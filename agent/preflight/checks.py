"""The checks a deploy passes before it is forwarded, each a plain function of the request and
the stack's state (reads only: the bots folder, hummingbot-api's API, the engine).

A check foretells a failure a rule would recognise after the fact: its finding names that rule
and the rule's captures, so a fix before forwarding is the rule's own fix (the same actions,
budget, audit and messages), never a second copy of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.match import captures as capture_check
from agent.match.model import Capture

PROFILE = Capture(type="profile", max_length=64)


@dataclass(frozen=True, slots=True)
class DeployRequest:
    """A deploy as the recorder received it: its route and its parsed JSON body."""

    route: str  # deploy-v2-script | deploy-v2-controllers
    body: dict[str, Any]
    generation: str = "current"  # legacy | current (agent.recorder.routes.GENERATIONS)

    @property
    def profile(self) -> str | None:
        value = self.body.get("credentials_profile")
        return value if isinstance(value, str) else None

    @property
    def instance(self) -> str | None:
        value = self.body.get("instance_name")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's verdict. `rule`/`captures`: the rule whose failure this foretells, and what it
    would capture (a fix runs that rule's actions); `fixable`: those actions fix it before the
    deploy is forwarded (nothing left for a retry)."""

    check: str  # a stable id: profile, password-verification, script-config, image, ...
    ok: bool
    says: str  # one line for a person: "credentials profile client_sharp does not exist"
    rule: str | None = None
    captures: dict[str, str] = field(default_factory=dict)
    fixable: bool = False


@dataclass(frozen=True, slots=True)
class Context:
    """What the checks may read. Any part may be missing (None): the checks that need it say
    they could not run, they never guess."""

    bots_dir: Path | None = None  # hummingbot-api's bots/ folder, read-only
    engine: Any = None  # a docker.DockerClient
    api: Any = None  # an agent.hummingbot_api.HummingbotAPI
    api_container: str | None = None  # hummingbot-api's container name (its environment)
    allowed_images: tuple[str, ...] = ()


Check = Callable[[DeployRequest, Context], Finding | None]  # None: does not apply to this request


def profile_exists(req: DeployRequest, ctx: Context) -> Finding | None:
    """hummingbot-api copies bots/credentials/<profile> into the bot's folder: a missing one is
    the seed incident (rule credentials-profile-missing)."""
    profile = req.profile
    if profile is None or ctx.bots_dir is None:
        return None
    refused = capture_check.check(PROFILE, profile)
    if refused is not None:
        return Finding("profile", False, f"the credentials profile name {refused}")
    if (ctx.bots_dir / "credentials" / profile).is_dir():
        return Finding("profile", True, f"credentials profile {profile} exists")
    return Finding("profile", False, f"credentials profile {profile} does not exist",
                   rule="credentials-profile-missing", captures={"profile": profile}, fixable=True)


CHECKS: tuple[Check, ...] = (profile_exists,)


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
