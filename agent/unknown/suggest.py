"""`hb-medic rules suggest FINGERPRINT | --from LOGFILE`: a draft rule and its golden
samples from errors no rule knows.

The match is built from the event's structure (for a traceback: the outermost
exception's type and a template of its message, the record's logger and level, and
for a generic exception type the frame that raised it; for a record: its logger,
level and message template; for a recorded deploy: route, status, message), with
the variable parts as named captures of a safe type. The samples file holds the
real samples, the nearest other unknown errors as near misses, and hostile values
in the captures. A draft is written only after it passes `rules check` and every
one of its samples against the whole library.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import yaml

from agent.events import BOT, LINE, RESPONSE, TRACEBACK, Event, Origin, normalise
from agent.ingest.replay import open_input, replay_lines
from agent.match.library import load_library
from agent.match.loader import load_rules
from agent.match.matcher import Matcher
from agent.match.samples import blocks, check
from agent.records import Unknown
from agent.redact import Redactor
from agent.state import State
from agent.unknown.generalise import Template, generalise
from agent.unknown.tracker import summary_of, worth_a_look

GENERIC = {"Exception", "RuntimeError", "ValueError", "TypeError", "KeyError", "AttributeError",
           "IndexError", "AssertionError", "OSError", "IOError", "NameError", "LookupError"}
HOSTILE = "$(reboot)"
NEAR_MISSES = 3


class SuggestError(Exception):
    """Nothing to draft, or no draft that passes its own checks."""


@dataclass
class Family:
    """One fingerprint's events, from the state file or a log file."""

    entry: Unknown
    events: list[Event] = field(default_factory=list)  # the samples, assembled again


def _events_of(entry: Unknown) -> list[Event]:
    out = []
    for s in entry.samples:
        text = s["text"]
        if text.startswith("RECORDED "):
            from agent.recorder.events import event_from_exchange

            out.append(event_from_exchange(**json.loads(text[len("RECORDED "):])))
            continue
        container = s.get("container") or entry.container
        evs = [e for e in replay_lines(text.splitlines(), container, origin=_origin(entry, container))
               if worth_a_look(e)]
        out += evs[:1]
    return out


def _origin(entry: Unknown, container: str) -> Origin | None:
    """How a sample is replayed: a bot's lines through their channel, hummingbot-api's merged."""
    return Origin(container, entry.stream, BOT, entry.stack) if entry.role == BOT else None


def _source(entry: Unknown) -> dict:
    """The samples file's `# replay:` line for a bot's samples."""
    return {"role": BOT, "channel": entry.stream} if entry.role == BOT else {}


# -- where the families come from ---------------------------------------------------------------
def from_store(store: State, fingerprint: str) -> tuple[Family, list[Family]]:
    found = store.unknown.find(fingerprint)
    if not found:
        raise SuggestError(f"no error no rule knows has the fingerprint {fingerprint!r} (or it is not a"
                           " unique prefix): see hb-medic unknown")
    entry = found[0]
    for other in found[1:]:  # the same error in other stacks
        entry.containers += [c for c in other.containers if c not in entry.containers]
    others = [Family(e, _events_of(e)) for e in store.unknown.most_frequent(limit=1000)
              if e.fingerprint != entry.fingerprint]
    return Family(entry, _events_of(entry)), others


def from_log(path: str, container: str, rules_dir: str | None, origin: Origin | None = None) -> list[Family]:
    """Every error no rule knows in a saved `docker logs` output (or a bot's log file, with
    its origin), by fingerprint."""
    library = _library(rules_dir)
    matcher = Matcher(library.rules)
    redactor = Redactor()
    families: dict[str, Family] = {}
    try:
        fh = open_input(path)
    except OSError as exc:
        raise SuggestError(f"cannot read {path}: {exc.strerror}") from exc
    with fh:
        for event in replay_lines(fh, container, origin=origin):
            if not worth_a_look(event) or matcher.match(event) is not None:
                continue
            fam = families.get(event.fingerprint)
            at = event.ts / 1e9 if event.ts else 0.0
            if fam is None:
                header = event.header
                fam = families[event.fingerprint] = Family(Unknown(
                    stack="default", fingerprint=event.fingerprint, container=container,
                    containers=[container],
                    stream=event.stream, kind=event.kind, logger=header.logger if header else None,
                    level=event.level, exceptions=[x.type for x in event.exceptions],
                    summary=redactor.text(summary_of(event)), count=0, first_seen=at, last_seen=at,
                    role=event.role))
            fam.entry.count += 1
            fam.entry.last_seen = at
            n = fam.entry.count
            if n == 1 or n & (n - 1) == 0 or len(fam.events) < 3:  # first, in between, latest
                fam.events = [*fam.events[:1], *fam.events[1:][-1:], event][:3]
            else:
                fam.events[-1] = event
    for fam in families.values():  # a secret in the log is in neither the draft nor its samples
        fam.events = [_redacted(e, redactor, container, origin) for e in fam.events]
    return list(families.values())


def _redacted(event: Event, redactor: Redactor, container: str, origin: Origin | None) -> Event:
    """The event assembled again from its redacted lines (its fingerprint stays the one the
    agent counts it under)."""
    again = [e for e in replay_lines([redactor.text(x) for x in event.lines], container, origin=origin)
             if worth_a_look(e)]
    return again[0] if again else event


def _library(rules_dir: str | None):
    library = load_library(rules_dir)
    if library.errors:
        raise SuggestError("the rules have errors (see hb-medic rules check):\n"
                           + "\n".join(str(e) for e in library.errors))
    return library


# -- the draft ----------------------------------------------------------------------------------
@dataclass
class Draft:
    id: str
    rule: dict
    yaml_text: str
    samples_text: str
    checked: str  # what was checked, for the message


def _slug(text: str) -> str:
    text = re.sub(r"([a-z0-9])([A-Z])|([A-Z])([A-Z][a-z])", r"\1\3-\2\4", text)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def default_id(fam: Family) -> str:
    e = fam.entry
    parts = [e.logger.rsplit(".", 1)[-1] if e.logger else ""]
    if e.kind == TRACEBACK and e.exceptions:
        parts.append(e.exceptions[-1].rsplit(".", 1)[-1])
    elif e.kind == RESPONSE and fam.events:
        d = fam.events[0].data or {}
        parts = [str(d.get("route", "deploy")), "failed"]
    else:
        parts.append(" ".join(normalise(e.summary).replace("<n>", "").split()[:4]))
    slug = _slug(" ".join(p for p in parts if p))[:48].strip("-")
    return slug if len(slug) >= 2 else "unknown-error"


def _exception_message(event: Event) -> str:
    exc = event.outermost
    return exc.message if exc is not None else ""


def _frame_condition(event: Event) -> dict | None:
    frames = [f for f in event.frames if f.in_app] or event.outer_frames
    if not frames:
        return None
    f = frames[-1]
    module = f.file.rsplit("/", 1)[-1]
    return {"file": re.escape(module) + "$", "function": f.function} if f.function else None


def _match(fam: Family, literal_values: bool) -> tuple[dict, Template]:
    e, events = fam.entry, fam.events
    first = events[0]
    if e.kind == TRACEBACK:
        tmpl = generalise([_exception_message(x) for x in events], literal_values)
        exception = first.outermost.type if first.outermost else "Exception"
        match: dict = {"kind": "traceback", "exception": exception, "exception_message": tmpl.regex}
        if first.header is not None:
            match["logger"] = first.header.logger
            match["level"] = first.header.level
        short = match["exception"].rsplit(".", 1)[-1]
        if short in GENERIC and (frame := _frame_condition(first)):
            match["frame"] = frame
        return match, tmpl
    if e.kind == RESPONSE:
        tmpl = generalise([str((x.data or {}).get("message", "")) for x in events], literal_values)
        d = first.data or {}
        return {"kind": "response", "route": d.get("route"), "status": d.get("status"),
                "message": tmpl.regex}, tmpl
    tmpl = generalise([x.message for x in events], literal_values)
    header = first.header
    assert header is not None
    return {"kind": "line", "logger": header.logger, "level": header.level, "message": tmpl.regex}, tmpl


def _stream(fam: Family) -> str | None:
    if fam.entry.stream in ("stdout", "stderr"):
        return fam.entry.stream
    # A merged log: Python's logging and its tracebacks write to stderr.
    return "stderr" if fam.entry.kind in (TRACEBACK, LINE) else None


def build(fam: Family, rule_id: str, literal_values: bool = False) -> dict:
    e = fam.entry
    match, tmpl = _match(fam, literal_values)
    severity = "critical" if e.level == "CRITICAL" else "error"
    what = (f"{match['exception'].rsplit('.', 1)[-1]} from {e.logger or 'a traceback'}" if e.kind == TRACEBACK
            else f"failed {match['route']} deploy" if e.kind == RESPONSE
            else f"{e.level} from {e.logger}")
    rule: dict = {"id": rule_id,
                  "description": f"Drafted from an error no rule knew ({e.fingerprint}): {what}.",
                  "severity": severity}
    if e.kind == RESPONSE:
        rule["source"] = "recorder"
    elif e.role == BOT:  # bots are named by their deploy (and stamped): by role and channel
        rule["where"] = {"roles": [BOT], "channels": [e.stream]}
    else:
        where: dict = {"containers": list(dict.fromkeys(e.containers or [e.container]))}
        if (stream := _stream(fam)) is not None:
            where["stream"] = stream
        rule["where"] = where
    rule["match"] = [match]
    rule["captures"] = {name: {"type": spec.type, **spec.model_dump(exclude_defaults=True, exclude={"type"})}
                        for name, spec in tmpl.captures.items()}
    if not rule["captures"]:
        del rule["captures"]
    rule["incident"] = {"cooldown": 3600}
    rule["observe_only"] = True
    # What a person reads: the agent's own words, the log's text only as values ({message},
    # {exception}), which every channel shows as code; a title carries nothing from a log.
    seen = "{container}" if e.kind != RESPONSE else "the deploy recorder"
    said = ("printed a traceback ({exception}) on {stream}; its record, quoted:" if e.kind == TRACEBACK
            else "printed on {stream}, quoted:")
    rule["notify"] = {
        "title": f"Drafted rule {e.fingerprint} matched in {seen}",
        "text": f"{seen} {said} {{message}}" if e.kind != RESPONSE
        else f"hummingbot-api answered a {match['route']} deploy with (quoted): {{message}}",
        "next_steps": "A drafted rule: find out what causes this, then give the rule actions or keep it"
                      " notify-only (and drop observe_only)."}
    return rule


def _yaml(rule: dict, fam: Family) -> str:
    e = fam.entry
    caps = ", ".join(f"{n} ({c['type']})" for n, c in rule.get("captures", {}).items()) or "none"
    head = [
        f"# DRAFT written by hb-medic rules suggest from {e.fingerprint} ({e.count:,} occurrence"
        f"{'s' if e.count != 1 else ''}, first seen"
        f" {time.strftime('%Y-%m-%d %H:%M', time.gmtime(e.first_seen))} UTC).",
        "# It matches every stored sample and none of the nearest other unknown errors; before you use it:",
        "#  - the match: keep literal what identifies the problem, widen what varies (captures: "
        f"{caps});",
        "#  - where: the containers and stream it should watch;",
        "#  - severity and notify: what a person needs to read at 3 a.m.;",
        "#  - observe_only: true until it has proved itself (it notifies, never acts).",
        f"# Then copy {rule['id']}.yml and {rule['id']}.samples.log into your rules folder and run:"
        " hb-medic rules check",
    ]
    body = yaml.safe_dump(rule, sort_keys=False, allow_unicode=True, width=100)
    return "\n".join(head) + "\n" + body


def _expect(d: dict) -> str:
    return "# expect: " + json.dumps(d, ensure_ascii=False)


def _texts(fam: Family) -> list[str]:
    if fam.entry.samples:
        return [s["text"] for s in fam.entry.samples]
    return [_sample_text(x) for x in fam.events]


def _sample_text(event: Event) -> str:
    from agent.unknown.tracker import sample_text

    return sample_text(event, Redactor())


def _similarity(a: Unknown, b: Unknown) -> float:
    score = 2.0 if a.logger and a.logger == b.logger else 0.0
    score += len(set(a.exceptions) & set(b.exceptions))
    score += 1.0 if a.kind == b.kind else 0.0
    wa, wb = set(normalise(a.summary).split()), set(normalise(b.summary).split())
    return score + (len(wa & wb) / len(wa | wb) if wa | wb else 0.0)


def _near_misses(fam: Family, others: list[Family]) -> list[tuple[str, str]]:
    ranked = sorted((o for o in others if o.events or o.entry.samples),
                    key=lambda o: -_similarity(fam.entry, o.entry))
    out = [(f"near miss: another error no rule knows ({o.entry.fingerprint}, {o.entry.summary[:80]})",
            _texts(o)[-1]) for o in ranked[:NEAR_MISSES] if _texts(o)]
    return [(why, text) for why, text in out if text.strip()]


def _made_near_miss(fam: Family, text: str) -> tuple[str, str] | None:
    """When no other unknown error is at hand: the sample changed where the draft must look."""
    lines = text.splitlines()
    e = fam.entry
    if e.kind == TRACEBACK and e.exceptions:
        outer = e.exceptions[-1]
        for i in range(len(lines) - 1, -1, -1):
            if lines[i].startswith(outer + ":") or lines[i] == outer:
                other = "ZeroDivisionError" if outer != "ZeroDivisionError" else "OverflowError"
                lines[i] = other + lines[i][len(outer):]
                return f"near miss (made from the sample): {other} instead of {outer}", "\n".join(lines)
    if e.kind == LINE and e.level and lines and f" - {e.level} - " in lines[0]:
        lines[0] = lines[0].replace(f" - {e.level} - ", " - INFO - ", 1)
        return "near miss (made from the sample): the same text at INFO", "\n".join(lines)
    return None


def _hostile(rule: dict, matcher: Matcher, fam: Family, texts: list[str], container: str
             ) -> list[tuple[str, dict, str]]:
    """The first sample with each capture's value replaced by a hostile one."""
    out: list[tuple[str, dict, str]] = []
    first, text = fam.events[0], texts[0]
    res = matcher.match(first)
    if res is None or res.rule.id != rule["id"]:
        return out
    kind = rule["match"][0]["kind"]
    source = (_exception_message(first) if kind == "traceback" else first.message).split("\n", 1)[0]
    rx = re.compile(rule["match"][0]["exception_message" if kind == "traceback" else "message"])
    m = rx.search(source)
    if m is None:
        return out
    for name, value in m.groupdict().items():
        spec = rule.get("captures", {}).get(name, {})
        if value is None or spec.get("type") == "text" or len(out) >= 3:
            continue
        changed = source[:m.start(name)] + HOSTILE + source[m.end(name):]
        at = text.rfind(source) if kind == "traceback" else text.find(source)
        if at < 0:
            continue
        sample = text[:at] + changed + text[at + len(source):]
        replayed = list(replay_lines(sample.splitlines(), container, origin=_origin(fam.entry, container)))
        hit = next((r for x in replayed if (r := matcher.match(x)) is not None), None)
        if hit is not None and hit.rule.id == rule["id"]:
            out.append((f"hostile value in capture {name}: matched, and refused", {"rule": rule["id"],
                        "refused": True}, sample))
        else:
            out.append((f"hostile value in capture {name}: no match", {"not": rule["id"]}, sample))
    return out


def draft(fam: Family, others: list[Family], rule_id: str, rules_dir: str | None) -> Draft:
    """The draft and its samples, checked like `rules check` and the library's sample test."""
    if not fam.events:
        raise SuggestError(f"{fam.entry.fingerprint} has no sample to draft from")
    library = _library(rules_dir)
    known = Matcher(library.rules)
    for event in fam.events:
        res = known.match(event)
        if res is not None:
            raise SuggestError(f"{fam.entry.fingerprint} is recognised by the rule {res.rule.id} now:"
                               " no draft needed (see hb-medic rules test)")
    taken = {r.id for r in library.rules}
    base, n = rule_id, 2
    while rule_id in taken:
        rule_id, n = f"{base}-{n}", n + 1
    problems = []
    for literal_values in (False, True):
        rule = build(fam, rule_id, literal_values)
        try:
            return _checked(rule, fam, others, library)
        except SuggestError as exc:
            problems.append(str(exc))
    raise SuggestError(f"no draft for {fam.entry.fingerprint} passes its own checks: " + "; ".join(problems))


def _checked(rule: dict, fam: Family, others: list[Family], library) -> Draft:
    container = ((rule.get("where") or {}).get("containers") or [fam.entry.container])[0]
    yaml_text = _yaml(rule, fam)
    with tempfile.TemporaryDirectory(prefix="hb-medic-draft-") as tmp:
        path = Path(tmp) / f"{rule['id']}.yml"
        path.write_text(yaml_text)
        loaded = load_rules(tmp)
    if loaded.errors:
        raise SuggestError("the draft does not pass rules check: " + "; ".join(str(e) for e in loaded.errors))
    (compiled,) = loaded.rules
    rules = [*library.rules, compiled]
    texts = _texts(fam)
    parts = [f"# Golden samples of the DRAFT {rule['id']} (hb-medic rules suggest, from"
             f" {fam.entry.fingerprint}): its stored samples, the nearest other errors no rule knows,",
             "# and hostile values in its captures."]
    if source := _source(fam.entry):
        parts.append("# replay: " + json.dumps(source))
    origin = _origin(fam.entry, container)
    for i, text in enumerate(texts, 1):
        events = (list(replay_lines(text.splitlines(), container, origin=origin))
                  if not text.startswith("RECORDED ") else [])
        res = next((r for x in events if (r := Matcher(rules).match(x)) is not None), None)
        expect: dict = {"rule": rule["id"]}
        if res is not None and res.rule.id == rule["id"] and res.captures:
            expect["captures"] = dict(res.captures)
        parts += [f"# sample {i} of {len(texts)}", _expect(expect), text]
    misses = _near_misses(fam, others)
    if not misses and (made := _made_near_miss(fam, texts[0])):
        misses = [made]
    for why, text in misses:
        parts += [f"# {why}", _expect({"not": rule["id"]}), text]
    if fam.entry.kind != RESPONSE:
        for why, expect, text in _hostile(rule, Matcher(rules), fam, texts, container):
            parts += [f"# {why}", _expect(expect), text]
    samples_text = "\n".join(parts) + "\n"
    failures = []
    for line, expect, lines in blocks(samples_text):
        problem = check(Matcher(rules), expect, lines, container)
        if problem is not None:
            failures.append(f"samples line {line}: {problem[:300]}")
    if failures:
        raise SuggestError("; ".join(failures))
    n_rule = sum(1 for _, e, _ in blocks(samples_text) if e.get("rule") and not e.get("refused"))
    n_not = sum(1 for _, e, _ in blocks(samples_text) if "not" in e)
    checked = (f"rules check passed; {n_rule} sample(s) matched, {n_not} near miss(es) and hostile"
               " value(s) not acted on")
    return Draft(rule["id"], rule, yaml_text, samples_text, checked)


# -- the command ----------------------------------------------------------------------------------
def suggest(*, fingerprint: str | None, from_file: str | None, store: State | None, rule_id: str | None,
            out_dir: str | None, rules_dir: str | None, container: str = "hummingbot-api",
            origin: Origin | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if from_file is not None:
        families = from_log(from_file, origin.container if origin else container, rules_dir, origin)
        if fingerprint is not None:
            chosen = [f for f in families if f.entry.fingerprint.startswith(fingerprint)]
            if len(chosen) != 1:
                raise SuggestError(f"{len(chosen)} errors no rule knows in {from_file} have the fingerprint"
                                   f" {fingerprint!r}")
        else:
            chosen = [f for f in families if f.entry.count >= 2]
            if not chosen:
                print(f"no recurring error no rule knows in {from_file} ({len(families)} seen once)",
                      file=out)
                return 0
        pairs = [(f, [o for o in families if o is not f]) for f in chosen]
    else:
        assert store is not None and fingerprint is not None
        pairs = [from_store(store, fingerprint)]
    drafts: list[Draft] = []
    used: set[str] = set()
    for n, (fam, others) in enumerate(pairs, 1):
        wanted = rule_id if rule_id and len(pairs) == 1 else f"{rule_id}-{n}" if rule_id else default_id(fam)
        base, k = wanted, 2
        while wanted in used:
            wanted, k = f"{base}-{k}", k + 1
        used.add(wanted)
        drafts.append(draft(fam, others, wanted, rules_dir))
    return _emit(drafts, out_dir, out)


def _emit(drafts: Iterable[Draft], out_dir: str | None, out: TextIO) -> int:
    for d in drafts:
        if out_dir is None:
            print(f"# ---- {d.id}.yml", file=out)
            print(d.yaml_text, end="", file=out)
            print(f"# ---- {d.id}.samples.log", file=out)
            print(d.samples_text, end="", file=out)
            continue
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        rule_path, samples_path = folder / f"{d.id}.yml", folder / f"{d.id}.samples.log"
        for p in (rule_path, samples_path):
            if p.exists():
                raise SuggestError(f"{p} exists: remove it or choose another --id")
        rule_path.write_text(d.yaml_text)
        samples_path.write_text(d.samples_text)
        print(f"wrote {rule_path} and {samples_path} ({d.checked})", file=out)
    if out_dir is not None:
        print(f"review them, then copy both files into your rules folder (MEDIC_RULES_DIR); check with:"
              f" hb-medic rules check --rules {out_dir}", file=out)
    return 0
