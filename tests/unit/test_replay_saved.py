"""`rules test` replays what the agent sees besides lines: recorded exchanges (`RECORDED {json}`)
and bots' deaths (`EXITED {json}`), so recorder and engine rules are tested like log rules."""

from __future__ import annotations

import io
import json

from agent.ingest.replay import replay_lines
from agent.rules_cmd import origin_for, run_test

CONFLICT = ('RECORDED {"route": "deploy-v2-script", "status": 200, "request": {"instance_name": "dup-bot", '
            '"credentials_profile": "prof"}, "message": "409 Client Error for http+docker://localhost/v1.41/'
            'containers/create?name=dup-bot: Conflict (\\"Conflict. The container name \\"/dup-bot\\" is '
            'already in use by container \\"9f2c\\". You have to remove (or rename) that container to be '
            'able to reuse that name.\\")"}')
OOM = 'EXITED {"exit_code": 137, "lived": 4.4, "oom_killed": true, "memory_limit": 125829120}'
CRASH = 'EXITED {"exit_code": 1, "lived": 7.5, "last_errors": []}'


def _test(tmp_path, text: str, *args: str) -> list[dict]:
    path = tmp_path / "saved.log"
    path.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    role = args[0] if args else "hummingbot-api"
    origin = origin_for(role, args[1] if len(args) > 1 else None, None)
    assert run_test([str(path)], None, True, origin, out=out, err=err) == 0, err.getvalue()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_recorded_and_exited_lines_are_the_events_the_agent_makes(tmp_path):
    got = _test(tmp_path, "\n".join([CONFLICT, OOM, CRASH]) + "\n")
    assert [(g["rule"], g["first_line"]) for g in got] == [
        ("deploy-name-conflict", 1), ("bot-oom-killed", 2), ("bot-died", 3)]
    assert got[0]["captures"] == {"instance": "dup-bot"}


def test_the_human_output_counts_them(tmp_path):
    path = tmp_path / "saved.log"
    path.write_text(f"{OOM}\n{CRASH}\n")
    out = io.StringIO()
    assert run_test([str(path)], None, False, origin_for("bot", "console", None), out=out) == 0
    text = out.getvalue()
    assert "-- 2 reported events (bot-died: 1, bot-oom-killed: 1)" in text
    assert "Bot bot killed: out of memory" in text


def test_saved_events_among_log_lines_keep_their_line_numbers(tmp_path):
    log = ("2026-11-29T07:27:52.122644245Z 07:27:52 - root - Starting V2 script strategy: x\n"
           f"{OOM}\n"
           "2026-11-29T07:27:53.122644245Z /bin/bash: line 1:    11 Killed"
           "                  ./bin/hummingbot_quickstart.py 2>> ./logs/errors.log\n")
    got = _test(tmp_path, log, "bot", "console")
    assert ("bot-oom-killed", 2) in [(g["rule"], g["first_line"]) for g in got]


def test_a_line_that_only_looks_like_one_stays_a_line():
    for text in ('RECORDED {"route": ', 'EXITED []', 'EXITED {"exit_code": 1, "ts": 3}', 'RECORDED {"x": 1}',
                 'EXITED {"exit_code": "x", "lived": "y"}'):
        events = list(replay_lines([text], "hummingbot-api"))
        assert [e.kind for e in events] in ([], ["line"]), (text, [e.kind for e in events])


def test_notes_above_a_saved_docker_logs_t_output_do_not_hide_its_timestamps(tmp_path):
    """A samples file (or a person's paste) starts with `# ` notes: the timestamps of the output
    under them are still `docker logs -t`'s, taken off every line, so the records are read."""
    from pathlib import Path

    saved = (Path(__file__).parents[1] / "real_logs" / "more" / "current-invalid-name-api.log").read_text()
    bare = [(g["rule"], g["first_line"]) for g in _test(tmp_path, saved)]
    noted = [(g["rule"], g["first_line"] - 3) for g in _test(tmp_path, "# a note\n#\n# another\n" + saved)]
    assert noted == bare
    assert [r for r, _ in bare].count("invalid-deploy-name") == 2, bare
