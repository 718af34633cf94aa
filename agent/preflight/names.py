"""The names of a deploy as its generation of hummingbot-api takes them.

The current generation refuses (422) an instance_name or credentials_profile that is not letters,
digits, _ and -, and a script_config or controller config whose name without `.yml` is not
(rule invalid-deploy-name). The legacy generation checks nothing: the name goes into a path under
bots/ and becomes the container's name, so a name outside the same letters is never forwarded as
safe here either (no rule knows that failure: Docker refuses the container name, or the path
leaves bots/).
"""

from __future__ import annotations

import re

from agent.match import captures as capture_check
from agent.match.model import Capture
from agent.preflight.model import Context, DeployRequest, Finding

SAFE = re.compile(r"^[A-Za-z0-9_-]+$")  # hummingbot-api's SAFE_NAME_PATTERN (current generation)
VALUE = Capture(type="text", max_length=200)  # invalid-deploy-name's `value`
FIX = "deploy again with names of letters, digits, _ and - only"


def _names(req: DeployRequest) -> list[tuple[str, object, bool]]:
    """(field, value, is a config file name) of every name the route takes."""
    found: list[tuple[str, object, bool]] = [(f, req.body.get(f), False)
                                             for f in ("instance_name", "credentials_profile")]
    if req.body.get("script_config") is not None:
        found.append(("script_config", req.body["script_config"], True))
    controllers = req.body.get("controllers_config")
    if req.route == "deploy-v2-controllers" and isinstance(controllers, list):
        found += [("controllers_config", c, True) for c in controllers]
    return found


def _bad(value: object, config: bool) -> bool:
    if not isinstance(value, str):
        return True
    base = value[:-4] if config and value.endswith(".yml") else value
    return not SAFE.fullmatch(base)


def instance_name(req: DeployRequest, ctx: Context) -> Finding | None:
    """Every name of the body, as the generation will take it."""
    for field, value, config in _names(req):
        if value is None and not config:
            return Finding("instance-name", False, f"{field} is missing: hummingbot-api will refuse the"
                                                   " deploy (422)", fix=f"send {field}")
        if not _bad(value, config):
            continue
        shown = capture_check.shown(str(value))
        if req.generation == "legacy":
            return Finding("instance-name", False, f"{field} {shown} is not letters, digits, _ and -: this"
                                                   " hummingbot-api does not check it, and uses it in a path"
                                                   " and as the container's name", fix=FIX)
        captures = {"field": field}
        if isinstance(value, str) and capture_check.check(VALUE, value) is None:
            captures["value"] = value
        return Finding("instance-name", False, f"{field} {shown} is not letters, digits, _ and -:"
                                               " hummingbot-api will refuse the deploy (422)",
                       rule="invalid-deploy-name", captures=captures, fix=FIX)
    return Finding("instance-name", True, "names are letters, digits, _ and -")
