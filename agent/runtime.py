"""One stack at run time: its engine's sources, its own pipeline thread, its own remedy
worker, its recorder and deploy feed, and a watch on its hummingbot-api's login.

A stack shares with the others only what `Shared` holds, none of which can block. So an
engine or hummingbot-api that is unreachable, slow or hostile holds only its own stack: a
flood of lines fills only its own bounded queue, a slow fix waits only in its own worker,
an unreachable engine is retried with backoff in its own thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from agent.actions.base import ActionContext
from agent.component import Component, Loop, OneLoop, by
from agent.events import EXIT, Event
from agent.hummingbot_api import HummingbotAPI
from agent.ingest.assemble import Assembler
from agent.ingest.bots import BotSelection
from agent.ingest.deploys import DeployFeed
from agent.ingest.exposure import ExposureProbe
from agent.ingest.follow import MAX_STREAMS, Ingest
from agent.ingest.pipeline import Pipeline
from agent.match.matcher import Matcher, Result
from agent.names import DEFAULT_STACK, parse_addr
from agent.redact import shown_url
from agent.remedy.engine import Remedy
from agent.remedy.fate import Fate
from agent.shared import Shared
from agent.stackconf import StackConfig, engine_client
from agent.state import State

if TYPE_CHECKING:
    from agent.recorder.preflight import Preflight
    from agent.recorder.proxy import RecorderServer

log = logging.getLogger("agent")
MAX_QUEUED = 64  # batches of lines a stack's pipeline holds before its sources wait
API_RECHECK = 30.0  # seconds between looks at a hummingbot-api that refused or did not answer


class RecorderError(Exception):
    """The recorder could not listen where it was told to."""


def start_recorder(stack: StackConfig, store: State, on_record=None,
                   preflight: Preflight | None = None) -> RecorderServer:
    """The stack's recorder in its own thread, listening before this returns. `preflight`: the
    checks (and fixes) a deploy passes before it is forwarded."""
    from agent.recorder.proxy import Recorder, RecorderServer  # aiohttp, only where a recorder runs

    assert stack.recorder_addr
    host, port = parse_addr(stack.recorder_addr)
    password = stack.hummingbot_password
    login = (stack.hummingbot_username, password.get_secret_value()) if password is not None else None
    server = RecorderServer(Recorder(stack.hummingbot_url, store, on_record=on_record, login=login,
                                     stack=stack.name, preflight=preflight), host, port)
    server.start()
    server.ready.wait(10)
    if server.error is not None or not server.ready.is_set():
        who = "" if stack.name == DEFAULT_STACK else f" of stack {stack.name}"
        raise RecorderError(f"recorder{who} cannot listen on {stack.recorder_addr}: {server.error}")
    return server


class ApiWatch(OneLoop):
    """Does the stack's hummingbot-api answer and accept the agent's login? Looked at once at
    start, then again every API_RECHECK seconds only while it does not, or after a fix met a
    refusal or no answer: a healthy hummingbot-api's log gets no polling lines. Each change is
    logged once (an error for a refused login: only a person can fix it)."""

    def __init__(self, stack: StackConfig, where: str) -> None:
        self.stack = stack
        self.name = f"api-watch-{stack.name}"
        self.where = where  # "stack eu-1: " or ""
        self.problem: str | None = None  # None: fine (or not looked at yet)
        self.refused = False  # the problem is a refused login (only a person can fix that)
        self.looked = False
        self.loop = Loop(self.name, self._run)

    def stop(self, deadline: float | None = None) -> None:
        self.loop.stop(time.monotonic())  # a look in progress is not waited for: it is a daemon

    def health(self) -> list[str]:
        """Not answering is hummingbot-api's own trouble, which rules watch; a refused login is
        the agent's."""
        return [self.problem] if self.refused and self.problem else []

    def metrics(self) -> Iterator[Metric]:
        api = GaugeMetricFamily("hb_medic_api_up", "1 while the stack's hummingbot-api answers and accepts"
                                " the login (as last looked at)", labels=["stack"])
        api.add_metric([self.stack.name], 0.0 if self.problem is not None else 1.0)
        yield api

    def observed(self, status: int | None) -> None:
        """A fix's request met this status (None: no answer): look again if it was a refusal."""
        if status is None or status == 401:
            self.loop.wake()

    def _run(self) -> None:
        while not self.loop.stopping.is_set():
            self._look()
            if self.loop.wait(None if self.problem is None else API_RECHECK):
                return

    def _look(self) -> None:
        s = self.stack
        target = s.hummingbot_url.rstrip("/")
        url = shown_url(target)  # as told in /healthz and the log
        password = s.hummingbot_password.get_secret_value() if s.hummingbot_password else ""
        try:
            resp = httpx.get(target + "/accounts/", auth=(s.hummingbot_username, password), timeout=10)
            status: int | None = resp.status_code
        except httpx.HTTPError as exc:
            status, problem = None, f"hummingbot-api at {url} does not answer ({type(exc).__name__}: {exc})"
        if status == 401:
            problem = (f"hummingbot-api at {url} refused the login of user {s.hummingbot_username} (401):"
                       " fixes of this stack cannot run; give the agent its USERNAME and PASSWORD"
                       + (" (hummingbot_username, hummingbot_password_file)" if self.where else
                          " (MEDIC_HUMMINGBOT_USERNAME, the secret file medic_hummingbot_password)"))
        elif status is not None and status >= 400:
            problem = f"hummingbot-api at {url} answered /accounts/ with HTTP {status}"
        elif status is not None:
            problem = None
        before, self.problem, self.looked = self.problem, problem, True
        self.refused = status in (401, 403)
        if problem is not None and problem != before:
            log.log(logging.ERROR if status == 401 else logging.WARNING, "%s%s", self.where, problem)
        elif problem is None and before is not None:
            log.warning("%shummingbot-api at %s answers and accepts the login again", self.where, url)


class StackRuntime(Component):
    """A stack's components, wired: sources → pipeline → match → fate → remedy."""

    def __init__(self, shared: Shared, stack: StackConfig, *, listen: bool) -> None:
        s = shared.settings
        self.shared = shared
        self.config = stack
        self.name = stack.name
        self.where = f"stack {stack.name}: " if shared.show_stack else ""
        store = shared.store
        self.counts: dict[str, dict[str, int]] = {"events": {}, "matches": {}}
        self.fate = Fate(lambda: shared.rules().rules, self._submit, store=store, exit_wait=s.bot_exit_wait)
        self.pipeline = Pipeline(self.handle, store=store, assembler=Assembler(grace=s.grace_ms / 1000),
                                 tick=self.fate.tick, stack=stack.name, max_queued=MAX_QUEUED)
        self.bots = BotSelection.parse(stack.bots)
        checkpoints = store.checkpoints(stack.name)
        self.ingest = Ingest(stack.containers, self.pipeline, checkpoints=checkpoints,
                             client_factory=lambda: engine_client(stack, max_pool_size=MAX_STREAMS),
                             catchup_window=s.catchup_window, max_line=s.max_line_bytes, bots=self.bots,
                             bots_dir=stack.bots_dir, stack=stack.name, address=stack.engine(),
                             background=shared.show_stack)
        self.matcher = Matcher(shared.rules().rules, labels=self.ingest.labels, gateway=self.has_gateway)
        self.feed = DeployFeed(store, self.pipeline, checkpoints=checkpoints, catchup_window=s.catchup_window,
                               stack=stack.name)
        self.api_watch = ApiWatch(stack, self.where)
        api_name = next((c for c in stack.containers if c.endswith("hummingbot-api")), "hummingbot-api")
        password = stack.hummingbot_password.get_secret_value() if stack.hummingbot_password else ""
        self.exposure = ExposureProbe(self.pipeline, url=stack.hummingbot_url,
                                      username=stack.hummingbot_username, password=password,
                                      container=api_name, stack=stack.name) if s.probe_defaults else None
        self._context: ActionContext | None = None
        self.remedy = Remedy(store, shared.rules_by_id, self.context, notify=shared.notify, mode=s.mode,
                             budget=s.action_budget, stale_after=s.stale_after,
                             approval_ttl=s.approval_ttl, bots_dir=stack.bots_dir,
                             recorder=bool(stack.recorder_addr), redactor=shared.redactor, stack=stack.name)
        self.recorder: RecorderServer | None = None
        if stack.recorder_addr and listen:
            self.recorder = start_recorder(stack, store, self.feed.notify, self.preflight())

    def preflight(self, checks: tuple | None = None) -> Preflight:
        """The recorder's preflight: this stack's checks, their fixes through its remedy."""
        from agent.preflight.checks import Context
        from agent.recorder.preflight import OBSERVE_MODE, WARN_MODE, Preflight

        s, c = self.shared.settings, self.config

        def context() -> Context:
            ctx = self.context()
            return Context(bots_dir=c.bots_dir, engine=ctx.docker, api=ctx.api, api_container=c.containers[0],
                           allowed_images=ctx.allowed_images, credentials_dir=c.credentials_dir)

        return Preflight(s.preflight_mode(), s.preflight_deadline, context, prevent=self.remedy.prevent,
                         container=c.containers[0], checks=checks,
                         warn_why=OBSERVE_MODE if str(s.mode) == "observe" else WARN_MODE,
                         ask=str(s.mode) == "ask")

    # -- what actions work with --------------------------------------------------------------
    def context(self) -> ActionContext:
        """Made once, on first use (in the stack's remedy worker): this stack's engine and API."""
        if self._context is None:
            c, s = self.config, self.shared.settings
            password = c.hummingbot_password.get_secret_value() if c.hummingbot_password else ""
            self._context = ActionContext(
                docker=engine_client(c),
                api=HummingbotAPI(c.hummingbot_url, c.hummingbot_username, password,
                                  observe=self.api_watch.observed),
                credentials_dir=c.credentials_dir, redactor=self.shared.redactor, bots_dir=c.bots_dir,
                watch=self.fate, settle=s.bot_settle, allowed_images=tuple(s.allowed_images))
        return self._context

    def has_gateway(self) -> bool | None:
        """Whether this stack has a gateway: its `gateway` setting, else a gateway container on
        its engine (None until the engine's containers were listed)."""
        if self.config.gateway != "auto":
            return self.config.gateway == "present"
        return self.ingest.has_gateway()

    # -- events ---------------------------------------------------------------------------------
    def handle(self, event: Event) -> None:
        """One event of this stack's pipeline: match it, then on to the remedy (or counted)."""
        events = self.counts["events"]
        events[event.kind] = events.get(event.kind, 0) + 1
        res = self.matcher.match(event)
        if event.kind == EXIT:  # a bot's end: with what it said before, if a rule knew it
            self.fate.exited(event, res)
        elif res is not None:
            self.fate.matched(res)
        elif self.matcher.reads(event) and not self.fate.explains(event):
            self.shared.observe_unknown(event, self.remedy.owns_deploy)

    def _submit(self, res: Result) -> None:
        matches = self.counts["matches"]
        matches[res.rule.id] = matches.get(res.rule.id, 0) + 1
        report_match(res, self.where)
        self.remedy.submit(res)

    def rules_changed(self, rules: list) -> None:
        self.matcher = Matcher(rules, labels=self.ingest.labels, gateway=self.has_gateway)

    # -- the component --------------------------------------------------------------------------
    def start(self) -> None:
        self.remedy.start()
        self.pipeline.start()
        self.ingest.start()
        self.feed.start()
        self.api_watch.start()
        if self.exposure is not None:
            self.exposure.start()

    def stop(self, deadline: float | None = None) -> None:
        """Its sources, recorder and pipeline, within the common deadline (monotonic): the
        sources first, so the pipeline drains what they handed on."""
        deadline = by(deadline)
        soon = lambda most: min(deadline, time.monotonic() + most)  # noqa: E731
        self.api_watch.stop(deadline)
        if self.exposure is not None:
            self.exposure.stop(soon(0.5))
        if self.recorder is not None:
            self.recorder.stop(soon(1.0))
        self.feed.stop(deadline)
        self.ingest.stop(soon(0.5))
        self.pipeline.stop(soon(1.0))

    def threads(self) -> dict[str, threading.Thread | None]:
        """Its long-running threads that should be alive (for /healthz); the engine's event
        thread only once the engine was reached."""
        out: dict[str, threading.Thread | None] = {}
        for part in (self.pipeline, self.remedy, self.feed, self.ingest):
            out.update(part.threads())
        return out

    def health(self) -> list[str]:
        """Its problems, unprefixed."""
        return [p for part in (self.ingest, self.pipeline, self.api_watch) for p in part.health()]

    def detail(self) -> dict:
        """What /healthz shows of it."""
        problems = self.health()
        engine = "ok" if self.ingest.engine.down_since is None else "unreachable"
        out = {"ok": not problems, "engine": engine,
               "api": "ok" if self.api_watch.problem is None else self.api_watch.problem,
               "streams": {name: st.state for name, st in self.ingest.status().items()},
               "problems": problems}
        if self.recorder is not None:  # the generation its preflight takes hummingbot-api for
            out["generation"] = self.recorder.generation()
        return out

    def metrics(self) -> Iterator[Metric]:
        events = CounterMetricFamily("hb_medic_events", "Events assembled", labels=["stack", "kind"])
        matches = CounterMetricFamily("hb_medic_matches", "Events matched, per rule",
                                      labels=["stack", "rule"])
        for kind, n in sorted(self.counts["events"].items()):
            events.add_metric([self.name, kind], n)
        for rule, n in sorted(self.counts["matches"].items()):
            matches.add_metric([self.name, rule], n)
        yield from self.ingest.metrics()
        yield from self.pipeline.metrics()
        yield from self.api_watch.metrics()
        yield from (events, matches)
        yield from self.remedy.metrics()
        if self.recorder is not None:
            yield from self.recorder.metrics()

    def summary(self) -> list[str]:
        c = self.config
        bots = ("off" if self.bots is None else "all" if self.bots.patterns is None
                else ", ".join(self.bots.patterns))
        files = f", their logs in {c.bots_dir}/instances" if c.bots_dir and self.bots else \
            " (their log files: set MEDIC_BOTS_DIR)" if self.bots and not self.where else ""
        lines = [f"{self.where}following: {', '.join(c.containers)}; bots hummingbot-api deploys:"
                 f" {bots}{files}",
                 f"{self.where}hummingbot-api: {shown_url(c.hummingbot_url)} as {c.hummingbot_username}"]
        if self.where:
            lines.insert(0, f"{self.where}Docker engine {c.engine()}"
                            + (" (TLS, server verified)" if getattr(c.tls, "verify", False) else
                               " (TLS, server NOT verified)" if c.tls not in (None, "off") else ""))
        if self.recorder is not None:
            lines.append(f"{self.where}deploy recorder: {c.recorder_addr} -> {shown_url(c.hummingbot_url)}")
        return lines


def report_match(res: Result, where: str = "") -> None:
    """Every event a rule matched is one line in the agent's log: captures, refusal, plan."""
    r = res.rule
    caps = " ".join(f"{k}={v!r}" for k, v in res.captures.items())
    if res.refused:
        state = f"REFUSED ({res.refused})"
    elif res.below_threshold:
        state = "below threshold"
    else:
        state = "would run: " + (", ".join(res.actions) or "notify only")
    log.log(logging.WARNING if res.refused else logging.INFO, "%srule %s matched in %s: %s %s [%s]", where,
            r.id, res.event.container, caps, state, res.event.fingerprint)
