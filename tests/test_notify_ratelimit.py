"""A receiver's rate limit, through real apprise to a local receiver answering 429 as a JSON
endpoint, a Slack webhook (`Retry-After` header) and Telegram's Bot API (`retry_after` in the
JSON answer) would: no request before the time asked for, then every message once and in the
order of its incident's steps; other targets are not held; the wait outlives a restart, is
said once per rate limit and shows in /metrics."""

from __future__ import annotations

import json
import logging
import time

import pytest

from agent.notify.notifier import Notifier
from agent.notify.targets import Target, parse_urls
from agent.redact import Redactor
from agent.state import State
from tests.receiver import Receiver
from tests.stack import wait_until
from tests.test_notify import RULES, incident

STEPS = (("acting", "attempt 1 of 3"), ("resolved", "fixed in 0.2 s"))


def target(rx: Receiver, kind: str) -> Target:
    """A target of that kind whose apprise plugin talks to the local receiver."""
    if kind == "telegram":
        [t] = parse_urls("tgram://123456789:AAbbccddeeffgghhiijjkkllmmnnooppqq/12345")
        t.plugin.notify_url = f"http://127.0.0.1:{rx.port}/bot"  # the plugin's own address, on loopback
    elif kind == "slack":
        [t] = parse_urls("slack://TokenA/TokenB/TokenC1234/#alerts")
        t.plugin.webhook_url = f"http://127.0.0.1:{rx.port}/services"
    else:
        [t] = parse_urls(rx.url)
    return t


def start(store: State, targets: list[Target]) -> Notifier:
    n = Notifier(store, targets, rules=lambda: RULES, redactor=Redactor())
    n.start()
    return n


def text(payload: dict) -> str:
    """What a message says, whichever service's payload it is."""
    if "message" in payload:
        return payload["message"]
    if payload.get("attachments"):
        return payload["attachments"][0].get("text", "")
    return payload.get("text", "")


def steps_received(rx: Receiver, incident_id: str) -> list[str]:
    """The steps of an incident in the order the receiver took them."""
    out = []
    for p in rx.accepted:
        if f"incident {incident_id}" in text(p):
            out.append("acting" if "Detected, fixing" in json.dumps(p) else "resolved")
    return out


@pytest.mark.parametrize("kind", ["json", "slack", "telegram"])
def test_no_request_before_retry_after_then_each_message_once_in_order(tmp_path, kind):
    store = State(tmp_path / "s.db")
    with Receiver() as rx:
        rx.limit(4)
        n = start(store, [target(rx, kind)])
        try:
            incs = [incident(store, f"rl{kind[:2]}{i:04d}", attempts=1) for i in range(3)]
            for step, detail in STEPS:
                for inc in incs:
                    n.step(inc, step, detail)
            wait_until(lambda: len(rx.accepted) >= 6, 30, "all six messages after the rate limit")
            time.sleep(1.5)  # a double would show now
        finally:
            n.stop()
    assert rx.limited == 1 and rx.early == 0, (rx.limited, rx.early)
    first = min(rx.requests_at)
    assert all(t >= rx.limited_until for t in rx.requests_at if t != first)  # nothing in the 4 s
    assert len(rx.accepted) == 6 and len({text(p) for p in rx.accepted}) == 6
    for inc in incs:
        assert steps_received(rx, inc.id) == ["acting", "resolved"]
    assert store.outbox.counts() == {"sent": 6}


def test_other_targets_are_not_held(tmp_path):
    store = State(tmp_path / "s.db")
    with Receiver() as limited, Receiver() as free:
        limited.limit(6)
        n = start(store, [target(limited, "json"), target(free, "json")])
        try:
            incs = [incident(store, f"free{i:04d}", attempts=1) for i in range(3)]
            began = time.time()
            for inc in incs:
                n.step(inc, "acting", "attempt 1 of 3")
            wait_until(lambda: len(free.accepted) == 3, 10, "the free target's messages")
            free_done = time.time()
            wait_until(lambda: len(limited.accepted) == 3, 30, "the limited target's messages")
        finally:
            n.stop()
    assert free_done - began < 5 < min(limited.accepted_at) - began
    assert limited.early == 0


def test_the_wait_outlives_a_restart(tmp_path):
    store = State(tmp_path / "s.db")
    with Receiver() as rx:
        rx.limit(6)
        first = start(store, [target(rx, "json")])
        first.step(incident(store, "rst00001", attempts=1), "acting", "attempt 1 of 3")
        wait_until(lambda: rx.limited >= 1, 10, "the rate limit")
        first.stop()  # the agent restarts inside the wait
        second = start(State(tmp_path / "s.db"), [target(rx, "json")])
        try:
            second.step(incident(store, "rst00002", attempts=1), "acting", "attempt 1 of 3")
            wait_until(lambda: len(rx.accepted) >= 2, 30, "both messages after the wait")
            time.sleep(1)
        finally:
            second.stop()
    assert rx.early == 0 and len(rx.accepted) == 2
    assert min(rx.accepted_at) >= rx.limited_until


def test_said_once_per_rate_limit_and_shown_in_metrics(tmp_path, caplog):
    store = State(tmp_path / "s.db")
    caplog.set_level(logging.WARNING, logger="agent.notify.notifier")
    with Receiver() as rx:
        rx.limit(3)
        t = target(rx, "json")
        n = start(store, [t])
        try:
            n.step(incident(store, "say00001", attempts=1), "acting", "attempt 1 of 3")
            wait_until(lambda: rx.limited >= 1, 10, "the rate limit")
            rx.limit(3)  # asked again when its time is up: the same rate limit goes on
            gauge = {tuple(s.labels.values()): s.value for m in n.metrics() for s in m.samples
                     if s.name == "hb_medic_notify_target_wait_seconds"}
            wait_until(lambda: rx.limited >= 2, 10, "the second 429")
            wait_until(lambda: len(rx.accepted) == 1, 15, "the message after the rate limit")
            after = {s.value for m in n.metrics() for s in m.samples
                     if s.name == "hb_medic_notify_target_wait_seconds"}
        finally:
            n.stop()
    said = [r.getMessage() for r in caplog.records if "rate limited" in r.getMessage()]
    assert len(said) == 1 and "asks for 3 s" in said[0], said
    assert any("delivered again" in r.getMessage() for r in caplog.records)
    assert 0 < gauge[(t.private, "true")] <= 3
    assert after == {0.0}
    assert rx.early == 0
