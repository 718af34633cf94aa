"""Before a deploy is forwarded: the failures the preflight checks foresee, each an incident of the
rule that would have recognised it afterwards, fixed first with that rule's own actions (the same
registry, budget, audit trail and messages as after a failure) or told at once.

A fixed one ends `prevented`; one that is not fixed (warn mode, a request without hummingbot-api's
login, no fix before a deploy, a fix that failed or came too late) ends `warned`, and the failure,
when it comes, opens the rule's incident linked to it (agent.remedy.intake).

In ask mode a preflight cannot wait for a person: a fixable warning of a request with the login
carries its fix as an offer (the chat's Fix now, kept with the approvals). Pressed before the
failure came, the fix runs then (`fix_now`), once, with the same actions, budget and audit, and the
failure's incident, when it comes, runs its attempt without asking again; pressed after it, it
approves the failure's incident instead (agent.chat.decisions).
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from agent import templates
from agent.match import captures as capture_check
from agent.match.loader import params_of, render
from agent.match.model import ActionCall, Capture, Rule
from agent.names import protected_profile
from agent.preflight.checks import DeployRequest, Finding
from agent.records import Incident, IncidentState
from agent.remedy import decisions
from agent.remedy.attempt import Attempts
from agent.remedy.journal import Journal
from agent.state import State, StateUnwritable

log = logging.getLogger("agent.remedy.engine")
NAME = Capture(type="name", max_length=128)
DEPLOY_PROFILE = Capture(type="profile", max_length=64)  # a request's credentials_profile
FIXED_NOW = "fixed now"  # the audit line of a warning's Fix now that ran (ask mode)
# A finding says what is wrong now; the message of a prevented failure says it was.
_PAST = ((re.compile(r"\bdoes not\b"), "did not"), (re.compile(r"\bdo not\b"), "did not"),
         (re.compile(r"\bis\b"), "was"), (re.compile(r"\bare\b"), "were"), (re.compile(r"\bhas\b"), "had"),
         (re.compile(r"\blacks\b"), "lacked"))


def past(says: str) -> str:
    """A finding's words in the past tense, as a prevented failure's message tells them."""
    for pattern, word in _PAST:
        says = pattern.sub(word, says)
    return says


class Cutoff:
    """The deploy's deadline, decided once by whoever comes first: the recorder forwards as is
    (`expire`), or the preflight finishes in time (`finish`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: str | None = None

    def expire(self) -> bool:
        """The recorder stops waiting: True unless the preflight had just finished."""
        with self._lock:
            self._state = self._state or "expired"
            return self._state == "expired"

    def finish(self) -> bool:
        """The preflight is done: True if in time (the recorder waits for its verdict)."""
        with self._lock:
            self._state = self._state or "finished"
            return self._state == "finished"

    @property
    def expired(self) -> bool:
        return self._state == "expired"


@dataclass
class Verdict:
    """What a preflight did: the ids of the incidents it ended prevented and warned."""

    prevented: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)


class Preventions:
    def __init__(self, store: State, rules: Callable[[], dict[str, Rule]], journal: Journal,
                 attempts: Attempts, telling: Collection[str], stack: str,
                 approval_ttl: float = 3600.0) -> None:
        self.approval_ttl = approval_ttl  # how long a warning's Fix now may be pressed (ask mode)
        self.store = store
        self.rules = rules
        self.journal = journal
        self.attempts = attempts
        self.telling = telling
        self.stack = stack
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], threading.Lock] = {}

    def handle(self, req: DeployRequest, findings: list[Finding], *, fix: bool, why_not: str,
               cutoff: Cutoff, container: str, ask: bool = False) -> Verdict:
        """Each failed finding of a deploy: fixed first when `fix` (and it is fixable), else told.
        `why_not`: why nothing is fixed, when `fix` is False. `ask`: (ask mode, a request with the
        login) a fixable one is told with its fix offered for a person's Fix now."""
        verdict = Verdict()
        started = time.time()
        bot = req.instance if req.instance and capture_check.check(NAME, req.instance) is None else None
        for finding in findings:
            if finding.ok:
                continue
            rule = self.rules().get(finding.rule) if finding.rule else None
            if rule is None:
                log.warning("preflight: the deploy of bot %s will fail: %s (no rule of the loaded ones"
                            " takes it up)", bot or "(unnamed)", self.journal.redactor.text(finding.says))
                continue
            try:
                self._one(req, finding, rule, bot, fix=fix, why_not=why_not, cutoff=cutoff,
                          container=container, started=started, verdict=verdict, ask=ask and not fix)
            except StateUnwritable:
                log.warning("preflight: the state file cannot be written: %s not recorded", finding.check)
        return verdict

    def _one(self, req: DeployRequest, finding: Finding, rule: Rule, bot: str | None, *, fix: bool,
             why_not: str, cutoff: Cutoff, container: str, started: float, verdict: Verdict,
             ask: bool = False) -> None:
        redactor = self.journal.redactor
        captures, refused = self._captures(rule, finding)
        values = {**captures}
        key = redactor.text(render(rule.incident.key, values)) or rule.id
        says = redactor.text(finding.says)
        with self._key_lock(rule.id, key):
            current = self.store.incidents.latest(rule.id, key, self.stack)
            if current is not None and current.open:  # an incident of the same failure acts on it
                self.store.incidents.audit(current.id, "decision", "preflight",
                                           result=f"a deploy of bot {bot or '(unnamed)'} foresees it: {says}")
                verdict.warned.append(current.id)
                return
            if current is not None and current.state == IncidentState.PREVENTED \
                    and (current.closed or 0) >= started - 1.0 and fix and finding.fixable:
                # another deploy's preflight fixed it a moment ago: nothing to do twice
                self.store.incidents.audit(current.id, "decision", "preflight",
                                           result=f"also prevents the deploy of bot {bot or '(unnamed)'}")
                verdict.prevented.append(current.id)
                return
            if not fix and decisions.foretold(current, time.time()) is not None:
                # told lately already: once per key, however many deploys (or unauthenticated
                # clients) repeat it
                self.store.incidents.count_event(current.id)
                self.store.incidents.audit(current.id, "decision", "preflight",
                                           result=f"warned again: a deploy of bot {bot or '(unnamed)'}")
                verdict.warned.append(current.id)
                return
            opened = {"stream": decisions.PREFLIGHT, "message": says, "exception": None}
            if bot is not None:
                opened["bot"] = bot
            extra = {"instance": bot} if bot is not None and "instance" not in captures else {}
            extra.update(_known_deploy(req))
            inc = Incident(id=secrets.token_hex(4), rule=rule.id, key=key, state=IncidentState.DETECTED,
                           severity=rule.severity, container=container,
                           summary=f"the deploy of bot {bot or '(unnamed)'} will fail: {says}",
                           fingerprint=f"preflight:{finding.check}",
                           captures=decisions.kept(rule, {**captures, **extra}, redactor),
                           opened_by=opened, stack=self.stack)
            self.store.incidents.create(inc)
            self.store.incidents.audit(inc.id, "decision", "preflight",
                                       redactor.data({"check": finding.check, "route": req.route,
                                                      "captures": captures}), result=says)
            head = f"the deploy of bot {bot or '(unnamed)'}"
            warned = f"Warned: {head} will fail: {says}; forwarded as is"
            values = templates.incident_values(inc)
            steps = decisions.steps(rule, values, self.telling)
            calls = [c for c in steps.calls if not _needs_deploy(c.params, values)]
            checks = [c for c in steps.checks if not _needs_deploy(c.params, values)]
            why = why_not
            if refused is not None:
                why = f"not acting: {refused}"
            elif fix and not finding.fixable:
                why = "no fix before a deploy for it"
            elif fix and rule.ask:  # a rule that always asks is never fixed unasked, before or after
                why = "its rule asks a person before it acts"
            elif fix and (steps.told or not calls):
                why = "its rule has nothing to run before a deploy"
            elif fix and cutoff.expired:
                why = "the checks took past the deadline"
            if ask and refused is None and finding.fixable and calls and not steps.told:
                plan = _shown(calls, values) + [f"verify {c.action}" for c in checks]
                self.store.approvals.ask(inc.id, self.stack, plan, time.time() + self.approval_ttl)
                self._warn(inc, rule, f"{warned} (ask mode: Fix now runs its fix: {' -> '.join(plan)};"
                                      " pressed once the failure came, it approves the failure's incident).",
                           verdict)
                return
            if not fix or why != why_not:
                self._warn(inc, rule, f"{warned} ({why}).", verdict)
                return
            no = self.attempts.budgeted(inc, rule)
            if no is not None:
                self._warn(inc, rule, f"{warned} ({no}).", verdict)
                return
            try:
                done = self.attempts.before_deploy(inc, calls, checks, values)
            except StateUnwritable:
                raise
            except Exception as exc:
                ran = [a["name"] for a in self.store.incidents.audit_trail(inc.id)
                       if a["kind"] in ("action", "verify") and a["ok"]]
                left = [c.action for c in calls[len(ran):]]  # the calls run in order, up to the failed one
                error = redactor.text(str(exc) or type(exc).__name__)
                done_text, left_text = ", ".join(ran) or "nothing", ", ".join(left) or "nothing"
                self._warn(inc, rule, f"{warned}: the fix before forwarding failed ({error}); done:"
                                      f" {done_text}; left: {left_text}.", verdict)
                return
            fixed = "; ".join(d.strip() for d in done if d.strip()) or "fixed it"
            if cutoff.expired:  # the fix ended after the recorder stopped waiting for it
                self._warn(inc, rule, f"{warned}: the fix before forwarding ended after the deadline"
                                      f" ({fixed}), so the deploy went out before it; left: the deploy's"
                                      " own failure, if it came before the fix.", verdict)
                return
            self.journal.close(inc, IncidentState.PREVENTED,
                               f"Prevented: {head} would have failed: {past(says)}; {fixed}")
            verdict.prevented.append(inc.id)

    def fix_now(self, inc_id: str) -> str | None:
        """A warning's approved Fix now (ask mode), on a remedy worker: claimed once (a second
        press, a restart, another process never run it twice), then the rule's fix before a
        deploy runs as a preflight's would (same actions, budget, audit). If the failure came
        meanwhile, its incident has it: approved instead, its id returned for the caller to wake."""
        approval = self.store.approvals.get(inc_id)
        if approval is None or approval.approved is None \
                or not self.store.approvals.drop(inc_id, "approved IS NOT NULL"):
            return None
        by = approval.approved_by
        inc = self.store.incidents.get(inc_id)
        rule = self.rules().get(inc.rule) if inc is not None else None
        if inc is None or rule is None:
            self.store.incidents.audit(inc_id, "decision", "fix now", {"by": by},
                                       result="not run: its rule is no longer loaded")
            return None
        with self._key_lock(rule.id, inc.key):
            latest = self.store.incidents.latest(rule.id, inc.key, self.stack)
            if latest is not None and latest.id != inc.id:  # the failure came: its incident has it
                approved = latest.state == IncidentState.AWAITING_APPROVAL \
                    and self.store.approvals.approve(latest.id, by)
                self.store.incidents.audit(inc.id, "decision", "fix now", {"by": by, "incident": latest.id},
                                           result=f"the failure came first: incident {latest.id} ("
                                                  f"{latest.state}) " + ("approved instead" if approved
                                                                          else "has it; nothing run here"))
                return latest.id if approved else None
            self.store.incidents.audit(inc.id, "decision", "fix now", {"by": by},
                                       result="the warned fix runs now, after the deploy went out")
            values = templates.incident_values(inc)
            steps = decisions.steps(rule, values, self.telling)
            calls = [c for c in steps.calls if not _needs_deploy(c.params, values)]
            checks = [c for c in steps.checks if not _needs_deploy(c.params, values)]
            no = self.attempts.budgeted(inc, rule, after=f"Fix now by {by}, after the warning")
            if no is not None:
                self.journal.close(inc, IncidentState.WARNED, f"Fix now by {by}: not run ({no}).")
                return None
            try:
                done = self.attempts.before_deploy(inc, calls, checks, values, keep_state=True)
            except StateUnwritable:
                raise
            except Exception as exc:
                error = self.journal.redactor.text(str(exc) or type(exc).__name__)
                self.journal.close(inc, IncidentState.WARNED, f"Fix now by {by} failed ({error}); the"
                                   " failure, when it comes, asks for approval again.")
                return None
            fixed = "; ".join(d.strip() for d in done if d.strip()) or "fixed it"
            self.store.incidents.audit(inc.id, "decision", FIXED_NOW, {"by": by}, result=fixed)
            self.journal.close(inc, IncidentState.WARNED,
                               f"Fixed now by {by}, after the warning: {fixed}. The deploy went out before"
                               " the fix: its failure, if it comes, is retried at once, without asking"
                               " again.", step="resolved")  # told as Fixed; the warning stays linked
        return None

    def _warn(self, inc: Incident, rule: Rule, detail: str, verdict: Verdict) -> None:
        self.journal.close(inc, IncidentState.WARNED,
                           f"{detail} When it fails, the incident of rule {rule.id} is linked to this one.")
        verdict.warned.append(inc.id)

    def _captures(self, rule: Rule, finding: Finding) -> tuple[dict[str, str], str | None]:
        """The finding's captures, checked as a matched event's are (the rule's declared ones
        only; a protected profile is refused)."""
        out: dict[str, str] = {}
        for name, value in finding.captures.items():
            spec = rule.captures.get(name)
            if spec is None or not isinstance(value, str):
                continue
            reason = capture_check.check(spec, value)
            if reason:
                return {}, f"capture {name}={capture_check.shown(value)} {reason}"
            out[name] = value.lower() if spec.case == "lower" else value.upper() if spec.case == "upper" \
                else value
        for name in ("profile", "account"):
            if name in out and protected_profile(out[name]):
                return {}, f"capture {name}={out[name]} is a protected profile (hb-medic never touches it)"
        return out, None

    def _key_lock(self, rule: str, key: str) -> threading.Lock:
        """One preflight of a (rule, key) at a time: two deploys of one missing profile add it once."""
        with self._lock:
            return self._keys.setdefault((rule, key), threading.Lock())


def _shown(calls: list[ActionCall], values: dict) -> list[str]:
    """The calls as a plan shows them (agent.remedy.decisions.plan_of)."""
    return [f"{c.action}({', '.join(f'{k}={v!r}' for k, v in params_of(c, values).items())})" for c in calls]


def fixed_now_by(trail: list[dict]) -> str | None:
    """Who ran a warned incident's fix with its Fix now (from its audit trail), if anyone did."""
    return next((a["params"].get("by", "") for a in trail
                 if a["kind"] == "decision" and a["name"] == FIXED_NOW), None)


def _needs_deploy(params: dict, values: dict) -> bool:
    """Does the call name a value of the failed deploy ({deploy.*}) that a preflight does not
    know? No deploy failed yet: only what `_known_deploy` took from the request is known."""
    return any(n.startswith("deploy.") and n not in values for n in decisions.templates(params))


def _known_deploy(req: DeployRequest) -> dict[str, str]:
    """The failed deploy's values a preflight already knows, as `{deploy.*}` values: the profile
    the request names (the same before the deploy and after its failure, and checked as a captured
    profile is; never a protected one). Not its instance name: the current generation adds a time
    stamp to it when it deploys."""
    profile = req.profile
    if profile is None or capture_check.check(DEPLOY_PROFILE, profile) is not None \
            or protected_profile(profile):
        return {}
    return {"deploy.credentials_profile": profile}
