"""docs/failures.md is the map users read to know what hb-medic covers: every shipped rule is on
it, and every rule it names is shipped."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_rule_is_in_the_catalogue_and_the_catalogue_names_only_rules():
    doc = (REPO / "docs" / "failures.md").read_text()
    rules = {p.stem for p in (REPO / "rules").glob("*.yml")}
    named = set(re.findall(r"`([a-z0-9][a-z0-9-]+)`", doc))
    assert rules - named == set(), f"rules missing from docs/failures.md: {sorted(rules - named)}"
    looks_like_rules = {n for n in named if n.count("-") >= 1 and n not in rules}
    # the rest of what is quoted: reason classes, commands, file names
    reasons = {"account-missing", "exchange-unreachable", "unknown-connector", "wrong-fields", "not-json",
               "keys-rejected"}
    assert looks_like_rules <= reasons | {"add-credential", "add-account", "delete-account",
                                          "hummingbot-broker", "hummingbot-postgres", "hummingbot-api",
                                          "config-map"}, \
        sorted(looks_like_rules - reasons)
