"""How long a receiver asked to be left alone, from the answers apprise got: Telegram's JSON
answer (a recorded 429 of its Bot API), `Retry-After` in seconds or as a date, and values no
one should obey as given (negative, not a number, years ahead)."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from agent.notify.answers import Answer
from agent.notify.ratelimit import PROBE_MAX, RETRY_AFTER_MAX, Holds, asked_wait, rate_limited

# Telegram's Bot API, answering sendMessage too often (HTTP 429, no Retry-After header).
TELEGRAM_429 = (b'{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 41",'
                b'"parameters":{"retry_after":41}}')


def test_telegrams_retry_after_is_read_from_its_json_answer():
    assert asked_wait([Answer(429, None, TELEGRAM_429)], time.time()) == 41.0
    assert rate_limited([Answer(429, None, TELEGRAM_429)])


def test_retry_after_in_seconds_or_as_a_date():
    now = time.time()
    assert asked_wait([Answer(429, "60", b"rate_limited")], now) == 60.0
    asked = asked_wait([Answer(429, formatdate(now + 120, usegmt=True), b"")], now)
    assert asked is not None and 118 <= asked <= 121


def test_the_longest_wait_of_several_answers_counts():
    answers = [Answer(200, None, b""), Answer(429, "5", b""), Answer(429, None, TELEGRAM_429)]
    assert asked_wait(answers, time.time()) == 41.0


@pytest.mark.parametrize(("header", "body", "expected"), [
    ("-5", b"", 0.0),  # already over
    ("nan", b"", None),
    ("inf", b"", None),
    ("soon", b"", None),
    (None, b'{"parameters":{"retry_after":true}}', None),
    (None, b'{"parameters":{"retry_after":"1e400"}}', None),
    (None, b'{"parameters":[41]}', None),
    (None, b"\xff\xfe not json", None),
    (None, b"", None),
])
def test_values_that_say_nothing_usable(header, body, expected):
    assert asked_wait([Answer(429, header, body)], time.time()) == expected


def test_only_a_429_asks():
    assert asked_wait([Answer(503, "60", b""), Answer(200, "60", b"")], time.time()) is None
    assert not rate_limited([Answer(500, None, b"")])


def test_a_wait_is_capped_and_a_rate_limit_is_one_episode_until_a_success():
    holds, now = Holds(), 1000.0
    first = holds.failed("t", now, limited=True, asked=10**9)
    assert first.until == now + RETRY_AFTER_MAX and first.new_episode and first.limited
    again = holds.failed("t", first.until, limited=True, asked=30)
    assert not again.new_episode and again.until == first.until + 30
    assert holds.blocked(first.until + 1) == {"t"} and not holds.waiting("other", now)
    assert holds.succeeded("t") and not holds.limited("t")
    assert holds.failed("t", now, limited=True, asked=5).new_episode


def test_a_failure_without_a_rate_limit_backs_off_as_before():
    holds = Holds()
    delays = [holds.failed("t", 0.0, limited=False, asked=None) for _ in range(12)]
    assert [h.failures for h in delays] == list(range(1, 13))
    assert all(h.until <= PROBE_MAX for h in delays)  # never waits past the probe interval from its start
    assert not any(h.limited or h.new_episode for h in delays)


def test_waits_kept_in_the_outbox_come_back_after_a_restart():
    holds = Holds()
    holds.load({"t": (2000.0, True), "u": (1500.0, False)})
    assert holds.blocked(1000.0) == {"t", "u"} and holds.limited("t") and not holds.limited("u")
    assert holds.remaining("t", 1000.0) == 1000.0
    assert not holds.failed("t", 1000.0, limited=True, asked=5).new_episode  # the same rate limit
