"""When the daily digest of errors no rule knows is due: once a day at a time of day
(the agent's local time, `TZ`), caught up at the next start if the agent was down then."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


def parse_time_of_day(text: str) -> int:
    """`HH:MM` or `HH:MM:SS` to seconds after midnight."""
    m = _TIME.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a time of day (HH:MM, 24-hour)")
    return int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3] or 0)


@dataclass(frozen=True)
class DigestSchedule:
    at: int  # seconds after local midnight

    @classmethod
    def parse(cls, text: str) -> DigestSchedule:
        return cls(parse_time_of_day(text))

    def last_slot(self, now: float) -> float:
        """The latest scheduled moment at or before `now`."""
        t = time.localtime(now)
        midnight = time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))
        slot = midnight + self.at
        if slot > now:
            y = time.localtime(midnight - 3600)  # the day before (DST-safe: an hour before midnight)
            slot = time.mktime((y.tm_year, y.tm_mon, y.tm_mday, 0, 0, 0, 0, 0, -1)) + self.at
        return slot

    def due(self, last_sent: float, now: float) -> bool:
        return last_sent < self.last_slot(now) <= now
