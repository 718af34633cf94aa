"""Every event no rule matched that is worth a look (a traceback, an ERROR or CRITICAL
record, a failed deploy the recorder saw) is counted by fingerprint in the state file.

The pipeline thread only counts in memory; a small thread writes the counts and up
to three redacted, size-capped samples (the first, one in between, the latest) to
the store every few seconds, logs each fingerprint the first time and then at most
once an hour with the count since, sends a burst message for a new error that
repeats fast (once a day at most), and sends the daily digest when it is due.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from agent.component import Loop, OneLoop
from agent.events import LINE, RESPONSE, TRACEBACK, Event
from agent.names import DEFAULT_STACK
from agent.records import Unknown
from agent.redact import Redactor
from agent.state import State, StateUnwritable
from agent.unknown.digest import DigestSchedule

log = logging.getLogger("agent")

MAX_ENTRIES = 1000  # fingerprints kept a stack; the least recently seen of the largest source dropped first
SAMPLE_CHARS = 8000  # a sample longer than this keeps its record line and its end
LINE_CHARS = 1000  # a sample's line longer than this is cut
SUMMARY_CHARS = 300
EXPLAIN_WAIT = 5.0  # seconds a failed deploy's answer waits for the log line that tells why
DAY = 86400.0
_WORTH = (" - ERROR - ", " - CRITICAL - ", "ERROR:", "CRITICAL:")

Burst = Callable[[Unknown, int, float], None]  # entry (with its latest sample), count, window seconds
Digest = Callable[[list[Unknown], float, float], None]  # entries, since, now


def worth_a_look(event: Event) -> bool:
    """A traceback, an ERROR or CRITICAL record, or a failed deploy response."""
    if event.kind == TRACEBACK or event.kind == RESPONSE:
        return True
    if event.kind != LINE or not event.lines:
        return False
    first = event.lines[0]
    return any(w in first for w in _WORTH) and event.level in ("ERROR", "CRITICAL")


def summary_of(event: Event) -> str:
    if event.kind == TRACEBACK and event.outermost is not None:
        exc = event.outermost
        text = f"{exc.type}: {exc.message}" if exc.message else exc.type
    else:
        text = event.message
    return text.split("\n", 1)[0][:SUMMARY_CHARS]


def sample_text(event: Event, redactor: Redactor) -> str:
    """The event's lines, redacted; a line past LINE_CHARS is cut, and a sample past
    SAMPLE_CHARS keeps its record line and as much of its end (the outermost traceback,
    from a frame on, and the exception) as fits, so it still reads as the same event."""
    lines = [redactor.text(x if len(x) <= LINE_CHARS else x[:LINE_CHARS] + " …[cut]") for x in event.lines]
    if event.kind == RESPONSE and event.data is not None:
        return redactor.text(_recorded(event))
    if sum(len(x) + 1 for x in lines) <= SAMPLE_CHARS:
        return "\n".join(lines)
    head = lines[:1]
    if event.kind == TRACEBACK and len(lines) > 1 and "Traceback (most recent call last):" not in lines[0]:
        head.append("Traceback (most recent call last):")
    budget = SAMPLE_CHARS - sum(len(x) + 1 for x in head)
    tail: list[str] = []
    for line in reversed(lines[1:]):
        if budget - len(line) - 1 < 0:
            break
        tail.append(line)
        budget -= len(line) + 1
    tail.reverse()
    if event.kind == TRACEBACK:  # start at a frame, so the kept part is a traceback of its own
        while tail and not tail[0].lstrip().startswith('File "'):
            tail.pop(0)
    return "\n".join(head + tail)


def _recorded(event: Event) -> str:
    """A recorded deploy exchange in the golden samples' `RECORDED {json}` form."""
    import json

    d = event.data or {}
    return "RECORDED " + json.dumps({"route": d.get("route"), "status": d.get("status"),
                                     "request": d.get("request") or {}, "message": d.get("message", "")})


def source_of(e: Unknown) -> tuple[str, str]:
    """Where an error no rule knows comes from: its container and stream (a bot's channel)."""
    return e.container, e.stream


def _where(e: Unknown, container: str) -> str:
    """The container, with its stack when it is not the default one."""
    return container if e.stack == DEFAULT_STACK else f"{e.stack}/{container}"


@dataclass
class _Live:
    """What the agent knows of one fingerprint while it runs."""

    entry: Unknown
    known_before: bool  # it was in the state file before this run saw it
    first: Event | None = None  # samples not yet written
    middle: Event | None = None
    latest: Event | None = None
    dirty: bool = False
    logged_at: float | None = None
    since_logged: int = 0
    window: deque = field(default_factory=deque)


class UnknownTracker(OneLoop):
    def __init__(self, store: State, redactor: Redactor, *, burst_count: int = 20,
                 burst_window: float = 600.0, log_every: float = 3600.0, max_entries: int = MAX_ENTRIES,
                 on_burst: Burst | None = None, on_digest: Digest | None = None,
                 digest: DigestSchedule | None = None, tick_every: float = 2.0) -> None:
        self.store = store
        self.redactor = redactor
        self.burst_count, self.burst_window = burst_count, burst_window
        self.log_every = log_every
        self.max_entries = max_entries
        self.on_burst, self.on_digest = on_burst, on_digest
        self.digest = digest
        self.tick_every = tick_every
        self.seen = 0  # events counted (a metric)
        self._live: dict[tuple[str, str], _Live] = {}
        self._deferred: deque[tuple[float, Event, Callable[[Event], bool]]] = deque()
        self._digest_last: float | None = None  # when the last digest went out (from the state file)
        self._lock = threading.Lock()
        self.loop = Loop("unknown", self._run)

    # -- the component -------------------------------------------------------------------------
    name = "unknown"

    def stop(self, deadline: float | None = None) -> None:
        """After the pipelines have stopped: their last counts are written."""
        self.loop.stop(deadline)
        self._release(float("inf"))
        self.flush()

    def metrics(self) -> Iterator[Metric]:
        yield CounterMetricFamily("hb_medic_unknown_events", "Errors no rule knows, counted", value=self.seen)
        yield GaugeMetricFamily("hb_medic_unknown_fingerprints", "Errors no rule knows, by fingerprint,"
                                " in the state file", value=self.store.unknown.count())

    def _run(self) -> None:
        while not self.loop.wait(self.tick_every):
            try:
                self.tick()
            except StateUnwritable:
                pass  # the store said so once; counted again when it can be written
            except Exception:
                log.exception("counting errors no rule knows failed; retrying")

    # -- from the pipeline: cheap --------------------------------------------------------------
    def observe(self, event: Event, explained: Callable[[Event], bool] | None = None) -> bool:
        """Count an event no rule matched; False when it is not worth a look.

        `explained`: for a failed deploy's answer, which comes through the recorder at the same
        moment as hummingbot-api's log line that tells why (in either order): asked a few seconds
        later whether an incident owns that deploy; only an answer nothing explains is counted."""
        if not worth_a_look(event):
            return False
        if event.kind == RESPONSE and explained is not None:
            with self._lock:
                self._deferred.append((time.monotonic() + EXPLAIN_WAIT, event, explained))
            return True
        return self._count(event)

    def _count(self, event: Event) -> bool:
        at = event.ts / 1e9 if event.ts else time.time()
        stack = getattr(event, "stack", None) or "default"
        key = (stack, event.fingerprint)
        burst: tuple[Unknown, int] | None = None
        with self._lock:
            self.seen += 1
            live = self._live.get(key)
            if live is None:
                live = self._load(key, event, at)
            e = live.entry
            e.count += 1
            e.last_seen = max(e.last_seen, at)
            if e.container != event.container:
                e.container = event.container
                e.containers = [event.container, *[c for c in e.containers if c != event.container][:4]]
            if e.count == 1:
                live.first = event
            elif e.count & (e.count - 1) == 0:  # 2, 4, 8...: one sample from in between
                live.middle = event
            live.latest = event
            live.dirty = True
            if live.logged_at is None:
                self._log_first(live, event)
                live.logged_at = at
            else:
                live.since_logged += 1
                if at - live.logged_at >= self.log_every:
                    self._log_again(live, at)
            burst = self._burst(live, at, event)
        if burst is not None and self.on_burst is not None:
            try:
                self.on_burst(burst[0], burst[1], self.burst_window)
            except Exception:
                log.exception("could not send the burst message of %s", key[1])
        return True

    def _load(self, key: tuple[str, str], event: Event, at: float) -> _Live:
        stored = self.store.unknown.get(*key)
        if stored is not None:
            live = _Live(stored, known_before=True)
        else:
            header = event.header
            live = _Live(Unknown(
                stack=key[0], fingerprint=key[1], container=event.container, containers=[event.container],
                stream=event.stream, kind=event.kind, logger=header.logger if header else None,
                level=event.level or ("ERROR" if event.kind == RESPONSE else None),
                exceptions=[x.type for x in event.exceptions],
                summary=self.redactor.text(summary_of(event)), count=0, first_seen=at, last_seen=at,
                role=event.role),
                known_before=False)
        if len(self._live) >= self.max_entries:  # forget one (it is stored): see _evictable
            oldest = self._evictable()
            if self._live[oldest].dirty:
                with contextlib.suppress(StateUnwritable):  # then its last counts are lost
                    self._write([self._live[oldest]])
            del self._live[oldest]
        self._live[key] = live
        return live

    def _evictable(self) -> tuple[str, str]:
        """The least recently seen entry of the source (container and stream) holding the most:
        a source that floods the tracker with new fingerprints pushes out only its own."""
        by_source: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for key, live in self._live.items():
            by_source.setdefault(source_of(live.entry), []).append(key)
        oldest = {src: min(keys, key=lambda k: self._live[k].entry.last_seen)
                  for src, keys in by_source.items()}
        src = max(by_source, key=lambda s: (len(by_source[s]), -self._live[oldest[s]].entry.last_seen))
        return oldest[src]

    def _burst(self, live: _Live, at: float, event: Event) -> tuple[Unknown, int] | None:
        """More than burst_count within burst_window of an error first seen within a day."""
        e = live.entry
        w = live.window
        w.append(at)
        while len(w) > self.burst_count + 1 or (w and w[0] < at - self.burst_window):
            w.popleft()
        if len(w) <= self.burst_count or at - e.first_seen > DAY:
            return None
        if e.burst_at is not None and at - e.burst_at < DAY:
            return None
        e.burst_at = at
        snapshot = Unknown(**{**e.__dict__, "samples": [self._sample(event)],
                              "containers": list(e.containers), "exceptions": list(e.exceptions)})
        return snapshot, len(w)

    # -- the agent's own log: first time, then hourly -------------------------------------------
    def _log_first(self, live: _Live, event: Event) -> None:
        e = live.entry
        if live.known_before:
            known = (f"known: seen {e.count - 1:,} times since "
                     f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(e.first_seen))} UTC")
        else:
            known = "new"
        tail = f"({known}; counted from now on, logged again at most once an hour: hb-medic unknown)"
        if event.kind == TRACEBACK:
            chain = " <- ".join(x.type for x in reversed(event.exceptions))
            log.warning("traceback in %s (%s): %s [%s] %s %s", _where(e, event.container), event.stream,
                        e.summary, chain, e.fingerprint, tail)
        else:
            log.warning("%s in %s (%s): %s %s %s", e.level or event.kind, _where(e, event.container),
                        event.stream, e.summary, e.fingerprint, tail)

    def _log_again(self, live: _Live, now: float) -> None:
        e = live.entry
        span = now - (live.logged_at or now)
        when = ("in the last hour" if span < 2 * self.log_every else
                f"since {time.strftime('%Y-%m-%d %H:%M', time.gmtime(live.logged_at or now))} UTC")
        log.info("%s in %s seen %s more %s %s: %s", e.fingerprint, _where(e, e.container),
                 f"{live.since_logged:,}", "time" if live.since_logged == 1 else "times", when, e.summary)
        live.logged_at, live.since_logged = now, 0

    # -- the thread: write, log hourly, digest ---------------------------------------------------
    def tick(self, now: float | None = None) -> None:
        self._release(time.monotonic())
        now = time.time() if now is None else now
        with self._lock:
            for live in self._live.values():
                due = live.logged_at is not None and now - live.logged_at >= self.log_every
                if live.since_logged and due:
                    self._log_again(live, now)
        self.flush()
        if self.digest is not None and self.on_digest is not None:
            self._maybe_digest(now)

    def _release(self, now: float) -> None:
        """Deferred deploy answers whose wait is over: counted unless an incident owns them."""
        due = []
        with self._lock:
            while self._deferred and self._deferred[0][0] <= now:
                due.append(self._deferred.popleft())
        for _, event, explained in due:
            try:
                known = explained(event)
            except Exception:
                log.exception("could not tell whether an incident owns a failed deploy; counted")
                known = False
            if not known:
                self._count(event)

    def flush(self) -> None:
        """Write what changed: counts, times and new samples (redacted, capped)."""
        with self._lock:
            dirty = [live for live in self._live.values() if live.dirty]
            if not dirty:
                return
            self._write(dirty)

    def _write(self, dirty: list[_Live]) -> None:
        """Write these entries whole; on failure nothing is forgotten (tried again next tick)."""
        entries = []
        for live in dirty:
            e = live.entry
            stored = self.store.unknown.get(e.stack, e.fingerprint) if live.known_before else None
            samples = list(stored.samples if stored is not None else e.samples)
            first = samples[:1] or ([self._sample(live.first)] if live.first else [])
            middle = ([self._sample(live.middle)] if live.middle is not None else samples[1:2])
            latest = [self._sample(live.latest)] if live.latest is not None else samples[2:3]
            chosen: list[dict] = []
            for s in first + middle + latest:
                if all(s["text"] != c["text"] for c in chosen):
                    chosen.append(s)
            entries.append(Unknown(**{**e.__dict__, "samples": chosen[:3]}))
        dropped = self.store.unknown.save(entries, keep=self.max_entries)
        for live in dirty:
            live.first = live.middle = live.latest = None
            live.dirty = False
            live.known_before = True
            live.entry.samples = []  # kept in the state file, not in memory
        if dropped:
            log.info("%d unknown error fingerprints dropped (least recently seen of the container and"
                     " stream with the most; at most %d a stack are kept)",
                     dropped, self.max_entries)

    def _sample(self, event: Event) -> dict:
        at = event.ts / 1e9 if event.ts else time.time()
        return {"at": at, "container": event.container, "stream": event.stream,
                "text": sample_text(event, self.redactor)}

    def _maybe_digest(self, now: float) -> None:
        assert self.digest is not None and self.on_digest is not None
        if self.store.file.write_problem is not None:
            return  # sent once the state file can record that it was sent
        if self._digest_last is None:
            last = self.store.unknown.digest_at()
            if last is None:  # the first start: the first digest is at the next scheduled time
                self.store.unknown.set_digest_at(now)
            self._digest_last = now if last is None else last
        last = self._digest_last
        if not self.digest.due(last, now):
            return
        # Whatever happened since it was last in a digest (or ever, if it never was).
        entries = [e for e in self.store.unknown.most_frequent() if e.count > e.digested]
        entries.sort(key=lambda e: e.last_seen, reverse=True)
        since = min([last, *(e.first_seen for e in entries if not e.digested)])
        if entries:
            self.on_digest(entries, since, now)
            self.store.unknown.mark_digested([(e.stack, e.fingerprint, e.count) for e in entries])
            with self._lock:  # the rows are written whole: the live entries must agree
                for e in entries:
                    live = self._live.get((e.stack, e.fingerprint))
                    if live is not None:
                        live.entry.digested = max(live.entry.digested, e.count)
        log.info("daily digest of errors no rule knows: %d fingerprint(s) since %s UTC", len(entries),
                 time.strftime("%Y-%m-%d %H:%M", time.gmtime(since)))
        self.store.unknown.set_digest_at(now)
        self._digest_last = now
