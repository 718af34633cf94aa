"""What a person reads at 3 a.m.: what broke, what was done, did it work, what is left.

A message is built from the incident, its audit trail and its rule, with every
value passed through the redactor before it is stored or sent.

Text that came from logs, requests or answers (template values, the actions and
their results, details of failures and refusals) is marked as code: every channel
shows it as code, so nothing a log line says can become a mention, a link or
markup on someone's phone. Only the agent's own words are plain text.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field

from agent.names import DEFAULT_STACK
from agent.records import Incident
from agent.redact import Redactor

NOTIFY_ONLY = "notified; nothing to fix automatically"  # the result of a rule that only tells
# An incident's last word: never held back for a storm's digest (the person waits for it).
# A plan waiting for approval is never held either: it waits for the person.
FINAL_STEPS = frozenset({"resolved", "gave-up", "needs-you", "observed", "prevented", "warned",
                         "awaiting-approval", "expired", "ignored"})
# A deploy's failure foreseen by the recorder's preflight: fixed first, or told before it came.
PREFLIGHT_STEPS = frozenset({"prevented", "warned"})
PREFLIGHT_OUTCOME = {"prevented": "Fixed before the deploy was forwarded; then forwarded unchanged.",
                     "warned": "Forwarded as is: hummingbot-api answers it as usual."}

HEADLINES = {
    "detected": "Detected",
    "acting": "Detected, fixing",
    "retrying-attempt": "Fixing again",
    "resolved": "Fixed",
    "ended": "Over",
    "failed": "Fix failed, will try again",
    "gave-up": "Gave up: a human is needed",
    "needs-you": "Needs you",
    "refused": "Refused to act",
    "waiting": "Fixed, deploy needs you",
    "outage": "Paused until it answers",
    "observed": "Observe mode: would have acted",
    "awaiting-approval": "Needs your approval",
    "expired": "Approval expired, nothing done",
    "ignored": "Ignored, nothing done",
    "stale": "Old event, not acted on",
    "prevented": "Prevented",
    "warned": "Warned",
    "digest": "Many incidents",
    "unknown-digest": "Errors no rule knows",
    "unknown-burst": "New error no rule knows",
    "test": "Test message",
}


CODE_OPEN, CODE_CLOSE = "\ue000", "\ue001"  # private-use characters: never text of their own
_MARKS = str.maketrans("", "", CODE_OPEN + CODE_CLOSE)
# Words of the agent's own that need no marking: nothing a markup language reads as markup.
_PLAIN = re.compile(r"^[A-Za-z0-9 .,:;()'\"=/+%-]*$")


def code(text: str) -> str:
    """Mark text as code (empty stays empty)."""
    text = text.translate(_MARKS)
    return f"{CODE_OPEN}{text}{CODE_CLOSE}" if text else ""


def plain(text: str) -> str:
    """The text without its marks (a title, a plain-text channel)."""
    return text.translate(_MARKS)


def segments(text: str) -> list[tuple[bool, str]]:
    """(is code, text) pieces of a marked text, in order."""
    out: list[tuple[bool, str]] = []
    rest = text
    while rest:
        start = rest.find(CODE_OPEN)
        if start < 0:
            out.append((False, rest))
            break
        if start:
            out.append((False, rest[:start]))
        end = rest.find(CODE_CLOSE, start)
        end = len(rest) if end < 0 else end
        out.append((True, rest[start + 1:end]))
        rest = rest[end + 1:]
    return [(c, t.translate(_MARKS)) for c, t in out if t]


def code_unless_plain(text: str) -> str:
    return text if _PLAIN.fullmatch(text) else code(text)


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
    # Says whose text the excerpt is, when it is a program's output quoted (the agent's own words):
    # every channel then shows it under this label, fenced, its control characters escaped.
    excerpt_from: str = ""
    actions: list[str] = field(default_factory=list)  # "name(params): result" lines
    outcome: str = ""
    next_steps: str = ""
    stack: str = DEFAULT_STACK
    show_stack: bool = False  # the agent looks after several stacks (or one not called default)
    attempt: int = 0  # the incident's attempt when the step was told
    headline: str = ""  # the step in a few words ("Fixing again (attempt 2)")
    at: float = 0.0  # when the step was told (epoch s)
    # The incident's steps told before this one, oldest first ("12:00:03 Fix failed, will try
    # again: ..."): a chat's living message shows them, and an apprise target's final message
    # tells the intermediate steps folded into it (agent.notify.notifier).
    steps: list[str] = field(default_factory=list)
    folded: int = 0  # of those, intermediate steps an apprise target was not sent on their own

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    def repeats(self, other: Message) -> bool:
        """The same step of the same incident at the same attempt, in the same words: what a
        restart in the middle of an attempt would tell a second time. The actions list is left
        out (a resumed attempt's trail is longer)."""
        mine, theirs = asdict(self), asdict(other)
        for key in ("actions", "at", "steps", "folded"):
            mine.pop(key), theirs.pop(key)
        return mine == theirs

    def as_step(self) -> str:
        """This message as one line of a later message's steps: when, what, and why a fix failed."""
        what = self.headline or HEADLINES.get(self.step, self.step)
        line = f"{time.strftime('%H:%M:%S', time.localtime(self.at))} {what}"
        if self.step in ("failed", "outage", "refused") and self.outcome:
            why = plain(self.outcome)
            line += ": " + code(why if len(why) <= 160 else why[:159] + "…")
        return line

    @classmethod
    def from_json(cls, text: str) -> Message:
        return cls(**json.loads(text))


def build(inc: Incident, step: str, text: str, trail: list[dict], *, rule_title: str = "",
          rule_text: str = "", next_steps: str = "", redactor: Redactor | None = None,
          show_stack: bool = False) -> Message:
    """`rule_title` is plain (values that are not safe names already left out), `rule_text` and
    `next_steps` have their values marked as code; `text` is the step's detail."""
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
        actions.append(code(r.text(f"{a['name']}({params}): {mark} {a['result']}".strip())))
    if step in ("observed", "awaiting-approval"):
        actions = []
    # A step's detail tells about values from logs (a refused capture, a logged body, an error
    # hummingbot-api or Docker gave): shown as code, whatever it looks like.
    detail = code(r.text(text)) if step in UNTRUSTED_DETAIL else code_unless_plain(r.text(text))
    steps = r.text(next_steps)
    if step == "waiting":
        steps = detail
    elif step == "awaiting-approval":
        steps = (f"Fix now (or the command fix {inc.id}) runs it as act mode would; Ignore closes it."
                 " Unanswered, it expires and nothing is done." + (f" {steps}" if steps else ""))
    summary = r.text(rule_text) if rule_text else code(r.text(inc.summary))
    return Message(
        incident=inc.id, step=step, severity=inc.severity, rule=inc.rule, container=inc.container,
        title=plain(r.text(f"[{inc.severity.upper()}] {stack_mark(inc.stack, show_stack)}{headline}:"
                           f" {rule_title or inc.rule}")),
        summary=summary, excerpt=plain(r.text(inc.summary)), actions=actions,
        outcome=detail if step != "waiting" else "The account is fixed; the deploy was not re-sent.",
        next_steps=steps or "", stack=inc.stack, show_stack=show_stack, attempt=inc.attempts,
        headline=headline, at=time.time())


def stack_mark(stack: str, show: bool) -> str:
    """The stack's name at the head of a title ("eu-1 · "), where the agent has several. Stack
    names are plain names (validated at start), safe in any channel's title."""
    return f"{stack} · " if show else ""


UNTRUSTED_DETAIL = {"refused", "waiting", "failed", "gave-up", "needs-you", "observed", "awaiting-approval",
                    "ignored"}
