"""The script and controller configs a deploy names, read from the bots folder as hummingbot-api
will copy them: the generated one of the controllers route, or the script config the body names.

Reads are bounded (a config is a few hundred bytes; more than MAX_BYTES is not a config) and
cached by (path, size, mtime): the recorder runs the checks on every deploy.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import yaml

from agent.match import captures as capture_check
from agent.preflight.model import FILE, Context, DeployRequest

MAX_BYTES = 256 * 1024
CONTROLLERS_SCRIPT = "v2_with_controllers.py"  # what the controllers route's generated config runs

_lock = threading.Lock()
_cache: dict[Path, tuple[tuple[int, int], Any]] = {}
_CACHE_MAX = 512


class Unreadable(Exception):
    """A config that exists but is not a YAML mapping hb-medic can read."""


def read_yaml(path: Path) -> dict[str, Any] | None:
    """The file's mapping; None when there is no such regular file; Unreadable otherwise."""
    try:
        st = path.stat()
    except OSError:
        return None
    if not path.is_file():
        return None
    key = (st.st_size, st.st_mtime_ns)
    with _lock:
        hit = _cache.get(path)
    if hit is not None and hit[0] == key:
        return hit[1]
    if st.st_size > MAX_BYTES:
        raise Unreadable(f"{path.name} is larger than {MAX_BYTES // 1024} KiB")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raise Unreadable(f"{path.name} is not readable YAML") from None
    if not isinstance(data, dict):
        raise Unreadable(f"{path.name} is not a YAML mapping")
    with _lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[path] = (key, data)
    return data


def with_yml(name: str) -> str:
    """A controller config as hummingbot-api names it (the controllers route adds .yml)."""
    return name if name.endswith(".yml") else f"{name}.yml"


def plain(value: object) -> str | None:
    """A file name from a body or a config that may be used in a path, else None."""
    if isinstance(value, str) and capture_check.check(FILE, value) is None:
        return value
    return None


def script_config(req: DeployRequest, ctx: Context) -> dict[str, Any] | None:
    """What the bot's script config will hold: for the controllers route the one hummingbot-api
    generates from the body; for the script route the file the body names (None when it names
    none, when it is missing, or when it cannot be read: the script-config check says which)."""
    if req.route == "deploy-v2-controllers":
        controllers = req.body.get("controllers_config")
        listed = controllers if isinstance(controllers, list) else []
        names = [with_yml(c) for c in listed if isinstance(c, str)]
        return {"script_file_name": CONTROLLERS_SCRIPT, "controllers_config": names}
    name = plain(req.body.get("script_config"))
    if name is None or ctx.bots_dir is None:
        return None
    try:
        return read_yaml(ctx.bots_dir / "conf" / "scripts" / name)
    except Unreadable:
        return None


def controller_names(config: dict[str, Any] | None) -> list[object]:
    """The controller configs a script config names (as written: checked by the caller)."""
    names = (config or {}).get("controllers_config") or []
    return list(names) if isinstance(names, list) else []


def controller_configs(req: DeployRequest, ctx: Context) -> list[dict[str, Any]]:
    """The controller configs that exist and can be read (for the connectors they name)."""
    if ctx.bots_dir is None:
        return []
    found = []
    for name in controller_names(script_config(req, ctx)):
        file = plain(name)
        if file is None:
            continue
        try:
            data = read_yaml(ctx.bots_dir / "conf" / "controllers" / file)
        except Unreadable:
            continue
        if data is not None:
            found.append(data)
    return found
