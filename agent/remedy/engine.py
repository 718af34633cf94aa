"""Incidents: from a match to a fix, verified, with the deploy retried; never a loop.

One incident per (rule, key) at a time. A new match of an open incident only
counts; a failed attempt is tried again after a growing backoff, up to the
rule's attempt limit; a closed one is left alone for the rule's cooldown. A
global budget of fix attempts per hour stops everything (a circuit breaker). In
observe mode (global or per rule) the agent records and reports what it would
have done. An event from long ago (replayed after downtime) is reported, not
acted on. Every decision and every action goes to the audit trail, with
secrets masked. Actions run on one worker thread, one incident at a time, so
the pipeline is never blocked by a slow fix.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from agent.actions import registry
from agent.actions.base import ActionContext, ActionError, NeedsHuman
from agent.match import captures as capture_check
from agent.match.loader import params_of, unresolved
from agent.match.matcher import Result
from agent.match.model import Capture, Rule
from agent.redact import Redactor
from agent.remedy import intent as intents
from agent.remedy.retry import retry_deploy
from agent.store import Incident, Store

log = logging.getLogger(__name__)
Notify = Callable[[Incident, str, str], None]
DEPLOY_VALUE = Capture(type="name", max_length=128)
WAITING_TTL = 86400.0  # a `waiting` incident nobody finished stops blocking its key after this


class _Waiting(Exception):
    """The fix needs something only a human can give (usually the deploy body)."""


def log_step(inc: Incident, step: str, text: str) -> None:
    """Until notifications are wired: each incident step as one line of the agent's log."""
    log.warning("incident %s [%s] %s: %s", inc.id, inc.rule, step, text)


def finish_command(inc: Incident) -> str:
    profile = inc.captures.get("profile", "<profile>")
    body = {"instance_name": inc.captures.get("instance", "<instance name>"), "credentials_profile": profile}
    return f"hb-medic retry-deploy {inc.id} --body '{json.dumps(body)}'"


class Remedy:
    def __init__(self, store: Store, rules: Callable[[], dict[str, Rule]],
                 context: Callable[[], ActionContext], *, notify: Notify | None = None,
                 mode: str = "enforce", budget: int = 100, stale_after: float = 900.0,
                 bots_dir: Path | None = None, recorder: bool = False,
                 redactor: Redactor | None = None) -> None:
        self.redactor = redactor or Redactor()
        self.store = store
        self.rules = rules
        self.context = context
        self.notify = notify or log_step
        self.mode = mode
        self.budget = budget
        self.stale_after = stale_after
        self.bots_dir = bots_dir
        self.recorder = recorder
        self.actions = registry()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="remedy", daemon=True)
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.recover()
        self._thread.start()

    def recover(self) -> None:
        """Attempts cut short by a stop are tried again (the attempt already counted)."""
        for inc in self.store.incidents(limit=200):
            if inc.state in ("detected", "acting", "verifying", "retrying"):
                inc.state, inc.next_attempt = "failed", time.time()
                inc.detail = "interrupted by a restart of the agent"
                self.store.save_incident(inc)
                self.store.audit(inc.id, "decision", "interrupted", result=inc.detail)

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    # -- from the pipeline: decide, quickly ----------------------------------------------------
    def submit(self, res: Result) -> Incident | None:
        if res.below_threshold:
            return None
        rule, event = res.rule, res.event
        key = res.text(rule.incident.key) or rule.id
        now = time.time()
        with self._lock:
            current = self.store.latest_incident(rule.id, key)
            if current is not None and current.state == "waiting" and now - current.updated > WAITING_TTL:
                self._close(current, "gave-up", "nobody finished the deploy within a day: closed")
                current = self.store.latest_incident(rule.id, key)
            if current is not None and current.open:
                self.store.count_event(current.id)
                return current
            if current is not None and current.closed and current.state in ("resolved", "gave-up") \
                    and now - current.closed < rule.incident.cooldown:
                self.store.count_event(current.id)
                self.store.audit(current.id, "decision", "event during cooldown: no action",
                                 {"fingerprint": event.fingerprint})
                return current
            inc = Incident(
                id=secrets.token_hex(4), rule=rule.id, key=key, state="detected", severity=rule.severity,
                container=event.container, summary=self.redactor.text(_summary(res)),
                fingerprint=event.fingerprint, captures=dict(res.captures), deploy=_carried_deploy(res))
            self.store.create_incident(inc)
        self.store.audit(inc.id, "decision", "detected",
                         self.redactor.data({"captures": res.captures, **event.where()}),
                         result=inc.summary)
        age = now - event.ts / 1e9 if event.ts else 0.0
        if res.refused:
            return self._close(inc, "refused", f"not acting: {res.refused}")
        if age > self.stale_after:
            return self._close(inc, "stale", f"event is {age:.0f} s old (replayed after downtime):"
                                             " reported, not acted on")
        self.notify(inc, "detected", inc.summary)
        plan = self._plan(rule, res)
        if self.mode == "observe" or rule.observe_only:
            self.store.audit(inc.id, "decision", "observe", {"would_run": plan})
            return self._close(inc, "observed", "would have run: " + (" -> ".join(plan) or "nothing"))
        if not plan:
            return self._close(inc, "resolved", "notified; this rule runs no action")
        self._queue.put(inc.id)
        return inc

    def _plan(self, rule: Rule, res: Result) -> list[str]:
        steps = [f"{name}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
                 for name, params, _ in res.action_params()]
        steps += [f"verify {c.action}" for c in rule.verify]
        return [*steps, "retry_deploy"] if rule.retry_deploy else steps

    def _close(self, inc: Incident, state: str, detail: str) -> Incident:
        detail = self.redactor.text(detail)
        inc.state, inc.detail, inc.closed = state, detail, time.time()
        self.store.save_incident(inc)
        self.store.audit(inc.id, "decision", state, result=detail)
        self.notify(inc, state, detail)
        return inc

    # -- the worker: act, verify, retry --------------------------------------------------------
    def _work(self) -> None:
        while True:
            try:
                ident = self._queue.get(timeout=1.0)
            except queue.Empty:
                ident = ""
            if ident is None:
                return
            try:
                due = [ident] if ident else [i.id for i in self.store.due_incidents(time.time())]
                for inc_id in due:
                    inc = self.store.get_incident(inc_id)
                    if inc is not None and inc.state in ("detected", "failed"):
                        self.attempt(inc)
            except Exception:
                log.exception("remedy worker failed")

    def attempt(self, inc: Incident) -> None:
        rule = self.rules().get(inc.rule)
        if rule is None:
            self._close(inc, "gave-up", f"rule {inc.rule} is no longer loaded")
            return
        used = self.store.attempts_since(time.time() - 3600)
        if used >= self.budget:
            self._close(inc, "gave-up", f"action budget exhausted ({used} fix attempts in the last hour,"
                                        f" limit {self.budget}): not acting; please look")
            return
        started = time.monotonic()
        if not self.store.claim_incident(inc.id, ("detected", "failed"), "acting"):
            return  # someone else (hb-medic retry-deploy) took it
        inc.attempts += 1
        inc.state = "acting"
        self.store.save_incident(inc)
        self.store.audit(inc.id, "attempt", f"attempt {inc.attempts} of {rule.incident.max_attempts}")
        steps = [c.action for c in rule.actions] + [f"verify {c.action}" for c in rule.verify]
        steps += ["retry_deploy"] if rule.retry_deploy else []
        self.notify(inc, "acting", f"running {' -> '.join(steps)} "
                                   f"(attempt {inc.attempts} of {rule.incident.max_attempts})")
        try:
            ctx = self.context()
            values = inc.values()
            intent = None
            if rule.retry_deploy or any(n.startswith("deploy.") for c in rule.actions
                                        for n in _templates(c.params)):
                intent = self._intent(inc)
                values.update({f"deploy.{k}": v for k, v in (intent or {}).get("body", {}).items()})
            for call in rule.actions:
                self._run(inc, ctx, "action", call, values)
            inc.state = "verifying"
            self.store.save_incident(inc)
            for call in rule.verify:
                self._run(inc, ctx, "verify", call, values)
            if rule.retry_deploy:
                if intent is None:
                    raise _Waiting(
                        "fixed, but the failed deploy's request is not known (no recorder record, no"
                        " logged body), so it was not guessed. To finish: " + finish_command(inc))
                inc.state = "retrying"
                self.store.save_incident(inc)
                self._retry(inc, ctx, intent)
        except _Waiting as waiting:
            inc.state, inc.detail = "waiting", str(waiting)
            self.store.save_incident(inc)
            self.store.audit(inc.id, "decision", "waiting", result=inc.detail)
            self.notify(inc, "waiting", inc.detail)
            return
        except Exception as exc:  # ActionError, validation, HTTP, Docker: all end the attempt
            detail = self.redactor.text(f"{type(exc).__name__}: {exc}" if not isinstance(exc, ActionError)
                                       else str(exc))
            if isinstance(exc, NeedsHuman):  # another attempt would not help: say what to do
                self._close(inc, "gave-up", detail)
            elif inc.attempts >= rule.incident.max_attempts:
                self._close(inc, "gave-up", f"{detail} (after {inc.attempts} attempts)")
            else:
                inc.state, inc.detail = "failed", detail
                inc.next_attempt = time.time() + rule.incident.backoff * 2 ** (inc.attempts - 1)
                self.store.save_incident(inc)
                self.store.audit(inc.id, "decision", "failed", result=detail)
                self.notify(inc, "failed", f"{detail}; next attempt in "
                                           f"{inc.next_attempt - time.time():.0f} s")
            return
        took = time.monotonic() - started
        self._close(inc, "resolved", f"fixed in {took:.1f} s")

    def _intent(self, inc: Incident) -> dict | None:
        found = intents.resolve(self.store, self.bots_dir, deploy=inc.deploy, captures=inc.captures,
                                at=inc.created, wait=3.0 if self.recorder else 0.0)
        if found is not None:
            inc.deploy = {k: found[k] for k in ("route", "body", "raw", "source", "deploy_id") if k in found}
            self.store.save_incident(inc)
            self.store.audit(inc.id, "decision", "deploy request found",
                             self.redactor.data({"source": found.get("source"), "route": found.get("route"),
                                                 "body": found.get("body")}))
        return found

    def _run(self, inc: Incident, ctx: ActionContext, kind: str, call, values: dict) -> None:
        spec = self.actions[call.action]
        params = params_of(call, values)
        missing = [n for v in call.params.values() if isinstance(v, str) for n in unresolved(v, values)]
        if "deploy.credentials_profile" in missing:
            profile = half_made_profile(ctx)
            if profile is not None:
                values["deploy.credentials_profile"] = profile
                self.store.audit(inc.id, "decision", "half-made profile found through the API",
                                 {"profile": profile})
                params, missing = params_of(call, values), []
        if missing:
            raise _Waiting(f"{call.action} needs {', '.join(missing)}, which no evidence gives. "
                           "To finish: " + finish_command(inc))
        for key, raw in call.params.items():
            # Values from a recorded or logged request body are client text: names only.
            if isinstance(raw, str) and "{deploy." in raw:
                reason = capture_check.check(DEPLOY_VALUE, str(params[key]))
                if reason:
                    value = capture_check.shown(str(params[key]))
                    raise ActionError(f"{call.action}: {key}={value} {reason}")
        shown = ctx.redactor.data(params)
        started = time.monotonic()
        try:
            typed = spec.params.model_validate(params)
        except ValidationError as exc:
            self.store.audit(inc.id, kind, call.action, shown, False, f"refused: {exc.errors()[0]['msg']}")
            raise ActionError(f"{call.action}: parameter refused: {exc.errors()[0]['msg']}") from None
        try:
            result = spec.func(typed, ctx)
        except Exception as exc:
            self.store.audit(inc.id, kind, call.action, shown, False, ctx.redactor.text(str(exc)),
                             (time.monotonic() - started) * 1000)
            raise
        self.store.audit(inc.id, kind, call.action, shown, True, ctx.redactor.text(str(result)),
                         (time.monotonic() - started) * 1000)

    def _retry(self, inc: Incident, ctx: ActionContext, intent: dict) -> str:
        started = time.monotonic()
        body = intent["body"]
        raw = intent.get("raw") or json.dumps(body)
        params = {"route": intent["route"], "body": ctx.redactor.data(body), "source": intent.get("source")}
        try:
            result = retry_deploy(ctx, intent["route"], raw, body, since=inc.created)
        except Exception as exc:
            self.store.audit(inc.id, "retry", "retry_deploy", params, False, ctx.redactor.text(str(exc)),
                             (time.monotonic() - started) * 1000)
            raise
        self.store.audit(inc.id, "retry", "retry_deploy", params, True, result,
                         (time.monotonic() - started) * 1000)
        return result

    # -- `hb-medic retry-deploy` ---------------------------------------------------------------------
    def finish(self, inc: Incident, route: str | None, body: dict | None) -> str:
        """Finish a deploy retry by hand, through the same checks."""
        rule = self.rules().get(inc.rule)
        if rule is None or not rule.retry_deploy:
            raise ActionError(f"incident {inc.id} ({inc.rule}) has no deploy to retry")
        if inc.state != "waiting":
            raise ActionError(f"incident {inc.id} is {inc.state}: retry-deploy finishes only"
                              " waiting incidents")
        if body is None:
            found = self._intent(inc)
            if found is None:
                raise ActionError("the failed request is still unknown: give it with --body '<json>'")
            route, body, raw = found["route"], found["body"], found.get("raw") or json.dumps(found["body"])
        else:
            route = route or (inc.deploy or {}).get("route") or "deploy-v2-script"
            raw = json.dumps(body)
            problem = intents.check_body(route, body)
            if problem:
                raise ActionError(f"will not send this body: {problem}")
            inc.deploy = {"route": route, "body": body, "raw": raw, "source": "operator"}
        if not self.store.claim_incident(inc.id, ("waiting",), "retrying"):
            raise ActionError(f"incident {inc.id} is no longer waiting (the agent or another command has it)")
        ctx = self.context()
        self.store.audit(inc.id, "decision", "retry-deploy by hand", {"route": route})
        try:
            result = self._retry(inc, ctx, {"route": route, "body": body, "raw": raw, "source": "operator"})
        except Exception:
            self.store.claim_incident(inc.id, ("retrying",), "waiting")
            raise
        self._close(inc, "resolved", result)
        return result


def half_made_profile(ctx: ActionContext) -> str | None:
    """The only listed profile whose credentials folder is missing, if exactly one is."""
    found = [a for a in ctx.api.accounts()
             if a != "master_account" and ctx.api.account_credentials(a) is None]
    return found[0] if len(found) == 1 else None


def _templates(params: dict) -> list[str]:
    from agent.match.loader import TEMPLATE

    return [m[1] for v in params.values() if isinstance(v, str) for m in TEMPLATE.finditer(v)]


def _summary(res: Result) -> str:
    e = res.event
    return f"{res.rule.id} in {e.container}: {e.excerpt}"


def _carried_deploy(res: Result) -> dict | None:
    if not res.deploy:
        return None
    data = res.event.data or {}
    if data.get("deploy_id") is not None:
        return {**res.deploy, "deploy_id": data["deploy_id"], "source": "recorder"}
    return {**res.deploy, "source": "log"}
