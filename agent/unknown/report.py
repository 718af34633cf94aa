"""`hb-medic unknown [--json] [--since DURATION]`: the errors no rule knows, most frequent
first, from the state file (the running agent writes its counts every few seconds)."""

from __future__ import annotations

import json
import re
import sys
import time
from typing import TextIO

from agent.logs import printable
from agent.names import DEFAULT_STACK
from agent.records import Unknown
from agent.state import State

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """`90s`, `30m`, `6h`, `2d`, `1w`, or combined: `1h30m`."""
    compact = text.strip().lower().replace(" ", "")
    parts = _PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"{text!r} is not a duration (e.g. 30m, 6h, 2d, 1h30m)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


def as_json(e: Unknown) -> dict:
    return {"stack": e.stack, "fingerprint": e.fingerprint, "count": e.count,
            "first_seen": _when(e.first_seen) + "Z", "last_seen": _when(e.last_seen) + "Z",
            "container": e.container, "containers": e.containers, "stream": e.stream, "kind": e.kind,
            "logger": e.logger, "level": e.level, "exceptions": e.exceptions, "summary": e.summary,
            "samples": e.samples, "suggest": f"hb-medic rules suggest {e.fingerprint}"}


def show(store: State, since: float | None, as_json_lines: bool, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    cutoff = time.time() - since if since is not None else 0.0
    entries = store.unknown.most_frequent(since=cutoff)
    if as_json_lines:
        for e in entries:
            print(json.dumps(as_json(e)), file=out)
        return 0
    if not entries:
        window = f" in the last {since:g} s" if since is not None else ""
        print(f"no errors no rule knows{window}", file=out)
        return 0
    print(f"{'COUNT':>9}  {'FIRST SEEN (UTC)':<19}  {'LAST SEEN (UTC)':<19}  {'CONTAINER':<20}  "
          f"{'FINGERPRINT':<19}  SUMMARY", file=out)
    for e in entries:
        what = e.summary if e.kind == "traceback" else f"{e.logger or e.kind} {e.level or ''}: {e.summary}"
        where = e.container if e.stack == DEFAULT_STACK else f"{e.stack}/{e.container}"
        print(f"{e.count:>9,}  {_when(e.first_seen)}  {_when(e.last_seen)}  {where[:20]:<20}  "
              f"{e.fingerprint:<19}  {printable(what)[:120]}", file=out)
    print(f"-- {len(entries)} fingerprint(s); draft a rule for one: hb-medic rules suggest FINGERPRINT",
          file=out)
    return 0
