"""What a rule's templates may name, and the values they get: the one place both are decided,
so `rules check` accepts exactly the names a match, an action or a notification can fill.

A rule's templates (incident key, notify title/text/next_steps, action parameters) name
`{capture}`, `{deploy.field}` or one of NAMES. Actions may only name ACTION_NAMES (the
engine's names for the container, never text from a log line) and captures that are not
free text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.events import BOT, EXIT, Event, spoken_duration
from agent.match.deploy import FIELDS
from agent.names import base_name
from agent.records import Incident

if TYPE_CHECKING:
    from agent.match.model import Capture

# container, rule, severity, stack: where it happened and what the rule says of it;
# bot: a bot's instance name as the client sent it (without the -YYYYmmdd-HHMMSS suffix);
# stream, message, exception: the event that matched (or opened the incident);
# fate and exit_code: how a bot ended (rules about a bot's death, or fatal rules).
NAMES = frozenset({"container", "rule", "severity", "stack", "bot", "stream", "message", "exception",
                   "fate", "exit_code"})
ACTION_NAMES = frozenset({"container", "bot"})
DEPLOY_FIELDS = frozenset().union(*FIELDS.values())
MESSAGE_CHARS = 500  # of an event's message, as a value


def deploy_values(body: dict[str, Any] | None) -> dict[str, Any]:
    """{deploy.field} of a deploy request's body."""
    return {f"deploy.{k}": v for k, v in (body or {}).items()}


def fate_values(fate: str | None, exit_code: int | None) -> dict[str, Any]:
    """{fate} and {exit_code} (when it has one): how a bot ended."""
    return {"fate": fate} if exit_code is None else {"fate": fate, "exit_code": exit_code}


def event_values(event: Event, redact: Callable[[str], str] | None = None) -> dict[str, Any]:
    """{stream}, {message} and {exception} of the event that matched. An incident keeps them
    (redacted: they come from a log) to render its notifications."""
    message = event.message[:MESSAGE_CHARS]
    return {"stream": event.stream, "message": redact(message) if redact is not None else message,
            "exception": event.outermost.type if event.outermost else None}


def match_values(event: Event, rule: str, severity: str, captures: dict[str, Any],
                 deploy_body: dict[str, Any] | None) -> dict[str, Any]:
    """The values of a match: an action of the rule runs with them. {bot} only for a bot's own
    lines (an action naming it never reaches hummingbot-api's container)."""
    values: dict[str, Any] = {"container": event.container, "rule": rule, "severity": severity,
                              "stack": event.stack, **event_values(event)}
    if event.role == BOT:
        values["bot"] = base_name(event.container)
    if event.kind == EXIT and event.data:
        values.update(fate_values(event.data.get("fate"), event.data.get("exit_code")))
    values.update(captures)
    values.update(deploy_values(deploy_body))
    return values


def incident_values(inc: Incident) -> dict[str, Any]:
    """The values of an incident (its attempts and its notifications render them)."""
    values: dict[str, Any] = {"container": inc.container, "rule": inc.rule, "severity": inc.severity,
                              "bot": base_name(inc.container), "stack": inc.stack, **inc.opened_by}
    values.update(inc.captures)
    if inc.deploy and inc.deploy.get("body"):
        values.update(deploy_values(inc.deploy["body"]))
    return values


def epoch_ms(value: Any, now: float) -> str | None:
    """Milliseconds since 1970 as a person reads them: the UTC date and time, and how long from
    now (a ban's end, a deadline). None for a value that is no such time."""
    try:
        at = int(str(value)) / 1000
        when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (ValueError, OverflowError, OSError):
        return None
    ahead = at - now
    if abs(ahead) < 1:
        return f"{when} (now)"
    return f"{when} (in {spoken_duration(ahead)})" if ahead > 0 else f"{when} ({spoken_duration(-ahead)} ago)"


SHOWN = {"epoch_ms": epoch_ms}


def shown_values(captures: Mapping[str, Capture], values: dict[str, Any],
                 now: float | None = None) -> dict[str, Any]:
    """The captures a rule declares with `shown:`, as a message shows them (actions and the
    incident key keep the values as captured). A value that cannot be shown so stays as it is."""
    now = time.time() if now is None else now
    out: dict[str, Any] = {}
    for name, spec in captures.items():
        value = values.get(name)
        if spec.shown is not None and value not in (None, ""):
            text = SHOWN[spec.shown](value, now)
            if text is not None:
                out[name] = text
    return out
