"""The outbox worker: every message is stored before it is sent, delivered with
backoff and jitter, survives restarts, is sent once, and never blocks a fix.

Order and outages: one incident's messages go to a target in the order of its
steps (a later one waits for the earlier one). A target that fails is tried
again after a backoff that grows to at most PROBE_MAX seconds, whatever the
number of messages waiting; its first success ends the backoff of everything
waiting for it, so the whole outbox drains within moments of its return. A
target that answers with a rate limit gets nothing before the time it asked
for (agent/notify/ratelimit.py).

One message per incident in a chat: a target that is also a chat channel (MEDIC_CHAT; its
LivingMessages in `chats`) gets each step of an incident as an edit of that incident's one
message (agent/chat/living.py), through the same outbox: an edit is a row like a send.

Folding, for the other targets: an incident's intermediate steps (`folded`: "Fix failed, will
try again", "Fixing again (attempt n)") are not sent one by one. They wait in the outbox
(status `folded`) and the next message of the incident, usually its final one, tells them in
its "Steps so far" (they become `folded-in`). So that nothing is lost when no later message
comes (an agent stopped for good, a retry that waits for hours), a folded step is sent as it
is once it has waited `fold_for` seconds (FOLD_FOR: 10 minutes), still before anything of its
incident queued after it.

Storm control: past `storm_count` messages for one rule within `storm_window`
seconds, further messages are held and sent as one digest; an incident's final message
(fixed, gave up, needs you, observed) is never held. A step told already (a restart in
the middle of an attempt runs it again) is not told twice.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

import apprise
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_exponential_jitter

from agent import templates
from agent.chat.transport import ChatError, RateLimited
from agent.component import Loop, OneLoop
from agent.events import spoken_duration
from agent.match import captures as capture_check
from agent.match.loader import render
from agent.match.model import Capture, Rule
from agent.notify import answers, ratelimit
from agent.notify.message import (
    FINAL_STEPS,
    NOTIFY_ONLY,
    PREFLIGHT_OUTCOME,
    PREFLIGHT_STEPS,
    Message,
    build,
    code,
    code_unless_plain,
    stack_mark,
)
from agent.notify.render import RENDERERS
from agent.notify.targets import Target
from agent.records import Incident, IncidentState
from agent.redact import Redactor
from agent.state import State, StateUnwritable

log = logging.getLogger(__name__)
DEPLOY_VALUE = Capture(type="name", max_length=128)
TITLE_VALUE = Capture(type="file", max_length=128)  # a value no capture declares
FOLD_FOR = 600.0  # seconds a folded step waits for a later message of its incident (see above)
OUTBOX_STUCK = 1800.0  # seconds the oldest undelivered message may wait before /healthz says so
TYPES = {"critical": apprise.NotifyType.FAILURE, "error": apprise.NotifyType.FAILURE,
         "warning": apprise.NotifyType.WARNING, "info": apprise.NotifyType.INFO}


class Delivery(NamedTuple):
    ok: bool
    error: str
    rate_limited: bool = False  # the receiver answered 429
    asked: float | None = None  # seconds it asked to be left alone (Retry-After, retry_after)


def deliver_once(target: Target, msg: Message, timeout: float = 15.0) -> Delivery:
    """One message to one target; judged by apprise's result status, not truthiness of old APIs,
    with the rate limit the receiver's answers told of."""
    renderer, fmt = RENDERERS[target.kind]
    title, body = renderer(msg)
    a = apprise.Apprise()
    a.add(target.plugin)
    kind = apprise.NotifyType.SUCCESS if msg.step == "resolved" else TYPES.get(msg.severity,
                                                                              apprise.NotifyType.INFO)
    with answers.observe() as got:
        result = a.notify(body=body, title=title, body_format=fmt, notify_type=kind, timeout=timeout)
    if result.status == apprise.AppriseResultStatus.SUCCESS:
        return Delivery(True, "")
    if ratelimit.rate_limited(got):
        asked = ratelimit.asked_wait(got, time.time())
        said = f": retry after {asked:.0f} s" if asked is not None else ""
        return Delivery(False, f"{ratelimit.RATE_LIMITED} (429){said}", True, asked)
    return Delivery(False, result.status.name.lower())


def deliver(target: Target, msg: Message, timeout: float = 15.0) -> tuple[bool, str]:
    ok, error, *_ = deliver_once(target, msg, timeout)
    return ok, error


class Chat(Protocol):
    """A chat target's living messages (agent.chat.living.LivingMessages)."""

    def deliver(self, msg: Message) -> None: ...


def folded(msg: Message) -> bool:
    """An intermediate step: an apprise target hears of it in the next message of its incident."""
    return bool(msg.incident) and (msg.step == "failed" or (msg.step == "acting" and msg.attempt > 1))


def title_values(rule: Rule, values: dict) -> dict:
    """A title is plain text everywhere (Slack's cannot hold code): only values that pass a
    check as a name, file or image appear in it (free text and refused values are shown in the
    message body, as code), and their dots and `@` are broken (`login-binance[.]com`), so a
    chat app never makes a link or a mention of a name someone chose."""
    safe = {}
    for key, value in values.items():
        spec = rule.captures.get(key)
        if spec is None:
            spec = DEPLOY_VALUE if key.startswith("deploy.") else TITLE_VALUE
        if isinstance(value, bool | int | float) and spec is TITLE_VALUE:
            safe[key] = value  # an exit code, a count
        elif value is None:
            safe[key] = value
        elif spec.type == "text" or capture_check.check(spec, str(value)):
            safe[key] = "(see below)"
        else:
            safe[key] = unlinkable(str(value))
    return safe


def unlinkable(value: str) -> str:
    """A name as it may stand in a title: no dot or `@` a chat app would make a link of."""
    return value.replace(".", "[.]").replace("@", "[@]")


class Notifier(OneLoop):
    def __init__(self, store: State, targets: list[Target], *, rules: Callable[[], dict[str, Rule]],
                 redactor: Redactor, storm_count: int = 10, storm_window: float = 300.0,
                 digest_after: float = 60.0, mode: str = "act", show_stack: bool = False,
                 chats: dict[str, Chat] | None = None, fold_for: float = FOLD_FOR) -> None:
        """`show_stack`: titles name the stack (the agent looks after several). `chats`: the
        targets (by id) that are chat channels, their living messages."""
        self.store = store
        self.chats = chats or {}
        self.fold_for = fold_for
        self.show_stack = show_stack
        self.targets = {t.id: t for t in targets}
        self.rules = rules
        self.redactor = redactor
        self.storm_count, self.storm_window, self.digest_after = storm_count, storm_window, digest_after
        self.mode = mode
        self.failed = 0  # delivery attempts that failed (a metric)
        self._unstored: deque[tuple[str, str, str]] = deque(maxlen=1000)
        self.holds = ratelimit.Holds()  # when each target may be tried again
        self._holds_loaded = False
        self.rate_limited = 0  # answers that asked to wait (a metric)
        self.loop = Loop("notify", self._run)

    # -- the component ---------------------------------------------------------------------------
    name = "notify"

    def health(self) -> list[str]:
        oldest = self.store.outbox.oldest_pending()
        if oldest is not None and time.time() - oldest > OUTBOX_STUCK:
            return [f"notifications undelivered for {time.time() - oldest:.0f} s"]
        return []

    def metrics(self) -> Iterator[Metric]:
        notes = GaugeMetricFamily("hb_medic_notifications", "Notification outbox, by status",
                                  labels=["status"])
        for status, n in sorted(self.store.outbox.counts().items()):
            notes.add_metric([status], n)
        yield notes
        yield CounterMetricFamily("hb_medic_notifications_failed_attempts",
                                  "Delivery attempts that failed", value=self.failed)
        yield CounterMetricFamily("hb_medic_notifications_rate_limited",
                                  "Delivery attempts a receiver answered with a rate limit (429)",
                                  value=self.rate_limited)
        wait = GaugeMetricFamily("hb_medic_notify_target_wait_seconds",
                                 "Seconds until a target may be tried again (0: now); rate_limited"
                                 " says whether the receiver asked for it", labels=["target", "rate_limited"])
        now = time.time()
        for t in self.targets.values():
            limited = "true" if self.holds.limited(t.id) else "false"
            wait.add_metric([t.private, limited], self.holds.remaining(t.id, now))
        yield wait

    # -- from the remedy: never raises -----------------------------------------------------------
    def step(self, inc: Incident, step: str, text: str) -> None:
        try:
            silence = self.store.silences.covers(inc.rule, inc.key, inc.stack)
            if silence is not None:  # muted from the chat: the trail keeps the step, no message
                log.info("incident %s: %s not sent (silenced until %s)", inc.id, step,
                         time.strftime("%H:%M:%S", time.localtime(silence.until)))
                return
            msg = self._message(inc, step, text)
            if msg is not None and not self._told(msg):
                self.enqueue(msg)
        except StateUnwritable:
            self._unstored.append((inc.id, step, text))  # queued when the state file heals
        except Exception:
            log.exception("could not queue the notification of incident %s (%s)", inc.id, step)

    def _message(self, inc: Incident, step: str, text: str) -> Message | None:
        rule = self.rules().get(inc.rule)
        acts = rule is not None and rule.acts(templates.incident_values(inc))
        observing = self.mode == "observe" or (rule is not None and rule.observe_only)
        if step == "detected" and acts and not observing:
            return None  # the "detected, fixing" message follows at once
        if step == "detected" and observing and acts:
            return None  # the "would have" message says it all
        if step == "resolved" and text.startswith("notified"):
            return None
        raw = templates.incident_values(inc)
        if step in PREFLIGHT_STEPS:
            return self._preflight_message(inc, step, text, rule, raw)
        shown = templates.shown_values(rule.captures, raw) if rule is not None else {}
        values = {**raw, **shown}
        n = rule.notify if rule is not None else None
        next_steps = render(n.next_steps, values, code) if n and n.next_steps else ""
        if step == "detected" and not acts:  # a rule that only tells: say so, and what to do
            text = NOTIFY_ONLY
            if rule is not None and rule.incident.quiet:
                text = (f"going on; one more message when it is over (no such line for"
                        f" {spoken_duration(rule.incident.quiet)}), none for each line")
            next_steps = next_steps or (f"Look at {inc.container}'s log around it"
                                        f" (docker logs -t --since 15m {inc.container}).")
        rule_text = render(n.text, values, code) if n else ""
        if step == "ended" and rule is not None:  # what it was is in the first message
            rule_text = f"It is over: no such line came for {spoken_duration(rule.incident.quiet or 0)}."
            next_steps = ""
        msg = build(inc, step, text, self.store.incidents.audit_trail(inc.id),
                    rule_title=render(n.title, {**title_values(rule, raw), **shown}) if n else "",
                    rule_text=rule_text, next_steps=next_steps, redactor=self.redactor,
                    show_stack=self.show_stack)
        earlier = [Message.from_json(m) for m in self.store.outbox.of_incident(inc.id, list(self.targets))]
        earlier = [m for m in earlier if not msg.repeats(m)]
        msg.steps, msg.folded = [m.as_step() for m in earlier], sum(folded(m) for m in earlier)
        return msg

    def _preflight_message(self, inc: Incident, step: str, text: str, rule: Rule | None,
                           raw: dict) -> Message:
        """A deploy's failure foreseen before it was forwarded: prevented (fixed first) or warned.
        The rule's own words tell of a failure that happened; these tell of one that would."""
        bot = inc.opened_by.get("bot")
        verb = "would have failed" if step == IncidentState.PREVENTED else "will fail"
        named = isinstance(bot, str) and bot
        title = f"the deploy of bot {unlinkable(bot)} {verb}" if named else f"a deploy {verb}"
        n = rule.notify if rule is not None else None
        prevented = step == IncidentState.PREVENTED
        next_steps = render(n.next_steps, raw, code) if n and n.next_steps and prevented else ""
        return build(inc, step, PREFLIGHT_OUTCOME[step], self.store.incidents.audit_trail(inc.id),
                     rule_title=title, rule_text=code_unless_plain(self.redactor.text(text)),
                     next_steps=next_steps, redactor=self.redactor, show_stack=self.show_stack)

    def _told(self, msg: Message) -> bool:
        """Was this very step queued for the incident already (a resumed attempt tells it again)?"""
        told = self.store.outbox.of_incident(msg.incident, list(self.targets))
        if any(msg.repeats(Message.from_json(m)) for m in told):
            log.info("incident %s: %s already told, not sent again", msg.incident, msg.step)
            return True
        return False

    def enqueue(self, msg: Message, storm_control: bool = True) -> None:
        if not self.targets:
            return
        # Storm control counts per stack: one stack's storm never holds another's messages. An
        # incident's final message is never held: the person waits for it.
        held = storm_control and msg.step not in FINAL_STEPS and self.store.outbox.recent(
            msg.rule, time.time() - self.storm_window, msg.stack) >= self.storm_count
        payload = msg.to_json()
        fold = folded(msg)
        for t in self.targets.values():
            if not t.wants(msg.severity):
                continue
            status, bound = ("held" if held else "pending"), None
            if t.id not in self.chats and not held and msg.incident:
                if fold:  # told by the next message of the incident, or after the bound
                    status, bound = "folded", time.time() + self.fold_for
                else:  # this message lists the steps folded before it
                    self.store.outbox.fold_in(msg.incident, t.id)
            self.store.outbox.enqueue(incident=msg.incident, rule=msg.rule, target=t.id, message=payload,
                                      status=status, stack=msg.stack, next_at=bound)
        self.loop.wake()

    # -- the worker ----------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self.loop.wait(1.0):
            try:
                if self._unstored and self.store.file.write_problem is None:
                    self._store_waiting()
                self._digest()
                self.store.outbox.release_folded(time.time())
                self._deliver_due()
            except StateUnwritable:
                pass  # the store said so once; /healthz shows it
            except Exception:
                log.exception("notification worker failed; retrying")

    def _store_waiting(self) -> None:
        """Messages of steps taken while the state file could not be written, in order."""
        while self._unstored:
            inc_id, step, text = self._unstored[0]
            inc = self.store.incidents.get(inc_id)
            if inc is not None:
                msg = self._message(inc, step, text)
                if msg is not None and not self._told(msg):
                    self.enqueue(msg)
            self._unstored.popleft()

    def _deliver_due(self) -> None:
        """Send what is due, oldest first, until nothing more can go now. After each delivery
        the next due message is looked up again: it may be that incident's next step."""
        if not self._holds_loaded:  # a target's backoff or rate limit outlives a restart
            self.holds.load({t: (until, error.startswith(ratelimit.RATE_LIMITED))
                             for t, (until, error) in self.store.outbox.next_tries(time.time()).items()})
            self._holds_loaded = True
        while not self.loop.stopping.is_set():
            now = time.time()
            for row in self.store.outbox.due(now, skip=self.holds.blocked(now)):
                if self.loop.stopping.is_set():
                    return
                if self.holds.waiting(row[3], time.time()):
                    continue  # this target failed a moment ago: wait for its next try
                if self._send(row):
                    break
            else:
                return

    def _send(self, row: tuple) -> bool:
        """One message to its target; True when it was delivered (or dropped)."""
        row_id, _inc, _rule, target_id, payload, _status, _created, attempts, *_ = row
        target = self.targets.get(target_id)
        if target is None:
            self.store.outbox.mark(row_id, status="dropped", attempts=attempts, next_at=0,
                                   error="target no longer configured")
            return True
        msg = Message.from_json(payload)
        try:  # a second try at once, unless the receiver asked to wait
            result = Retrying(stop=stop_after_attempt(2), reraise=True,
                              wait=wait_exponential_jitter(multiplier=0.5, max=2, jitter=0.5),
                              retry=retry_if_result(lambda r: not r.ok and not r.rate_limited),
                              retry_error_callback=lambda s: s.outcome.result())(self._deliver, target, msg)
        except Exception as exc:  # a plugin bug must not stop the outbox
            result = Delivery(False, type(exc).__name__)
        attempts += 1
        if result.ok:
            self.store.outbox.mark(row_id, status="sent", attempts=attempts, next_at=0)
            if self.holds.succeeded(target_id):
                self.store.outbox.retry_now(target_id)  # back: the rest goes now, not after its backoff
                log.warning("notifications to %s are delivered again", target.private)
            return True
        self.failed += 1
        self.rate_limited += result.rate_limited
        hold = self.holds.failed(target_id, time.time(), limited=result.rate_limited, asked=result.asked)
        self.store.outbox.mark(row_id, status="pending", attempts=attempts, next_at=hold.until,
                               error=self.redactor.text(result.error))
        if hold.new_episode:
            self._say_limited(target, hold)
        elif not hold.limited and (hold.failures in (1, 10) or hold.failures % 100 == 0):
            log.warning("notification to %s failed (%s; %d in a row): trying again every %.0f s at most",
                        target.private, result.error, hold.failures, ratelimit.PROBE_MAX)
        return False

    def _deliver(self, target: Target, msg: Message) -> Delivery:
        """Through apprise, or as an edit or a post of the incident's message in a chat."""
        chat = self.chats.get(target.id)
        if chat is None:
            return deliver_once(target, msg)
        try:
            chat.deliver(msg)
        except RateLimited as exc:
            said = f": retry after {exc.retry_after:.0f} s" if exc.retry_after is not None else ""
            return Delivery(False, f"{ratelimit.RATE_LIMITED} (429){said}", True, exc.retry_after)
        except ChatError as exc:
            return Delivery(False, str(exc) or type(exc).__name__)
        return Delivery(True, "")

    @staticmethod
    def _say_limited(target: Target, hold: ratelimit.Hold) -> None:
        """Once per rate limit: until the target takes a message again, it is not said again."""
        wait = hold.until - time.time()
        at = time.strftime("%H:%M:%S", time.localtime(hold.until))
        if hold.asked is None:
            log.warning("notifications to %s are rate limited (429, no time given): its messages wait,"
                        " next try in %.0f s (%s)", target.private, wait, at)
        elif hold.asked > ratelimit.RETRY_AFTER_MAX:
            log.warning("notifications to %s are rate limited: the receiver asks for %.0f s, more than the"
                        " longest wait honoured; its messages wait %.0f s, until %s", target.private,
                        hold.asked, wait, at)
        else:
            log.warning("notifications to %s are rate limited: the receiver asks for %.0f s; its messages"
                        " wait until %s", target.private, hold.asked, at)

    def _digest(self) -> None:
        held = self.store.outbox.held()
        if not held:
            return
        by_rule: dict[tuple[str, str], list[tuple]] = {}
        for row in held:
            by_rule.setdefault((Message.from_json(row[4]).stack, row[2]), []).append(row)
        now = time.time()
        for (stack, rule), rows in by_rule.items():
            if now - min(r[6] for r in rows) < self.digest_after:
                continue
            seen, lines = set(), []
            for r in rows:
                m = Message.from_json(r[4])
                if r[4] not in seen:
                    seen.add(r[4])
                    lines.append(f"{m.incident} {m.step}: {m.outcome or m.summary}"[:200])
            first = Message.from_json(rows[0][4])
            digest = Message(incident="digest", step="digest", severity=first.severity, rule=rule,
                             container=first.container, stack=stack, show_stack=first.show_stack,
                             title=f"[{first.severity.upper()}] {stack_mark(stack, first.show_stack)}"
                                   f"{len(lines)} more messages: {rule}",
                             summary=f"{len(lines)} messages for {rule} were grouped to spare your phone.",
                             actions=lines[:30], outcome="" if len(lines) <= 30 else
                             f"and {len(lines) - 30} more: see hb-medic incidents")
            for r in rows:
                self.store.outbox.mark(r[0], status="digested", attempts=r[7], next_at=0)
            self.enqueue(digest, storm_control=False)
