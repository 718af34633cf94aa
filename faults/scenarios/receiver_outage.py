"""The notification receiver goes down for minutes (first refusing connections, then
accepting and hanging up), with a `kill -9` of the agent during it, while incidents come and
are fixed. Nothing is lost or doubled, each incident's messages arrive in the order of its
steps, and the outbox drains soon after the receiver is back."""

from __future__ import annotations

import json
import re
import time

from faults.bed import Bed
from faults.scenarios.common import log, settle
from tests.receiver import Receiver

TARGET = "0 lost, 0 doubled, in order; the outbox drained within 30 s of the receiver's return"


def run(quick: bool) -> dict:
    refuse, close = (6.0, 4.0) if quick else (120.0, 60.0)
    with Receiver() as rx, Bed("receiver-outage", quick=quick) as bed:
        tag = bed.tag
        agent = bed.agent(MEDIC_NOTIFY_URLS=rx.url).start()
        bed.deploy(agent, f"rx0-{tag}", f"rx0_{tag}")  # one while the receiver is fine
        settle(lambda: len(rx.accepted) >= 2, 30)
        rx.mode = "refuse"
        started = time.monotonic()
        for i in (1, 2):
            bed.deploy(agent, f"rx{i}-{tag}", f"rx{i}_{tag}")
        settle(lambda: _fixed(agent) >= 3, 30)
        time.sleep(max(0.0, refuse / 2 - (time.monotonic() - started)))
        agent.kill9()  # with messages waiting in the outbox
        agent.start()
        bed.deploy(agent, f"rx3-{tag}", f"rx3_{tag}")
        time.sleep(max(0.0, refuse - (time.monotonic() - started)))
        rx.mode = "close"
        bed.deploy(agent, f"rx4-{tag}", f"rx4_{tag}")
        time.sleep(close)
        settle(lambda: _fixed(agent) >= 5, 90)
        held = _pending_messages(agent)  # what the outage kept back: the drain is measured on these
        rx.mode = "ok"
        back = time.monotonic()
        log(f"receiver back after {back - started:.0f} s, {len(held)} messages waiting")
        drained = settle(lambda: _pending(agent) == 0 and len(rx.accepted) >= _stored(agent), 90, 0.1)
        back_wall = time.time() - (time.monotonic() - back)
        # Messages of steps taken after the return (a slow machine's late fixes) are not the drain.
        delivered = [t for t, m in zip(rx.accepted_at, list(rx.accepted), strict=False) if _step(m) in held]
        drain_s = (max(delivered, default=back_wall) - back_wall) if drained else None
        time.sleep(2)  # a double would show now
        stored = _stored(agent)
        outbox = agent.query("SELECT incident, message FROM outbox WHERE status IN ('pending', 'sent')"
                             " ORDER BY id")
        accepted = list(rx.accepted)
        refused = rx.refused
        agent.stop()
    seen: dict[tuple[str, str], int] = {}
    for m in accepted:
        key = (m.get("title", ""), m.get("message", ""))
        seen[key] = seen.get(key, 0) + 1
    # Each incident's messages, in the order its steps were written, against the order received.
    written: dict[str, list[str]] = {}
    for incident, message in outbox:
        written.setdefault(incident, []).append(json.loads(message)["title"])
    received: dict[str, list[str]] = {}
    for m in accepted:
        found = re.search(r"incident ([0-9a-f]{8})", m.get("message", ""))
        if found:
            received.setdefault(found[1], []).append(m.get("title", ""))
    order_problems = [inc for inc, titles in written.items()
                      if inc in received and [t for t in received[inc] if t in titles] != titles]
    doubled = sum(n - 1 for n in seen.values())
    lost = max(0, stored - len(accepted))
    measured = {"outage_s": refuse + close, "delivery_failures_during_outage": refused,
                "messages_stored": stored, "messages_received": len(accepted), "lost": lost,
                "doubled": doubled,
                "incidents_out_of_order": len(order_problems),
                "drained_after_return_s": round(drain_s, 1) if drain_s is not None else None}
    ok = (drained and lost == 0 and doubled == 0 and not order_problems and drain_s is not None
          and drain_s <= 30)
    return {"pass": ok, "measured": measured,
            "figure": f"outage {refuse + close:.0f} s with a kill: {lost} lost, {doubled} doubled,"
                      f" {len(order_problems)} out of order; drained {measured['drained_after_return_s']} s"
                      " after the receiver was back"}


def _fixed(agent) -> int:
    return agent.query("SELECT COUNT(*) FROM incidents WHERE rule = 'credentials-profile-missing'"
                       " AND state = 'resolved'")[0][0]


def _stored(agent) -> int:
    return agent.query("SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sent')")[0][0]


def _pending_messages(agent) -> set[tuple[str, str]]:
    """(incident, title) of each message still waiting in the outbox: a step of an incident."""
    rows = agent.query("SELECT incident, message FROM outbox WHERE status = 'pending'")
    return {((incident or "")[:8], json.loads(raw).get("title", "")) for incident, raw in rows}


def _step(received: dict) -> tuple[str, str]:
    """The (incident, title) a received message tells of."""
    found = re.search(r"incident ([0-9a-f]{8})", received.get("message", ""))
    return (found[1] if found else "", received.get("title", ""))


def _pending(agent) -> int:
    return agent.query("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")[0][0]
