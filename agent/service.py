"""The running agent: ingest, assemble, match, remedy and notify in one process,
with the recorder and the health server beside them; it stops cleanly.

The service owns what the stacks share (`Shared`), builds one `StackRuntime` a stack, and
knows every part only as a `Component`: it starts them, stops them by one deadline, and
composes their health and metrics for the health server.

Besides acting, it logs what it sees: every event a rule matches (captures,
refusal, planned actions) is one line in the agent's log; every traceback or
ERROR/CRITICAL record no rule knows is counted by fingerprint (agent.unknown),
logged the first time and then at most once an hour.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from itertools import chain
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from agent import __version__
from agent.chat.channels import ChatSetupError
from agent.chat.channels import build as build_chats
from agent.chat.decisions import Decisions
from agent.chat.operator import Operator
from agent.component import left, merged
from agent.http import HealthServer
from agent.ingest.follow import Ingest
from agent.ingest.pipeline import Pipeline
from agent.match.library import Library, load_library
from agent.match.reload import RulesWatcher
from agent.names import DEFAULT_STACK, parse_addr
from agent.notify.notifier import Notifier
from agent.notify.targets import Target, parse_config, parse_urls
from agent.notify.unknown import burst_message, digest_message
from agent.records import Unknown
from agent.redact import Redactor
from agent.remedy.engine import Remedy, log_step
from agent.runtime import RecorderError, StackRuntime
from agent.runtime import start_recorder as _start_recorder
from agent.settings import Settings
from agent.shared import Shared
from agent.state import State
from agent.unknown.digest import DigestSchedule
from agent.unknown.tracker import UnknownTracker

if TYPE_CHECKING:
    from agent.recorder.proxy import RecorderServer

log = logging.getLogger("agent")


class SettingsError(Exception):
    """A setting the running agent needs is missing."""


class RulesError(Exception):
    """The rules folder has errors; the agent does not start with it."""


class Service:
    """The agent: one StackRuntime per stack (its sources, pipeline, remedy worker, recorder),
    and what they share: the state file, the rules, the notifier, the count of errors no rule
    knows, the health server."""

    def __init__(self, settings: Settings, *, listen: bool = True, operator: Operator | None = None) -> None:
        """`listen=False`: no recorder, no health server and no chat listener (one-off commands
        beside a running agent). `operator`: who answers the chat's presses and commands (by
        default the agent's own decisions, agent.chat.decisions)."""
        self.settings = settings
        stacks = settings.stack_list()
        missing = [c.name for c in stacks if c.hummingbot_password is None]
        if missing == [DEFAULT_STACK] and len(stacks) == 1:
            raise SettingsError("MEDIC_HUMMINGBOT_PASSWORD is not set (environment, or the secret file "
                                "/run/secrets/medic_hummingbot_password)")
        if missing:
            raise SettingsError(f"stack {missing[0]}: hummingbot-api's password is not set"
                                " (hummingbot_password_file in the config file"
                                + (", or MEDIC_HUMMINGBOT_PASSWORD)" if missing[0] == DEFAULT_STACK else ")"))
        loaded = load_library(settings.rules_dir)
        if loaded.errors:
            raise RulesError("\n".join(str(e) for e in loaded.errors))
        self.rules: Library = loaded
        self.watcher = RulesWatcher(settings.rules_dir, self._swap)
        self.store = State(settings.state_db)
        self.show_stack = len(stacks) > 1 or stacks[0].name != DEFAULT_STACK
        self.redactor = Redactor([x for c in stacks for x in c.secrets()],
                                 public=[c.hummingbot_username for c in stacks])
        self.targets = notify_targets(settings, self.redactor)
        # What a chat's buttons and commands do (agent.chat); the transports are given it.
        self.operator: Operator = operator or Decisions(
            self.store, self._rules, allowed={"telegram": settings.chat_telegram_users,
                                              "slack": settings.chat_slack_users},
            ttl=settings.approval_ttl, redactor=self.redactor, notify=self._notify, status=self.chat_status,
            wake=self._wake)
        try:
            self.chat = build_chats(settings.chat, self.store, self.targets, self.redactor,
                                    self.operator if listen else None,
                                    telegram_api_url=settings.telegram_api_url, settings=settings)
        except ChatSetupError as exc:
            raise SettingsError(str(exc)) from None
        self.targets += self.chat.targets
        self.notifier = Notifier(self.store, self.targets, rules=self._rules, redactor=self.redactor,
                                 mode=settings.mode, show_stack=self.show_stack, chats=self.chat.chats)
        self.unknown = UnknownTracker(
            self.store, self.redactor, burst_count=settings.unknown_burst_count,
            burst_window=settings.unknown_burst_minutes * 60, on_burst=self._unknown_burst,
            on_digest=self._unknown_digest,
            digest=DigestSchedule.parse(settings.unknown_digest_time) if settings.unknown_digest else None)
        shared = Shared(settings, self.store, lambda: self.rules, self._notify, self.unknown.observe,
                        self.redactor, self.show_stack)
        self.http: HealthServer | None = None
        if listen:
            host, port = parse_addr(settings.http_addr)
            self.http = HealthServer(self.report, self.metrics, host, port)  # a taken port stops the start
        self.stacks: list[StackRuntime] = []
        try:
            for config in stacks:
                self.stacks.append(StackRuntime(shared, config, listen=listen))
        except BaseException:
            for rt in self.stacks:
                if rt.recorder is not None:
                    rt.recorder.stop(time.monotonic() + 1.0)
            if self.http is not None:
                self.http.stop(time.monotonic())
            raise

    # -- the default (or only) stack, as one-stack callers know the agent ------------------------
    @property
    def main(self) -> StackRuntime:
        return next((rt for rt in self.stacks if rt.name == DEFAULT_STACK), self.stacks[0])

    def stack(self, name: str) -> StackRuntime | None:
        return next((rt for rt in self.stacks if rt.name == name), None)

    @property
    def remedy(self) -> Remedy:
        return self.main.remedy

    @property
    def ingest(self) -> Ingest:
        return self.main.ingest

    @property
    def pipeline(self) -> Pipeline:
        return self.main.pipeline

    @property
    def recorder(self) -> RecorderServer | None:
        return self.main.recorder

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        return self.main.counts

    # -- shared ------------------------------------------------------------------------------------
    def _rules(self) -> dict:
        return {r.id: r for r in self.rules.rules}

    def _notify(self, inc, step: str, text: str) -> None:
        log_step(inc, step, self.redactor.text(text), self.show_stack)
        self.notifier.step(inc, step, text)

    def _wake(self, stack: str, incident: str) -> None:
        rt = self.stack(stack)
        if rt is not None:
            rt.remedy.wake(incident)

    def chat_status(self) -> list[str]:
        """The chat's `status`: the mode, and each stack's engine, hummingbot-api and streams."""
        lines = [f"hb-medic {__version__}, {self.settings.mode} mode"]
        for rt in self.stacks:
            d = rt.detail()
            names = sorted(d["streams"])
            shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
            lines.append(f"{rt.name}: engine {d['engine']}, hummingbot-api {d['api']};"
                         f" following {shown or 'nothing'}")
        return [self.redactor.text(line) for line in lines]

    def _unknown_burst(self, entry: Unknown, count: int, window: float) -> None:
        self.notifier.enqueue(burst_message(entry, count, window, self.redactor, self.show_stack),
                              storm_control=False)

    def _unknown_digest(self, entries: list[Unknown], since: float, now: float) -> None:
        self.notifier.enqueue(digest_message(entries, since, now, self.redactor, self.show_stack),
                              storm_control=False)

    def _swap(self, loaded: Library) -> None:
        self.rules = loaded
        for rt in self.stacks:
            rt.rules_changed(loaded.rules)

    def start(self) -> None:
        self.notifier.start()
        for listener in self.chat.listeners:
            listener.start()
        self.unknown.start()
        for rt in self.stacks:
            rt.start()
        self.watcher.start()
        if self.http is not None:  # last: /healthz answers once everything runs
            self.http.start()
        for line in self.summary():
            log.info("%s", line)
        for c in self.settings.stack_list():
            if plain := c.plain_engine():
                log.warning("stack %s: %s", c.name, plain)
            if c.tls == "off":
                log.warning("stack %s: plain tcp:// to %s (tls: off): anyone on that network reaches the"
                            " engine as root; use TLS unless it is a socket proxy on a private network",
                            c.name, c.docker_host)
            elif c.tls is not None and not c.tls.verify:
                log.warning("stack %s: TLS to %s without verifying the engine's certificate (verify:"
                            " false): anyone between can pose as the engine", c.name, c.docker_host)

    # -- health and metrics (what the health server is given) ---------------------------------
    def threads(self) -> dict[str, threading.Thread | None]:
        """The agent's long-running threads, for /healthz (a stack's prefixed by its name where
        the agent has several)."""
        threads: dict[str, threading.Thread | None] = {}
        for part in (self.notifier, self.unknown, self.watcher, *self.chat.listeners):
            threads.update(part.threads())
        for rt in self.stacks:
            threads.update({f"{rt.where}{name}": t for name, t in rt.threads().items()})
        return threads

    def report(self) -> tuple[bool, dict]:
        """/healthz: each stack's problems, then threads that stopped, then the state file's
        and the notifier's."""
        problems: list[str] = []
        streams: dict[str, str] = {}
        stacks = {}
        for rt in self.stacks:
            detail = rt.detail()
            problems += [rt.where + p for p in detail["problems"]]
            streams.update({rt.where.replace("stack ", "").replace(": ", "/") + n: st
                            for n, st in detail["streams"].items()})
            stacks[rt.name] = detail
        problems += [f"{name} thread has stopped" for name, t in self.threads().items()
                     if t is None or not t.is_alive()]
        for part in (self.store.file, self.notifier, self.unknown, self.watcher, *self.chat.listeners):
            problems += part.health()
        recorders = {rt.name: rt.config.recorder_addr for rt in self.stacks if rt.recorder is not None}
        # What a program printed and the URLs of the stacks are in it: shown as the log shows them.
        return not problems, self.redactor.data({
            "ok": not problems, "streams": streams, "problems": problems,
            "recorder": recorders.get(self.main.name), "recorders": recorders, "stacks": stacks})

    def metrics(self) -> list[Metric]:
        """/metrics: every component's families, one family a name."""
        return merged(chain((m for rt in self.stacks for m in rt.metrics()), self._state_metrics(),
                            self.notifier.metrics(), self.unknown.metrics(),
                            (m for listener in self.chat.listeners for m in listener.metrics())))

    def _state_metrics(self) -> Iterator[Metric]:
        """What the state file counts for every stack: actions run, incidents open."""
        actions = CounterMetricFamily("hb_medic_actions", "Actions run, by result",
                                      labels=["stack", "action", "result"])
        for (stack, name, ok), n in sorted(self.store.incidents.action_counts().items()):
            actions.add_metric([stack, name, "ok" if ok else "failed"], n)
        yield actions
        open_ = GaugeMetricFamily("hb_medic_incidents_open", "Incidents not closed",
                                  labels=["stack", "rule"])
        for (stack, rule), n in sorted(self.store.incidents.open_counts().items()):
            open_.add_metric([stack, rule], n)
        yield open_

    def summary(self) -> list[str]:
        """The start-up summary: what is followed, with which rules, told to whom, in which mode."""
        s = self.settings
        lines = [f"hb-medic {__version__} in {s.mode} mode"
                 + (f", {len(self.stacks)} stacks: {', '.join(rt.name for rt in self.stacks)}"
                    if self.show_stack else "")]
        for rt in self.stacks:
            lines += rt.summary()
        lines += [f"rules: {self.rules.describe()}",
                  "notify: " + (", ".join(t.private for t in self.targets)
                                or "nobody (MEDIC_NOTIFY_URLS unset)"),
                  *self.chat.described,
                  f"state: {s.state_db}"]
        lines.append("errors no rule knows: counted (hb-medic unknown); digest "
                     + (f"daily at {s.unknown_digest_time}" if s.unknown_digest else "off")
                     + f"; a new one repeating more than {s.unknown_burst_count} times within"
                       f" {s.unknown_burst_minutes:g} min is told at once")
        if self.http is not None:
            lines.append(f"health and metrics: http://{s.http_addr}/healthz, /metrics")
        return lines

    def stop(self) -> None:
        """Detach from the engines, finish what is assembled, save the checkpoints; every thread
        ends within MEDIC_STOP_TIMEOUT (below Docker's grace, so the agent is never killed)."""
        now = time.monotonic()
        deadline = now + self.settings.stop_timeout
        for rt in self.stacks:  # first: the waits inside running fixes end while the rest stops
            rt.remedy.halt()
        self.watcher.stop(now + 0.2)
        for listener in self.chat.listeners:  # a long poll in progress is cut short
            listener.stop(now + 0.5)
        if self.http is not None:
            self.http.stop(now + 0.5)
        sources = min(deadline, time.monotonic() + 1.5)
        stoppers = [threading.Thread(target=rt.stop, args=(sources,), daemon=True) for rt in self.stacks]
        for t in stoppers:  # side by side: a stack whose engine hangs holds no other's stop
            t.start()
        for t in stoppers:
            t.join(left(min(deadline, sources + 0.5)))
        self.unknown.stop(min(deadline, time.monotonic() + 0.5))  # after the pipelines: their last counts
        # Attempts in progress have ended their waits: each saves where its incident stands and is
        # tried again at the next start. One still inside a request that does not answer is left
        # (a daemon thread): its incident is tried again at the next start too.
        remedies = deadline - 0.5
        for rt in self.stacks:
            rt.remedy.stop(remedies)
        busy = [f"{rt.where}{name}" for rt in self.stacks for name, t in rt.remedy.threads().items()
                if t is not None and t.is_alive()]
        if busy:
            log.warning("stopping with a fix still busy (%s): its incident goes on at the next start",
                        ", ".join(busy))
        self.notifier.stop(min(deadline, time.monotonic() + 0.3))
        self.store.close()
        log.info("hb-medic stopped")


def start_recorder(settings: Settings, store: State, on_record=None,
                   stack: str | None = None) -> RecorderServer:
    """`hb-medic recorder [--stack NAME]`: one stack's recorder alone (the default stack's, or the
    only one)."""
    stacks = settings.stack_list()
    chosen = next((c for c in stacks if c.name == (stack or DEFAULT_STACK)), None)
    if chosen is None and stack is None and len(stacks) == 1:
        chosen = stacks[0]
    if chosen is None:
        raise RecorderError(f"no stack {stack or DEFAULT_STACK} in the config file (stacks: "
                            f"{', '.join(c.name for c in stacks)}): name one with --stack")
    if not chosen.recorder_addr:
        raise RecorderError(f"stack {chosen.name} has no recorder_addr")
    return _start_recorder(chosen, store, on_record)


def notify_targets(settings: Settings, redactor: Redactor) -> list[Target]:
    """Targets from MEDIC_NOTIFY_URLS and MEDIC_NOTIFY_CONFIG; their tokens join the redactor."""
    targets: list[Target] = []
    if settings.notify_urls is not None:
        raw = settings.notify_urls.get_secret_value()
        targets += parse_urls(raw)
        _add_tokens(redactor, raw)
    if settings.notify_config is not None:
        from_file = parse_config(settings.notify_config)
        for t in from_file:
            _add_tokens(redactor, t.plugin.url(privacy=False))
        targets += from_file
    return targets


_HOST_NAME = re.compile(r"(?:[a-z0-9-]+\.)+[a-z]{2,}")  # lower case: tokens mix cases


def url_tokens(url: str) -> list[str]:
    """The parts of a notify URL that may be secret (12 characters or more), but its host names:
    apprise URLs carry their tokens where a host would be (`slack://T1/B2/C3`), and a web hook's
    host (`hooks.slack.com`) masked in every message would only confuse."""
    parts = re.split(r"[/,=@:?&]", url)
    return [p for p in parts if len(p) >= 12 and not _HOST_NAME.fullmatch(p)]


def _add_tokens(redactor: Redactor, url: str) -> None:
    for part in url_tokens(url):
        redactor.add(part)
