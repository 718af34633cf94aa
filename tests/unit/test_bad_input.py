"""Bad input never crashes: impossible timestamps, control bytes and fuzzed lines go
through `rules test` and the live splitter as text, never as an exception."""

from __future__ import annotations

import io
import json
import random
import struct
import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ingest.split import LineSplitter, parse_ts
from agent.rules_cmd import run_test
from tests.stack import REPO

SAMPLES = sorted((REPO / "rules").glob("*.samples.log"))


def rules_test(text: str, as_json: bool = True) -> tuple[int, str, str]:
    """`hb-medic rules test` on this text, saved as a file (bytes kept as they are)."""
    with tempfile.NamedTemporaryFile("wb", suffix=".log") as fh:
        fh.write(text.encode("utf-8", "surrogatepass"))
        fh.flush()
        out, err = io.StringIO(), io.StringIO()
        code = run_test([fh.name], str(REPO / "rules"), as_json, "hummingbot-api", out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_impossible_timestamp_is_a_line_without_one():
    assert parse_ts(b"2026-02-30T25:61:61.1Z") is None
    assert parse_ts(b"2026-11-29T01:49:26Z") == 1_795_916_966 * 10**9
    line = ("2026-11-29T01:49:32.002123456Z 2026-11-29 01:49:32,002 - root - ERROR - Error deploying V2 "
            "script: [Errno 2] No such file or directory: 'bots/credentials/client_sharp'")
    code, out, _ = rules_test("2026-02-30T25:61:61.1Z hello\n" + line + "\n")
    assert code == 0
    (row,) = [json.loads(x) for x in out.splitlines()]
    assert row["first_line"] == 2 and row["rule"] == "credentials-profile-missing"
    code, out, _ = rules_test("2026-02-30T25:61:61.1Z hello\n" + line + "\n", as_json=False)
    assert code == 0 and "line 2" in out and "credentials-profile-missing" in out


def _mutate(rng: random.Random, line: str) -> str:
    chars = list(line)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(5)
        at = rng.randrange(len(chars) + 1)
        if op == 0 and chars:
            del chars[min(at, len(chars) - 1)]
        elif op == 1:
            chars.insert(at, chr(rng.choice([0, 7, 8, 13, 27, 127, 0x85, 0x9B, 0x2028, 0xFFFD,
                                             rng.randrange(32, 0x2FFF)])))
        elif op == 2 and chars:
            chars[min(at, len(chars) - 1)] = rng.choice("0123456789:-TZ.,'\"/ ")
        elif op == 3:
            chars[at:at] = list(rng.choice(["Traceback (most recent call last):", "  File \"x\", line 1",
                                            " - ERROR - ", "\r", "\n", "2026-99-99T99:99:99.9Z "]))
        else:
            chars = chars[:at]
    return "".join(chars)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_fuzzed_sample_lines_never_crash_rules_test(seed):
    rng = random.Random(seed)
    lines = [x for p in SAMPLES for x in p.read_text().splitlines() if x and not x.startswith("#")]
    text = "\n".join(_mutate(rng, rng.choice(lines)) for _ in range(300)) + "\n"
    for as_json in (True, False):
        code, _out, err = rules_test(text, as_json)
        assert code == 0, err


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=4096), tty=st.booleans())
def test_splitter_never_raises_on_any_bytes(data, tty):
    got = []
    s = LineSplitter(lambda _stream, lines: got.extend(lines), tty=tty, max_line=1024)
    s.feed(data)
    # and the same bytes as frames with hostile timestamps
    for stamp in (b"2026-02-30T25:61:61.1Z ", b"9999-99-99T99:99:99.999999999Z ", b"0000-00-00T00:00:00Z "):
        body = stamp + data + b"\n"
        s.feed(struct.pack(">BxxxL", 2, len(body)) + body)
    s.close()
    assert all(isinstance(ts, int) and isinstance(text, str) for ts, text in got)
