"""The Telegram chat goes away for a while (nothing listens on its port), with a `kill -9` of
the agent in the middle of it, while failed deploys come and are fixed in act mode. The fixes
never wait for the chat: they take as long as the same fixes before the outage. Once the chat is
back, each incident has its one message, edited step by step to its final state (one more only
when a person is needed): nothing lost, nothing doubled, the edits in the order of the steps.
The bot token never appears in the agent's log."""

from __future__ import annotations

import re
import statistics
import time
from collections import Counter

from agent.chat.living import PERSON_STEPS, RENDERERS
from agent.notify.message import Message
from faults.bed import Bed
from faults.scenarios.common import log, settle
from tests.telegram_fake import Call, Sent, TelegramFake

TARGET = ("every fix ran while the chat was down, as fast as without the outage (within 10 s) and its bot"
          " runs; after the return each incident has one message edited to its final state (one more when"
          " a person is needed): 0 lost, 0 doubled, 0 out of order; drained within 30 s; the bot token never"
          " in the agent's log")
RULE = "credentials-profile-missing"
SENDS = ("sendMessage", "editMessageText")
INCIDENT = re.compile(r"incident ([0-9a-f]{8})")
SLOWER_BY = 10.0  # seconds an outage's fix may take beyond the slowest one before it (a loaded machine)


def run(quick: bool) -> dict:
    outage = 10.0 if quick else 180.0
    # Five incidents at most: two messages each, and the rule's 11th message within 5 minutes would
    # be held for a storm's digest instead of going to its incident's message.
    before_kill, after_kill = (1, 1) if quick else (2, 1)
    with TelegramFake() as fake, Bed("chat-outage", quick=quick) as bed:
        tag = bed.tag
        agent = bed.agent(MEDIC_MODE="act", MEDIC_PREFLIGHT="off", MEDIC_CHAT="telegram",
                          MEDIC_CHAT_TELEGRAM_USERS="1001", MEDIC_TELEGRAM_API_URL=fake.url,
                          MEDIC_NOTIFY_URLS=fake.notify_url()).start()
        names: dict[str, str] = {}  # profile -> instance name

        def deploy(label: str) -> str:
            profile, name = f"co{label}_{tag}", f"co{label}-{tag}"
            names[profile] = name
            status = bed.deploy(agent, name, profile)
            if status != 500:
                log(f"deploy {name}: {status} (a failure was expected)")
            return profile

        # The same fixes with the chat up: what a fix takes here, on this machine now.
        baseline = [deploy(f"b{i}") for i in range(2)]
        settle(lambda: _resolved(agent, baseline), 120)
        settle(lambda: _pending(agent) == 0, 30, 0.1)
        fake.go_away()
        gone = time.monotonic()
        log("the chat is gone")
        during = [deploy(f"o{i}") for i in range(before_kill)]
        settle(lambda: _resolved(agent, during), 120)
        time.sleep(max(0.0, outage / 2 - (time.monotonic() - gone)))
        held_at_kill = _pending(agent)
        agent.kill9()  # with the chat's messages waiting in the outbox
        agent.start()
        log(f"killed and started again {time.monotonic() - gone:.0f} s into the outage,"
            f" {held_at_kill} messages waiting")
        later = [deploy(f"k{i}") for i in range(after_kill)]
        during += later
        settle(lambda: _resolved(agent, during), 120)
        time.sleep(max(0.0, outage - (time.monotonic() - gone)))
        held = _pending(agent)
        fake.come_back()
        back_wall, away = time.time(), time.monotonic() - gone
        log(f"the chat is back after {away:.0f} s, {held} messages waiting")
        drained = settle(lambda: _pending(agent) == 0, 90, 0.1)
        time.sleep(2)  # a double would show now
        bots = bed.bots()
        profiles = baseline + during
        incidents = {p: _incident(agent, p) for p in profiles}
        outbox = agent.query("SELECT incident, message, status FROM outbox ORDER BY id")
        agent.stop()
        agent_log = agent.text()
    calls = list(fake.calls)
    sent = fake.sent()

    # The fixes: each incident's time from its failure to resolved, before and during the outage.
    took = {p: (round(inc[2] - inc[1], 1) if inc and inc[2] else None) for p, inc in incidents.items()}
    base_s = [took[p] for p in baseline if took[p] is not None]
    out_s = [took[p] for p in during if took[p] is not None]
    unresolved = [p for p in profiles if not incidents[p] or incidents[p][3] != "resolved"]
    not_running = [names[p] for p in profiles if bots.get(names[p], []) != ["running"]]
    waited = bool(base_s) and bool(out_s) and max(out_s) > max(base_s) + SLOWER_BY

    # The messages: what each incident's steps should have made of its message(s), against the chat.
    written: dict[str, list[Message]] = {}
    statuses = Counter(status for _, _, status in outbox)
    for incident, raw, status in outbox:
        if incident and status in ("pending", "sent"):
            written.setdefault(incident, []).append(Message.from_json(raw))
    verdict = judge(written, sent, calls)
    untold = [p for p in profiles if not incidents[p] or incidents[p][0] not in written]
    lost, doubled, out_of_order, too_many = (verdict["lost"], verdict["doubled"], verdict["out_of_order"],
                                             verdict["wrong_count"])
    delivered_after = [c.at for c in calls if c.method in SENDS and c.status == 200 and c.at >= back_wall]
    drain_s = round(max(delivered_after) - back_wall, 1) if drained and delivered_after else None
    secret = fake.token.split(":", 1)[1]
    token_in_log = agent_log.count(secret)

    measured = {
        "outage_s": round(away, 1), "kill_s_into_outage": round(outage / 2, 1),
        "incidents": {"before_outage": len(baseline), "during_outage": len(during)},
        "fix_s_before_outage": base_s, "fix_s_during_outage": out_s,
        "fix_s_median": {"before": round(statistics.median(base_s), 1) if base_s else None,
                         "during": round(statistics.median(out_s), 1) if out_s else None},
        "unresolved": unresolved, "bots_not_running": not_running, "incidents_without_steps": untold,
        "messages_waiting_at_kill": held_at_kill, "messages_waiting_at_return": held,
        "outbox": dict(statuses), "steps_written": sum(len(v) for v in written.values()),
        "chat_messages": verdict["posted"], "edits": sum(len(s.edits) for s in sent),
        "incidents_with_wrong_message_count": too_many,
        "lost": lost, "doubled": doubled, "incidents_out_of_order": len(out_of_order),
        "failed_chat_calls": sum(1 for c in calls if c.method in SENDS and c.status != 200),
        "drained_after_return_s": drain_s, "token_in_log": token_in_log,
    }
    ok = (not unresolved and not not_running and not waited and held > 0 and drained
          and not untold and not too_many and lost == 0 and doubled == 0
          and not out_of_order and drain_s is not None and drain_s <= 30 and token_in_log == 0)
    median = measured["fix_s_median"]
    fixed = len(during) - len([p for p in during if p in unresolved])
    figure = (f"chat gone {away:.0f} s with a kill -9 in it: {fixed} of {len(during)} fixed while it was down"
              f" in {median['during']} s (median; {median['before']} s with the chat up), bots running"
              f" {len(profiles) - len(not_running)}/{len(profiles)}; after the return"
              f" {measured['chat_messages']} messages for {len(written)} incidents"
              f" ({len(too_many)} with a wrong count), {lost} lost, {doubled} doubled,"
              f" {len(out_of_order)} out of order; drained {drain_s} s after the return;"
              f" token in the log {token_in_log} times")
    return {"pass": ok, "measured": measured, "figure": figure}


def judge(written: dict[str, list[Message]], sent: list[Sent], calls: list[Call]) -> dict:
    """Each incident's steps (from the outbox, in order) against what the chat shows: its
    message(s), each with its earlier texts (edits) then its text now. A step shown nowhere is
    lost, one shown twice (or sent again onto the same text, which Telegram refuses as not
    modified) is doubled; the texts in another order than the steps is out of order; an incident
    gets one message, and a new one only for a later step that needs a person."""
    render = RENDERERS["telegram"]
    seen: dict[str, list[str]] = {}
    posted: Counter[str] = Counter()
    for s in sent:
        found = INCIDENT.search(s.text)
        if found:
            posted[found[1]] += 1
            seen.setdefault(found[1], []).extend([*s.edits, s.text])
    lost = doubled = 0
    out_of_order: list[str] = []
    wrong_count: list[str] = []
    for incident, steps in written.items():
        expected = [render(m) for m in steps]
        shown = seen.get(incident, [])
        lost += sum((Counter(expected) - Counter(shown)).values())
        doubled += sum((Counter(shown) - Counter(expected)).values())
        if [t for t in shown if t in expected] != [t for t in expected if t in shown]:
            out_of_order.append(incident)
        if posted[incident] != 1 + sum(1 for m in steps[1:] if m.step in PERSON_STEPS):
            wrong_count.append(incident)
    doubled += sum(1 for c in calls if c.method == "editMessageText" and c.status == 400
                   and "not modified" in c.description)
    return {"lost": lost, "doubled": doubled, "out_of_order": out_of_order, "wrong_count": wrong_count,
            "posted": sum(posted[i] for i in written)}


def _incident(agent, profile: str) -> tuple | None:
    rows = agent.query("SELECT id, created, closed, state FROM incidents WHERE rule = ? AND key = ?"
                       " ORDER BY created", (RULE, profile))
    return rows[-1] if rows else None


def _resolved(agent, profiles: list[str]) -> bool:
    return all((inc := _incident(agent, p)) is not None and inc[3] == "resolved" for p in profiles)


def _pending(agent) -> int:
    return agent.query("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")[0][0]

