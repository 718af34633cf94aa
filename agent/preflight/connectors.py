"""Live connectors without keys: a strategy that trades on a connector (not a `_paper_trade` one)
whose keys are not in the profile (bots/credentials/<profile>/connectors/<connector>.yml) does not
start, and the bot stops (rule bot-live-keys-missing). hb-medic adds keys only where the operator
placed them (MEDIC_CREDENTIALS_DIR/<profile>/<connector>.json or .yml).

Connectors are read from the configs, never from the script's code: the fields hummingbot's V2
scripts and controllers name them in (`connector_name`, `exchange`, `maker_connector`,
`taker_connector`, the keys of `markets`, and nested mappings holding `connector_name`). Candle
connectors only read public data; Gateway connectors (`chain/type`) have wallets, not keys.
"""

from __future__ import annotations

import re
from typing import Any

from agent.actions.base import ActionError
from agent.actions.keyfiles import placed_keys
from agent.match import captures as capture_check
from agent.match.model import Capture
from agent.preflight import configs
from agent.preflight.model import PROFILE, Context, DeployRequest, Finding, skipped

CONNECTOR = Capture(type="name", max_length=64)
FIELDS = ("connector_name", "exchange", "connector", "maker_connector", "taker_connector")
GATEWAY = re.compile(r"^[a-z0-9_-]+/[a-z0-9_-]+$")
DEPTH = 4


def named(config: Any, depth: int = 0) -> list[str]:
    """The connector names a config holds, as written (checked by the caller)."""
    if not isinstance(config, dict) or depth > DEPTH:
        return []
    found = [config[f] for f in FIELDS if isinstance(config.get(f), str)]
    markets = config.get("markets")
    if isinstance(markets, dict):
        found += [k for k in markets if isinstance(k, str)]
    for value in config.values():
        if isinstance(value, dict):
            found += named(value, depth + 1)
        elif isinstance(value, list):
            for item in value[:50]:
                found += named(item, depth + 1)
    return found


def _strategy(req: DeployRequest, ctx: Context) -> str | None:
    script = (configs.script_config(req, ctx) or {}).get("script_file_name")
    if req.generation == "legacy" and req.route == "deploy-v2-script":
        script = req.body.get("script")
    name = configs.plain(script)
    return name.removesuffix(".py") if name else None


def live_keys(req: DeployRequest, ctx: Context) -> Finding | None:
    profile = req.profile
    if profile is None or capture_check.check(PROFILE, profile) is not None:
        return None  # the profile check says why
    if ctx.bots_dir is None:
        return skipped("live-keys", "no bots folder (MEDIC_BOTS_DIR)") \
            if req.body.get("script_config") or req.route == "deploy-v2-controllers" else None
    names = named(configs.script_config(req, ctx))
    for config in configs.controller_configs(req, ctx):
        names += named(config)
    live: list[str] = []
    for name in dict.fromkeys(names):
        if name.endswith("_paper_trade") or GATEWAY.fullmatch(name):
            continue
        reason = capture_check.check(CONNECTOR, name)
        if reason is not None:
            return Finding("live-keys", False, f"a config names connector {capture_check.shown(name)}, which"
                                               f" {reason}: refused, not looked up",
                           fix="correct the connector's name in the script or controller config")
        live.append(name)
    if not live:
        return None
    held = ctx.bots_dir / "credentials" / profile / "connectors"
    missing = [c for c in live if not (held / f"{c}.yml").is_file()]
    if not missing:
        return Finding("live-keys", True, f"profile {profile} has keys for {', '.join(live)}")
    try:
        placed = placed_keys(ctx.credentials_dir, profile)
    except ActionError:
        placed = {}
    captures = {"connector": missing[0]}
    if strategy := _strategy(req, ctx):
        captures["strategy"] = strategy
    says = (f"profile {profile} has no keys for live connector{'s' if len(missing) > 1 else ''}"
            f" {', '.join(missing)}: the strategy will not start")
    if len(missing) == 1 and missing[0] in placed:  # the rule's action adds the one connector it captured
        return Finding("live-keys", False, says, rule="bot-live-keys-missing", captures=captures,
                       fixable=True, fix=f"hb-medic adds the keys placed for {profile} (add-credential)")
    return Finding("live-keys", False, says, rule="bot-live-keys-missing", captures=captures,
                   fix=f"add the keys with POST /accounts/add-credential/{profile}/<connector> (or place"
                       f" them in MEDIC_CREDENTIALS_DIR/{profile}/<connector>.json for hb-medic), or use a"
                       " paper trade connector")
