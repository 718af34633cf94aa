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
