"""The script config, the script and the controller configs a deploy needs, in the bots folder
where hummingbot-api copies them from (bots/conf/scripts, bots/conf/controllers) and where the
bot imports its script (bots/scripts, mounted as the bot's scripts/).

hummingbot-api only logs a warning for a missing config and answers the deploy with success; the
bot then stops at start. Nothing here is fixable by hb-medic: the files are the person's.
"""

from __future__ import annotations

from agent.preflight import configs
from agent.preflight.model import Context, DeployRequest, Finding, refused, skipped

NO_BOTS = "no bots folder (MEDIC_BOTS_DIR)"


def script_config_exists(req: DeployRequest, ctx: Context) -> Finding | None:
    """The script config the script route names must be in bots/conf/scripts (rule
    script-config-missing; the bot then stops: bot-script-config-missing)."""
    if req.route != "deploy-v2-script" or req.body.get("script_config") is None:
        return None
    name = req.body["script_config"]
    bad = refused("script-config", "script_config", name)
    if bad is not None:
        return bad
    if ctx.bots_dir is None:
        return skipped("script-config", NO_BOTS)
    path = ctx.bots_dir / "conf" / "scripts" / name
    if not path.is_file():
        return Finding("script-config", False, f"script config {name} is not in bots/conf/scripts: the bot"
                                               " will stop at start", rule="script-config-missing",
                       captures={"config": name},
                       fix=f"create it (POST /scripts/configs/{name.removesuffix('.yml')}) or deploy with an"
                           " existing one (GET /scripts/configs/)")
    try:
        configs.read_yaml(path)
    except configs.Unreadable as exc:
        return Finding("script-config", False, f"script config {exc}: the bot cannot load it",
                       fix=f"correct bots/conf/scripts/{name}")
    return Finding("script-config", True, f"script config {name} is in bots/conf/scripts")


def _script(req: DeployRequest, ctx: Context) -> object:
    """The script file the bot will run: the legacy generation passes the body's `script`
    (CONFIG_FILE_NAME); the current one runs the script config's script_file_name."""
    if req.generation == "legacy" and req.route == "deploy-v2-script":
        return req.body.get("script")
    return (configs.script_config(req, ctx) or {}).get("script_file_name")


def script_exists(req: DeployRequest, ctx: Context) -> Finding | None:
    """A script missing from bots/scripts stops the bot at start: "Unknown strategy" (rule
    bot-strategy-failed)."""
    if ctx.bots_dir is None:
        return skipped("script", NO_BOTS) if req.body.get("script_config") or req.body.get("script") \
            or req.route == "deploy-v2-controllers" else None
    name = _script(req, ctx)
    if name is None:
        return None
    bad = refused("script", "the script", name)
    if bad is not None:
        return bad
    file = name if name.endswith(".py") else f"{name}.py"
    strategy = file.removesuffix(".py")
    if (ctx.bots_dir / "scripts" / file).is_file():
        return Finding("script", True, f"script {file} is in bots/scripts")
    return Finding("script", False, f"script {file} is not in bots/scripts: the bot will stop at start",
                   rule="bot-strategy-failed",
                   captures={"strategy": strategy, "reason": f"Unknown strategy: {strategy}",
                             "script": strategy},
                   fix=f"add the script (POST /scripts/{strategy}) or correct the script config's"
                       " script_file_name")


def controller_configs_exist(req: DeployRequest, ctx: Context) -> Finding | None:
    """Each controller config the script config names must be in bots/conf/controllers (rule
    controller-config-missing): the controllers route's list, or the script config's."""
    if req.route == "deploy-v2-controllers" and not isinstance(req.body.get("controllers_config"), list):
        return Finding("controller-configs", False, "controllers_config is not a list",
                       fix="send controllers_config as a list of controller config names")
    names = configs.controller_names(configs.script_config(req, ctx))
    if not names:
        return None
    for name in names:
        bad = refused("controller-configs", "controller config", name)
        if bad is not None:
            return bad
    if ctx.bots_dir is None:
        return skipped("controller-configs", NO_BOTS)
    folder = ctx.bots_dir / "conf" / "controllers"
    missing = [str(n) for n in names if not (folder / str(n)).is_file()]
    if not missing:
        return Finding("controller-configs", True, f"controller configs in bots/conf/controllers:"
                                                    f" {', '.join(map(str, names))}")
    return Finding("controller-configs", False, f"controller config{'s' if len(missing) > 1 else ''} not in"
                                                f" bots/conf/controllers: {', '.join(missing)}",
                   rule="controller-config-missing", captures={"config": missing[0]},
                   fix="create them (POST /controllers/configs/<name>) or deploy with existing ones"
                       " (GET /controllers/configs/)")
