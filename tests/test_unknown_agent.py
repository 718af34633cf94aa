"""Errors no rule knows, end to end: `hb-medic run` follows the stand-in (the current
generation's gateway ping, and an exception raised on a route no rule covers), tells a
local receiver about the new repeating error once, sends the digest with the right
counts, logs each error once; then `hb-medic unknown` lists them and `rules suggest`
drafts a rule from the captured exception that passes its checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from agent.match.loader import load_rules
from agent.match.matcher import Matcher
from agent.match.samples import blocks, check
from agent.state import State
from agent.unknown.suggest import _events_of
from tests.receiver import Receiver
from tests.stack import REPO, wait_until
from tests.test_run import start_agent, stop_agent
from tests.unit.test_suggest import assert_hostile_values_refused

pytestmark = pytest.mark.docker
LIBRARY = load_rules(REPO / "rules").rules
PING = "Failed to ping gateway"


def pings_counted(folder) -> int:
    store = State(folder / "state.db")
    try:
        counts = [e.count for e in store.unknown.most_frequent() if e.exceptions == ["AttributeError"]]
        return max(counts or [0])
    finally:
        store.close()


def hb_medic(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=REPO, timeout=120)


def test_agent_counts_tells_once_digests_and_drafts(make_stack, tmp_path):
    stack = make_stack(gateway_ping=0.25)
    container = stack.api.name
    log = tmp_path / "agent.log"
    with Receiver() as rx:
        # A stack with a gateway: there the ping says nothing about it and stays an error no rule
        # knows (without one it is gateway-not-configured, told once).
        env = {"MEDIC_CONTAINERS": container, "MEDIC_STATE_DB": str(tmp_path / "state.db"),
               "MEDIC_GATEWAY": "present",
               "MEDIC_NOTIFY_URLS": rx.url, "MEDIC_UNKNOWN_BURST_COUNT": "10",
               "MEDIC_UNKNOWN_BURST_MINUTES": "1", "MEDIC_HUMMINGBOT_URL": stack.url}
        agent = start_agent(env, log)
        try:
            wait_until(lambda: any("New error no rule knows" in t for t in rx.titles()), 60,
                       "the burst message")
            for _ in range(2):  # a route no rule covers raises (500, uvicorn's traceback)
                assert stack.http("GET", "/connectors/rc_no_such_exchange/config-map").status_code == 500
            profile = stack.unique("client")
            stack.http("POST", "/accounts/add-account", params={"account_name": profile})
            stack.http("POST", f"/accounts/add-credential/{profile}/rc_no_such_exchange", json={"k": "v"})
            stack.wait_line("stderr", PING, count=25, timeout=60)
            stack.api.stop(timeout=5)  # nothing more: the counts are final
            pings = sum(1 for x in stack.lines("stderr") if PING in x)
            wait_until(lambda: pings_counted(tmp_path) == pings, 30, "the agent to count every ping")
        finally:
            stop_agent(agent)
        # The next start sends the digest at its time (the first start only set the clock), once,
        # and never the burst message again.
        agent = start_agent({**env, "MEDIC_UNKNOWN_DIGEST_TIME": time.strftime(
            "%H:%M:%S", time.localtime(time.time() + 3))}, log)
        try:
            wait_until(lambda: any("Errors no rule knows" in t for t in rx.titles()), 60, "the digest")
            time.sleep(1)
        finally:
            stop_agent(agent)
    bursts = [m for m in rx.accepted if "New error no rule knows" in m["title"]]
    digests = [m for m in rx.accepted if "Errors no rule knows" in m["title"]]
    assert len(bursts) == 1 and len(digests) == 1, rx.titles()
    assert "'NoneType' object has no attribute 'password'" in bursts[0]["message"]
    body = digests[0]["message"]
    assert f"{pings:,} times in {container}" in body
    assert "2 times in" in body and "KeyError: 'rc_no_such_exchange'" in body
    assert "1 time in" in body and "Error adding connector credentials" in body
    assert "SECURITY WARNING" in body  # the shipped rule watches "hummingbot-api", not this test's name
    assert body.count("hb-medic rules suggest v2:") == 4
    # The agent's own log: each error once a run, not once per occurrence (the second run saw
    # none of them again: it resumed after what the first had handled).
    text = log.read_text()
    assert text.count("'NoneType' object has no attribute 'password'") == 1, text[-3000:]
    assert text.count("KeyError: 'rc_no_such_exchange'") == 1

    env = {"MEDIC_STATE_DB": str(tmp_path / "state.db")}
    listed = hb_medic("unknown", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(x) for x in listed.stdout.splitlines()]
    assert [r["count"] for r in rows] == [pings, 2, 1, 1]
    assert rows[1]["exceptions"] == ["KeyError"] and rows[1]["logger"] == "uvicorn"
    drafts = tmp_path / "drafts"
    made = hb_medic("rules", "suggest", rows[1]["fingerprint"], "--out", str(drafts), env=env)
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(f"wrote {drafts}/")
    checked = hb_medic("rules", "check", "--rules", str(drafts), env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (rule,) = load_rules(drafts).rules
    assert rule.observe_only and rule.match[0].exception == ["KeyError"]
    assert rule.match[0].frame is not None and rule.match[0].frame.function == "get_connector_config_keys"
    samples = (drafts / f"{rule.id}.samples.log").read_text()
    for line, expect, lines in blocks(samples):
        assert check(Matcher([*LIBRARY, rule]), expect, lines, container) is None, line
    store = State(tmp_path / "state.db")
    entries = {e.fingerprint: e for e in store.unknown.most_frequent()}
    for fp, entry in entries.items():
        if fp != rows[1]["fingerprint"]:
            assert all(Matcher([rule]).match(e) is None for e in _events_of(entry)), entry.summary
    assert_hostile_values_refused(rule, _events_of(entries[rows[1]["fingerprint"]]))
