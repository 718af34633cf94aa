"""The real operator: what a button press or a command from a chat does to the incidents.

Only the user ids listed for each service (MEDIC_CHAT_TELEGRAM_USERS, MEDIC_CHAT_SLACK_USERS) may
answer; anyone else gets "not allowed" and one log line, and nothing else happens (a chat that
may read is not one that may act). A button's data is "<choice>:<incident>:<token>", the token
random, kept in the state file and good for one press: a replayed, forged or another
incident's press does nothing. Every answer (who, when, from which chat, what it said) goes to
the incident's audit trail (or, about no incident, to the trail without one), redacted.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping

from agent import templates
from agent.chat.operator import CHOICES
from agent.chat.transport import Button, Who
from agent.events import spoken_duration
from agent.match.model import Rule
from agent.records import Incident, IncidentState
from agent.redact import Redactor
from agent.remedy.decisions import plan_of
from agent.remedy.journal import Journal, Notify
from agent.state import State
from agent.state.approvals import Use
from agent.state.silences import Silence

log = logging.getLogger("agent.chat")

SILENCE_BUTTON = 3600.0  # the Silence 1 h button
LONGEST_SILENCE = 7 * 86400.0
_DURATION = re.compile(r"^(\d{1,4})(s|m|min|h|d)$")
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
HELP = ("status · incidents · incident ID · fix ID · ignore ID · retry ID\n"
        "silence RULE|ID 1h (30m, 2h, 1d) · unsilence [RULE|ID] · help")


def duration(text: str) -> float | None:
    m = _DURATION.match(text.strip().lower())
    return int(m[1]) * _UNITS[m[2]] if m else None


class Decisions:
    """Implements agent.chat.operator.Operator for every transport.

    `status()` gives the lines of the status command (stacks, followed containers and bots);
    `wake(stack, incident)` has that stack's remedy work on an incident a person moved on now (in
    the agent; without it, the remedy's next tick finds it, as it does after a restart)."""

    def __init__(self, store: State, rules: Callable[[], Mapping[str, Rule]], *,
                 allowed: Mapping[str, set[str] | list[str]], ttl: float, redactor: Redactor,
                 notify: Notify | None = None, status: Callable[[], list[str]] | None = None,
                 wake: Callable[[str, str], None] | None = None) -> None:
        self.store = store
        self.rules = rules
        self.allowed = {service: {str(u) for u in users} for service, users in allowed.items()}
        self.ttl = ttl
        self.redactor = redactor
        self.journal = Journal(store, notify or (lambda inc, step, text: None), redactor)
        self._status = status or (lambda: [])
        self._wake = wake or (lambda stack, inc: None)

    # -- the Operator protocol ---------------------------------------------------------------------
    def press(self, who: Who, data: str) -> str:
        if not self._may(who, "press"):
            return "not allowed"
        choice, _, rest = data.partition(":")
        ident, _, token = rest.partition(":")
        inc = self.store.incidents.get(ident) if ident and len(ident) >= 4 else None
        if choice not in CHOICES or not token or inc is None or inc.id != ident:
            return self._answer(who, None, "press", "not a button of hb-medic: nothing done", data=data[:80])
        refused = self._refusal(inc, choice)
        if refused:
            return self._answer(who, inc, f"press {choice}", refused)
        use, by = self.store.approvals.use(token, inc.id, choice, self._who(who), self.ttl)
        if use != Use.OK:
            why = {Use.USED: f"this button was pressed already{' by ' + by if by else ''}: nothing done",
                   Use.EXPIRED: "this button has expired: nothing done",
                   Use.UNKNOWN: "not a valid button for this incident: nothing done"}[use]
            return self._answer(who, inc, f"press {choice}", why)
        return self._do(who, inc, choice, f"press {choice}")

    def command(self, who: Who, text: str) -> str:
        if not self._may(who, "command"):
            return "not allowed"
        words = text.strip().lstrip("/").split()
        if not words:
            return self._answer(who, None, "command", HELP)
        verb, args = words[0].lower().split("@")[0], words[1:]  # Telegram's /cmd@botname
        said = " ".join([verb, *args])[:120]
        if verb == "help":
            return self._answer(who, None, said, HELP)
        if verb == "status":
            return self._answer(who, None, said, self._status_text())
        if verb == "incidents":
            return self._answer(who, None, said, self._incidents_text())
        if verb == "unsilence":
            return self._answer(who, None, said, self._unsilence(args[0] if args else None))
        if verb == "silence":
            if len(args) != 2 or duration(args[1]) is None:
                return self._answer(who, None, said, "usage: silence RULE|ID DURATION (e.g. 1h, 30m)")
            return self._silence(who, args[0], duration(args[1]) or 0.0, said)
        if verb in ("incident", "fix", "ignore", "retry"):
            if len(args) != 1:
                return self._answer(who, None, said, f"usage: {verb} ID")
            inc = self.store.incidents.get(args[0]) if len(args[0]) >= 4 else None
            if inc is None:
                return self._answer(who, None, said, f"no incident {args[0][:20]} (see: incidents)")
            if verb == "incident":
                return self._answer(who, inc, said, self._trail_text(inc))
            refused = self._refusal(inc, verb)
            if refused:
                return self._answer(who, inc, said, refused)
            return self._do(who, inc, verb, said)
        return self._answer(who, None, said, "unknown command; " + HELP)

    def buttons(self, incident: str) -> list[Button]:
        """The buttons under an incident's message now: Fix now / Ignore / Silence 1 h while it
        waits for approval (or, a preflight's warning in ask mode, while its fix is offered),
        Retry / Silence 1 h after a give-up, none otherwise."""
        inc = self.store.incidents.get(incident)
        if inc is None or inc.id != incident:
            return []
        if inc.state == IncidentState.AWAITING_APPROVAL or self._offered(inc):
            choices = ["fix", "ignore", "silence"]
        elif inc.state == IncidentState.GAVE_UP:
            choices = ["retry", "silence"]
        else:
            return []
        return [Button(CHOICES[c], f"{c}:{inc.id}:{self.store.approvals.token(inc.id, c)}") for c in choices]

    # -- who may ---------------------------------------------------------------------------------
    def _may(self, who: Who, what: str) -> bool:
        if str(who.user) in self.allowed.get(who.service, set()):
            return True
        log.warning("chat: %s user %s (chat %s) is not allowed to answer: %s ignored",
                    who.service, self.redactor.text(str(who.user))[:64],
                    self.redactor.text(str(who.chat))[:64], what)
        return False

    @staticmethod
    def _who(who: Who) -> str:
        return f"{who.service} user {who.user}"

    # -- what each choice does -------------------------------------------------------------------
    def _refusal(self, inc: Incident, choice: str) -> str:
        """Why this choice cannot be made on the incident as it stands now ("" when it can)."""
        state = inc.state
        if choice in ("fix", "ignore") and state == IncidentState.WARNED:
            offer = self.store.approvals.get(inc.id)
            if offer is None:
                return f"refused: incident {inc.id} is a warning whose fix is not offered (any more)" \
                       f"{self._since(inc)}; nothing done"
            if offer.approved is not None:
                return f"refused: incident {inc.id}'s fix was approved already by {offer.approved_by}"
            if offer.expires <= time.time():
                return f"expired: incident {inc.id}'s fix was offered too long ago; nothing was done"
            return ""
        if choice in ("fix", "ignore"):
            if state == IncidentState.AWAITING_APPROVAL:
                approval = self.store.approvals.get(inc.id)
                if approval is None:
                    return f"refused: incident {inc.id} has no pending approval"
                if approval.approved is not None:
                    return f"refused: incident {inc.id} was approved already by {approval.approved_by}"
                if approval.expires <= time.time():
                    return f"expired: incident {inc.id} waited too long; nothing was done"
                return ""
            if state == IncidentState.EXPIRED:
                return f"expired: incident {inc.id} was not approved in time; nothing was done"
            return f"refused: incident {inc.id} is {state} now{self._since(inc)}; nothing to approve"
        if choice == "retry":
            if state != IncidentState.GAVE_UP:
                return f"refused: incident {inc.id} is {state}; only one that gave up can be retried"
            latest = self.store.incidents.latest(inc.rule, inc.key, inc.stack)
            if latest is not None and latest.id != inc.id:
                return f"refused: incident {latest.id} ({latest.state}) has its failure now"
            if inc.rule not in self.rules():
                return f"refused: rule {inc.rule} is no longer loaded"
            return ""
        return ""  # silence: whatever the incident's state

    def _changed(self, inc: Incident) -> str:
        now = self.store.incidents.get(inc.id) or inc
        return f"refused: incident {inc.id} changed meanwhile (it is {now.state} now): nothing done"

    @staticmethod
    def _since(inc: Incident) -> str:
        return f" ({inc.detail[:80]})" if inc.detail else ""

    def _offered(self, inc: Incident) -> bool:
        """A preflight's warning whose fix waits for a Fix now (ask mode)."""
        if inc.state != IncidentState.WARNED:
            return False
        offer = self.store.approvals.get(inc.id)
        return offer is not None and offer.approved is None

    def _fix_warned(self, who: Who, inc: Incident, said: str) -> str:
        """Fix now under a preflight's warning. The failure came already: its incident is approved
        (it runs with its deploy retry); not yet: the warned fix runs now on the stack's remedy,
        and the failure, if it comes, is retried without asking again. One attempt either way: the
        offer is used once."""
        by = self._who(who)
        latest = self.store.incidents.latest(inc.rule, inc.key, inc.stack)
        if latest is not None and latest.id != inc.id:
            if latest.state != IncidentState.AWAITING_APPROVAL:
                return self._answer(who, inc, said, f"refused: the failure came: incident {latest.id} has it"
                                                    f" ({latest.state} now); nothing done here")
            answer = self._do(who, latest, "fix", said)
            if answer.startswith("Fixing"):
                self.store.approvals.drop(inc.id)
                self.store.incidents.audit(inc.id, "decision", "fix now", {"by": by, "incident": latest.id},
                                           result=f"the failure came first: incident {latest.id} approved")
            return answer
        if not self.store.approvals.approve(inc.id, by, offer=True):
            return self._answer(who, inc, said, self._changed(inc))
        plan = self.store.approvals.get(inc.id)
        steps = " -> ".join(plan.plan) if plan is not None else "its fix"
        answer = self._answer(who, inc, said, f"Fixing incident {inc.id} before its failure: {steps}")
        self._wake(inc.stack, inc.id)
        return answer

    def _do(self, who: Who, inc: Incident, choice: str, said: str) -> str:
        by = self._who(who)
        if choice in ("fix", "ignore") and inc.state == IncidentState.WARNED:
            if choice == "fix":
                return self._fix_warned(who, inc, said)
            if not self.store.approvals.drop(inc.id, "approved IS NULL"):
                return self._answer(who, inc, said, self._changed(inc))
            self.store.incidents.audit(inc.id, "decision", "ignored", {"by": by},
                                       result="its fix is not offered any more")
            return self._answer(who, inc, said, f"Ignored incident {inc.id}: nothing was done")
        if choice == "fix":
            rule = self.rules().get(inc.rule)
            approval = self.store.approvals.get(inc.id)
            if rule is None:
                return self._answer(who, inc, said, f"refused: rule {inc.rule} is no longer loaded")
            now_plan = plan_of(rule, templates.incident_values(inc))
            if approval is not None and now_plan != approval.plan:
                self.store.approvals.replan(inc.id, now_plan)
                return self._answer(who, inc, said, "refused: the rule changed since it asked; it would now"
                                    f" run: {' -> '.join(now_plan)}. Send fix {inc.id} to run that")
            if not self.store.approvals.approve(inc.id, by):
                return self._answer(who, inc, said, self._changed(inc))
            answer = self._answer(who, inc, said, f"Fixing incident {inc.id}: {' -> '.join(now_plan)}")
            self._wake(inc.stack, inc.id)
            return answer
        if choice == "ignore":
            if not self.store.approvals.ignore(inc.id):
                return self._answer(who, inc, said, self._changed(inc))
            answer = self._answer(who, inc, said, f"Ignored incident {inc.id}: nothing was done")
            inc = self.store.incidents.get(inc.id) or inc
            self.journal.close(inc, IncidentState.OBSERVED, f"ignored by {by}: nothing was done",
                               step="ignored")
            return answer
        if choice == "retry":
            if not self.store.incidents.reopen(inc.id, IncidentState.GAVE_UP):
                return self._answer(who, inc, said, self._changed(inc))
            self.store.incidents.audit(inc.id, "decision", "retry by hand", {"by": by},
                                       result="a new attempt, now")
            answer = self._answer(who, inc, said, f"Retrying incident {inc.id}: a new attempt now")
            self._wake(inc.stack, inc.id)
            return answer
        return self._silence(who, inc.id, SILENCE_BUTTON, said)

    def _silence(self, who: Who, target: str, seconds: float, said: str) -> str:
        seconds = min(seconds, LONGEST_SILENCE)
        until = time.time() + seconds
        rule = self.rules().get(target)
        inc = None if rule is not None else self.store.incidents.get(target) if len(target) >= 4 else None
        if rule is None and inc is None:
            return self._answer(who, None, said, f"no rule or incident {target[:40]} (see: incidents)")
        if inc is not None:
            self.store.silences.add(Silence(inc.rule, inc.key, inc.stack, until, self._who(who), inc.id))
            what = f"incident {inc.id} and its repeats ({inc.rule})"
        else:
            self.store.silences.add(Silence(target, None, None, until, self._who(who)))
            what = f"rule {target}"
        return self._answer(who, inc, said, f"Silenced {what} for {spoken_duration(seconds)}: no messages;"
                                            " fixes go on as the mode says")

    def _unsilence(self, target: str | None) -> str:
        if target is None:
            n = self.store.silences.remove()
            return f"Unsilenced everything ({n} silence{'s' if n != 1 else ''})"
        if target in self.rules():
            n = self.store.silences.remove(target)
            return f"Unsilenced rule {target}" if n else f"rule {target} was not silenced"
        inc = self.store.incidents.get(target) if len(target) >= 4 else None
        if inc is None:
            return f"no rule or incident {target[:40]}"
        n = self.store.silences.remove(inc.rule, inc.key)
        return f"Unsilenced incident {inc.id}" if n else f"incident {inc.id} was not silenced"

    # -- what the commands show --------------------------------------------------------------------
    def _status_text(self) -> str:
        lines = list(self._status())
        open_ = [i for i in self.store.incidents.recent(200) if i.open]
        lines.append(f"open incidents: {len(open_)}" + (":" if open_ else ""))
        lines += [_line(i) for i in open_[:5]]
        if len(open_) > 5:
            lines.append(f"... and {len(open_) - 5} more (incidents)")
        silenced = self.store.silences.active()
        if silenced:
            lines.append("silenced: " + ", ".join(s.incident or s.rule for s in silenced[:5]))
        return "\n".join(lines)

    def _incidents_text(self) -> str:
        recent = self.store.incidents.recent(8)
        return "\n".join(_line(i) for i in recent) if recent else "no incidents"

    def _trail_text(self, inc: Incident) -> str:
        lines = [_line(inc), inc.summary[:160]]
        if inc.detail:
            lines.append(f"-> {inc.detail[:160]}")
        for a in self.store.incidents.audit_trail(inc.id)[-6:]:
            ok = {True: " ok", False: " FAILED", None: ""}[a["ok"]]
            result = f" {a['result'][:60]}" if a["result"] else ""
            at = time.strftime('%H:%M', time.localtime(a['at']))
            lines.append(f"{at} {a['kind']} {a['name'][:40]}{ok}{result}")
        return "\n".join(lines)

    # -- the audit trail -------------------------------------------------------------------------
    def _answer(self, who: Who, inc: Incident | None, said: str, answer: str, **extra: str) -> str:
        """Redacted, and written to the incident's trail (who, when, from which chat, what)."""
        answer = self.redactor.text(answer)
        params = self.redactor.data({"service": who.service, "user": str(who.user), "chat": str(who.chat),
                                     "name": who.name[:64], **extra})
        self.store.incidents.audit(inc.id if inc is not None else None, "chat", self.redactor.text(said),
                                   params, result=answer[:500])
        log.info("chat: %s user %s: %s -> %s", who.service, who.user, self.redactor.text(said)[:80],
                 answer.splitlines()[0][:120] if answer else "")
        return answer


def _line(inc: Incident) -> str:
    ago = spoken_duration(max(0.0, time.time() - inc.created))
    return f"{inc.id} {inc.state} {inc.rule} {inc.container[:30]} ({ago} ago)"
