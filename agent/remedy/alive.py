"""The bot lives: what "fixed" means for a deploy that was retried or a bot redeployed.

hummingbot-api answers 200 success for every failure inside the bot, and a bot
with a wrong password runs for seconds before it exits (with code 0): a
container that runs right after the deploy proves nothing. A bot counts as alive
only when, MEDIC_BOT_SETTLE seconds later (30 by default), its container still
runs, no bot rule matched anything it wrote meanwhile, and, where
hummingbot-api's broker works, hummingbot-api hears its heartbeat
(`recently_active` in /bot-orchestration/status; a healthy bot shows it from
about 20 s). Otherwise the fix failed, with the bot's own reason.
"""

from __future__ import annotations

import time

import httpx
from docker.errors import NotFound

from agent.actions.base import ActionContext, ActionError
from agent.events import describe_exit

HEARD_WAIT = 30.0  # beyond the settle time, how long a heartbeat may take to show
DEATH_WAIT = 5.0  # how long a death waits for the agent's account of it (its reason)
DEAD = ("exited", "dead", "removing")


def bots_live(ctx: ActionContext, bots: list[tuple[str, float, float]]) -> dict[str, str | ActionError]:
    """Several bots at once (an incident re-sends every failed deploy of its profile): each
    (name, deployed at (wall clock), settle from (monotonic)) is watched until its own settle
    time is over, together, so a storm of re-sent deploys waits one settle time, not one each."""
    settle = ctx.settle
    out: dict[str, str | ActionError] = {}
    left = {name: (since, start + settle) for name, since, start in bots}
    while left:
        for name, (since, deadline) in list(left.items()):
            try:
                container = ctx.docker.containers.get(name)
            except NotFound:
                out[name] = ActionError(f"{name} was removed")
            else:
                problems = ctx.watch.matches_since(name, since) if ctx.watch is not None else []
                if container.status in DEAD:
                    out[name] = ActionError(_death(ctx, name, container.attrs.get("State") or {}))
                elif problems:
                    out[name] = ActionError(f"{name} runs, but {problems[-1]}")
                elif time.monotonic() >= deadline:
                    out[name] = f"{name} still running after {settle:.0f} s with no bot rule matched"
                else:
                    continue
            del left[name]
        if left:
            time.sleep(min(1.0, max(0.05, min(d for _, d in left.values()) - time.monotonic())))
    alive = [n for n, o in out.items() if isinstance(o, str)]
    heard = _heard(ctx, alive, wait=HEARD_WAIT if settle else 0.0)
    for name in alive:
        out[name] = out[name] + heard[name] if isinstance(heard[name], str) else heard[name]
    return out


def _death(ctx: ActionContext, name: str, state: dict) -> str:
    """How the bot died, from the agent's own account when it comes (with the rule that knows why)."""
    end = time.monotonic() + DEATH_WAIT
    while ctx.watch is not None and time.monotonic() < end:
        death = ctx.watch.death(name)
        if death is not None and (death.get("reason") or death.get("stopped")):
            if death.get("stopped"):
                return f"{name} was stopped (exit code {death.get('exit_code')}) before it settled"
            return f"{name} {death.get('fate')}: {death['reason']}"
        time.sleep(0.2)
    code = state.get("ExitCode")
    code = code if isinstance(code, int) else -1
    return f"{name} {describe_exit(code, None, bool(state.get('OOMKilled')))}"


def _heard(ctx: ActionContext, names: list[str], *, wait: float) -> dict[str, str | ActionError]:
    """`recently_active` of each, where hummingbot-api's broker works."""
    if not names:
        return {}
    try:
        resp = ctx.api.request("GET", "/bot-orchestration/mqtt")
        data = resp.json().get("data") if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        data = None
    if not isinstance(data, dict) or data.get("mqtt_connected") is not True:
        return {n: "; hummingbot-api's broker is not connected, so its heartbeat was not checked"
                for n in names}
    out: dict[str, str | ActionError] = {}
    deadline = time.monotonic() + wait
    while True:
        try:
            resp = ctx.api.request("GET", "/bot-orchestration/status")
            bots = resp.json().get("data") if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            bots = None
        for name in names:
            entry = bots.get(name) if isinstance(bots, dict) else None
            if name not in out and isinstance(entry, dict) and entry.get("recently_active") is True:
                out[name] = "; hummingbot-api hears its heartbeat (recently_active)"
        if len(out) == len(names):
            return out
        if time.monotonic() >= deadline:
            for name in names:
                out.setdefault(name, ActionError(
                    f"{name} runs, but hummingbot-api never heard its heartbeat (recently_active false):"
                    " check mqtt_bridge in its conf_client.yml"))
            return out
        time.sleep(1.0)
