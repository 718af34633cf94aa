"""The chat group: messages a phone gets for one incident, and how soon a button press starts the
fix, against the local Telegram Bot API server of the tests (tests.telegram_fake) through the
real notifier, outbox, transport and long-polling listener (and, for the press, the whole agent
with its real operator in ask mode on the stand-in stack)."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import httpx

from agent.service import Service
from agent.settings import Settings
from tests.chatbed import OperatorDouble, bed, incident
from tests.stack import ADMIN, Stack, free_port, prefixed_rules, wait_until
from tests.telegram_fake import TelegramFake

ALLOWED = 1001  # the Telegram user listed in MEDIC_CHAT_TELEGRAM_USERS


def messages_per_incident() -> dict:
    """The story of a fix that cannot work (once six messages): new messages and edits in the chat."""
    with tempfile.TemporaryDirectory() as tmp, TelegramFake() as fake, bed(Path(tmp) / "s.db", fake) as b:
        b.tell(incident(b.store, "bench001"))
        wait_until(b.drained, 60, "the story delivered")
        time.sleep(0.5)
        return {"messages": len(fake.of("sendMessage")), "edits": len(fake.of("editMessageText"))}


def operator_latencies(presses: int) -> list[float]:
    """ms from a button press at the Bot API server to the operator's `press` being called (an
    operator double, tests.chatbed.OperatorDouble, that records it): the transport's part alone."""
    out = []
    operator = OperatorDouble()
    with (tempfile.TemporaryDirectory() as tmp, TelegramFake() as fake,
          bed(Path(tmp) / "s.db", fake, operator=operator, listen=True)):
        wait_until(lambda: fake.of("getMe"), 10, "the listener polling")
        for i in range(presses):
            operator.pressed.clear()
            pressed = time.time()
            fake.press(4242, f"fix:bench{i:03d}:token")
            if not operator.pressed.wait(10):
                raise AssertionError(f"press {i} never reached the operator")
            out.append((operator.presses[-1][2] - pressed) * 1000)
            time.sleep(0.05)
    return out


def approval_to_action(client, presses: int, batch: int = 5) -> dict:
    """ms from a Fix now press at the Bot API server to the first action of the fix started: the
    agent (Service, its real operator) in ask mode on the stand-in stack, the press from a listed
    user on the button of the incident's own message. Seed deploys fail through the recorder
    (preflight off), `batch` profiles at a time, so that many incidents await approval at once;
    each is pressed in turn, the next once the previous one's first action has begun (at most
    `batch` fixes side by side, fewer than the remedy's workers: no press waits for a worker).

    The mark is the first action's start as the incident's audit trail gives it: its row is
    written when the action ends, with its duration, so start = `at` - `duration_ms` (the clock
    of the same process as the press). `press_to_attempt` is the row the attempt writes as it
    begins (earlier still: the attempt's bookkeeping, before the action's parameters)."""
    action, attempt = [], []
    tmp = Path(tempfile.mkdtemp(prefix="medic-bench-"))
    try:
        with Stack(client) as stack, TelegramFake() as fake:
            service = Service(Settings(
                containers=[stack.prefix + "hummingbot-api"], state_db=tmp / "state.db",
                rules_dir=prefixed_rules(stack.prefix, tmp / "rules"), hummingbot_url=stack.url,
                hummingbot_password="admin", http_addr=f"127.0.0.1:{free_port()}",
                recorder_addr=f"127.0.0.1:{free_port()}", catchup_window=120, bots="off", bot_settle=1,
                preflight="off", mode="ask", chat=["telegram"], chat_telegram_users=[str(ALLOWED)],
                notify_urls=fake.notify_url(), telegram_api_url=fake.url))
            service.start()
            try:
                wait_until(lambda: fake.of("getMe"), 30, "the listener polling")
                n = 0
                while n < presses:
                    waiting = _awaiting(service, stack, fake, [f"client_bench{n + i:03d}"
                                                               for i in range(min(batch, presses - n))])
                    for inc, (message, data) in waiting:
                        pressed = time.time()
                        fake.press(ALLOWED, data, message=message, username="bench")
                        first = wait_until(lambda i=inc: _first(service, i), 30, f"{inc}'s first action")
                        trail = service.store.incidents.audit_trail(inc)
                        began = next(a["at"] for a in trail if a["kind"] == "attempt")
                        action.append((first["at"] - (first["duration_ms"] or 0) / 1000 - pressed) * 1000)
                        attempt.append((began - pressed) * 1000)
                    n += len(waiting)
                    wait_until(lambda w=waiting: all(service.store.incidents.get(i).state == "resolved"
                                                     for i, _ in w), 120, "the batch's fixes")
            finally:
                service.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"action": action, "attempt": attempt}


def _awaiting(service, stack, fake: TelegramFake, profiles: list[str]) -> list[tuple[str, tuple[int, str]]]:
    """Seed deploys of these profiles failed; their incidents and each one's Fix now (message, data)."""
    with httpx.Client(base_url=f"http://{service.settings.recorder_addr}", auth=ADMIN, timeout=60) as c:
        for profile in profiles:
            body = {"instance_name": stack.unique("bench"), "credentials_profile": profile, "headless": True}
            if c.post("/bot-orchestration/deploy-v2-script", json=body).status_code != 500:
                raise AssertionError(f"the seed deploy of {profile} did not fail")

    def buttons() -> list | None:
        incs = {i.captures.get("profile"): i.id for i in service.store.incidents.recent(50)
                if i.state == "awaiting-approval"}
        if not all(p in incs for p in profiles):
            return None
        out = []
        for profile in profiles:
            fix = [(s.id, b["callback_data"]) for s in fake.sent()
                   for row in (s.markup or {}).get("inline_keyboard", []) for b in row
                   if b["callback_data"].startswith(f"fix:{incs[profile]}:")]
            if not fix:
                return None
            out.append((incs[profile], fix[-1]))
        return out

    return wait_until(buttons, 60, "the incidents awaiting approval, with their buttons")


def _first(service, inc: str) -> dict | None:
    return next((a for a in service.store.incidents.audit_trail(inc) if a["kind"] == "action"), None)
