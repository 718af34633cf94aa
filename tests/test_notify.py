"""Real apprise to a local receiver: lifecycle messages, an outage with a restart
in between (every message exactly once), storm control, canary secrets, the
`notify test` command, and the seed incident end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from agent.match.loader import load_rules
from agent.notify.notifier import Notifier
from agent.notify.targets import TargetError, parse_urls, split_entries
from agent.records import Incident, IncidentState
from agent.redact import Redactor
from agent.state import State
from tests.receiver import Receiver
from tests.stack import REPO, wait_until

RULES = {r.id: r for r in load_rules(REPO / "rules").rules}


def incident(store: State, ident: str, rule: str = "credentials-profile-missing", **kw) -> Incident:
    inc = Incident(id=ident, rule=rule, key="client_sharp", state=IncidentState.ACTING,
                   severity=RULES[rule].severity, container="hummingbot-api", fingerprint="v1:x",
                   captures={"profile": "client_sharp"},
                   summary="credentials-profile-missing in hummingbot-api: FileNotFoundError: [Errno 2] "
                           "No such file or directory: 'bots/credentials/client_sharp'", **kw)
    return store.incidents.create(inc)


def notifier(store: State, url: str, **kw) -> Notifier:
    n = Notifier(store, parse_urls(url), rules=lambda: RULES, redactor=kw.pop("redactor", Redactor()), **kw)
    n.start()
    return n


def test_lifecycle_payloads(tmp_path):
    store = State(tmp_path / "s.db")
    with Receiver() as rx:
        n = notifier(store, rx.url)
        try:
            inc = incident(store, "inc00001", attempts=1)
            store.incidents.audit(inc.id, "action", "ensure_account", {"profile": "client_sharp"}, True,
                                  "added profile client_sharp", 12.0)
            steps = [("detected", "x"), ("acting", "attempt 1 of 3"), ("resolved", "fixed in 0.2 s")]
            for step, text in steps:
                n.step(inc, step, text)
            inc2 = incident(store, "inc00002", attempts=3)
            n.step(inc2, "gave-up", "add-account answered 500 (after 3 attempts)")
            n.step(incident(store, "inc00003"), "refused",
                   "not acting: capture profile='../etc' contains '..'")
            n.step(incident(store, "inc00004"), "waiting",
                   "fixed, but ... To finish: hb-medic retry-deploy ...")
            wait_until(lambda: len(rx.accepted) == 5, 15, "five messages")
        finally:
            n.stop()
    titles = rx.titles()
    assert titles[0] == ("[CRITICAL] Detected, fixing: Deploy failed: credentials profile client_sharp "
                         "did not exist")  # "detected" alone is not sent for a rule that acts
    assert titles[1].startswith("[CRITICAL] Fixed:")
    assert titles[2].startswith("[CRITICAL] Gave up: a human is needed:")
    assert titles[3].startswith("[CRITICAL] Refused to act:")
    assert titles[4].startswith("[CRITICAL] Fixed, deploy needs you:")
    fixed = rx.messages()[1]
    assert "incident inc00001 · hummingbot-api · credentials-profile-missing" in fixed
    assert "- ensure_account(profile='client_sharp'): ok added profile client_sharp" in fixed
    assert "Result: fixed in 0.2 s" in fixed
    assert "Next: The new profile client_sharp has no exchange keys" in fixed
    assert "FileNotFoundError: [Errno 2]" in fixed
    assert "hb-medic retry-deploy" in rx.messages()[4]


def test_outage_then_recovery_across_a_restart_delivers_each_once(tmp_path):
    store = State(tmp_path / "s.db")
    with Receiver() as rx:
        rx.failing = True
        first = notifier(store, rx.url)
        for i in range(3):
            first.step(incident(store, f"out{i:05d}"), "gave-up", f"failure {i}")
        wait_until(lambda: rx.refused >= 3, 15, "failed attempts")
        first.stop()  # the agent restarts during the outage
        rx.failing = False
        second = notifier(State(tmp_path / "s.db"), rx.url)
        for row in second.store.outbox.due(time.time() + 3600):  # no waiting out the backoff in a test
            second.store.outbox.mark(row[0], status="pending", attempts=row[7], next_at=0)
        try:
            wait_until(lambda: len(rx.accepted) >= 3, 20, "delivery after the outage")
            time.sleep(2)
        finally:
            second.stop()
    bodies = rx.messages()
    assert len(bodies) == 3 and len(set(bodies)) == 3
    assert sorted(b.split("Result: ")[1].split("\n")[0] for b in bodies) == [
        "failure 0", "failure 1", "failure 2"]
    assert store.outbox.counts() == {"sent": 3}


def test_an_incidents_messages_arrive_in_order_and_the_outbox_drains_after_an_outage(tmp_path):
    """Receiver refusing, then accepting and hanging up: nothing lost or doubled, each incident's
    "Detected, fixing" before its "Fixed", everything delivered soon after the receiver is back."""
    store = State(tmp_path / "s.db")
    with Receiver() as rx:
        n = notifier(store, rx.url)
        try:
            rx.mode = "refuse"
            incs = [incident(store, f"ord{i:05d}", attempts=1) for i in range(3)]
            for inc in incs:
                n.step(inc, "acting", "attempt 1 of 3")
            wait_until(lambda: n.failed >= 2, 60, "failed deliveries while refused")
            rx.mode = "close"
            wait_until(lambda: rx.refused >= 1, 60, "a delivery cut off by the receiver")
            rx.mode = "ok"
            back = time.time()
            for inc in incs:  # fixed just as the receiver came back
                n.step(inc, "resolved", "fixed in 0.2 s")
            wait_until(lambda: len(rx.accepted) >= 6, 60, "all six messages")
            time.sleep(1)
        finally:
            n.stop()
    assert len(rx.accepted) == 6
    for inc in incs:
        mine = [m["title"].split(":")[0] for m in rx.accepted if f"incident {inc.id}" in m["message"]]
        assert mine == ["[CRITICAL] Detected, fixing", "[CRITICAL] Fixed"], mine
    assert max(rx.accepted_at) - back < 30
    assert store.outbox.counts() == {"sent": 6}


def test_storm_is_digested(tmp_path):
    store = State(tmp_path / "s.db")
    with Receiver() as rx:
        n = notifier(store, rx.url, storm_count=3, storm_window=60, digest_after=1)
        try:
            for i in range(10):
                n.step(incident(store, f"storm{i:04d}", rule="script-config-missing"), "detected", "x")
            wait_until(lambda: any("more messages" in t for t in rx.titles()), 15, "the digest")
        finally:
            n.stop()
    assert len(rx.accepted) == 4  # three, then one digest for the other seven
    assert rx.titles()[-1] == "[WARNING] 7 more messages: script-config-missing"


def test_a_final_message_is_never_held_for_a_digest(tmp_path):
    store = State(tmp_path / "s.db")
    with Receiver() as rx:
        n = notifier(store, rx.url, storm_count=3, storm_window=60, digest_after=600)
        try:
            incs = [incident(store, f"final{i:03d}", attempts=1) for i in range(4)]
            for inc in incs:  # the storm limit reached: the fourth "fixing" is held
                n.step(inc, "acting", "running ensure_account (attempt 1 of 3)")
            for inc, step in zip(incs, ("resolved", "gave-up", "needs-you", "observed"), strict=True):
                n.step(inc, step, f"{step} at last")
            wait_until(lambda: len(rx.accepted) == 7, 15, "three steps and the four final messages")
            time.sleep(1.5)
        finally:
            n.stop()
    assert store.outbox.counts().get("held") == 1  # the fourth "fixing" only
    assert len(rx.accepted) == 7


def test_a_step_told_already_is_not_told_again(tmp_path):
    """A restart in the middle of an attempt runs it again: its "fixing" message, the same step at
    the same attempt in the same words, goes out once; the next attempt's is told once, folded into
    the final message (an intermediate step: docs/notifications.md)."""
    store = State(tmp_path / "s.db")
    with Receiver() as rx:
        n = notifier(store, rx.url)
        try:
            inc = incident(store, "again001", attempts=1)
            n.step(inc, "acting", "running ensure_account -> retry_deploy (attempt 1 of 3)")
            store.incidents.audit(inc.id, "action", "ensure_account", {"profile": "client_sharp"}, True, "ok")
            n.step(inc, "acting", "running ensure_account -> retry_deploy (attempt 1 of 3)")  # resumed
            inc.attempts = 2
            n.step(inc, "acting", "running ensure_account -> retry_deploy (attempt 2 of 3)")
            n.step(inc, "resolved", "fixed in 3.0 s")
            wait_until(lambda: len(rx.accepted) == 2, 15, "two messages")
            time.sleep(1.5)
        finally:
            n.stop()
    assert [t.split(":")[0] for t in rx.titles()] == ["[CRITICAL] Detected, fixing", "[CRITICAL] Fixed"]
    steps = rx.messages()[1].split("Steps so far:\n")[1].split("\n\n")[0].split("\n")
    assert [s.split(" ", 2)[2] for s in steps] == ["Detected, fixing", "Fixing again (attempt 2)"]


def test_canary_secret_never_in_payload_log_or_audit(tmp_path, caplog):
    canary = "canary-Zx81-secret"
    store = State(tmp_path / "s.db")
    with Receiver() as rx:
        n = notifier(store, rx.url, redactor=Redactor([canary]))
        try:
            inc = incident(store, "canary01")
            inc.summary = f"ERROR - login failed for admin:{canary}@hummingbot-api"
            store.incidents.audit(inc.id, "action", "http_request", {"path": "/", "password": canary}, False,
                                  f"answered 401 for {canary}")
            n.step(inc, "failed", f"http_request: answered 401 ({canary})")
            wait_until(lambda: rx.accepted, 15, "the message")
        finally:
            n.stop()
    assert canary not in str(rx.accepted) and "***" in str(rx.accepted)
    assert canary not in caplog.text
    outbox = store.file.conn().execute("SELECT message, last_error FROM outbox").fetchall()
    assert outbox and canary not in str(outbox)


def test_bad_urls_are_refused_with_a_clear_message():
    with pytest.raises(TargetError, match="apprise cannot use a nope:// URL"):
        parse_urls("json://127.0.0.1:1/x, nope://whatever")
    targets = parse_urls("critical,error=json://127.0.0.1:1/a,json://127.0.0.1:1/b")
    assert [sorted(t.tags) for t in targets] == [["critical", "error"], []]
    assert targets[0].wants("critical") and not targets[0].wants("warning") and targets[1].wants("warning")
    assert split_entries("tgram://bot/c1,c2,json://h/x") == [
        (frozenset(), "tgram://bot/c1,c2"), (frozenset(), "json://h/x")]
    assert split_entries("slack://a/b/c, critical,error=tgram://t/c") == [
        (frozenset(), "slack://a/b/c"), (frozenset({"critical", "error"}), "tgram://t/c")]


def test_notify_test_command():
    with Receiver() as rx:
        ok = subprocess.run([sys.executable, "-m", "agent", "notify", "test", "--url", rx.url],
                            capture_output=True, text=True, env={**os.environ})
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.startswith("ok      json://127.0.0.1:")
        assert "(TEST)" in rx.titles()[0] and "<module>" not in rx.messages()[0]
        rx.failing = True
        bad = subprocess.run([sys.executable, "-m", "agent", "notify", "test", "--url", rx.url],
                             capture_output=True, text=True)
        assert bad.returncode == 1 and bad.stdout.startswith("FAILED  json://")
    none = subprocess.run([sys.executable, "-m", "agent", "notify", "test"], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if not k.startswith("MEDIC_NOTIFY")})
    assert none.returncode == 2 and "no notification target" in none.stderr


@pytest.mark.docker
def test_seed_incident_messages_in_order(make_stack, tmp_path):
    import httpx

    from agent.service import Service
    from agent.settings import Settings
    from tests.stack import ADMIN, free_port

    canary = "canary-Pw-30417"
    stack = make_stack(real_names=True, env={"PASSWORD": canary})
    with Receiver() as rx:
        port = free_port()
        service = Service(Settings(
            containers=["hummingbot-api"], state_db=tmp_path / "state.db", rules_dir=REPO / "rules",
            hummingbot_url=stack.url, recorder_addr=f"127.0.0.1:{port}", notify_urls=rx.url,
            hummingbot_password=canary, bots="off", bot_settle=2))
        service.start()
        try:
            httpx.post(f"http://127.0.0.1:{port}/bot-orchestration/deploy-v2-script", auth=(ADMIN[0], canary),
                       json={"instance_name": "sharp-bot", "credentials_profile": "client_sharp"})
            wait_until(lambda: len([t for t in rx.titles() if "credentials profile" in t]) >= 2, 30,
                       "two messages")
        finally:
            service.stop()
    # (the stand-in also starts with default credentials: that warning is a message of its own)
    titles = [t for t in rx.titles() if "credentials profile" in t]
    assert titles[0].startswith("[CRITICAL] Detected, fixing:")
    assert titles[1].startswith("[CRITICAL] Fixed:")
    fixed = next(m["message"] for m in rx.accepted if m["title"] == titles[1])
    assert "retry_deploy(route='deploy-v2-script', source='recorder'): ok deployed sharp-bot" in fixed
    assert canary not in str(rx.accepted)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    assert canary.encode() not in raw


def test_a_notify_only_rule_says_so_and_gives_the_next_step(tmp_path):
    store = State(tmp_path / "s.db")
    rule = RULES["config-password-mismatch"]
    assert not (rule.actions or rule.verify or rule.retry_deploy)
    with Receiver() as rx:
        n = notifier(store, rx.url)
        try:
            inc = store.incidents.create(Incident(
                id="inc00009", rule=rule.id, key="client_sharp", state=IncidentState.DETECTED,
                severity=rule.severity, container="hummingbot-api", fingerprint="v1:x",
                captures={"account": "client_sharp"},
                summary="2026-06-29 14:03:07,515 - root - ERROR - Failed to authenticate for client_sharp"))
            n.step(inc, "detected", inc.summary)
            n.step(inc, "resolved", "notified; this rule runs no action")  # it closes: no second message
            assert store.outbox.recent(rule.id, 0) == 1
            wait_until(lambda: rx.accepted, 15, "the message")
        finally:
            n.stop()
    assert len(rx.accepted) == 1
    text = rx.messages()[0]
    assert "Failed to authenticate for client_sharp" in text  # the trigger, as the excerpt
    assert "Result: notified; nothing to fix automatically" in text
    assert "Next: Set CONFIG_PASSWORD back to the one used when the keys were added" in text
    assert text.count("Failed to authenticate for client_sharp") == 1  # not repeated as the result
