"""The failed deploys an incident re-sends once its fix is verified, each once.

One incident retries every failed deploy it owns (each recorded failure of its profile
or instance, one per instance name: its latest request), side by side; without such
records, the one request the event carried, or the log or bots folder gave. Each is
sent by the `retry_deploy` action, one deploy of an instance name at a time, written
ahead so a kill while it is out never sends a second one. A closed incident whose
profile's deploy failed again since is no reason to rest for the cooldown.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from agent.actions import registry
from agent.actions.base import ActionContext, ActionError, NeedsHuman, Stopped
from agent.actions.deploys import already_deployed, check_body
from agent.match.model import RETRY_DEPLOY
from agent.names import base_name
from agent.records import PENDING, Deploy, Incident, IncidentState
from agent.redact import Redactor
from agent.remedy import intent as intents
from agent.remedy.outage import outage_of
from agent.remedy.pool import NameLocks, side_by_side
from agent.state import State, StateUnwritable

CLIENT_WAIT = 30.0  # how long a retry waits for a client's own deploy of that name to be answered
OWN_SEND_WAIT = 20.0  # after a re-send cut off by a kill, how long its bot may take to show
ROUNDS = 5  # deploys that fail while the others are re-sent are taken too, this many times


def finish_command(inc: Incident) -> str:
    profile = inc.captures.get("profile", "<profile>")
    body = {"instance_name": inc.captures.get("instance", "<instance name>"), "credentials_profile": profile}
    return f"hb-medic retry-deploy {inc.id} --body '{json.dumps(body)}'"


def unconfirmed(inc: Incident, intent: dict) -> str:
    """A body read from log text is never re-sent by itself: anyone who reaches hummingbot-api can
    print a line, so a person looks at it first."""
    return ("fixed, but the failed deploy's request was read from hummingbot-api's log, which proves"
            " nothing about who sent it, so it was not re-sent. If it is yours: hb-medic retry-deploy"
            f" {inc.id} (sends {json.dumps(intent['body'], sort_keys=True)})")


class Resends:
    def __init__(self, store: State, context: Callable[[], ActionContext], redactor: Redactor,
                 names: NameLocks, *, bots_dir: Path | None, recorder: bool, stack: str,
                 stopping: threading.Event | None = None) -> None:
        """`stopping`: set when the agent stops; every wait here ends then (Stopped)."""
        self.stopping = stopping or threading.Event()
        self.store = store
        self.context = context
        self.redactor = redactor
        self.names = names
        self.bots_dir = bots_dir
        self.recorder = recorder
        self.stack = stack

    # -- which ------------------------------------------------------------------------------------
    def todo(self, inc: Incident, *, wait: bool = True) -> list[dict]:
        """Every failed deploy this incident owns and has not retried yet, one per instance name
        (its latest request): the recorder's records of its profile or instance from a while
        before it opened until now, waiting a moment for answers still on their way; without
        such records, the one request the event carried or the log or bots folder gave."""
        if inc.deploy and inc.deploy.get("deploy_id") is not None and inc.deploy.get("source") in (
                "recorder", "bot") and not inc.captures.get("profile") and not inc.captures.get("instance"):
            # A recorder rule's own exchange (e.g. an image to pull), or the deploy of a bot that died.
            found = self.intent(inc)
            return [self._one(found, inc)] if found and not self.owned(inc, done_only=True) else []
        since = inc.created - 300
        deadline = time.monotonic() + (5.0 if wait and self.recorder else 0.0)
        while True:
            records = self._recorded(inc, since)
            if not any(d.state == PENDING and d.at >= inc.created - 60 for d in records) \
                    or time.monotonic() >= deadline:
                break
            self._pause(0.2)
        failed = [d for d in records if d.retryable and d.body() is not None]
        if not failed:
            if self.owned(inc, done_only=True):  # sent and verified; a failed one is sent again
                return []
            found = self.intent(inc) if wait else None
            return [self._one(found, inc)] if found else []
        done = self.store.incidents.deploys_done([d.id for d in failed])
        groups: dict[str, list[Deploy]] = {}
        for d in failed:
            groups.setdefault(base_name(d.instance or d.body().get("instance_name", "")), []).append(d)
        todo = []
        for base, group in groups.items():
            if all(d.id in done for d in group):
                continue
            latest = group[-1]
            todo.append({"route": latest.route, "body": latest.body(), "raw": latest.request_body,
                         "source": "recorder", "deploy_id": latest.id, "base": base,
                         "ids": [d.id for d in group], "at": group[0].at})
        if todo and wait:
            inc.deploy = {k: todo[0][k] for k in ("route", "body", "raw", "source", "deploy_id")}
            self.store.incidents.save(inc)
            self.store.incidents.audit(inc.id, "decision", "deploy requests found" if len(todo) > 1
                                       else "deploy request found",
                                       self.redactor.data({"source": "recorder", "route": todo[0]["route"],
                                                           "instances": [t["base"] for t in todo],
                                                           "body": todo[0]["body"]}))
        return todo

    def intent(self, inc: Incident) -> dict | None:
        """The one request the event carried, a log or the bots folder gave (or the recorder's
        latest record): the evidence when there is no list of recorded failures."""
        found = intents.resolve(self.store, self.bots_dir, deploy=inc.deploy, captures=inc.captures,
                                at=inc.created, wait=3.0 if self.recorder else 0.0, stack=self.stack,
                                pause=self._pause)
        if found is not None:
            inc.deploy = {k: found[k] for k in ("route", "body", "raw", "source", "deploy_id") if k in found}
            self.store.incidents.save(inc)
            shown = {"source": found.get("source"), "route": found.get("route"), "body": found.get("body")}
            self.store.incidents.audit(inc.id, "decision", "deploy request found", self.redactor.data(shown))
        return found

    def _one(self, found: dict, inc: Incident) -> dict:
        body = found["body"]
        deploy_id = found.get("deploy_id") or 0
        return {**found, "base": base_name(str(body.get("instance_name", ""))),
                "ids": [deploy_id], "at": inc.created}

    def owned(self, inc: Incident, done_only: bool = False) -> bool:
        """Has this incident retried deploys already (so none left is not "unknown")?"""
        return any(not done_only or r["state"] == "done" for r in self.store.incidents.deploys(inc.id))

    def verify_done(self, inc: Incident, ctx: ActionContext) -> str:
        """Every deploy was re-sent (and its bot lived its settle time) before the agent stopped
        or was killed, but the incident was not closed: no deploy is sent again; each of their
        bots must still run. What was found, or ActionError."""
        rows = [r for r in self.store.incidents.deploys(inc.id) if r["state"] == "done"]
        found, gone = [], []
        for base in dict.fromkeys(r["base"] for r in rows):
            name = already_deployed(ctx, base, inc.created - 300)
            (found if name else gone).append(name or base)
        if gone:
            raise ActionError(f"re-sent before the agent's restart, but no bot of {', '.join(gone)} runs now")
        return f"re-sent before the agent's restart (not sent again); running: {', '.join(found)}"

    def _pause(self, seconds: float) -> None:
        if self.stopping.wait(seconds):
            raise Stopped("the agent is stopping")

    def new_failure(self, closed: Incident) -> str | None:
        """A deploy of the closed incident's profile (or instance) that failed, or is still
        waiting for its answer, since it closed, and that no incident retried: a new failure,
        which the cooldown must not hide. Its instance name, if there is one."""
        since = (closed.closed or closed.updated) - 2
        mine = {r["deploy_id"] for r in self.store.incidents.deploys(closed.id)}
        found = [d for d in self._recorded(closed, since)
                 if (d.retryable or d.state == PENDING) and d.id not in mine]
        done = self.store.incidents.deploys_done([d.id for d in found])
        fresh = [d for d in found if d.id not in done]
        return (fresh[0].instance or f"record {fresh[0].id}") if fresh else None

    def _recorded(self, inc: Incident, since: float) -> list[Deploy]:
        instance = inc.captures.get("instance")
        names = tuple({instance, base_name(instance)}) if instance else ()
        return self.store.deploys.of(profile=inc.captures.get("profile"), instances=names, since=since,
                                     stack=self.stack)

    # -- sending ----------------------------------------------------------------------------------
    def send_all(self, inc: Incident, ctx: ActionContext, todo: list[dict]) -> None:
        """Re-send each, side by side (each bot then has to live its settle time); deploys that
        fail meanwhile (sent before the fix took) are taken too."""
        failures: list[str] = []
        outage: BaseException | None = None
        human = False  # one of them needs a person (another attempt would not help it)
        tried: set[str] = set()
        for _round in range(ROUNDS):
            tried.update(t["base"] for t in todo)
            errors = side_by_side(f"retry-{inc.id[:8]}", lambda t: self.send(inc, ctx, t), todo,
                                  stopping=self.stopping)
            for exc in errors:
                if isinstance(exc, StateUnwritable | Stopped):
                    raise exc  # the incident is saved where it stands by the caller
            for intent, exc in zip(todo, errors, strict=True):
                if exc is not None and outage_of(exc) is not None:
                    outage = exc
                elif exc is not None:
                    human = human or isinstance(exc, NeedsHuman)
                    failures.append(f"{intent['base']}: {exc}" if len(todo) > 1 else str(exc))
            if outage is not None:
                raise outage
            todo = [t for t in self.todo(inc, wait=False) if t["base"] not in tried]
            if not todo:
                break
        if failures:
            raise (NeedsHuman if human else ActionError)("; ".join(failures))

    def send(self, inc: Incident, ctx: ActionContext, intent: dict) -> str:
        """One failed deploy, through the `retry_deploy` action; its outcome written for each
        recorded failure it answers."""
        started = time.monotonic()
        body, base, ids = intent["body"], intent.get("base") or base_name(intent["body"]["instance_name"]), \
            intent.get("ids") or [0]
        since = intent.get("at") or inc.created
        params = {"route": intent["route"], "body": ctx.redactor.data(body), "source": intent.get("source")}
        spec = registry()[RETRY_DEPLOY]
        try:
            try:
                typed = spec.params.model_validate({"route": intent["route"], "body": body, "since": since,
                                                    "raw": intent.get("raw") or json.dumps(body)})
            except ValidationError as exc:
                raise ActionError(f"will not re-send this deploy: {exc.errors()[0]['msg']}") from None
            with self.names.of(base):  # whichever incident it is, one deploy of a name at a time
                self._wait_for_earlier_sends(inc, ctx, base, since)
                self._claim(inc, base, ids)
                result = spec.func(typed, ctx)
        except (StateUnwritable, Stopped):
            raise  # not an outcome: a deploy written ahead as sending stays so (never sent twice)
        except Exception as exc:
            reason = ctx.redactor.text(str(exc))
            for deploy_id in ids:
                self.store.incidents.mark_deploy(inc.id, deploy_id, base, "failed", reason)
            self.store.incidents.audit(inc.id, "retry", RETRY_DEPLOY, params, False, reason,
                                       (time.monotonic() - started) * 1000)
            raise
        for deploy_id in ids:
            self.store.incidents.mark_deploy(inc.id, deploy_id, base, "done", result)
        self.store.incidents.audit(inc.id, "retry", RETRY_DEPLOY, params, True, result,
                                   (time.monotonic() - started) * 1000)
        return result

    def _wait_for_earlier_sends(self, inc: Incident, ctx: ActionContext, base: str, since: float) -> None:
        """This incident sent it before and was cut off (a kill) before it knew the answer: give
        the bot time to show up before sending again."""
        sent = [r["sent_at"] or 0.0 for r in self.store.incidents.deploys(inc.id)
                if r["base"] == base and r["state"] == "sending"]
        if not sent:
            return
        until = max(sent) + OWN_SEND_WAIT
        while time.time() < until:
            if already_deployed(ctx, base, since):
                return  # retry_deploy sees it too and does not send again
            self._pause(0.5)

    def _claim(self, inc: Incident, base: str, ids: list[int]) -> None:
        """Write the re-send ahead (a kill while it is out never sends a second one), once no
        client's own deploy of this name is on its way through the recorder: the recorder holds
        new ones meanwhile (see agent.state.sends). A client's deploy that deployed the bot is
        seen by `retry_deploy`, which then sends nothing."""
        deadline = time.monotonic() + CLIENT_WAIT
        while True:
            self._pause(0)  # stopping now: not sent (nothing written ahead to wait for at the next start)
            flying = self.store.sends.agent_send(inc.id, ids, base, stack=self.stack, exclude=set(ids))
            if not flying:
                return
            if time.monotonic() >= deadline:
                raise ActionError(f"a deploy of {base} from a client is still waiting for hummingbot-api's"
                                  " answer: not sending a second one now")
            self._pause(0.2)

    # -- `hb-medic retry-deploy` -----------------------------------------------------------------------
    def by_hand(self, inc: Incident, route: str | None, body: dict | None) -> str:
        """Send a waiting incident's deploy for the operator, through the same checks; the caller
        closes the incident with the result. The failed request comes from the evidence, or
        from `body` (checked like any other)."""
        if inc.state != IncidentState.WAITING:
            raise ActionError(f"incident {inc.id} is {inc.state}: retry-deploy finishes only"
                              " waiting incidents")
        if body is None:
            found = self.intent(inc)
            if found is None:
                raise ActionError("the failed request is still unknown: give it with --body '<json>'")
            route, body, raw = found["route"], found["body"], found.get("raw") or json.dumps(found["body"])
        else:
            route = route or (inc.deploy or {}).get("route") or "deploy-v2-script"
            raw = json.dumps(body)
            problem = check_body(route, body, self.context().allowed_images)
            if problem:
                raise ActionError(f"will not send this body: {problem}")
            inc.deploy = {"route": route, "body": body, "raw": raw, "source": "operator"}
        if not self.store.incidents.claim(inc.id, (IncidentState.WAITING,), IncidentState.RETRYING):
            raise ActionError(f"incident {inc.id} is no longer waiting (the agent or another command has it)")
        ctx = self.context()
        self.store.incidents.audit(inc.id, "decision", "retry-deploy by hand", {"route": route})
        try:
            return self.send(inc, ctx, {"route": route, "body": body, "raw": raw, "source": "operator",
                                        "ids": [0], "at": inc.created,
                                        "base": base_name(str(body.get("instance_name", "")))})
        except Exception:
            self.store.incidents.claim(inc.id, (IncidentState.RETRYING,), IncidentState.WAITING)
            raise
