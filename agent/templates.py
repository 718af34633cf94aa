"""What a rule's templates may name, and the values they get: the one place both are decided,
so `rules check` accepts exactly the names a match, an action or a notification can fill.

A rule's templates (incident key, notify title/text/next_steps, action parameters) name
`{capture}`, `{deploy.field}` or one of NAMES. Actions may only name ACTION_NAMES (the
engine's names for the container, never text from a log line) and captures that are not
free text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.events import BOT, EXIT, Event
from agent.match.deploy import FIELDS
from agent.names import base_name
from agent.records import Incident

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
