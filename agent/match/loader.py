"""Load rules/*.yml: every mistake is reported with its file and line.

Structure is checked by the pydantic model; what it cannot see (regexes that
do not compile, captures that are not declared, unknown actions or parameters,
templates naming captures that do not exist, duplicate ids) is checked here,
against the paths recorded while reading the YAML, so each error has a line.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from agent.match.deploy import FIELDS
from agent.match.model import RETRY_DEPLOY, Rule
from agent.templates import ACTION_NAMES, DEPLOY_FIELDS, NAMES

Path_ = tuple[str | int, ...]
TEMPLATE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\}")
# `[[ ... ]]`: a part of a message shown only when every value it names is known.
OPTIONAL = re.compile(r"\[\[(.*?)\]\]", re.S)
_FAST = getattr(yaml, "CSafeLoader", None)  # libyaml's safe loader, when PyYAML was built with it


@dataclass
class RuleError:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class LoadResult:
    rules: list[Rule] = field(default_factory=list)
    errors: list[RuleError] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


class _Lines:
    """YAML data plus the line of every key and item, by path."""

    def __init__(self) -> None:
        self.lines: dict[Path_, int] = {}
        self.duplicates: list[tuple[Path_, int]] = []

    def walk(self, node: yaml.Node, path: Path_ = ()) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key, value in node.value:
                k = key.value
                if k in seen:
                    self.duplicates.append(((*path, k), key.start_mark.line + 1))
                seen.add(k)
                self.lines[(*path, k)] = key.start_mark.line + 1
                self.walk(value, (*path, k))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.lines[(*path, i)] = item.start_mark.line + 1
                self.walk(item, (*path, i))

    def line_of(self, path: Path_) -> int:
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            # `match` may be one mapping where the model sees a list of one.
            if any(isinstance(p, int) for p in path):
                alt = tuple(p for p in path if not isinstance(p, int))
                if alt in self.lines:
                    return self.lines[alt]
            path = path[:-1]
        return self.lines.get((), 1)


def dotted(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def load_rules(directory: str | Path, actions: dict | None = None) -> LoadResult:
    """Every *.yml in the folder (samples and other files are ignored)."""
    from agent.actions import registry

    actions = registry() if actions is None else actions
    result = LoadResult()
    folder = Path(directory)
    if not folder.is_dir():
        result.errors.append(RuleError(str(folder), 1, "rules folder not found"))
        return result
    seen: dict[str, str] = {}
    for path in sorted(folder.glob("*.yml")):
        result.files.append(path)
        rule, errors = load_file(path, actions)
        result.errors += errors
        if rule is None:
            continue
        if rule.id in seen:
            result.errors.append(
                RuleError(str(path), 1, f"duplicate rule id {rule.id!r} (also in {seen[rule.id]})"))
            continue
        seen[rule.id] = str(path)
        result.rules.append(rule)
    return result


def load_file(path: Path, actions: dict) -> tuple[Rule | None, list[RuleError]]:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [RuleError(name, 1, f"cannot read: {exc}")]
    try:
        node, data = _parse(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [RuleError(name, (mark.line + 1) if mark else 1, f"not valid YAML: {problem}")]
    if not isinstance(data, dict) or node is None:
        return None, [RuleError(name, 1, "a rule file must be a YAML mapping (id:, match:, ...)")]
    lines = _Lines()
    lines.walk(node)
    errors = [RuleError(name, line, f"{dotted(p)}: key given twice") for p, line in lines.duplicates]
    try:
        rule = Rule.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            errors.append(RuleError(name, lines.line_of(loc), _pydantic_message(loc, err)))
        return None, errors
    errors += _Semantics(rule, name, lines, actions, path.stem).check()
    return (None if errors else rule), errors


def _parse(text: str) -> tuple[yaml.Node | None, Any]:
    """The file's node tree (for lines) and its data, through libyaml where PyYAML has it: the
    rules load about 15 times faster (every start of the agent and of `rules test`). A file libyaml
    refuses is read again by the pure-Python loader, so a mistake is told in its words and line."""
    if _FAST is not None:
        with contextlib.suppress(yaml.YAMLError):
            return yaml.compose(text, Loader=_FAST), yaml.load(text, Loader=_FAST)
    return yaml.compose(text, Loader=yaml.SafeLoader), yaml.safe_load(text)


def _pydantic_message(loc: Path_, err: dict) -> str:
    where = dotted(loc) or "rule"
    if err["type"] == "extra_forbidden":
        field_name = str(loc[-1])
        known = _known_fields(loc[:-1])
        hint = difflib.get_close_matches(field_name, known, n=1)
        if hint:
            extra = f" (did you mean {hint[0]!r}?)"
        else:
            extra = f"; known: {', '.join(sorted(known))}" if known else ""
        return f"{where}: unknown field{extra}"
    if err["type"] == "missing":
        return f"{where}: required field missing"
    return f"{where}: {err['msg']}"


def _known_fields(parent: Path_) -> list[str]:
    from agent.match import model

    classes = {"where": model.Where, "match": model.Match, "frame": model.Frame, "captures": model.Capture,
               "context": model.Context, "threshold": model.Threshold, "incident": model.IncidentPolicy,
               "actions": model.ActionCall, "verify": model.ActionCall, "notify": model.Notify}
    names = [p for p in parent if isinstance(p, str)]
    cls = model.Rule
    if names:
        last = names[-1]
        cls = model.Capture if len(names) >= 2 and names[-2] == "captures" else classes.get(last, model.Rule)
    return list(cls.model_fields)


class _Semantics:
    """What the model alone cannot check."""

    def __init__(self, rule: Rule, file: str, lines: _Lines, actions: dict, stem: str) -> None:
        self.rule, self.file, self.lines, self.actions, self.stem = rule, file, lines, actions, stem
        self.errors: list[RuleError] = []

    def err(self, path: Path_, message: str) -> None:
        self.errors.append(RuleError(self.file, self.lines.line_of(path), message))

    def regex(self, path: Path_, pattern: str | None) -> re.Pattern | None:
        if pattern is None:
            return None
        try:
            return re.compile(pattern)
        except re.error as exc:
            self.err(path, f"{dotted(path)}: bad regular expression: {exc.msg} at position {exc.pos}"
                           f" in {pattern!r}")
            return None

    def check(self) -> list[RuleError]:
        r = self.rule
        if r.id != self.stem:
            self.err(("id",), f"id {r.id!r} must match the file name ({self.stem}.yml);"
                             " a copied rule needs its own id")
        produced: set[str] = set()
        for i, alt in enumerate(r.match):
            for key in ("exception_message", "message", "line"):
                rx = self.regex(("match", i, key), getattr(alt, key))
                if rx is not None:
                    produced |= self.groups(("match", i, key), rx)
            if alt.frame is not None:
                self.regex(("match", i, "frame", "file"), alt.frame.file)
            for field_name, pattern in (alt.request or {}).items():
                rx = self.regex(("match", i, "request", field_name), pattern)
                if rx is not None:
                    produced |= self.groups(("match", i, "request", field_name), rx)
            for name in alt.sets:
                if name not in r.captures:
                    self.err(("match", i, "sets", name),
                             f"sets {name!r}, which is not declared under captures:")
            produced |= set(alt.sets)
            if (r.source == "recorder" or alt.kind == "response") \
                    and (alt.exception or alt.logger or alt.level or alt.frame):
                self.err(("match", i), "a recorder rule matches responses: route, status, message,"
                                       " request, line")
            if r.source == "log" and alt.kind == "response":
                self.err(("match", i, "kind"), "kind response is for rules with source: recorder")
            if (alt.exit_code is not None or alt.oom_killed is not None or alt.terminal is not None
                    or alt.headless is not None) and alt.kind != "exit":
                self.err(("match", i), "exit_code, oom_killed, terminal and headless are conditions of"
                                       " kind: exit")
        if r.incident.quiet is not None and (r.actions or r.verify or r.retry_deploy):
            self.err(("incident", "quiet"), "quiet is for rules that only tell (no actions, verify or"
                                            " retry_deploy): an ongoing condition ends by itself")
        if r.fatal and r.where.roles != ["bot"]:
            self.err(("fatal",), "fatal is for rules about bots (where: {roles: [bot]})")
        context_groups: set[str] = set()
        for i, ctx in enumerate(r.context):
            key = "message" if ctx.message is not None else "traceback"
            rx = self.regex(("context", i, key), ctx.message or ctx.traceback)
            groups: set[str] = set()
            if rx is not None:
                groups = set(rx.groupindex)
                if ctx.deploy and "config" not in groups:
                    self.err(("context", i, "message"), "a deploy context needs a (?P<config>...) group")
                context_groups |= self.groups(("context", i, key), rx, allow={"config"})
            for cap, target in ctx.correlate.items():
                if cap not in r.captures:
                    self.err(("context", i, "correlate", cap),
                             f"correlate names capture {cap!r}, which is not declared")
                if ctx.deploy and target not in FIELDS[ctx.deploy] and target not in groups:
                    self.err(("context", i, "correlate", cap),
                             f"{target!r} is neither a field of {ctx.deploy} nor a group of this context")
        regex_failed = any("bad regular expression" in e.message for e in self.errors)
        for name, spec in r.captures.items():
            self.regex(("captures", name, "pattern"), spec.pattern)
            if name not in produced | context_groups and not regex_failed:
                self.err(("captures", name), f"capture {name!r} is declared but no pattern captures it"
                                             " (add a (?P<" + name + ">...) group)")
        self.template(("incident", "key"), r.incident.key, for_action=False)
        for key in ("title", "text", "next_steps"):
            self.template(("notify", key), getattr(r.notify, key), for_action=False)
        for group in ("actions", "verify"):
            for i, call in enumerate(getattr(r, group)):
                self.action((group, i), call)
                if call.action == RETRY_DEPLOY:
                    self.retry((group, i), group == "actions" and i == len(r.actions) - 1)
        self.telling()
        bot_only = r.where.roles == ["bot"]  # a bot's own deploy is the one to send again
        if r.retry_deploy and r.source == "log" and not r.context and "instance" not in r.captures \
                and "profile" not in r.captures and not bot_only:
            self.err(self.retry_path(), "retry_deploy needs a capture (profile or instance) or a deploy"
                                        " context to find the failed request")
        return self.errors

    def telling(self) -> None:
        """An action that only tells (its result is advice for a person) ends its attempt told:
        listed with actions that change things, verify steps or a deploy retry, its advice would
        be lost and its incident would read as fixed."""
        def tells(call) -> bool:
            return getattr(self.actions.get(call.action), "tells", False)
        r = self.rule
        told = [i for i, c in enumerate(r.actions) if tells(c)]
        for i, call in enumerate(r.verify):
            if tells(call):
                self.err(("verify", i, "action"), f"{call.action} only tells: it is no check; list it"
                                                  " under actions")
        if told and (len(told) < len(r.actions) or r.verify or r.retry_deploy):
            self.err(("actions", told[0], "action"),
                     f"{r.actions[told[0]].action} only tells (its incident ends told, nothing changed):"
                     " a rule's actions are all such actions, without verify or retry_deploy, or none is")

    def retry(self, path: Path_, last: bool) -> None:
        """The deploy retry runs once the fix is verified, on whatever failed deploy the incident
        owns: listed last of the actions, unconditionally."""
        if not last:
            self.err(path, "retry_deploy runs after the verify steps: list it last of the actions")
        if path[0] == "actions" and self.rule.actions[int(path[1])].when:
            self.err((*path, "when"), "retry_deploy takes no when: it re-sends whatever failed deploy"
                                      " the incident owns")

    def retry_path(self) -> Path_:
        """Where the rule asks for the deploy retry: the flag, or the listed action."""
        if ("retry_deploy",) in self.lines.lines:
            return ("retry_deploy",)
        return ("actions", next(i for i, c in enumerate(self.rule.actions) if c.action == RETRY_DEPLOY))

    def groups(self, path: Path_, rx: re.Pattern, allow: set[str] = frozenset()) -> set[str]:
        names = set(rx.groupindex)
        for g in sorted(names - set(self.rule.captures) - allow):
            self.err(path, f"{dotted(path)}: group (?P<{g}>...) is not declared under captures:")
        return names

    def template(self, path: Path_, text: str | None, for_action: bool, telling: bool = False) -> None:
        """`telling`: a parameter of an action that only tells (changes nothing, its result is
        advice for a person, like a message) may name free text too."""
        if not text:
            return
        for m in TEMPLATE.finditer(text):
            ref = m[1]
            if ref.startswith("deploy."):
                if ref[7:] not in DEPLOY_FIELDS:
                    self.err(path, f"{dotted(path)}: {{{ref}}} is not a deploy field; known: "
                                   f"{', '.join(sorted(DEPLOY_FIELDS))}")
                continue
            spec = self.rule.captures.get(ref)
            allowed = ACTION_NAMES if for_action else NAMES
            if spec is None and ref not in allowed:
                known = sorted(self.rule.captures) + sorted(allowed)
                hint = difflib.get_close_matches(ref, known, n=1)
                self.err(path, f"{dotted(path)}: template names {{{ref}}}, which is not a capture"
                               + (f" (did you mean {{{hint[0]}}}?)" if hint else
                                  f"; captures: {', '.join(sorted(self.rule.captures)) or 'none'}"))
            elif spec is not None and for_action and spec.type == "text" and not telling:
                self.err(path, f"{dotted(path)}: capture {ref!r} is free text and may only be used"
                               " in messages and by actions that only tell")

    def action(self, path: Path_, call) -> None:
        for name, pattern in call.when.items():
            if name not in self.rule.captures:
                self.err((*path, "when", name), f"when names {name!r}, which is not a capture")
            self.regex((*path, "when", name), pattern)
        spec = self.actions.get(call.action)
        if spec is None:
            hint = difflib.get_close_matches(call.action, list(self.actions), n=1)
            self.err((*path, "action"), f"unknown action {call.action!r}"
                     + (f" (did you mean {hint[0]!r}?)" if hint
                        else f"; actions: {', '.join(sorted(self.actions))}"))
            return
        fields = spec.params.model_fields
        if getattr(spec.params, "from_evidence", False):  # the failed request, never the rule's
            if call.params:
                self.err((*path, "params"), f"action {call.action} takes no parameters: it sends the"
                                            " failed request as it was")
            return
        for key, value in call.params.items():
            p = (*path, "params", key)
            if key not in fields:
                hint = difflib.get_close_matches(key, list(fields), n=1)
                self.err(p, f"action {call.action} has no parameter {key!r}"
                         + (f" (did you mean {hint[0]!r}?)" if hint else f"; it takes: {', '.join(fields)}"))
                continue
            if isinstance(value, str) and TEMPLATE.search(value):
                self.template(p, value, for_action=True, telling=spec.tells)
                continue
            try:
                TypeAdapter(fields[key].annotation).validate_python(value)
            except ValidationError as exc:
                self.err(p, f"action {call.action}, parameter {key}: {exc.errors()[0]['msg']}")
        for key, info in fields.items():
            if info.is_required() and key not in call.params:
                self.err(path, f"action {call.action} needs parameter {key!r}")


def render(template: str, values: dict[str, Any], wrap: Callable[[str], str] | None = None) -> str:
    """Fill {name} and {deploy.field}; an unknown name renders as (unknown), and a
    `[[ ... ]]` part naming an unknown value is left out. `wrap` marks each value filled in
    (notifications show values, which come from logs, as code)."""
    def sub(m: re.Match) -> str:
        value = values.get(m[1])
        if value is None:
            return "(unknown)"
        return wrap(str(value)) if wrap is not None else str(value)

    def part(m: re.Match) -> str:
        return "" if unresolved(m[1], values) else TEMPLATE.sub(sub, m[1])
    return TEMPLATE.sub(sub, OPTIONAL.sub(part, template))


def unresolved(template: str, values: dict[str, Any]) -> list[str]:
    return [m[1] for m in TEMPLATE.finditer(template) if values.get(m[1]) in (None, "")]


def params_of(call, values: dict[str, Any]) -> dict[str, Any]:
    return {k: render(v, values) if isinstance(v, str) else v for k, v in call.params.items()}

