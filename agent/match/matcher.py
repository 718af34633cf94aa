"""Rules compiled once and applied to events.

Cost on the common line that matches nothing: a handful of substring checks
(the gate literals every line rule needs, such as `` - ERROR - ``); only
lines that pass the gate, and tracebacks, reach the regexes.

Precedence, when several rules match one event: higher ``priority`` first,
then the rule with more conditions in its matching alternative (more
specific), then the rule id in alphabetical order. One event gives at most
one match.
"""

from __future__ import annotations

import re
import re._parser as sre_parse  # the regex parser the re module itself uses
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from agent import templates
from agent.events import API, BOT, EXIT, GATEWAY, LINE, RESPONSE, SIBLING, TRACEBACK, Event
from agent.match import captures as capture_check
from agent.match.deploy import parse_config_repr
from agent.match.loader import params_of, render, unresolved
from agent.match.model import RETRY_DEPLOY, Rule
from agent.match.model import Match as MatchSpec
from agent.names import EVIDENCE_ROUTES, protected_profile

ROLES = (API, BOT, GATEWAY, SIBLING)
CONTEXT_KEEP = 256  # recent context lines kept per container
CONTEXT_TRACEBACKS = 8  # recent tracebacks kept per container, for contexts that look for one
UNTIMED_WINDOW_LINES = 500  # without timestamps, "within" means this many lines before
SAME_RECORD = 2.0  # seconds apart on two channels of one container: one record written twice


@dataclass
class Result:
    """What a rule made of an event."""

    rule: Rule
    event: Event
    captures: dict[str, str]
    refused: str | None = None
    deploy: dict[str, Any] | None = None
    below_threshold: bool = False
    values: dict[str, Any] = field(default_factory=dict)
    held: bool = False  # already waited for the recorder's evidence (see Remedy.submit)

    @property
    def actions(self) -> list[str]:
        """What would run, in order (nothing when refused or below the threshold)."""
        if self.refused or self.below_threshold:
            return []
        return [c.action for c in self.rule.calls(self.values)]

    def action_params(self) -> list[tuple[str, dict[str, Any], list[str]]]:
        """(action, params with templates filled, names still unknown) for each action the rule's
        parameters fill: all but retry_deploy, whose parameters are the failed request."""
        return [(c.action, params_of(c, self.values),
                 [n for v in c.params.values() if isinstance(v, str) for n in unresolved(v, self.values)])
                for c in self.rule.calls(self.values) if c.action != RETRY_DEPLOY]

    def text(self, template: str | None) -> str:
        return render(template or "", self.values)


def required_literal(pattern: str) -> str | None:
    """The longest literal every match of the regex must contain (top level only)."""
    try:
        parsed = sre_parse.parse(pattern)
    except re.error:
        return None
    best, run = "", []
    for op, arg in parsed:
        if op is sre_parse.LITERAL:
            run.append(chr(arg))
            continue
        if op not in (sre_parse.AT,):
            best = max(best, "".join(run), key=len)
            run = []
    best = max(best, "".join(run), key=len)
    return best if len(best) >= 4 else None


_GATEWAY_LEVEL = {"WARNING": "warn"}  # the gateway's records: `| error |`, `| warn |`


def _level_literals(levels: list[str]) -> list[str]:
    return [lit for lvl in levels
            for lit in (f" - {lvl} - ", f"{lvl}:", f" | {_GATEWAY_LEVEL.get(lvl, lvl.lower())} | ")]


class _Alternative:
    def __init__(self, spec: MatchSpec) -> None:
        self.spec = spec
        self.kind = spec.kind
        self.exception = spec.exception
        self.outermost = spec.scope == "outermost"
        self.exc_message = re.compile(spec.exception_message) if spec.exception_message else None
        self.frame_file = re.compile(spec.frame.file) if spec.frame and spec.frame.file else None
        self.frame_func = spec.frame.function if spec.frame else None
        self.has_frame = spec.frame is not None
        self.logger = set(spec.logger) if spec.logger else None
        self.level = set(spec.level) if spec.level else None
        self.message = re.compile(spec.message) if spec.message else None
        self.line = re.compile(spec.line) if spec.line else None
        self.route = set(spec.route) if spec.route else None
        self.status = set(spec.status) if spec.status else None
        self.request = [(k, re.compile(v)) for k, v in (spec.request or {}).items()]
        self.exit_code = set(spec.exit_code) if spec.exit_code else None
        self.oom_killed = spec.oom_killed
        self.terminal, self.headless = spec.terminal, spec.headless
        self.sets = spec.sets
        self.channels = set(spec.channels) if spec.channels else None
        self.specificity = sum(v is not None for v in (
            spec.exception, spec.exception_message, spec.frame, spec.logger, spec.level, spec.message,
            spec.line, spec.route, spec.status, spec.request, spec.exit_code, spec.oom_killed, spec.terminal,
            spec.headless)) \
            + (spec.kind != "any")
        self.gate = self._gate()

    def _gate(self) -> list[str] | None:
        """Literals one of which a line must contain to be worth this alternative; None: any line."""
        if self.kind == TRACEBACK:
            return []
        s = self.spec
        if s.level:
            return _level_literals(s.level)
        if s.logger:
            return [f" - {name} - " for name in s.logger] + [f":{name}:" for name in s.logger] \
                + ([" | "] if "gateway" in s.logger else [])
        for rx in (s.message, s.line):
            if rx and (lit := required_literal(rx)):
                return [lit]
        return None

    def match(self, e: Event) -> dict[str, str] | None:
        kind = e.kind
        if self.kind != "any" and self.kind != kind:
            return None
        if self.channels is not None and e.stream not in self.channels:
            return None
        if kind == RESPONSE:
            return self._match_response(e)
        if kind == EXIT:
            return self._match_exit(e)
        if self.exit_code is not None or self.oom_killed is not None or self.terminal is not None \
                or self.headless is not None:
            return None
        caught: dict[str, str] = {}
        if self.exception is not None or self.exc_message is not None:
            if kind != TRACEBACK or not e.exceptions:
                return None
            pool = [e.exceptions[-1]] if self.outermost else e.exceptions
            for exc in reversed(pool):
                if self.exception is not None and not any(
                        exc.type == n or exc.type.endswith("." + n) for n in self.exception):
                    continue
                if self.exc_message is not None:
                    m = self.exc_message.search(exc.message)
                    if m is None:
                        continue
                    caught.update({k: v for k, v in m.groupdict().items() if v is not None})
                break
            else:
                return None
        if self.has_frame and not any((self.frame_file is None or self.frame_file.search(f.file))
                   and (self.frame_func is None or f.function == self.frame_func) for f in e.frames):
            return None
        if self.logger is not None or self.level is not None or self.message is not None:
            h = e.header
            if h is None:
                return None
            if self.logger is not None and h.logger not in self.logger:
                return None
            if self.level is not None and h.level not in self.level:
                return None
            if not _all_found([(self.message, e.message)], caught):
                return None
        return caught if _all_found([(self.line, e.lines[0] if e.lines else "")], caught) else None


    def _match_exit(self, e: Event) -> dict[str, str] | None:
        """A bot that died by itself: exit code, the out-of-memory kill, its last lines."""
        data = e.data or {}
        if self.exception is not None or self.logger is not None or self.level is not None \
                or self.has_frame or self.route is not None or self.status is not None:
            return None
        if self.exit_code is not None and data.get("exit_code") not in self.exit_code:
            return None
        if self.oom_killed is not None and bool(data.get("oom_killed")) != self.oom_killed:
            return None
        for wanted, known in ((self.terminal, data.get("terminal")), (self.headless, data.get("headless"))):
            if wanted is not None and (known is None or bool(known) != wanted):
                return None  # not known (an older saved death): no condition on it holds
        caught: dict[str, str] = {}
        last = "\n".join(data.get("last_console", []) + data.get("last_errors", []))
        found = _all_found([(self.message, last), (self.line, e.lines[0] if e.lines else "")], caught)
        return caught if found else None

    def _match_response(self, e: Event) -> dict[str, str] | None:
        """A recorded deploy exchange: route, status, response message, request fields."""
        data = e.data or {}
        if self.exception is not None or self.logger is not None or self.level is not None \
                or self.has_frame:
            return None
        if self.route is not None and data.get("route") not in self.route:
            return None
        if self.status is not None and data.get("status") not in self.status:
            return None
        caught: dict[str, str] = {}
        checks = [(self.message, str(data.get("message", ""))), (self.line, e.lines[0] if e.lines else "")]
        request = data.get("request") or {}
        checks += [(rx, str(request.get(k, ""))) for k, rx in self.request]
        return caught if _all_found(checks, caught) else None


def _all_found(checks: Iterable[tuple[re.Pattern[str] | None, str]], caught: dict[str, str]) -> bool:
    """Every pattern (None: nothing to check) is found in its text; their named groups that
    matched join `caught`."""
    for rx, text in checks:
        if rx is None:
            continue
        m = rx.search(text)
        if m is None:
            return False
        caught.update({k: v for k, v in m.groupdict().items() if v is not None})
    return True


class _Streams:
    """Which streams (channels) a rule, or one of its contexts, reads: a line printed anywhere
    else is never taken, whatever it says (hummingbot-api prints request paths on stdout)."""

    def __init__(self, stream: str, channels: list[str] | None) -> None:
        self.stream = stream
        self.channels = set(channels) if channels else None
        # Replayed `docker logs` output has stdout and stderr merged.
        self.merged_ok = self.channels is None or bool(self.channels & {"stdout", "stderr"})

    def accepts(self, stream: str) -> bool:
        if stream == "merged":
            return self.merged_ok
        if self.channels is not None and stream not in self.channels:
            return False
        return self.stream == "any" or stream == self.stream


class _Compiled:
    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.alternatives = [_Alternative(spec) for spec in rule.match]
        self.patterns = {n: re.compile(c.pattern) if c.pattern else None for n, c in rule.captures.items()}
        self.context = [(c, re.compile(c.message or c.traceback or ""),
                         _Streams("any", c.channels) if c.channels else None) for c in rule.context]
        self.specificity = max(a.specificity for a in self.alternatives)
        self.containers = set(rule.where.containers) if rule.where.containers else None
        self.label_items = tuple(rule.where.labels.items()) if rule.where.labels else ()
        self.streams = _Streams(rule.where.stream, rule.where.channels)
        self.acts_on_deploy_profile = any("{deploy.credentials_profile}" in v for a in rule.actions
                                          for v in a.params.values() if isinstance(v, str))
        self.roles = set(rule.where.roles) if rule.where.roles else None
        self.gateway = None if rule.where.gateway is None else rule.where.gateway == "present"
        self.on_lines = any(a.kind in ("any", LINE) for a in self.alternatives)
        self.on_tracebacks = any(a.kind in ("any", TRACEBACK) for a in self.alternatives)
        self.on_exits = any(a.kind == EXIT for a in self.alternatives)
        # per incident key: (time, channel, message) of each occurrence within the window
        self.hits: dict[str, deque[tuple[float, str, str]]] = {}


class _Index:
    """The line and traceback rules that apply to events of one role, ready for the hot path."""

    def __init__(self, compiled: list[_Compiled]) -> None:
        self.line_rules = [c for c in compiled if c.on_lines]
        loggers = {name for c in self.line_rules for a in c.alternatives if a.logger for name in a.logger}
        self.any_logger = [c for c in self.line_rules
                           if any(a.logger is None and a.kind in ("any", LINE) for a in c.alternatives)]
        self.by_logger = {name: [c for c in self.line_rules
                                 if c in self.any_logger or any(a.logger and name in a.logger
                                                                for a in c.alternatives)]
                          for name in loggers}
        self.tb_rules = [c for c in compiled if c.on_tracebacks]
        gates: set[str] = set()
        self.ungated = False
        for c in self.line_rules:
            for a in c.alternatives:
                if a.kind not in ("any", LINE):  # response and exit alternatives see no lines
                    continue
                if a.gate is None:
                    self.ungated = True
                else:
                    gates.update(a.gate)
        self.gates = tuple(sorted(gates))


class Matcher:
    """All rules of one load, ready to match events of log sources."""

    def __init__(self, rules: list[Rule], *, check_where: bool = True,
                 labels: Callable[[str], dict[str, str]] | None = None,
                 gateway: Callable[[], bool | None] | None = None) -> None:
        """`labels(container)` gives a container's labels; without it (replay), label
        conditions are not checked. `gateway()` says whether the stack has a gateway (None: not
        known); without an answer, a rule that depends on it does not match."""
        self.labels = labels
        self.gateway = gateway
        compiled = [_Compiled(r) for r in rules]
        compiled.sort(key=lambda c: (-c.rule.priority, -c.specificity, c.rule.id))
        self.rules = compiled
        self._response_rules = [c for c in compiled if c.rule.source in ("recorder", "any")]
        compiled = [c for c in compiled if c.rule.source in ("log", "any")]
        self.check_where = check_where
        # Line and traceback rules indexed per role: a bot's line never meets hummingbot-api's
        # rules (nor their gates), and hummingbot-api's hot path pays nothing for the bot rules.
        self._index = {role: _Index([c for c in compiled if c.roles is None or role in c.roles])
                       for role in ROLES}
        api = self._index[API]
        self._gates, self._ungated = api.gates, api.ungated
        self._any_role = _Index([c for c in compiled if c.roles is None])
        self._exit_rules = [c for c in compiled if c.on_exits]
        self._readers = [c for c in compiled if c.on_lines or c.on_tracebacks]  # see reads()
        ctx: set[str] = set()
        self._ctx_ungated = False
        # Tracebacks a context looks for (a bot's log file explaining its console): a few kept per
        # container, and only of the roles such a rule reads.
        tb_rules = [c for c in compiled if any(spec.traceback for spec, _, _ in c.context)]
        self._ctx_tb_roles = set(ROLES) if any(c.roles is None for c in tb_rules) \
            else {r for c in tb_rules for r in c.roles}
        self._recent_tb: dict[str, deque[Event]] = {}
        for c in compiled:
            for spec, _, _ in c.context:
                if spec.message is None:
                    continue
                lit = required_literal(spec.message)
                if lit is None:
                    self._ctx_ungated = True
                else:
                    ctx.add(lit)
        self._ctx_gates = tuple(sorted(ctx))
        self._recent: dict[str, deque[Event]] = {}

    # -- the hot path ------------------------------------------------------------------------
    def match(self, event: Event) -> Result | None:
        if event.kind == LINE:
            text = event.lines[0]
            if self._ctx_ungated:
                self._remember(event)
            else:
                for g in self._ctx_gates:
                    if g in text:
                        self._remember(event)
                        break
            ix = self._index[API] if event.origin is None else self._index.get(event.role, self._any_role)
            if not ix.ungated:
                for g in ix.gates:
                    if g in text:
                        break
                else:
                    return None
            # Only the rules that can match this line's logger (order, hence precedence, kept).
            header = event.header
            candidates = (ix.by_logger.get(header.logger, ix.any_logger) if header is not None
                          else ix.any_logger)
        elif event.kind == TRACEBACK:
            if event.role in self._ctx_tb_roles:
                buf = self._recent_tb.get(event.container)
                if buf is None:
                    buf = self._recent_tb[event.container] = deque(maxlen=CONTEXT_TRACEBACKS)
                buf.append(event)
            ix = self._index[API] if event.origin is None else self._index.get(event.role, self._any_role)
            candidates = ix.tb_rules
        elif event.kind == RESPONSE:
            candidates = self._response_rules
        elif event.kind == EXIT:
            candidates = self._exit_rules
        else:
            return None
        for c in candidates:
            if self.check_where and event.kind != RESPONSE and not self._where(c, event):
                continue
            if c.gateway is not None and (self.gateway is None or self.gateway() is not c.gateway):
                continue
            for alt in c.alternatives:
                caught = alt.match(event)
                if caught is not None:
                    return self._result(c, event, caught, alt.sets)
        return None

    def reads(self, event: Event) -> bool:
        """Would a rule of this load read this event's container and stream at all (whatever the
        event says)? Errors no rule knows are counted only from there: a stream no rule reads (the
        request paths hummingbot-api prints on stdout) is one anybody can write to. A recorded
        exchange is the recorder's own."""
        if event.kind == RESPONSE:
            return True
        return any(self._where(c, event) for c in self._readers)

    def _where(self, c: _Compiled, e: Event) -> bool:
        if c.containers is not None and e.container not in c.containers:
            return False
        if c.roles is not None and e.role not in c.roles:
            return False
        if not c.streams.accepts(e.stream):
            return False
        if c.label_items and self.labels is not None:
            have = self.labels(e.container)
            if any(have.get(k) != v for k, v in c.label_items):
                return False
        return True

    def _remember(self, event: Event) -> None:
        buf = self._recent.get(event.container)
        if buf is None:
            buf = self._recent[event.container] = deque(maxlen=CONTEXT_KEEP)
        buf.append(event)

    # -- after a match ------------------------------------------------------------------------
    def _result(self, c: _Compiled, event: Event, caught: dict[str, str],
                sets: dict[str, str] | None = None) -> Result:
        rule = c.rule
        res = Result(rule, event, dict(caught))
        if event.kind == RESPONSE and event.data and event.data.get("route") not in EVIDENCE_ROUTES:
            # a deploy exchange carries its request; a credential upload's is never kept, nor a
            # missing route's
            res.deploy = {"route": event.data.get("route"), "body": event.data.get("request") or {}}
        self._add_context(c, res)
        for name, value in (sets or {}).items():  # what neither the event nor its context said
            res.captures.setdefault(name, value)
        for name, value in res.captures.items():
            spec = rule.captures.get(name)
            if spec is None:
                continue
            reason = capture_check.check(spec, value, c.patterns.get(name))
            if reason:
                res.refused = f"capture {name}={capture_check.shown(value)} {reason}"
                break
            if spec.case is not None:
                res.captures[name] = value.lower() if spec.case == "lower" else value.upper()
        profile = (res.deploy or {}).get("body", {}).get("credentials_profile")
        if res.refused is None and c.acts_on_deploy_profile and isinstance(profile, str) \
                and protected_profile(profile):
            res.refused = (f"deploy credentials_profile={capture_check.shown(profile)} is a protected profile"
                           " (hummingbot-api's template: hb-medic never touches it)")
        values = templates.match_values(event, rule.id, rule.severity, res.captures,
                                        res.deploy["body"] if res.deploy else None)
        res.values = values
        if rule.threshold is not None and not res.refused:
            key = render(rule.incident.key, values)
            now = event.ts / 1e9 if event.ts else time.monotonic()
            hits = c.hits.setdefault(key, deque())
            channel = event.origin.channel if event.origin is not None else event.stream
            # A bot writes each record to its console and its log file: one occurrence, not two.
            if not any(ch != channel and msg == event.message and abs(at - now) <= SAME_RECORD
                       for at, ch, msg in hits):
                hits.append((now, channel, event.message))
            while hits and hits[0][0] < now - rule.threshold.window:
                hits.popleft()
            res.below_threshold = len(hits) < rule.threshold.count
        return res

    def _add_context(self, c: _Compiled, res: Result) -> None:
        if not c.context:
            return
        recent = self._recent.get(res.event.container) or ()
        tracebacks = self._recent_tb.get(res.event.container) or ()
        event = res.event
        for spec, rx, streams in c.context:
            streams = streams or c.streams
            for prior in reversed(tracebacks if spec.traceback is not None else recent):
                if prior is event or not streams.accepts(prior.stream):
                    continue
                same_source = prior.stream == event.stream and prior.origin == event.origin
                if same_source and prior.first_pos >= event.first_pos:
                    continue
                if event.ts and prior.ts:
                    if prior.ts < event.ts - spec.within * 1e9:
                        break
                elif not same_source or event.first_pos - prior.first_pos > UNTIMED_WINDOW_LINES:
                    break
                if spec.traceback is not None:
                    # Another channel of the same container (a bot's log file): its traceback, of the
                    # record the context names (a start-up DNS traceback never explains a tick error).
                    h = prior.header
                    if (spec.logger or spec.level) and (
                            h is None or (spec.logger and h.logger not in spec.logger)
                            or (spec.level and h.level not in spec.level)):
                        continue
                    exc = prior.outermost if prior.kind == TRACEBACK else None
                    m = rx.search(f"{exc.type}: {exc.message}") if exc is not None else None
                    if m is not None:
                        for k, v in m.groupdict().items():
                            if v is not None:
                                res.captures.setdefault(k, v)
                        break
                    continue
                h = prior.header
                if h is None or (spec.logger and h.logger not in spec.logger) \
                        or (spec.level and h.level not in spec.level):
                    continue
                m = rx.search(prior.message)
                if m is None:
                    continue
                groups = {k: v for k, v in m.groupdict().items() if v is not None}
                body = parse_config_repr(groups.pop("config", ""), spec.deploy) if spec.deploy else None
                if spec.deploy and body is None:
                    continue
                source = {**groups, **(body or {})}
                if any(str(source.get(field_)) != res.captures.get(cap)
                       for cap, field_ in spec.correlate.items()):
                    continue
                for k, v in groups.items():
                    res.captures.setdefault(k, v)
                if body is not None:
                    res.deploy = {"route": spec.deploy, "body": body}
                break
