"""When each notification target may be tried again, per target: after a failure (a backoff
that grows to PROBE_MAX) or after a rate limit (as long as the receiver asked).

Slack answers 429 with a `Retry-After` header, Telegram with
`{"ok": false, "error_code": 429, "parameters": {"retry_after": N}}`; both cut off a client
that asks again sooner. A rate-limited target gets no request before the time it named; its
other messages wait too, other targets do not.

The wait is capped at RETRY_AFTER_MAX (an hour): longer than any wait Slack (limits per
minute) or Telegram (flood waits of seconds to minutes) asks in earnest, so an honest answer is
honoured in full, while a nonsense one (a date years ahead, 10**9 seconds) costs at most one
try an hour instead of a target silenced for good. Past 30 minutes /healthz says the outbox is
stuck anyway.

The next try of a target is also the next try of the message that failed, in the outbox, so
a restart keeps it (`load`).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from agent.notify.answers import LIMITING, Answer

PROBE_MAX = 20.0  # longest wait between two tries of a target that is down
RETRY_AFTER_MAX = 3600.0  # longest wait honoured: see above
RATE_LIMITED = "rate limited"  # how the outbox's last_error of a rate-limited message begins


def _seconds(value: object, now: float) -> float | None:
    """Retry-After's delay-seconds or HTTP-date, or Telegram's retry_after; None if neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                seconds = parsedate_to_datetime(text).timestamp() - now
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
    else:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _telegram(body: bytes) -> object:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    params = data.get("parameters") if isinstance(data, dict) else None
    return params.get("retry_after") if isinstance(params, dict) else None


def asked_wait(answers: list[Answer], now: float) -> float | None:
    """Seconds the receiver asked to be left alone (the longest, if it answered several times),
    uncapped; None when no answer asked."""
    asked = [s for a in answers if a.status == LIMITING
             for s in (_seconds(a.retry_after, now), _seconds(_telegram(a.body), now)) if s is not None]
    return max(asked, default=None)


def rate_limited(answers: list[Answer]) -> bool:
    return any(a.status == LIMITING for a in answers)


@dataclass(frozen=True)
class Hold:
    until: float  # time.time() of the next try
    failures: int  # failures in a row that were not a rate limit
    limited: bool  # the receiver asked for the wait
    new_episode: bool  # the first rate limit since the target last took a message
    asked: float | None  # seconds asked, uncapped


class Holds:
    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._limited: set[str] = set()

    def load(self, waits: dict[str, tuple[float, bool]]) -> None:
        """Next tries kept in the outbox: target -> (until, rate limited)."""
        for target, (until, limited) in waits.items():
            self._until[target] = max(until, self._until.get(target, 0.0))
            if limited:
                self._limited.add(target)

    def waiting(self, target: str, now: float) -> bool:
        return now < self._until.get(target, 0.0)

    def blocked(self, now: float) -> set[str]:
        return {t for t, until in self._until.items() if now < until}

    def failed(self, target: str, now: float, *, limited: bool, asked: float | None) -> Hold:
        """A try failed: the next one after the wait the receiver asked for (capped), else after
        the backoff."""
        new_episode = limited and target not in self._limited
        if limited and asked is not None:
            failures = self._failures.get(target, 0)
            delay = max(1.0, min(RETRY_AFTER_MAX, asked))
        else:
            failures = self._failures.get(target, 0) + 1
            self._failures[target] = failures
            delay = min(PROBE_MAX, 2.0 * 2 ** min(failures - 1, 8)) * (0.5 + random.random() / 2)
        if limited:
            self._limited.add(target)
        until = max(now + delay, self._until.get(target, 0.0))
        self._until[target] = until
        return Hold(until, failures, limited, new_episode, asked)

    def succeeded(self, target: str) -> bool:
        """The target took a message; True if it had been failing or rate limited."""
        self._limited.discard(target)
        was = self._failures.pop(target, None) is not None
        return self._until.pop(target, None) is not None or was

    def remaining(self, target: str, now: float) -> float:
        return max(0.0, self._until.get(target, 0.0) - now)

    def limited(self, target: str) -> bool:
        return target in self._limited
