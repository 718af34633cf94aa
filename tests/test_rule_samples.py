"""Every rule's golden samples, in the style of fail2ban's sample logs.

Beside each ``rules/<id>.yml`` lies ``rules/<id>.samples.log``: real-format log
excerpts, each block headed by ``# expect: {json}``. A block is replayed alone,
through the real assembler and the whole rule library, and must give:

- ``"rule": id`` — an event matched by that rule, whose other keys (``captures``,
  ``refused`` (true, false, or null), ``exception``, ``exceptions``, ``deploy``,
  ``actions``) equal the expectation, as in ``rules test --json``;
- ``"not": id`` — no event of the block matched by that rule (a near miss).

Recorder rules see deploy exchanges, not log lines: their samples are
``RECORDED {json}`` lines (route, status, request body, response message).
Rules about a bot's death see exit events: ``EXITED {json}`` lines (exit_code,
lived, oom_killed, and the bot's last lines: last_console, last_errors).

A bot's output comes through other channels: a ``# replay: {"role": "bot",
"channel": "errors"}`` line says where the blocks after it come from (as
``rules test --role bot --channel errors`` would replay them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.events import Origin, exit_event
from agent.ingest.replay import replay_lines
from agent.match.loader import load_rules
from agent.match.matcher import Matcher
from agent.recorder.events import event_from_exchange
from agent.rules_cmd import as_json

RULES = Path(__file__).resolve().parent.parent / "rules"
LIBRARY = load_rules(RULES)


def blocks(path: Path) -> list[tuple[int, dict, list[str]]]:
    out: list[tuple[int, dict, list[str]]] = []
    source: dict = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("# replay: "):
            source = json.loads(line[len("# replay: "):])
        elif line.startswith("# expect: "):
            out.append((n, {**json.loads(line[len("# expect: "):]), "_source": source}, []))
        elif line.startswith("# ") or line == "#":
            continue
        elif out:
            out[-1][2].append(line)
    return out


CASES = [pytest.param(path, n, expect, lines, id=f"{path.name.split('.')[0]}:{n}")
         for path in sorted(RULES.glob("*.samples.log")) for n, expect, lines in blocks(path)]


def test_library_loads_clean():
    assert [str(e) for e in LIBRARY.errors] == []


def test_every_rule_has_positive_and_near_miss_samples():
    for rule in LIBRARY.rules:
        path = RULES / f"{rule.id}.samples.log"
        assert path.is_file(), f"{rule.id} has no samples"
        kinds = [("rule" if e.get("rule") == rule.id else "not" if e.get("not") == rule.id else "")
                 for _, e, _ in blocks(path)]
        assert "rule" in kinds and "not" in kinds, f"{rule.id}: needs a match and a near miss"


@pytest.mark.parametrize(("path", "line", "expect", "lines"), CASES)
def test_sample(path, line, expect, lines):
    matcher = Matcher(LIBRARY.rules)
    source = expect.pop("_source")
    if all(x.startswith("RECORDED ") for x in lines):
        events = [event_from_exchange(n=i, **json.loads(x[len("RECORDED "):]))
                  for i, x in enumerate(lines, 1)]
    elif all(x.startswith("EXITED ") for x in lines):
        events = [exit_event("rb_x-20261129-073004", ts=i, **json.loads(x[len("EXITED "):]))
                  for i, x in enumerate(lines, 1)]
    elif source:
        origin = Origin(source.get("container", "rb_a-20261129-072744"), source["channel"], source["role"])
        events = list(replay_lines(lines, origin.container, origin=origin))
    else:
        events = list(replay_lines(lines, "hummingbot-api"))
    results = [as_json(e, matcher.match(e)) for e in events]
    if "not" in expect:
        assert all(r["rule"] != expect["not"] for r in results), results
    if expect.get("rule"):
        hits = [r for r in results if r["rule"] == expect["rule"]]
        assert hits, f"{path.name}:{line}: no event matched {expect['rule']}: {results}"
        got = hits[-1]
        for key, want in expect.items():
            if key in ("rule", "not"):
                continue
            if key == "refused" and isinstance(want, bool):
                assert (got["refused"] is not None) == want, got
            else:
                assert got[key] == want, f"{key}: {got[key]!r} != {want!r}"
