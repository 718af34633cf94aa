"""The assembler on real captures and on genuine tracebacks of every shape."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.events import LINE, TRACEBACK
from agent.ingest.assemble import Assembler
from agent.ingest.replay import replay_file, replay_lines
from tests import tracebacks as tb

REAL = Path(__file__).parent.parent / "real_logs"
ACCESS = 'INFO:     127.0.0.1:39592 - "POST /bot-orchestration/deploy-v2-script HTTP/1.1" 200 OK'
LOGFIRE = "01:49:32.958 POST /bot-orchestration/deploy-v2-script"
DNS = ["socket.gaierror", "aiohttp.client_exceptions.ClientConnectorDNSError"]


def events_of(lines: list[str], merged: bool = True):
    """Events in input order (a request line inside or right after a traceback
    completes before the traceback does)."""
    return sorted(replay_lines(lines, "c", Assembler(merged=merged)), key=lambda e: e.first_pos)


def tracebacks_of(events):
    return [e for e in events if e.kind == TRACEBACK]


# --- real captures -----------------------------------------------------------------

def test_legacy_seed_capture():
    events = list(replay_file(str(next(REAL.glob("a_*.log")))))
    tbs = tracebacks_of(events)
    assert [(e.first_pos, e.last_pos) for e in tbs] == [(6, 78), (81, 164)]
    assert [x.type for x in tbs[0].exceptions] == DNS
    seed = tbs[1]
    assert seed.lines[0] == "ERROR:    Exception in ASGI application"
    assert seed.header.logger == "uvicorn" and seed.header.level == "ERROR"
    assert seed.outermost.type == "FileNotFoundError"
    assert seed.outermost.message == "[Errno 2] No such file or directory: 'bots/credentials/client_sharp'"
    funcs = [f.function for f in seed.frames]
    assert funcs[-3:] == ["deploy_v2_script", "create_hummingbot_instance", "copytree"]
    assert seed.frames[-2].file == "/hummingbot-api/services/docker_service.py"
    assert seed.frames[-2].code == "shutil.copytree(source_credentials_dir, destination_credentials_dir)"
    assert seed.frames[-1].code == "with os.scandir(src) as itr:"
    # The request lines before it are events of their own.
    lines = {e.first_pos: e for e in events if e.kind == LINE}
    assert lines[80].lines[0].endswith("500 Internal Server Error")


def test_current_seed_capture():
    events = list(replay_file(str(next(REAL.glob("b_*.log")))))
    assert len(tracebacks_of(events)) == 2
    errors = [e for e in events if e.kind == LINE and e.level == "ERROR"]
    assert len(errors) == 1
    assert errors[0].first_pos == 153
    assert errors[0].header.logger == "root"
    assert errors[0].message == (
        "Error deploying V2 script: [Errno 2] No such file or directory: 'bots/credentials/client_sharp'")
    crit = [e for e in events if e.level == "CRITICAL"]
    assert len(crit) == 1 and crit[0].message.startswith("SECURITY WARNING")


def test_invalid_name_capture_is_one_chained_traceback():
    """FastAPI's request error ends its text with a blank line and the endpoint's place; the
    TypeError of encoding it is chained after that: one event, not three."""
    events = list(replay_file(str(REAL / "more" / "current-invalid-name-api.log")))
    chained = [e for e in tracebacks_of(events) if e.outermost.type == "TypeError"]
    assert len(chained) == 1
    tb_ = chained[0]
    assert (tb_.first_pos, tb_.last_pos) == (6, 118)
    assert tb_.lines[0] == "ERROR:    Exception in ASGI application"
    assert [x.type for x in tb_.exceptions] == ["fastapi.exceptions.RequestValidationError", "TypeError"]
    first = tb_.exceptions[0].message
    assert first.startswith("1 validation error:\n  {'type': 'value_error', 'loc': ('body', 'instance_name')")
    where = '  File "/hummingbot-api/routers/bot_orchestration.py", line 565, in deploy_v2_script'
    assert first.endswith(f"\n{where}\n    POST /bot-orchestration/deploy-v2-script")
    # Nothing of it is left over as a line of its own.
    assert not [e for e in events if e.kind == LINE and 6 <= e.first_pos <= 118 and "POST" in e.message
                and "HTTP/1.1" not in e.message]


def test_broker_outage_capture():
    events = list(replay_file(str(next(REAL.glob("e_*.log")))))
    mqtt = [e for e in events if e.header and e.header.logger == "utils.mqtt_manager"]
    assert len(mqtt) == 7
    assert all(e.kind == LINE and e.level == "ERROR" for e in mqtt)
    assert len(tracebacks_of(events)) == 3


def test_every_capture_line_is_accounted_for():
    for path in REAL.glob("*.log"):
        lines = path.read_text().splitlines()
        covered = set()
        for e in replay_file(str(path)):
            covered.update(range(e.first_pos, e.last_pos + 1))
        blank = {i for i, line in enumerate(lines, 1) if not line.split(" ", 1)[-1].strip()
                 or line.endswith("Z ")}
        assert set(range(1, len(lines) + 1)) - covered <= blank, path.name


# --- genuine tracebacks of every shape ----------------------------------------------------

@pytest.mark.parametrize("shape", sorted(tb.SHAPES))
def test_shape_is_one_event_with_its_exceptions(shape):
    make, types = tb.SHAPES[shape]
    lines = tb.record("Error deploying V2 script: boom", make())
    events = events_of(["INFO:     Application startup complete.", *lines, ACCESS])
    assert [e.kind for e in events] == [LINE, TRACEBACK, LINE]
    event = events[1]
    assert event.lines == lines
    assert event.header.level == "ERROR" and event.header.logger == "root"
    assert [x.type for x in event.exceptions] == types
    assert event.outermost.type == types[-1]
    assert (event.first_pos, event.last_pos) == (2, 1 + len(lines))


def test_multiline_exception_message_is_kept_whole():
    event = tracebacks_of(events_of(tb.multiline_message().splitlines()))[0]
    assert event.outermost.message == (
        'password authentication failed for user "hbot"\n'
        "(Background on this error at: https://sqlalche.me/e/21/dbapi)")


def test_carets_are_not_code_lines():
    event = tracebacks_of(events_of(tb.with_carets().splitlines()))[0]
    assert event.frames[-1].code == 'return data["items"][key]'
    assert event.frames[-1].function == "_lookup"


def test_record_message_continuation_and_uvicorn_lifespan_traceback():
    lines = [
        "2026-06-29 14:03:07,515 - database.connection - ERROR - Failed to create database tables: "
        "(sqlalchemy.dialects.postgresql.asyncpg.InvalidAuthorizationSpecificationError) boom",
        "(Background on this error at: https://sqlalche.me/e/21/dbapi)",
        "ERROR:    Traceback (most recent call last):",
        '  File "/hummingbot-api/main.py", line 10, in lifespan',
        "    await db.create_tables()",
        "sqlalchemy.exc.DBAPIError: (x) boom",
        "(Background on this error at: https://sqlalche.me/e/21/dbapi)",
        "",
        "ERROR:    Application startup failed. Exiting.",
    ]
    events = events_of(lines)
    assert [e.kind for e in events] == [TRACEBACK, LINE]
    assert events[0].header.logger == "database.connection"
    assert events[0].outermost.type == "sqlalchemy.exc.DBAPIError"
    assert events[0].outermost.message.endswith("\n(Background on this error at: https://sqlalche.me/e/21/dbapi)")
    assert events[1].message == "Application startup failed. Exiting."


def test_held_record_continuation_without_traceback():
    events = events_of([
        "2026-06-29 14:03:07,515 - database.connection - ERROR - Failed to create database tables: x",
        "(Background on this error at: https://sqlalche.me/e/21/dbapi)",
        "2026-06-29 14:03:07,516 - root - WARNING - next",
    ])
    assert [len(e.lines) for e in events] == [2, 1]
    assert events[0].message.endswith("(Background on this error at: https://sqlalche.me/e/21/dbapi)")


def test_back_to_back_tracebacks_split():
    lines = [*tb.plain().splitlines(), *tb.with_carets().splitlines()]
    events = events_of(lines)
    assert [e.outermost.type for e in events] == ["FileNotFoundError", "KeyError"]


def test_foreign_request_lines_inside_a_traceback_do_not_break_it():
    tb_lines = tb.record("Unexpected error", tb.chained_cause())
    for cut in range(1, len(tb_lines)):
        lines = [*tb_lines[:cut], LOGFIRE, ACCESS, *tb_lines[cut:]]
        events = events_of(lines)
        tbs = tracebacks_of(events)
        assert len(tbs) == 1, cut
        assert [x.type for x in tbs[0].exceptions] == ["FileNotFoundError", "RuntimeError"]
        assert tbs[0].lines == tb_lines
        assert sum(1 for e in events if e.kind == LINE) == 2


def test_live_grace_closes_after_a_pause_only():
    asm = Assembler(grace=0.03)
    lines = tb.record("boom", tb.plain())
    items = [(i, 0, text) for i, text in enumerate(lines)]
    assert asm.feed("c", "stderr", items, now=100.0) == []
    assert asm.due(100.01) == []
    done = asm.due(100.05)
    assert len(done) == 1 and done[0].kind == TRACEBACK
    # A chain that continues within the grace stays one event.
    asm2 = Assembler(grace=0.03)
    cause = tb.chained_cause().splitlines()
    split = cause.index("The above exception was the direct cause of the following exception:")
    first = [(i, 0, t) for i, t in enumerate(cause[:split])]
    rest = [(i + split, 0, t) for i, t in enumerate(cause[split:])]
    assert asm2.feed("c", "stderr", first, now=1.0) == []
    assert asm2.feed("c", "stderr", rest, now=1.02) == []
    (event,) = asm2.due(1.1)
    assert len(event.exceptions) == 2


def test_streams_are_assembled_apart():
    asm = Assembler()
    lines = tb.record("boom", tb.plain())
    half = len(lines) // 2
    out = asm.feed("c", "stderr", [(i, 0, t) for i, t in enumerate(lines[:half])])
    out += asm.feed("c", "stdout", [(100, 0, ACCESS), (101, 0, "heartbeat 1")])
    out += asm.feed("c", "stderr", [(i + half, 0, t) for i, t in enumerate(lines[half:])])
    out += asm.flush()
    assert [e.kind for e in out] == [LINE, LINE, TRACEBACK]
    assert out[2].lines == lines


def test_bounded_event():
    frames = []
    for i in range(5000):
        frames += [f'  File "/app/mod.py", line {i}, in f{i}', f"    call_{i}()"]
    lines = ["Traceback (most recent call last):", *frames, "RecursionError: too deep"]
    asm = Assembler(max_lines=100, max_line_chars=50)
    (event,) = events_of_asm(asm, lines)
    assert len(event.lines) <= 101
    assert event.omitted == len(lines) - 100
    assert event.lines[-1] == "RecursionError: too deep"
    assert event.outermost.type == "RecursionError"
    long = "x" * 10_000
    (one,) = events_of_asm(Assembler(max_line_chars=50), [long])
    assert len(one.lines[0]) < 100 and one.lines[0].endswith("[truncated 9950 chars]")


def events_of_asm(asm, lines):
    return list(replay_lines(lines, "c", asm))


def test_fingerprint_stable_across_line_numbers_and_suffixes():
    a = tracebacks_of(events_of(tb.plain().splitlines()))[0]
    shifted = [line.replace(", line ", ", line 1") for line in tb.plain().splitlines()]
    b = tracebacks_of(events_of(shifted))[0]
    assert a.fingerprint == b.fingerprint
    c = tracebacks_of(events_of(tb.with_carets().splitlines()))[0]
    assert a.fingerprint != c.fingerprint
    one = events_of(["2026-06-29 14:03:07,515 - root - ERROR - Error deploying V2 script: YAML file "
                     "'instances/half-bot-20261129-015015/conf/conf_client.yml' not found"])[0]
    two = events_of(["2026-07-01 09:00:00,001 - root - ERROR - Error deploying V2 script: YAML file "
                     "'instances/half-bot-20261201-101010/conf/conf_client.yml' not found"])[0]
    assert one.fingerprint == two.fingerprint
    assert one.fingerprint.startswith("v2:")


def test_one_line_event_headers():
    events = events_of([
        "bot starting",
        "2026-06-29 14:03:07,515 - services.docker_service - WARNING - Script config file a.yml not found",
        "WARNING:asyncio:Executing took 0.2 seconds", ACCESS, LOGFIRE,
    ])
    heads = [(e.header.logger, e.header.level) if e.header else None for e in events]
    assert heads == [None, ("services.docker_service", "WARNING"), ("asyncio", "WARNING"),
                     ("uvicorn", "INFO"), ("logfire", "INFO")]
    assert all(len(e.lines) == 1 for e in events)


# --- properties -------------------------------------------------------------------------------

NOISE = [
    "INFO:     Application startup complete.",
    "2026-06-29 14:03:07,515 - hummingbot.connector.time_synchronizer - WARNING - Could not refresh",
    "2026-06-29 14:03:07,515 - root - INFO - all good",
    "",
    "heartbeat 12",
    ACCESS,
    LOGFIRE,
    "ERROR:    Application startup failed. Exiting.",
]
GENUINE = [(name, tb.SHAPES[name][0](), tb.SHAPES[name][1]) for name in sorted(tb.SHAPES)]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.just("tb"), st.integers(0, len(GENUINE) - 1), st.booleans()),
                          st.tuples(st.just("noise"), st.integers(0, len(NOISE) - 1), st.booleans())),
                max_size=25),
       st.randoms(use_true_random=False))
def test_property_n_tracebacks_in_noise(blocks, rnd):
    """Any sequence of genuine tracebacks and noise lines, with request lines of the
    other stream dropped anywhere (merged replay), yields exactly the tracebacks."""
    lines: list[str] = []
    expected = []
    for kind, index, with_header in blocks:
        if kind == "tb":
            _, text, types = GENUINE[index]
            block = tb.record("failed", text) if with_header else text.rstrip("\n").split("\n")
            expected.append(types)
            lines += block
        else:
            lines.append(NOISE[index])
    for _ in range(rnd.randint(0, 5)):
        lines.insert(rnd.randint(0, len(lines)), rnd.choice([ACCESS, LOGFIRE]))
    got = [[x.type for x in e.exceptions] for e in tracebacks_of(events_of(lines))]
    assert got == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=40))
def test_property_arbitrary_text_never_raises(lines):
    events = events_of(lines)
    for e in events:
        assert e.fingerprint and e.lines


def test_random_shuffles_of_captured_lines_never_raise():
    lines = next(REAL.glob("a_*.log")).read_text().splitlines()
    rnd = random.Random(7)
    for _ in range(50):
        rnd.shuffle(lines)
        list(replay_lines(lines, "c"))


def test_replay_without_timestamps_gives_the_same_events(tmp_path):
    stamped = next(REAL.glob("a_*.log"))
    plain = tmp_path / "plain.log"
    plain.write_text("".join(line.split(" ", 1)[1] if " " in line else line
                             for line in stamped.read_text().splitlines(keepends=True)))
    a = [(e.kind, e.first_pos, e.last_pos, e.fingerprint) for e in replay_file(str(stamped))]
    b = [(e.kind, e.first_pos, e.last_pos, e.fingerprint) for e in replay_file(str(plain))]
    assert a == b
    assert all(e.ts > 0 for e in replay_file(str(stamped)))
    assert all(e.ts == 0 for e in replay_file(str(plain)))


def test_replay_from_stdin():
    import subprocess
    import sys
    code = ("from agent.ingest.replay import replay_file\n"
            "print(sum(e.kind == 'traceback' for e in replay_file('-')))")
    stamped = next(REAL.glob("a_*.log")).read_bytes()
    out = subprocess.run([sys.executable, "-c", code], input=stamped, capture_output=True, check=True)
    assert out.stdout.strip() == b"2"


def test_live_record_interleaved_in_a_traceback_is_emitted_after_it():
    """On a live stream, a record from another thread inside a traceback waits for the
    traceback, so the checkpoint (at the traceback's first line) never re-reads it."""
    asm = Assembler()
    lines = tb.record("boom", tb.plain())
    other = "2026-06-29 14:03:07,516 - services.other - WARNING - meanwhile"
    mixed = [*lines[:3], other, *lines[3:]]
    out = asm.feed("c", "stderr", [(i, 0, t) for i, t in enumerate(mixed)], now=1.0)
    assert out == [] and asm.pending_first_pos("c", "stderr") == 0
    out = asm.due(2.0)
    assert [e.kind for e in out] == [TRACEBACK, LINE]
    assert out[0].lines == lines and out[1].lines == [other]
