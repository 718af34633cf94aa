"""A bot's output: its console (a TTY, escape codes and all), its log files, and the rules
that read them, replayed as `rules test --role bot --channel ...` does."""

from __future__ import annotations

import io
import json
from pathlib import Path

from agent.events import BOT, Origin, exit_event, parse_header
from agent.ingest.replay import replay_lines
from agent.ingest.split import LineSplitter, clean_terminal
from agent.match.loader import load_rules, render
from agent.match.matcher import Matcher
from agent.rules_cmd import origin_for, run_test

REPO = Path(__file__).resolve().parent.parent.parent
LIBRARY = load_rules(REPO / "rules").rules
# A legacy bot's console: its full-screen text UI (from the real capture bots/legacy-a).
TUI = (b"2026-11-29T07:35:39.648451382Z \x1b[?12l\x1b[?25h\x1b[?1049h\x1b[H\x1b[0;38;5;248;48;5;16m"
       b"Version: dev-2.18.\x1b[0;38;5;231;48;5;233mStrategy: v2_with_ > Ctrl+T\r\x1b[79C \x1b[0m\r\r\n"
       b"2026-11-29T07:35:39.362795996Z 07:35:39 - hummingbot_application - Connecting MQTT Bridge...\r\n")


def test_console_and_log_file_headers():
    h = parse_header("07:31:32 - trading_core - Failed to start strategy x: Unknown strategy: x")
    assert (h.timestamp, h.logger, h.level, h.message) == (
        "07:31:32", "trading_core", None, "Failed to start strategy x: Unknown strategy: x")
    h = parse_header("2026-11-29 07:31:32,507 - 11 - hummingbot.core.trading_core - ERROR - Failed")
    assert (h.logger, h.level, h.message) == ("hummingbot.core.trading_core", "ERROR", "Failed")
    h = parse_header("2026-11-29 07:35:40,162 - 11 - hummingbot.connector.time_synchronizer - NETWORK - x")
    assert h.level == "NETWORK"
    # hummingbot-api's own format is unchanged.
    assert parse_header("2026-11-29 07:29:05,198 - root - ERROR - Invalid password.").logger == "root"


def test_terminal_escapes_and_carriage_returns_leave_a_tty_line():
    got = []
    LineSplitter(lambda _s, lines: got.extend(t for _, t in lines), tty=True).feed(TUI)
    assert got == [" ersion: dev-2.18.Strategy: v2_with_ > Ctrl+T",
                   "07:35:39 - hummingbot_application - Connecting MQTT Bridge..."]
    assert clean_terminal("a\x1b]0;title\x07b\x07c") == "abc"
    assert clean_terminal("progress 10%\rprogress 100%") == "progress 100%"


def test_a_replayed_console_is_cleaned_like_a_followed_one():
    lines = TUI.decode().splitlines()
    events = list(replay_lines(lines, "rb_a", origin=Origin("rb_a", "console", BOT)))
    assert all("\x1b" not in e.text and "\r" not in e.text for e in events)
    assert all(e.role == BOT and e.channel == "console" for e in events)


def test_bot_rules_need_a_bot_and_their_channel():
    m = Matcher(LIBRARY)
    line = ["2026-11-29 07:29:05,198 - root - ERROR - Invalid password."]
    as_bot = [m.match(e) for e in replay_lines(line, "rb_b", origin=Origin("rb_b", "errors", BOT))]
    assert as_bot[0].rule.id == "bot-password-invalid"
    assert as_bot[0].values["bot"] == "rb_b"
    assert [m.match(e) for e in replay_lines(line, "hummingbot-api")] == [None]
    console = [m.match(e) for e in replay_lines(line, "rb_b", origin=Origin("rb_b", "console", BOT))]
    assert console == [None]  # errors.log only


def test_a_death_no_rule_knows_is_still_a_match_with_its_fate():
    m = Matcher(LIBRARY)
    event = exit_event("rb_x-20261129-073004", exit_code=1, ts=1, lived=4.4)
    res = m.match(event)
    assert res.rule.id == "bot-died"
    assert res.values["bot"] == "rb_x" and res.values["fate"] == "exited by itself with code 1 after 4.4 s"
    assert render(res.rule.notify.title, res.values) == "Bot rb_x died"


def test_optional_parts_of_a_message():
    text = "Failed: {reason}.[[ Look at {file}.]][[ Module {module}.]]"
    assert render(text, {"reason": "x", "file": "a.py"}) == "Failed: x. Look at a.py."
    assert render(text, {"reason": "x"}) == "Failed: x."


def test_rules_test_replays_a_bots_errors_log(tmp_path):
    sample = (REPO / "rules" / "bot-password-file-missing.samples.log").read_text().splitlines()
    tb = sample[sample.index("Traceback (most recent call last):"):]
    path = tmp_path / "errors.log"
    last = tb.index(next(x for x in tb if x.startswith("FileNotFoundError")))
    path.write_text("\n".join(tb[:last + 1]) + "\n")
    out, err = io.StringIO(), io.StringIO()
    assert run_test([str(path)], str(REPO / "rules"), True, origin_for("bot", "errors", None), out, err) == 0
    rows = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [r["rule"] for r in rows] == ["bot-password-file-missing"]
    assert rows[0]["actions"] == ["ensure_account", "provision_credentials", "retry_deploy"]
    # The same file as hummingbot-api's output: no bot rule.
    out = io.StringIO()
    run_test([str(path)], str(REPO / "rules"), True, None, out, err)
    assert all(json.loads(x)["rule"] is None for x in out.getvalue().splitlines())


def test_hummingbot_apis_captured_logs_wake_no_bot_rule():
    m = Matcher(LIBRARY)
    for path in sorted((REPO / "tests" / "real_logs").glob("*.log")):
        for e in replay_lines(path.read_text().splitlines(), "hummingbot-api"):
            res = m.match(e)
            assert res is None or not res.rule.id.startswith("bot-"), (path.name, res.rule.id)


def test_a_bots_errors_after_its_fatal_failure_are_that_failure_not_unknown_errors():
    """The real log file of a bot whose script does not exist (bots/current-d1): the strategy's
    failure is matched; root's two ERROR lines after it are its aftermath, which the unknown
    store does not count. Another bot's, and the same bot's once the aftermath is over, are."""
    from agent.remedy import fate as fates

    lines = [
        "2026-11-29 07:31:32,506 - 11 - root - INFO - Starting V2 script strategy: rb_no_such_script",
        "2026-11-29 07:31:32,507 - 11 - hummingbot.core.trading_core - ERROR - Failed to start strategy"
        " rb_no_such_script: Unknown strategy: rb_no_such_script",
        "2026-11-29 07:31:32,507 - 11 - root - ERROR - Failed to start strategy",
        "2026-11-29 07:31:32,507 - 11 - root - ERROR - Failed to load strategy. Exiting.",
    ]
    m = Matcher(LIBRARY)
    fate = fates.Fate(lambda: LIBRARY, lambda _res: None)
    unexplained = []
    for e in replay_lines(lines, "rb_d1", origin=Origin("rb_d1", "log", BOT)):
        res = m.match(e)
        if res is not None:
            fate.matched(res)
        elif not fate.explains(e):
            unexplained.append(e.message)
    assert unexplained == ["Starting V2 script strategy: rb_no_such_script"]
    other = list(replay_lines(lines[3:], "rb_d2", origin=Origin("rb_d2", "log", BOT)))
    assert not fate.explains(other[0])
    fate._seen["rb_d1"].fatal_at -= fates.AFTERMATH
    again = list(replay_lines(lines[3:], "rb_d1", origin=Origin("rb_d1", "log", BOT)))
    assert not fate.explains(again[0])
