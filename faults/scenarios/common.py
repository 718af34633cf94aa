"""Small things every scenario uses."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def log(text: str) -> None:
    """Progress, on stderr (stdout carries the result)."""
    print(f"  {text}", file=sys.stderr, flush=True)


def settle(done: Callable[[], object], timeout: float, interval: float = 0.5) -> bool:
    """Poll until done() is true or the time is up; whether it got there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(interval)
    return bool(done())
