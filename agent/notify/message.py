"""What a person reads at 3 a.m.: what broke, what was done, did it work, what is left.

A message is built from the incident, its audit trail and its rule, with every
value passed through the redactor before it is stored or sent.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from agent.redact import Redactor
from agent.store import Incident

NOTIFY_ONLY = "notified; nothing to fix automatically"  # the result of a rule that only tells

HEADLINES = {
    "detected": "Detected",
    "acting": "Detected, fixing",
    "retrying-attempt": "Fixing again",
    "resolved": "Fixed",
    "failed": "Fix failed, will try again",
    "gave-up": "Gave up: a human is needed",
    "refused": "Refused to act",
    "waiting": "Fixed, deploy needs you",
    "outage": "Paused until it answers",
    "observed": "Observe mode: would have acted",
    "stale": "Old event, not acted on",
    "digest": "Many incidents",
    "unknown-digest": "Errors no rule knows",
    "unknown-burst": "New error no rule knows",
    "test": "Test message",
}


@dataclass
class Message:
    incident: str
    step: str
    severity: str
    rule: str
    container: str
    title: str
    summary: str  # what happened, one or two sentences: never shortened
    excerpt: str = ""  # the key line(s) of the event: shortened first when space is short
    actions: list[str] = field(default_factory=list)  # "name(params): result" lines
    outcome: str = ""
    next_steps: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Message:
        return cls(**json.loads(text))


def build(inc: Incident, step: str, text: str, trail: list[dict], *, rule_title: str = "",
          rule_text: str = "", next_steps: str = "", redactor: Redactor | None = None) -> Message:
    r = redactor or Redactor()
    headline = HEADLINES.get(step, step)
    if step == "acting" and inc.attempts > 1:
        headline = f"Fixing again (attempt {inc.attempts})"
    elif step == "outage" and inc.outage:
        headline = f"Paused until {inc.outage} answers"
    actions = []
    for a in trail:
        if a["kind"] not in ("action", "verify", "retry"):
            continue
        params = ", ".join(f"{k}={v!r}" for k, v in (a["params"] or {}).items() if k != "body")
        mark = {True: "ok", False: "FAILED", None: "..."}[a["ok"]]
        actions.append(r.text(f"{a['name']}({params}): {mark} {a['result']}".strip()))
    if step == "observed":
        actions = []
    steps = next_steps
    if step == "waiting":
        steps = text
    elif step == "resolved" and next_steps:
        steps = next_steps
    summary = rule_text or inc.summary
    return Message(
        incident=inc.id, step=step, severity=inc.severity, rule=inc.rule, container=inc.container,
        title=r.text(f"[{inc.severity.upper()}] {headline}: {rule_title or inc.rule}"),
        summary=r.text(summary), excerpt=r.text(inc.summary), actions=actions,
        outcome=r.text(text if step != "waiting" else "The account is fixed; the deploy was not re-sent."),
        next_steps=r.text(steps or ""))
