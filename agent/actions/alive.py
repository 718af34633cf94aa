"""The bot lives: what "fixed" means for a deploy that was retried or a bot redeployed.

hummingbot-api answers 200 success for every failure inside the bot, and a bot
with a wrong password runs for seconds before it exits (with code 0): a
container that runs right after the deploy proves nothing. A bot counts as alive
only when, MEDIC_BOT_SETTLE seconds later (30 by default), its container still
runs, no bot rule that means *this bot* failed matched anything it wrote since
the check began, and, where hummingbot-api's broker works, hummingbot-api hears
its heartbeat (`recently_active` in /bot-orchestration/status; a healthy bot
shows it from about 20 s). Otherwise the fix failed, with the bot's own reason.

A real bot prints its surroundings' troubles within seconds of starting (an
exchange or the rate source out of reach): those rules are conditions with an
incident of their own, not this bot's failure; the verdict names them.
"""

from __future__ import annotations

import time
from datetime import datetime

import httpx
from docker.errors import NotFound

from agent.actions.base import ActionContext, ActionError, BotMatch
from agent.events import describe_exit
from agent.hummingbot_api import broker_reply

HEARD_WAIT = 30.0  # beyond the settle time, how long a heartbeat may take to show
DEATH_WAIT = 5.0  # how long a death waits for the agent's account of it (its reason)
DEAD = ("exited", "dead", "removing")
OBSERVE_MIN = 10.0  # a bot already running when the check starts is still watched this long


def bot_lives(ctx: ActionContext, name: str, *, since: float) -> str:
    """Raise ActionError with the bot's reason, or say how it was found alive.

    `since` (wall clock) is when this check's attempt began: only lines the bot wrote from
    then on count (never an earlier attempt's, nor the lines that opened the incident).
    """
    settle = ctx.settle
    # Counted from the container's start: a check cut short (a restart of the agent) goes on
    # where it was instead of waiting the whole settle time again; a bot found running is
    # still watched a little, so the verdict rests on lines written during this check.
    deadline = time.monotonic() + max(min(settle, OBSERVE_MIN), settle - _running_for(ctx, name))
    while True:
        try:
            container = ctx.docker.containers.get(name)
        except NotFound:
            raise ActionError(f"{name} was removed") from None
        if container.status in DEAD:
            raise ActionError(_death(ctx, name, container.attrs.get("State") or {}))
        seen = ctx.watch.matches_since(name, since) if ctx.watch is not None else []
        failures = [m for m in seen if not m.condition]
        if failures:
            raise ActionError(f"{name} runs, but {failures[-1]}{_also(seen, failures[-1])}")
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ctx.pause(min(1.0, left))
    lived = f"{name} still running after {settle:.0f} s with no failure of its own"
    try:
        heard = _heard(ctx, name, wait=HEARD_WAIT if settle else 0.0)
    except ActionError as exc:
        raise ActionError(f"{exc}{_also(seen, None)}") from None
    return lived + heard + _also(seen, None)


def _also(seen: list[BotMatch], shown: BotMatch | None) -> str:
    """What else the bot said meanwhile: its surroundings' conditions, each rule once."""
    others: dict[str, BotMatch] = {}
    for m in seen:
        if m is not shown and m.condition:
            others.setdefault(m.rule, m)
    if not others:
        return ""
    return "; also seen (not this bot's failure): " + "; ".join(str(m) for m in others.values())


def _death(ctx: ActionContext, name: str, state: dict) -> str:
    """How the bot died, from the agent's own account when it comes (with the rule that knows why)."""
    end = time.monotonic() + DEATH_WAIT
    while ctx.watch is not None and time.monotonic() < end:
        death = ctx.watch.death(name)
        if death is not None and (death.get("reason") or death.get("stopped")):
            if death.get("stopped"):
                return f"{name} was stopped (exit code {death.get('exit_code')}) before it settled"
            return f"{name} {death.get('fate')}: {death['reason']}"
        ctx.pause(0.2)
    code = state.get("ExitCode")
    code = code if isinstance(code, int) else -1
    return f"{name} {describe_exit(code, None, bool(state.get('OOMKilled')))}"


def _heard(ctx: ActionContext, name: str, *, wait: float) -> str:
    """`recently_active`, where hummingbot-api's broker works."""
    data, unknown = broker_reply(ctx.api)
    if data is None:  # hummingbot-api itself did not answer: nothing is known of its broker
        return f"; {unknown}, so its heartbeat was not checked"
    if data.get("mqtt_connected") is not True:
        return "; hummingbot-api's broker is not connected, so its heartbeat was not checked"
    deadline = time.monotonic() + wait
    while True:
        try:
            resp = ctx.api.request("GET", "/bot-orchestration/status")
            bots = resp.json().get("data") if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            bots = None
        entry = bots.get(name) if isinstance(bots, dict) else None
        if isinstance(entry, dict) and entry.get("recently_active") is True:
            return "; hummingbot-api hears its heartbeat (recently_active)"
        if time.monotonic() >= deadline:
            raise ActionError(f"{name} runs, but hummingbot-api never heard its heartbeat (recently_active"
                              " false): check mqtt_bridge in its conf_client.yml")
        ctx.pause(1.0)


def _running_for(ctx: ActionContext, name: str) -> float:
    """Seconds since the container last started (0 when it cannot be told)."""
    try:
        started = (ctx.docker.containers.get(name).attrs.get("State") or {}).get("StartedAt", "")
        head, _, frac = started.rstrip("Z").partition(".")
        at = datetime.fromisoformat(head + "+00:00").timestamp() + float(f"0.{frac or 0}")
    except (NotFound, ValueError, TypeError):
        return 0.0
    return max(0.0, time.time() - at)
