"""The notification receiver answers 429 with `Retry-After` (60 s; 10 s in the quick run),
as Slack does, while incidents come and are fixed, with a `kill -9` of the agent inside the
wait. No request reaches it before the time it asked for, nothing is lost or doubled, each
incident's messages arrive in the order of its steps, the wait shows in /metrics, and the
outbox drains soon after the time is up."""

from __future__ import annotations

import json
import re
import time
from collections import Counter

from faults.bed import Bed
from faults.scenarios.common import log, settle
from tests.receiver import Receiver

TARGET = ("0 requests before Retry-After has passed (across a kill -9), 0 lost, 0 doubled, in order;"
          " drained within 10 s of the allowed time")
GAUGE = re.compile(r'^hb_medic_notify_target_wait_seconds\{[^}]*rate_limited="true"[^}]*\} (\S+)$', re.M)


def run(quick: bool) -> dict:
    wait = 10 if quick else 60
    with Receiver() as rx, Bed("receiver-429", quick=quick) as bed:
        tag = bed.tag
        agent = bed.agent(MEDIC_NOTIFY_URLS=rx.url).start()
        bed.deploy(agent, f"rl0-{tag}", f"rl0_{tag}")  # one while the receiver takes everything
        settle(lambda: len(rx.accepted) >= 2, 30)
        rx.limit(wait)
        bed.deploy(agent, f"rl1-{tag}", f"rl1_{tag}")
        settle(lambda: rx.limited >= 1, 30, 0.1)
        began = time.time()
        log(f"receiver rate limited until +{wait} s")
        bed.deploy(agent, f"rl2-{tag}", f"rl2_{tag}")
        settle(lambda: _fixed(agent) >= 3 or time.time() - began > wait / 3, wait)
        shown = _gauge(agent)  # what /metrics says inside the wait
        agent.kill9()  # inside the wait, with messages waiting in the outbox
        agent.start()
        bed.deploy(agent, f"rl3-{tag}", f"rl3_{tag}")
        allowed = rx.limited_until
        drained = settle(lambda: time.time() > allowed and _fixed(agent) >= 4 and _pending(agent) == 0
                         and len(rx.accepted) >= _stored(agent), wait + 120, 0.1)
        after_allowed = [t for t in rx.accepted_at if t >= allowed]
        drain_s = (max(after_allowed) - allowed) if drained and after_allowed else None
        time.sleep(2)  # a double would show now
        stored = _stored(agent)
        outbox = agent.query("SELECT incident, message FROM outbox WHERE status IN ('pending', 'sent')"
                             " ORDER BY id")
        accepted = list(rx.accepted)
        early, limited = rx.early, rx.limited  # early: requests after the 429, before the allowed time
        agent.stop()
    # Each message counted against its row in the outbox: (incident, title). A step the agent
    # stored twice (a restart in the middle of an attempt) is two rows, and no double delivery.
    stored_rows = Counter((_short(incident), json.loads(message)["title"]) for incident, message in outbox)
    received_rows = Counter(_received(m) for m in accepted)
    doubled = sum(max(0, n - stored_rows[k]) for k, n in received_rows.items())
    lost = sum(max(0, n - received_rows[k]) for k, n in stored_rows.items())
    stored_twice = sum(n - 1 for n in stored_rows.values())
    written: dict[str, list[str]] = {}
    for incident, message in outbox:
        written.setdefault(_short(incident), []).append(json.loads(message)["title"])
    received: dict[str, list[str]] = {}
    for m in accepted:
        incident, title = _received(m)
        received.setdefault(incident, []).append(title)
    order_problems = [inc for inc, titles in written.items()
                      if inc in received and [t for t in received[inc] if t in titles] != titles]
    measured = {"retry_after_s": wait, "answers_429": limited, "requests_before_allowed": early,
                "messages_stored": stored, "messages_received": len(accepted), "lost": lost,
                "doubled": doubled, "incidents_out_of_order": len(order_problems),
                "steps_stored_twice": stored_twice,
                "metrics_wait_shown_s": shown,
                "drained_after_allowed_s": round(drain_s, 1) if drain_s is not None else None}
    ok = (drained and early == 0 and lost == 0 and doubled == 0 and not order_problems
          and shown is not None and shown > 0 and drain_s is not None and drain_s <= 10)
    return {"pass": ok, "measured": measured,
            "figure": f"Retry-After {wait} s with a kill: {early} requests before the allowed time,"
                      f" {lost} lost, {doubled} doubled, {len(order_problems)} out of order; drained"
                      f" {measured['drained_after_allowed_s']} s after the allowed time"
                      + (f" ({stored_twice} steps stored twice by the restart, each delivered once)"
                         if stored_twice else "")}


def _short(incident: str | None) -> str:
    """An incident as its messages name it (the first 8 characters of its id)."""
    return (incident or "")[:8]


def _received(m: dict) -> tuple[str, str]:
    """(incident, title) of a received message."""
    found = re.search(r"incident ([0-9a-f]{8})", m.get("message", ""))
    return (found[1] if found else "", m.get("title", ""))


def _gauge(agent) -> float | None:
    """Seconds /metrics says the rate-limited target waits (None: not shown)."""
    found = GAUGE.search(agent.metrics())
    return round(float(found[1]), 1) if found else None


def _fixed(agent) -> int:
    return agent.query("SELECT COUNT(*) FROM incidents WHERE rule = 'credentials-profile-missing'"
                       " AND state = 'resolved'")[0][0]


def _stored(agent) -> int:
    return agent.query("SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sent')")[0][0]


def _pending(agent) -> int:
    return agent.query("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")[0][0]
