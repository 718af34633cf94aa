"""Every rule's golden samples (agent.match.samples says the format): each block of
``rules/<id>.samples.log`` replayed alone through the whole rule library.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.match.loader import load_rules
from agent.match.matcher import Matcher
from agent.match.samples import blocks as parse_blocks
from agent.match.samples import check

RULES = Path(__file__).resolve().parent.parent / "rules"
LIBRARY = load_rules(RULES)


def blocks(path: Path) -> list[tuple[int, dict, list[str]]]:
    return parse_blocks(path.read_text())


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
    problem = check(Matcher(LIBRARY.rules), expect, lines)
    assert problem is None, f"{path.name}:{line}: {problem}"


def test_wrapped_failures_policy():
    """A shipped rule finds its exception anywhere in the chain or group (a middleware, a newer
    hummingbot-api or a task group may wrap it): `scope: outermost` needs a written reason (a
    comment on its line or the line above), and a rule that names an exception has a golden
    sample where it is not the outermost one."""
    for rule in LIBRARY.rules:
        text = (RULES / f"{rule.id}.yml").read_text().splitlines()
        for n, line in enumerate(text):
            if line.strip().startswith("scope: outermost"):
                reason = "#" in line or text[n - 1].strip().startswith("#")
                assert reason, f"{rule.id}.yml:{n + 1}: scope: outermost without a comment saying why"
        named = {t for alt in rule.match if alt.kind == "traceback" and alt.scope == "any"
                 for t in alt.exception or []}
        if not named:
            continue
        outermost = [e.get("exception") for _, e, _ in blocks(RULES / f"{rule.id}.samples.log")
                     if e.get("rule") == rule.id]
        wrapped = [x for x in outermost if x and not any(x == t or x.endswith("." + t) for t in named)]
        assert wrapped, f"{rule.id}: no golden sample where {', '.join(sorted(named))} is wrapped"
