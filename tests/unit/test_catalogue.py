"""docs/catalogue.yml, the coverage of the failure catalogue, is the one source of the coverage table
in docs/failures.md (made from it, checked here), and every kind it calls recognised or partly
recognised has a sample that its rule really matches, replayed as `hb-medic rules test` replays it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from agent.events import Origin
from agent.ingest.replay import replay_lines
from agent.match.loader import load_rules
from agent.match.matcher import Matcher
from agent.match.samples import blocks, check

REPO = Path(__file__).resolve().parents[2]
CATALOGUE = REPO / "docs" / "catalogue.yml"
DOC = REPO / "docs" / "failures.md"
START, END = "<!-- coverage: made from docs/catalogue.yml -->", "<!-- coverage end -->"
STATUSES = ("recognised", "partly", "not")
FIXABLE = ("yes", "partly", "no")
OUTCOMES = ("fixed", "proposed", "told", "-")
KINDS = yaml.safe_load(CATALOGUE.read_text())["kinds"]
LIBRARY = load_rules(REPO / "rules")


def render(kinds: list[dict]) -> str:
    """The coverage table and its figures, as docs/failures.md shows them."""
    def share(status: str) -> tuple[int, int, int]:
        chosen = [k for k in kinds if k["status"] == status]
        threads = sum(k["threads"] for k in chosen)
        return len(chosen), round(100 * len(chosen) / len(kinds)), round(100 * threads / all_threads)

    all_threads = sum(k["threads"] for k in kinds)
    n, pct, pct_threads = share("recognised")
    pn, ppct, ppct_threads = share("partly")
    lines = [START, "",
             f"**{n} of {len(kinds)} kinds recognised ({pct} %, {pct_threads} % of the {all_threads}"
             f" threads); {pn} more partly ({ppct} %, {ppct_threads} % of the threads).**", "",
             "| # | kind | threads | status | rules | outcome |", "|---|---|---|---|---|---|"]
    for k in kinds:
        rules = ", ".join(f"`{r}`" for r in k["rules"]) or "—"
        outcome = "—" if k["outcome"] == "-" else k["outcome"]
        lines.append(f"| {k['n']} | {k['kind']} | {k['threads']} | {k['status']} | {rules} | {outcome} |")
    return "\n".join([*lines, "", END])


def test_one_entry_per_kind_of_the_catalogue_each_well_formed():
    assert [k["n"] for k in KINDS] == list(range(1, 33))
    assert sum(k["threads"] for k in KINDS) == 127
    shipped = {r.id for r in LIBRARY.rules}
    for k in KINDS:
        assert k["status"] in STATUSES and k["outcome"] in OUTCOMES and k["fixable"] in FIXABLE, k
        assert set(k["rules"]) <= shipped, f"kind {k['n']}: no such rule {set(k['rules']) - shipped}"
        if k["status"] == "not":
            assert k["rules"] == [] and k["outcome"] == "-" and "sample" not in k, k
        else:
            assert k["rules"] and k["outcome"] != "-" and k.get("sample"), \
                f"kind {k['n']} needs rules, an outcome and a sample"


def test_the_table_in_failures_md_is_made_from_the_catalogue():
    doc = DOC.read_text()
    shown = re.search(re.escape(START) + ".*?" + re.escape(END), doc, re.S)
    assert shown is not None, f"docs/failures.md has no coverage table between {START} and {END}"
    want = render(KINDS)
    assert shown[0] == want, \
        f"docs/failures.md's coverage table is not docs/catalogue.yml's; it should be:\n{want}"


def _sample_problem(kind: dict) -> str | None:
    """None when one of the kind's rules matches its sample, else what went wrong."""
    sample = kind["sample"]
    matcher = Matcher(LIBRARY.rules)
    if isinstance(sample, str):
        file, _, line = sample.rpartition(":")
        found = [(e, lines) for n, e, lines in blocks((REPO / file).read_text()) if n == int(line)]
        if not found:
            return f"{sample}: no `# expect` line there"
        expect, lines = found[0]
        if expect.get("rule") not in kind["rules"]:
            return f"{sample} expects {expect.get('rule')}, not one of {kind['rules']}"
        return check(matcher, expect, lines)
    role = sample["role"]
    origin = Origin(sample.get("container", role), sample.get("channel", "merged"), role)
    hits = {r.rule.id for e in replay_lines(sample["lines"], origin.container, origin=origin)
            if (r := matcher.match(e)) is not None}
    return None if hits & set(kind["rules"]) else f"inline sample matched {sorted(hits)}"


@pytest.mark.parametrize("kind", [k for k in KINDS if k["status"] != "not"],
                         ids=lambda k: f"{k['n']}-{k['kind']}")
def test_each_recognised_kind_replays_its_sample_through_its_rule(kind):
    assert _sample_problem(kind) is None, _sample_problem(kind)


def _how(rule_id: str) -> str:
    """What a rule does when it fires: fixed (actions that change something, unasked), proposed
    (the same, once a person approves; or advice from an action that computes the one step),
    told (a message only)."""
    from agent.actions import registry

    rule = next(r for r in LIBRARY.rules if r.id == rule_id)
    actions = registry()
    changing = [c for c in rule.actions if not actions[c.action].tells]
    if changing or rule.retry_deploy:
        return "proposed" if rule.ask else "fixed"
    return "proposed" if rule.actions else "told"


@pytest.mark.parametrize("kind", [k for k in KINDS if k["status"] != "not"],
                         ids=lambda k: f"{k['n']}-{k['kind']}")
def test_the_outcome_is_what_its_rules_do(kind):
    """fixed: one of its rules fixes unasked; proposed: one fixes on approval or computes the one
    step for a person; told: what no rule does more than tell (a telling action's advice may still
    be all a kind gets, e.g. a clock's offset)."""
    hows = {_how(r) for r in kind["rules"]}
    if kind["outcome"] == "fixed":
        assert "fixed" in hows, f"kind {kind['n']}: no rule of {kind['rules']} fixes unasked"
    elif kind["outcome"] == "proposed":
        assert hows & {"fixed", "proposed"}, f"kind {kind['n']}: no rule of {kind['rules']} proposes a step"


def test_every_kind_the_catalogue_calls_safely_fixable_is_fixed_or_proposed():
    """The issue's goal: a kind marked machine-fixable ("yes") is fixed, or proposed as one step
    where it needs a person's consent."""
    short = [(k["n"], k["kind"], k["outcome"]) for k in KINDS
             if k["fixable"] == "yes" and k["outcome"] not in ("fixed", "proposed")]
    assert short == []
