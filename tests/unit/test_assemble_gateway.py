"""The gateway's output assembled: a Node.js crash is one event (real capture g1), and the gateway's
record format, old and current, parses into time, level and message."""

from __future__ import annotations

from pathlib import Path

from agent.events import GATEWAY, LINE, TRACEBACK, Origin, parse_header, role_of
from agent.ingest.replay import replay_lines

REPO = Path(__file__).resolve().parents[2]
CRASH = (REPO / "rules" / "gateway-certs-missing.samples.log").read_text().split("# expect:")[1]
ORIGIN = Origin("gateway", "merged", GATEWAY)


def crash_lines() -> list[str]:
    return [x for x in CRASH.splitlines()[1:] if not x.startswith("#")]


def test_a_node_crash_is_one_event_with_its_error_frames_and_properties():
    events = list(replay_lines(crash_lines(), "gateway", origin=ORIGIN))
    crashes = [e for e in events if e.kind == TRACEBACK]
    assert len(crashes) == 1
    (crash,) = crashes
    assert crash.key_line == "Error: ENOENT: no such file or directory, open './certs/server_key.pem'"
    assert "code: 'ENOENT'" in crash.outermost.message
    assert crash.lines[-1].endswith("Node.js v20.19.2")
    frames = crash.frames
    assert (frames[2].file, frames[2].line, frames[2].function) == ("/home/gateway/dist/https.js", 13,
                                                                    "getHttpsOptions")
    assert not frames[0].in_app and frames[2].in_app
    rest = [e.lines[0] for e in events if e.kind == LINE]
    assert any("ELIFECYCLE" in x for x in rest) and any("bigint" in x for x in rest)


def test_a_restart_loop_gives_one_fingerprint():
    lines = crash_lines()
    events = list(replay_lines(lines + lines, "gateway", origin=ORIGIN))
    prints = {e.fingerprint for e in events if e.kind == TRACEBACK}
    assert len([e for e in events if e.kind == TRACEBACK]) == 2 and len(prints) == 1


def test_a_line_that_only_looks_like_a_crash_header_stays_a_line():
    events = list(replay_lines(["/home/gateway/dist/app.js:12", "plain text", "more text"], "gateway",
                               origin=ORIGIN))
    assert [(e.kind, e.lines) for e in events] == [
        (LINE, ["/home/gateway/dist/app.js:12"]), (LINE, ["plain text"]), (LINE, ["more text"])]


def test_gateway_record_formats():
    old = parse_header("2023-03-02 10:12:13 | error | \tFailed to start the server with https. Confirm that"
                       " the SSL certificate files exist and are correct.")
    assert old is not None
    assert (old.timestamp, old.logger, old.level) == ("2023-03-02 10:12:13", "gateway", "ERROR")
    assert old.message.startswith("Failed to start the server with https.")
    warn = parse_header("2026-12-06 21:49:23 | warn | \tsomething")
    assert warn is not None and warn.level == "WARNING"


def test_gateway_role_by_name():
    assert role_of("gateway") == GATEWAY and role_of("deploy-gateway-1") == GATEWAY
    assert role_of("hummingbot-api") == "hummingbot-api" and role_of("gateway-files") == "sibling"
