"""What a preflight check is given and gives back: the deploy, what it may read, its verdict.

Apart from `checks.py` (which gathers the checks) so each check's module imports these without a
cycle; `checks.py` re-exports them, the names other parts import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.match import captures as capture_check
from agent.match.model import Capture

PROFILE = Capture(type="profile", max_length=64)
NAME = Capture(type="name", max_length=128)
FILE = Capture(type="file", max_length=128)


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
    deploy is forwarded (nothing left for a retry).

    `skipped`: the check could not run (no bots folder, the engine did not answer): `says` tells
    why; `ok` stays True, since nothing was found wrong, so a skipped check never blocks, warns
    or fails. `fix`: what hb-medic would do about a failure, or what a person must do."""

    check: str  # a stable id: profile, password-verification, script-config, image, ...
    ok: bool
    says: str  # one line for a person: "credentials profile client_sharp does not exist"
    rule: str | None = None
    captures: dict[str, str] = field(default_factory=dict)
    fixable: bool = False
    skipped: bool = False
    fix: str = ""


@dataclass(frozen=True, slots=True)
class Context:
    """What the checks may read. Any part may be missing (None): the checks that need it say
    they could not run, they never guess."""

    bots_dir: Path | None = None  # hummingbot-api's bots/ folder, read-only
    engine: Any = None  # a docker.DockerClient
    api: Any = None  # an agent.hummingbot_api.HummingbotAPI
    api_container: str | None = None  # hummingbot-api's container name (its environment)
    allowed_images: tuple[str, ...] = ()
    credentials_dir: Path | None = None  # MEDIC_CREDENTIALS_DIR: exchange keys placed for hb-medic
    engine_problem: str | None = None  # why `engine` is None, when a client could not be made


Check = Callable[[DeployRequest, Context], Finding | None]  # None: does not apply to this request


def skipped(check: str, why: str) -> Finding:
    """A check that could not run: said, never guessed."""
    return Finding(check, True, f"not checked: {why}", skipped=True)


def refused(check: str, what: str, value: object, spec: Capture = FILE) -> Finding | None:
    """A value of the body or a config that may not be used in a path, or None when it may."""
    if not isinstance(value, str):
        return Finding(check, False, f"{what} is not text ({capture_check.shown(str(value))})",
                       fix=f"send {what} as a plain name")
    reason = capture_check.check(spec, value)
    if reason is None:
        return None
    return Finding(check, False, f"{what} {capture_check.shown(value)} {reason}: refused, not looked up",
                   fix=f"send {what} as a plain name (letters, digits, _ and -)")
