"""The matcher: precedence, thresholds, context, and hostile captures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ingest.replay import replay_lines
from agent.match.loader import load_rules
from agent.match.matcher import Matcher, required_literal
from agent.match.model import Rule

REPO = Path(__file__).resolve().parent.parent.parent
LIBRARY = load_rules(REPO / "rules").rules
TS = "2026-06-29 14:03:07,515"


def results(lines, rules=LIBRARY):
    m = Matcher(rules)
    return [(e, m.match(e)) for e in replay_lines(lines, "hummingbot-api")]


def rule(**over) -> Rule:
    base = {"id": "rule-x", "description": "d", "severity": "warning",
            "match": {"kind": "line", "level": "ERROR", "message": "boom"},
            "notify": {"title": "t", "text": "x"}}
    return Rule.model_validate({**base, **over})


def test_precedence_priority_then_specificity_then_id():
    general = rule(id="b-general", match={"level": "ERROR", "message": "boom"})
    specific = rule(id="c-specific", match={"level": "ERROR", "logger": "root", "message": "boom"})
    alpha = rule(id="a-general", match={"level": "ERROR", "message": "boom"})
    line = [f"{TS} - root - ERROR - boom"]
    assert results(line, [general, specific, alpha])[0][1].rule.id == "c-specific"
    assert results(line, [general, alpha])[0][1].rule.id == "a-general"
    urgent = rule(id="z-urgent", priority=5, match={"level": "ERROR", "message": "boom"})
    assert results(line, [general, specific, urgent])[0][1].rule.id == "z-urgent"


def test_threshold_counts_within_the_window_per_key():
    r = rule(threshold={"count": 3, "window": 10}, actions=[])
    lines = [f"2026-06-29 14:03:{s:02d},000 - root - ERROR - boom" for s in (0, 1, 30, 31, 32)]
    stamped = [f"2026-06-29T14:03:{s:02d}.000000000Z {line}" for s, line in zip((0, 1, 30, 31, 32), lines,
                                                                                strict=True)]
    below = [res.below_threshold for _, res in results(stamped, [r])]
    assert below == [True, True, True, True, False]


def test_gate_skips_lines_no_rule_could_match():
    m = Matcher(LIBRARY)
    assert m._gates and not m._ungated
    noise = 'INFO:     127.0.0.1:1 - "GET /accounts/ HTTP/1.1" 200 OK'
    assert not any(g in noise for g in m._gates)
    assert required_literal(r"^Error deploying V2 (?:script|controllers): x") == "Error deploying V2 "
    assert required_literal(r"^(?P<a>\w+)$") is None


def test_seed_matches_in_both_generations_and_plans_the_fix():
    legacy = (REPO / "tests/real_logs").glob("a_*.log")
    # The background noise of a host without internet is exchange-unreachable (below its threshold).
    (_event, res), = [(e, r) for e, r in results(next(legacy).read_text().splitlines())
                      if r and r.rule.id != "exchange-unreachable"]
    assert res.rule.id == "credentials-profile-missing"
    assert res.captures == {"profile": "client_sharp"}
    assert res.actions == ["ensure_account", "provision_credentials", "retry_deploy"]
    assert res.action_params() == [("ensure_account", {"profile": "client_sharp"}, []),
                                   ("provision_credentials", {"profile": "client_sharp"}, [])]


def test_incomplete_profile_without_body_leaves_the_profile_unknown():
    line = [f"{TS} - root - ERROR - Error deploying V2 script: YAML file "
            "'instances/half-bot-20261129-015015/conf/conf_client.yml' not found"]
    (_, res), = results(line)
    assert res.rule.id == "credentials-profile-incomplete"
    assert res.action_params() == [("ensure_account", {"profile": "(unknown)"},
                                    ["deploy.credentials_profile"])]


HOSTILE = st.one_of(
    st.text(min_size=1, max_size=80).filter(lambda s: "'" not in s and "\n" not in s and "\r" not in s),
    st.sampled_from(["../../etc", "a/b", "x;rm -rf /", "$(reboot)", "`id`", "a b", "-rf", "..", "a" * 65,
                     "x|y", "x&y", "x>y", "\x00", "prof\u200b"]),
)


@settings(max_examples=300, deadline=None)
@given(HOSTILE)
def test_property_hostile_profiles_never_reach_an_action(value):
    line = [f"{TS} - root - ERROR - Error deploying V2 script: [Errno 2] No such file or directory: "
            f"'bots/credentials/{value}'"]
    for _, res in results(line):
        if res is None or res.rule.id != "credentials-profile-missing":
            continue
        if res.refused is None:
            assert res.captures["profile"] == value
            for _, params, _ in res.action_params():
                assert all((ch.isalnum() and ch.isascii()) or ch in "_-" for ch in params["profile"])
                assert len(params["profile"]) <= 64
        else:
            assert res.actions == []


def run_cli(*args, stdin: bytes | None = None):
    return subprocess.run([sys.executable, "-m", "agent", "rules", "test", *args], input=stdin,
                          capture_output=True, cwd=REPO)


def test_rules_test_json_contract_and_crlf_and_stdin():
    path = REPO / "tests/real_logs/a_legacy_fdf35f5_deploy_missing_profile.log"
    out = run_cli("--json", str(path))
    assert out.returncode == 0, out.stderr
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    keys = ["rule", "captures", "refused", "exception", "exceptions", "fingerprint", "first_line",
            "last_line", "deploy", "actions"]
    assert all(list(r) == keys for r in rows)
    noise = [r for r in rows if r["rule"] == "exchange-unreachable"]
    assert {r["captures"]["exchange"] for r in noise} == {"binance"}  # the rate oracle's DNS failure
    seed = [r for r in rows if r["rule"] and r not in noise]
    assert seed == [{"rule": "credentials-profile-missing", "captures": {"profile": "client_sharp"},
                     "refused": None, "exception": "FileNotFoundError", "exceptions": ["FileNotFoundError"],
                     "fingerprint": seed[0]["fingerprint"], "first_line": 81, "last_line": 164,
                     "deploy": None, "actions": ["ensure_account", "provision_credentials", "retry_deploy"]}]
    unmatched = [r for r in rows if r["rule"] is None]
    assert unmatched == []
    crlf = path.read_bytes().replace(b"\n", b"\r\n")
    via_stdin = run_cli("--json", "-", stdin=crlf)
    assert [json.loads(x) for x in via_stdin.stdout.splitlines()] == rows


def test_rules_test_human_output(tmp_path):
    log = tmp_path / "mixed.log"
    seed = (REPO / "tests/real_logs/a_legacy_fdf35f5_deploy_missing_profile.log").read_text()
    log.write_text(
        f"{TS} - root - INFO - Creating hummingbot instance with config: instance_name='sharp-bot' "
        "credentials_profile='client_sharp' image='hummingbot/hummingbot:latest' script=None "
        "script_config='sharp.yml' headless=False\n"
        + "".join(line.split(" ", 1)[1] for line in seed.splitlines(keepends=True))
        + f"{TS} - root - ERROR - Error deploying V2 script: [Errno 2] No such file or directory: "
        "'bots/credentials/../etc'\n")
    out = run_cli(str(log))
    text = out.stdout.decode()
    assert out.returncode == 0
    assert "rule      credentials-profile-missing (critical)" in text
    assert "captures  profile='client_sharp'" in text
    assert "refused   capture profile='../etc' contains '..' (no action would run)" in text
    assert "action    ensure_account(profile='client_sharp')" in text
    assert '"credentials_profile": "client_sharp"' in text
    assert "\033[" not in text  # no colour when not a terminal
    assert run_cli("/nonexistent.log").returncode == 2


def test_label_conditions_checked_when_labels_are_known():
    r = rule(where={"labels": {"com.docker.compose.service": "hummingbot-api"}})
    line = [f"{TS} - root - ERROR - boom"]
    events = list(replay_lines(line, "api"))
    right = Matcher([r], labels=lambda _c: {"com.docker.compose.service": "hummingbot-api"})
    wrong = Matcher([r], labels=lambda _c: {"com.docker.compose.service": "other"})
    assert right.match(events[0]) is not None
    assert wrong.match(events[0]) is None
    assert Matcher([r]).match(events[0]) is not None  # replay: labels unknown, not checked
