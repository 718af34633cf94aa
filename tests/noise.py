"""Hours of the real program's noise, made from a real capture by repeating it with
every timestamp (the engine's, the records', the request lines', instance-name stamps)
moved on, so a replay sees what hours of a real deployment would print."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

REAL = Path(__file__).parent / "real_logs"
GATEWAY_PING = REAL / "k_current_ee7ce5c_gateway_ping.log"

_FORMS = [  # (regex, strptime format, output format)
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}"), "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S.%f"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"), "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S"),
    (re.compile(r"(?<=-)\d{8}-\d{6}\b"), "%Y%m%d-%H%M%S", "%Y%m%d-%H%M%S"),
    (re.compile(r"(?<=Z )\d\d:\d\d:\d\d(?=\.\d{3} )"), "%H:%M:%S", "%H:%M:%S"),
]


def shifted(line: str, seconds: float) -> str:
    delta = timedelta(seconds=seconds)
    for rx, parse, fmt in _FORMS:
        line = rx.sub(lambda m, p=parse, f=fmt: (datetime.strptime(m[0], p) + delta).strftime(f), line)
    return line


def span_seconds(lines: list[str]) -> float:
    stamps = [datetime.strptime(x[:26], "%Y-%m-%dT%H:%M:%S.%f") for x in lines if x[:4].isdigit()]
    return (stamps[-1] - stamps[0]).total_seconds()


def hours_of(path: Path, hours: float) -> list[str]:
    """The capture repeated back to back for about that many hours."""
    lines = path.read_text().splitlines()
    step = span_seconds(lines) + 2.0  # the ping keeps its 2 s rhythm across copies
    copies = max(1, int(hours * 3600 // step))
    return [shifted(x, n * step) for n in range(copies) for x in lines]
