"""Bytes to lines: Docker's multiplexed and TTY log streams."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ingest.split import PARTIAL_SIZE, LineSplitter, format_ts, parse_ts

TS = b"2026-11-29T01:49:26.373741147Z"
TS_NS = parse_ts(TS)


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def entry(text: bytes, ts: bytes = TS) -> bytes:
    return ts + b" " + text


class Collect:
    def __init__(self):
        self.lines: dict[str, list[tuple[int, str]]] = {"stdout": [], "stderr": []}

    def __call__(self, stream, lines):
        self.lines[stream].extend(lines)


def test_parse_ts_variants():
    assert parse_ts(b"2026-11-29T01:49:26Z") == 1_795_916_966 * 10**9
    assert parse_ts(b"2026-11-29T01:49:26.5Z") == 1_795_916_966 * 10**9 + 500_000_000
    assert TS_NS % 10**9 == 373741147
    assert format_ts(TS_NS) == "1795916966.373741147"


def test_streams_kept_apart_with_timestamps():
    out = Collect()
    s = LineSplitter(out)
    s.feed(frame(1, entry(b"access line\n")) + frame(2, entry(b"Traceback (most recent call last):\n")))
    assert out.lines == {"stdout": [(TS_NS, "access line")],
                         "stderr": [(TS_NS, "Traceback (most recent call last):")]}


def test_partial_entries_merged_and_stream_interleaving():
    out = Collect()
    s = LineSplitter(out)
    big = b"x" * PARTIAL_SIZE
    data = (frame(2, entry(big)) + frame(1, entry(b"other\n"))
            + frame(2, entry(big, b"2026-11-29T01:49:27Z")) + frame(2, entry(b"end\n")))
    s.feed(data)
    assert out.lines["stdout"] == [(TS_NS, "other")]
    assert out.lines["stderr"] == [(TS_NS, "x" * (2 * PARTIAL_SIZE) + "end")]


def test_cap_marker_and_invalid_utf8():
    out = Collect()
    s = LineSplitter(out, max_line=100)
    s.feed(frame(1, entry(b"y" * 150 + b"\n")) + frame(1, entry(b"bad \xff\xfe bytes\n")))
    s.feed(frame(2, entry(b"z" * PARTIAL_SIZE)) + frame(2, entry(b"z" * 80 + b"\n")))
    assert out.lines["stdout"][0][1] == "y" * 100 + " …[truncated 50 bytes]"
    assert out.lines["stdout"][1][1] == "bad \ufffd\ufffd bytes"
    assert out.lines["stderr"][0][1] == "z" * 100 + f" …[truncated {PARTIAL_SIZE - 20} bytes]"


def test_a_last_line_without_newline_stays_its_own_line():
    out = Collect()
    s = LineSplitter(out)
    s.feed(frame(1, entry(b"beat 21")) + frame(1, entry(b"boot 90dcc248\n")))
    assert [t for _, t in out.lines["stdout"]] == ["beat 21", "boot 90dcc248"]


def test_tty_raw_stream_crlf_and_partial():
    out = Collect()
    s = LineSplitter(out, tty=True)
    long = b"a" * PARTIAL_SIZE
    s.feed(entry(b"bot starting\r\n") + entry(long) + entry(b"tail\r\n", b"2026-11-29T01:49:27.1Z"))
    s.feed(entry(b"no newline yet"))
    assert out.lines["stdout"] == [(TS_NS, "bot starting"), (TS_NS, "a" * PARTIAL_SIZE + "tail")]
    s.close()
    assert out.lines["stdout"][-1] == (TS_NS, "no newline yet")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, 2]), st.binary(max_size=300)), max_size=30),
       st.lists(st.integers(1, 400), max_size=20))
def test_property_any_chunking_gives_the_same_lines(entries, cuts):
    data = b"".join(frame(k, entry(body.replace(b"\n", b" ") + b"\n")) for k, body in entries)
    whole, pieces = Collect(), Collect()
    LineSplitter(whole).feed(data)
    s = LineSplitter(pieces)
    pos = 0
    for cut in cuts:
        s.feed(data[pos:pos + cut])
        pos += cut
    s.feed(data[pos:])
    assert whole.lines == pieces.lines
    assert len(whole.lines["stdout"]) + len(whole.lines["stderr"]) == len(entries)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.booleans())
def test_property_arbitrary_bytes_never_raise(data, tty):
    s = LineSplitter(lambda *_: None, tty=tty)
    s.feed(data)
    s.close()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=300), max_size=40), st.lists(st.integers(1, 700), max_size=30))
def test_property_dechunker_any_reads_give_the_body(pieces, cuts):
    from agent.ingest.split import Dechunker

    wire = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"
    d, got, pos = Dechunker(), [], 0
    for cut in [*cuts, len(wire)]:
        got.append(d.feed(wire[pos:pos + cut]))
        pos += cut
        if d.done:
            break
    assert b"".join(got) == b"".join(pieces)
    assert d.done
