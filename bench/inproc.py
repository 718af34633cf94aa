"""In-process throughput: bytes -> lines -> events -> rule matches, on one core.

Runs in its own process (`python -m bench.inproc`) so its RSS is the agent's
pipeline alone. Uses the real follower numbering, splitter, assembler, matcher
and the full shipped rule library; only the socket and the queue are left out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from agent.events import TRACEBACK
from agent.ingest.assemble import Assembler
from agent.ingest.engine import EngineHealth
from agent.ingest.follow import Follower
from agent.ingest.split import LineSplitter
from agent.match.loader import load_rules
from agent.match.matcher import Matcher
from bench.corpus import block, chunks

REPO = Path(__file__).resolve().parent.parent


class _Sink:
    def __init__(self, matcher: Matcher, assembler: Assembler) -> None:
        self.matcher, self.assembler = matcher, assembler
        self.events = self.tracebacks = self.matches = 0

    def put(self, batch):
        self.lines(batch.container, batch.channel, batch.items, batch.origin)

    def lines(self, container, stream, items, origin=None):
        match = self.matcher.match
        for e in self.assembler.feed(container, stream, items, origin=origin):
            self.events += 1
            if e.kind == TRACEBACK:
                self.tracebacks += 1
            if match(e) is not None:
                self.matches += 1


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(total: int) -> dict:
    blocks = [block(seed, lines=10_000) for seed in range(2)]
    per_block = blocks[0][1]
    rounds = max(1, total // per_block)
    lines = sum(blocks[i % len(blocks)][1] for i in range(rounds))
    tbs = sum(blocks[i % len(blocks)][2] for i in range(rounds))
    pieces = [list(chunks(b[0])) for b in blocks]
    del blocks

    # bytes to lines only: the local ceiling
    counted = [0]
    splitter = LineSplitter(lambda _s, ls: counted.__setitem__(0, counted[0] + len(ls)))
    started = time.perf_counter()
    for i in range(rounds):
        for c in pieces[i % len(pieces)]:
            splitter.feed(c)
    raw = time.perf_counter() - started

    matcher = Matcher(load_rules(REPO / "rules").rules)
    sink = _Sink(matcher, Assembler())
    follower = Follower("hummingbot-api", None, sink, EngineHealth(), catchup_window=600, max_line=64 * 1024)
    follower._cid = "bench"
    splitter = LineSplitter(follower._deliver)
    started = time.perf_counter()
    for i in range(rounds):
        follower._resume = None  # blocks repeat their timestamps: each round is new input
        follower._dup.clear()
        for c in pieces[i % len(pieces)]:
            splitter.feed(c)
    sink.lines("hummingbot-api", "stderr", [])
    full = time.perf_counter() - started
    return {"lines": lines, "tracebacks": tbs, "events": sink.events, "traceback_events": sink.tracebacks,
            "matches": sink.matches, "lines_per_s": lines / full, "raw_split_lines_per_s": counted[0] / raw,
            "rss_mb": rss_mb()}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    print(json.dumps(run(ap.parse_args().lines)))
