"""The shipped rules are used from any folder; a user's folder adds rules and overrides by id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from agent.match.library import load_library, shipped_dir

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.stem for p in (REPO / "rules").glob("*.yml"))
LOG = REPO / "tests" / "real_logs" / "b_current_ee7ce5c_deploy_missing_profile.log"

# The shipped rule, changed the way an operator might: observe only, another title.
OVERRIDE = "".join(line for line in (REPO / "rules" / "credentials-profile-missing.yml").read_text()
                   .splitlines(keepends=True) if "- action: retry_deploy" not in line)
EXTRA = """\
id: my-extra
description: an operator's own rule
severity: warning
match:
  - kind: line
    level: ERROR
    message: "^Something of mine broke$"
notify: {title: mine, text: mine}
"""


def hb_medic(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "MEDIC_RULES_DIR"}
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, cwd=cwd,
                          env={**environ, "PYTHONPATH": str(REPO), **(env or {})}, timeout=60)


def test_shipped_rules_are_found_from_any_folder(tmp_path):
    assert shipped_dir().resolve() == (REPO / "rules").resolve()  # a checkout: the repository's folder
    check = hb_medic("rules", "check", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith(f"{len(SHIPPED)} rules OK: {len(SHIPPED)} shipped")
    test = hb_medic("rules", "test", "--json", str(LOG), cwd=tmp_path)
    assert test.returncode == 0, test.stderr
    rules = [json.loads(line)["rule"] for line in test.stdout.splitlines()]
    assert "credentials-profile-missing" in rules


def test_a_users_folder_adds_rules_and_overrides_by_id(tmp_path):
    own = tmp_path / "my-rules"
    own.mkdir()
    (own / "credentials-profile-missing.yml").write_text(OVERRIDE)
    (own / "my-extra.yml").write_text(EXTRA)
    lib = load_library(own)
    assert not lib.errors
    assert lib.overridden == ["credentials-profile-missing"]
    assert (lib.shipped_count, lib.user_count, len(lib.rules)) == (len(SHIPPED), 2, len(SHIPPED) + 1)
    assert lib.describe() == (f"{len(SHIPPED) + 1} rules ({len(SHIPPED)} shipped, 2 from {own}); "
                              f"{own} overrides shipped: credentials-profile-missing")

    check = hb_medic("rules", "check", "--rules", str(own), cwd=tmp_path)
    assert check.returncode == 0, check.stdout
    assert f"{len(SHIPPED)} shipped" in check.stdout and f"2 from {own}" in check.stdout
    assert (f"credentials-profile-missing: the shipped rule is overridden by {own}/"
            "credentials-profile-missing.yml") in check.stdout
    # MEDIC_RULES_DIR does the same as --rules, and the override is the rule in force.
    test = hb_medic("rules", "test", "--json", str(LOG), cwd=tmp_path, env={"MEDIC_RULES_DIR": str(own)})
    hit = next(json.loads(x) for x in test.stdout.splitlines() if "credentials-profile-missing" in x)
    assert "retry_deploy" not in hit["actions"]
    plain = hb_medic("rules", "test", "--json", str(LOG), cwd=tmp_path)
    hit = next(json.loads(x) for x in plain.stdout.splitlines() if "credentials-profile-missing" in x)
    assert "retry_deploy" in hit["actions"]


def test_naming_the_shipped_folder_itself_overrides_nothing():
    lib = load_library(REPO / "rules")
    assert lib.user is None and not lib.overridden and len(lib.rules) == len(SHIPPED)


def test_errors_in_the_users_folder_name_its_file(tmp_path):
    (tmp_path / "broken.yml").write_text("id: broken\nseverity: [\n")
    check = hb_medic("rules", "check", "--rules", str(tmp_path), cwd=tmp_path)
    assert check.returncode == 1
    assert f"{tmp_path / 'broken.yml'}:3: not valid YAML" in check.stdout
    missing = hb_medic("rules", "check", "--rules", str(tmp_path / "nope"), cwd=tmp_path)
    assert missing.returncode == 1 and f"{tmp_path / 'nope'}:1: rules folder not found" in missing.stdout
