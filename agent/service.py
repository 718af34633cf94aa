"""The running agent: ingest, assemble, match, remedy and notify in one process,
with the recorder and the health server beside them; it stops cleanly.

Besides acting, it logs what it sees: every event a rule matches (captures,
refusal, planned actions) is one line in the agent's log; every traceback or
ERROR/CRITICAL record no rule knows is counted by fingerprint (agent.unknown),
logged the first time and then at most once an hour.
"""

from __future__ import annotations

import logging

import docker

from agent import __version__
from agent.actions.base import ActionContext
from agent.assemble import Assembler
from agent.events import EXIT, Event
from agent.http import HealthServer
from agent.hummingbot_api import HummingbotAPI
from agent.ingest.bots import BotSelection
from agent.ingest.follow import Ingest
from agent.match.library import Library, load_library
from agent.match.matcher import Matcher, Result
from agent.match.reload import RulesWatcher
from agent.notify.notifier import Notifier
from agent.notify.targets import Target, parse_config, parse_urls
from agent.notify.unknown import burst_message, digest_message
from agent.pipeline import Pipeline
from agent.recorder.feed import DeployFeed
from agent.recorder.proxy import Recorder, RecorderThread, parse_addr
from agent.redact import Redactor
from agent.remedy.engine import Remedy
from agent.remedy.fate import Fate
from agent.settings import Settings
from agent.store import Store, Unknown
from agent.unknown.digest import DigestSchedule
from agent.unknown.tracker import UnknownTracker

log = logging.getLogger("agent")


class SettingsError(Exception):
    """A setting the running agent needs is missing."""


class RulesError(Exception):
    """The rules folder has errors; the agent does not start with it."""


def report_match(res: Result) -> None:
    r = res.rule
    caps = " ".join(f"{k}={v!r}" for k, v in res.captures.items())
    if res.refused:
        state = f"REFUSED ({res.refused})"
    elif res.below_threshold:
        state = "below threshold"
    else:
        state = "would run: " + (", ".join(res.actions) or "notify only")
    log.log(logging.WARNING if res.refused else logging.INFO, "rule %s matched in %s: %s %s [%s]", r.id,
            res.event.container, caps, state, res.event.fingerprint)


# An incident step's log level: INFO while things go as they should, WARNING where a person
# should look, ERROR where the agent failed.
STEP_LEVELS = {"failed": logging.WARNING, "refused": logging.WARNING, "stale": logging.WARNING,
               "waiting": logging.WARNING, "gave-up": logging.ERROR}


def log_step(inc, step: str, text: str) -> None:
    log.log(STEP_LEVELS.get(step, logging.INFO), "incident %s [%s] %s: %s", inc.id, inc.rule, step, text)


class Service:
    def __init__(self, settings: Settings, *, listen: bool = True) -> None:
        """`listen=False`: no recorder (for one-off commands beside a running agent)."""
        self.settings = settings
        if settings.hummingbot_password is None:
            raise SettingsError("MEDIC_HUMMINGBOT_PASSWORD is not set (environment, or the secret file "
                                "/run/secrets/medic_hummingbot_password)")
        loaded = load_library(settings.rules_dir)
        if loaded.errors:
            raise RulesError("\n".join(str(e) for e in loaded.errors))
        self.rules: Library = loaded
        self.watcher = RulesWatcher(settings.rules_dir, self._swap, labels=self._labels)
        self.matcher = Matcher(loaded.rules, labels=self._labels)
        self.store = Store(settings.state_db)
        self.fate = Fate(lambda: self.rules.rules, self._submit, store=self.store,
                         exit_wait=settings.bot_exit_wait)
        self.pipeline = Pipeline(
            self.handle, store=self.store, assembler=Assembler(grace=settings.grace_ms / 1000),
            tick=self.fate.tick)
        self.bots = BotSelection.parse(settings.bots)
        self.ingest = Ingest(settings.containers, self.pipeline, checkpoints=self.store.checkpoint,
                             catchup_window=settings.catchup_window, max_line=settings.max_line_bytes,
                             bots=self.bots, bots_dir=settings.bots_dir, store=self.store)
        self.feed = DeployFeed(self.store, self.pipeline.event, catchup_window=settings.catchup_window)
        self.redactor = Redactor([settings.hummingbot_password.get_secret_value()],
                                 public=[settings.hummingbot_username])
        self.counts: dict[str, dict[str, int]] = {"events": {}, "matches": {}}
        self.targets = notify_targets(settings, self.redactor)
        self.notifier = Notifier(self.store, self.targets, rules=self._rules, redactor=self.redactor,
                                 mode=settings.mode)
        self._context: ActionContext | None = None
        self.remedy = Remedy(self.store, self._rules, self.context, notify=self._notify,
                             mode=settings.mode, budget=settings.action_budget,
                             stale_after=settings.stale_after, bots_dir=settings.bots_dir,
                             recorder=bool(settings.recorder_addr), redactor=self.redactor)
        self.unknown = UnknownTracker(
            self.store, self.redactor, burst_count=settings.unknown_burst_count,
            burst_window=settings.unknown_burst_minutes * 60, on_burst=self._unknown_burst,
            on_digest=self._unknown_digest,
            digest=DigestSchedule.parse(settings.unknown_digest_time) if settings.unknown_digest else None)
        self.recorder: RecorderThread | None = None
        self.http: HealthServer | None = None
        if listen:
            host, port = parse_addr(settings.http_addr)
            self.http = HealthServer(self, host, port)  # binds now: a taken port stops the start
        if settings.recorder_addr and listen:
            self.recorder = start_recorder(settings, self.store, self.feed.notify)

    def _rules(self) -> dict:
        return {r.id: r for r in self.rules.rules}

    def _notify(self, inc, step: str, text: str) -> None:
        log_step(inc, step, self.redactor.text(text))
        self.notifier.step(inc, step, text)

    def _unknown_burst(self, entry: Unknown, count: int, window: float) -> None:
        self.notifier.enqueue(burst_message(entry, count, window, self.redactor), storm_control=False)

    def _unknown_digest(self, entries: list[Unknown], since: float, now: float) -> None:
        self.notifier.enqueue(digest_message(entries, since, now, self.redactor), storm_control=False)

    def context(self) -> ActionContext:
        """What actions work with, made once, on first use (in the remedy worker)."""
        if self._context is None:
            s = self.settings
            self._context = ActionContext(
                docker=docker.from_env(),
                api=HummingbotAPI(s.hummingbot_url, s.hummingbot_username,
                                  s.hummingbot_password.get_secret_value()),
                credentials_dir=s.credentials_dir, redactor=self.redactor, bots_dir=s.bots_dir,
                watch=self.fate, settle=s.bot_settle, allowed_images=tuple(s.allowed_images))
        return self._context

    def _labels(self, container: str) -> dict[str, str]:
        return self.ingest.labels(container)

    def _swap(self, matcher: Matcher, loaded: Library) -> None:
        self.matcher, self.rules = matcher, loaded

    def handle(self, event: Event) -> None:
        """One event from the pipeline: match it, then report (remedy comes here)."""
        events = self.counts["events"]
        events[event.kind] = events.get(event.kind, 0) + 1
        res = self.matcher.match(event)
        if event.kind == EXIT:  # a bot's end: with what it said before, if a rule knew it
            self.fate.exited(event, res)
        elif res is not None:
            self.fate.matched(res)
        else:
            self.unknown.observe(event)

    def _submit(self, res: Result) -> None:
        """A match, ready for the remedy (a bot's failure together with how it ended)."""
        matches = self.counts["matches"]
        matches[res.rule.id] = matches.get(res.rule.id, 0) + 1
        report_match(res)
        self.remedy.submit(res)

    def start(self) -> None:
        if self.http is not None:
            self.http.start()
        self.notifier.start()
        self.remedy.start()
        self.unknown.start()
        self.pipeline.start()
        self.ingest.start()
        self.feed.start()
        self.watcher.start()
        for line in self.summary():
            log.info("%s", line)

    def threads_alive(self) -> dict[str, bool]:
        """The agent's long-running threads, for /healthz."""
        threads = {"pipeline": self.pipeline._thread, "remedy": self.remedy._thread,
                   "notify": self.notifier._thread, "deploy-feed": self.feed,
                   "unknown": self.unknown._thread,
                   "docker-events": self.ingest._watcher}
        return {name: t.is_alive() for name, t in threads.items()}

    def summary(self) -> list[str]:
        """The start-up summary: what is followed, with which rules, told to whom, in which mode."""
        s = self.settings
        bots = ("off" if self.bots is None else "all" if self.bots.patterns is None
                else ", ".join(self.bots.patterns))
        files = f", their logs in {s.bots_dir}/instances" if s.bots_dir and self.bots else \
            " (their log files: set MEDIC_BOTS_DIR)" if self.bots else ""
        lines = [f"hb-medic {__version__} in {s.mode} mode",
                 f"following: {', '.join(s.containers)}; bots hummingbot-api deploys: {bots}{files}",
                 f"rules: {self.rules.describe()}",
                 "notify: " + (", ".join(t.private for t in self.targets)
                               or "nobody (MEDIC_NOTIFY_URLS unset)"),
                 f"hummingbot-api: {s.hummingbot_url} as {s.hummingbot_username}",
                 f"state: {s.state_db}"]
        lines.append("errors no rule knows: counted (hb-medic unknown); digest "
                     + (f"daily at {s.unknown_digest_time}" if s.unknown_digest else "off")
                     + f"; a new one repeating more than {s.unknown_burst_count} times within"
                       f" {s.unknown_burst_minutes:g} min is told at once")
        if self.http is not None:
            lines.append(f"health and metrics: http://{s.http_addr}/healthz, /metrics")
        if self.recorder is not None:
            lines.append(f"deploy recorder: {s.recorder_addr} -> {s.hummingbot_url}")
        return lines

    def stop(self) -> None:
        """Detach from the engine, finish what is assembled, save the checkpoints."""
        self.watcher.stop()
        if self.http is not None:
            self.http.stop()
        if self.recorder is not None:
            self.recorder.stop(timeout=1.0)
        self.feed.stop()
        self.ingest.stop(timeout=0.5)
        self.pipeline.stop(timeout=1.0)
        self.unknown.stop(timeout=0.5)  # after the pipeline: its last counts are written
        # An action in progress is not waited for: its incident is tried again at the next
        # start (the attempt is counted), so a stop stays within Docker's patience.
        self.remedy.stop(timeout=0.3)
        self.notifier.stop(timeout=0.3)
        self.store.close()
        log.info("hb-medic stopped")


class RecorderError(Exception):
    """The recorder could not listen where it was told to."""


def start_recorder(settings: Settings, store: Store, on_record=None) -> RecorderThread:
    """The recorder in its own thread, listening before this returns."""
    assert settings.recorder_addr
    host, port = parse_addr(settings.recorder_addr)
    password = settings.hummingbot_password
    login = (settings.hummingbot_username, password.get_secret_value()) if password is not None else None
    thread = RecorderThread(Recorder(settings.hummingbot_url, store, on_record=on_record, login=login),
                            host, port)
    thread.start()
    thread.ready.wait(10)
    if thread.error is not None or not thread.ready.is_set():
        raise RecorderError(f"recorder cannot listen on {settings.recorder_addr}: {thread.error}")
    return thread


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


def _add_tokens(redactor: Redactor, url: str) -> None:
    for part in url.replace(",", "/").replace("=", "/").replace("@", "/").replace(":", "/") \
            .replace("?", "/").replace("&", "/").split("/"):
        if len(part) >= 12:
            redactor.add(part)
