"""Errors no rule knows: one entry per recurring problem on hours of the real noise, the
agent's log throttled, samples redacted and capped, the store bounded, the burst message
once, the daily digest with the right counts."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import pytest

from agent.events import TRACEBACK
from agent.ingest.replay import replay_lines
from agent.match.loader import load_rules
from agent.match.matcher import Matcher
from agent.redact import Redactor
from agent.state import State
from agent.unknown.digest import DigestSchedule
from agent.unknown.tracker import SAMPLE_CHARS, UnknownTracker
from tests.noise import GATEWAY_PING, REAL, hours_of

RULES = load_rules(Path(__file__).resolve().parents[2] / "rules").rules
PING = "✗ Failed to ping gateway: AttributeError: 'NoneType' object has no attribute 'password'"


def replay(tracker: UnknownTracker, lines: list[str], container: str = "hummingbot-api") -> int:
    matcher, n = Matcher(RULES), 0
    for event in replay_lines(lines, container):
        if matcher.match(event) is None and tracker.observe(event):
            n += 1
    tracker.flush()
    return n


@pytest.fixture
def store(tmp_path):
    s = State(tmp_path / "state.db")
    yield s
    s.close()


def test_hours_of_captured_noise_are_one_entry_each_and_one_log_line_an_hour(store, caplog):
    lines = hours_of(GATEWAY_PING, 3)
    tracker = UnknownTracker(store, Redactor())
    with caplog.at_level(logging.INFO, logger="agent"):
        replay(tracker, lines)
    entries = {e.summary: e for e in store.unknown.most_frequent()}
    pings = sum(1 for x in lines if PING in x)
    dns = sum(1 for x in lines if "Unexpected error while retrieving rates from Gate.IO" in x)
    assert pings > 5000 and dns > 100
    # The rate oracle's DNS failure is a known one now (exchange-unreachable): only the ping is unknown.
    assert sorted(entries) == ["AttributeError: 'NoneType' object has no attribute 'password'"]
    ping = entries["AttributeError: 'NoneType' object has no attribute 'password'"]
    assert ping.count == pings and ping.kind == TRACEBACK
    assert ping.logger == "hummingbot.core.gateway.gateway_http_client"
    assert ping.exceptions == ["AttributeError"]
    assert len(ping.samples) == 3 and ping.samples[0]["at"] < ping.samples[1]["at"] < ping.samples[2]["at"]
    assert ping.samples[0]["text"].splitlines()[-1] == ping.summary
    # The agent's log: each fingerprint once, then once an hour with the count since.
    for e in entries.values():
        said = [r.getMessage() for r in caplog.records if e.fingerprint in r.getMessage()]
        assert len(said) == 1 + int((e.last_seen - e.first_seen) // 3600), said
        assert "(new; counted from now on" in said[0]
        for again in said[1:]:
            assert re.search(r" seen [\d,]+ more times in the last hour: ", again), again
    hourly = [r.getMessage() for r in caplog.records if ping.fingerprint in r.getMessage()][1]
    assert int(re.search(r"seen ([\d,]+) more", hourly)[1].replace(",", "")) in range(1700, 1801)
    assert len(caplog.records) < 12


def test_every_capture_gives_one_entry_per_problem(store):
    """The seed incident's unknown neighbours, the broker outage: replayed twice (as two starts
    would print them), still one entry each; both generations' start-up DNS failure is known
    (exchange-unreachable)."""
    tracker = UnknownTracker(store, Redactor())
    for _ in range(2):
        for path in sorted(REAL.glob("*.log")):
            replay(tracker, path.read_text().splitlines())
    by_summary: dict[str, list[str]] = {}
    for e in store.unknown.most_frequent():
        by_summary.setdefault(e.summary, []).append(e.fingerprint)
    assert all(len(fps) == 1 for fps in by_summary.values()), by_summary
    assert not any("Cannot connect to host" in s for s in by_summary)


def test_fingerprints_ignore_what_changes_between_occurrences():
    def fp(message: str) -> str:
        (event,) = replay_lines([f"2026-11-29 07:27:45,788 - services.x - ERROR - {message}"], "c")
        return event.fingerprint

    same = [
        ("peer 127.0.0.1:40240 gone after 3 tries", "peer 10.0.0.7:51822 gone after 12 tries"),
        ("container 3f2a9c1d4b5e failed", "container 9a8b7c6d5e4f failed"),
        ("object at 0x7f3a2b1c0d9e leaked", "object at 0x55d0e1f2a3b4 leaked"),
        ("run 1b4e28ba-2fa1-11d2-883f-0016d3cca427 lost", "run 6fa459ea-ee8a-3ca4-894e-db77e160355e lost"),
        ("bot rb_a-20261129-072744 stopped", "bot rb_a-20261201-101010 stopped"),
        ("order x1b2c3d4e5f6a7b8c9d0 rejected", "order zz99yy88xx77ww66 rejected"),
        ("at 2026-11-29T07:27:45Z", "at 2026-12-01T00:00:01Z"),
    ]
    for a, b in same:
        assert fp(a) == fp(b), (a, b)
    assert fp("bot rb_a stopped") != fp("bot rb_b stopped")  # names are what the problem is about
    assert fp("peer gone") != fp("peer refused")


def test_samples_are_redacted_and_capped(store):
    redactor = Redactor(["s3cret-Pa55"])
    tracker = UnknownTracker(store, redactor)
    frames = [f'  File "/opt/venv/lib/python3.12/site-packages/lib/m{i}.py", line {i}, in f{i}\n    step()'
              for i in range(300)]
    tb = ["2026-11-29 07:27:45,788 - services.x - ERROR - login with s3cret-Pa55 failed",
          "Traceback (most recent call last):", *"\n".join(frames).splitlines(),
          "RuntimeError: password s3cret-Pa55 refused"]
    replay(tracker, tb)
    (entry,) = store.unknown.most_frequent()
    text = entry.samples[0]["text"]
    assert "s3cret-Pa55" not in text and "s3cret-Pa55" not in entry.summary
    assert len(text) <= SAMPLE_CHARS
    (again,) = list(replay_lines(text.splitlines(), "c"))  # still one traceback, same exception
    assert again.kind == TRACEBACK and again.outermost.type == "RuntimeError"
    assert text.splitlines()[0].endswith("login with *** failed")


def test_the_store_keeps_the_most_recently_seen(store):
    tracker = UnknownTracker(store, Redactor(), max_entries=5)
    lines = [f"2026-11-29 07:{i:02d}:00,000 - services.x{i} - ERROR - broke" for i in range(8)]
    replay(tracker, lines)
    kept = sorted(e.logger for e in store.unknown.most_frequent())
    assert kept == [f"services.x{i}" for i in range(3, 8)]


def ping_lines(count: int, start: float, every: float = 2.0) -> list[str]:
    out = []
    for n in range(count):
        t = time.gmtime(start + n * every)
        out.append(time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z ", t)
                   + time.strftime("%Y-%m-%d %H:%M:%S,000", t)
                   + f" - hummingbot.core.gateway.gateway_http_client - ERROR - {PING}")
    return out


def test_burst_message_once_for_a_new_error(store):
    bursts = []
    tracker = UnknownTracker(store, Redactor(), burst_count=5, burst_window=60,
                             on_burst=lambda e, n, w: bursts.append((e, n)))
    start = 1_800_000_000.0
    replay(tracker, ping_lines(5, start, every=10))  # 5 within a minute: not more than 5
    assert bursts == []
    replay(tracker, ping_lines(30, start + 50, every=2))
    assert len(bursts) == 1
    entry, n = bursts[0]
    assert n == 6 and PING in entry.samples[0]["text"]
    replay(tracker, ping_lines(30, start + 3600))  # the same day: no second message
    replay(tracker, ping_lines(30, start + 90000))  # the next day it is no longer new
    assert len(bursts) == 1
    assert store.unknown.most_frequent()[0].burst_at == entry.burst_at
    # A restarted agent remembers: no second message for the same error that day either.
    again = UnknownTracker(store, Redactor(), burst_count=5, burst_window=60,
                           on_burst=lambda e, n, w: bursts.append((e, n)))
    replay(again, ping_lines(30, start + 3700))
    assert len(bursts) == 1


def test_digest_is_due_once_a_day_with_the_counts_since_the_last(store):
    digests = []
    schedule = DigestSchedule.parse("09:00")
    tracker = UnknownTracker(store, Redactor(), digest=schedule,
                             on_digest=lambda entries, since, now: digests.append((entries, since, now)))
    day = time.mktime((2026, 11, 29, 0, 0, 0, 0, 0, -1))
    tracker.tick(day + 8 * 3600)  # the first start: the first digest covers from here
    replay(tracker, ping_lines(40, day + 8 * 3600 + 60))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime(day + 8.5 * 3600))
    replay(tracker, [f"{stamp} 2026-11-29 08:30:00,000 - services.market_data_feed_manager - ERROR - Error"
                     " cleaning up feed binance: timeout"])
    tracker.tick(day + 8.9 * 3600)
    assert digests == []
    tracker.tick(day + 9 * 3600 + 1)
    ((entries, since, _now),) = digests
    assert since == day + 8 * 3600
    assert [e.count - e.digested for e in entries] == [1, 40]  # newest first
    assert entries[0].last_seen > entries[1].last_seen
    tracker.tick(day + 12 * 3600)
    assert len(digests) == 1  # once a day
    replay(tracker, ping_lines(7, day + 20 * 3600))
    tracker.tick(day + 33 * 3600 + 5)
    assert [e.count - e.digested for e in digests[1][0]] == [7]  # only what is new since


def test_digest_and_burst_reach_a_receiver_through_the_outbox(store):
    """The real outbox and apprise to a local receiver: the burst message once, the
    digest once with the right counts; routing by severity sees `info` and `warning`."""
    from agent.notify.notifier import Notifier
    from agent.notify.targets import parse_urls
    from agent.notify.unknown import burst_message, digest_message
    from tests.receiver import Receiver
    from tests.stack import wait_until

    with Receiver() as everything, Receiver() as paging:
        urls = f"{everything.url}, critical,error={paging.url}"
        notifier = Notifier(store, parse_urls(urls), rules=dict, redactor=Redactor())
        notifier.start()
        try:
            tracker = UnknownTracker(
                store, Redactor(), burst_count=10, burst_window=600, digest=DigestSchedule.parse("09:00"),
                on_burst=lambda e, n, w: notifier.enqueue(burst_message(e, n, w), storm_control=False),
                on_digest=lambda es, s, n: notifier.enqueue(digest_message(es, s, n), storm_control=False))
            day = time.mktime((2026, 11, 29, 0, 0, 0, 0, 0, -1))
            tracker.tick(day)
            lines = hours_of(GATEWAY_PING, 0.25)
            pings = sum(1 for x in lines if PING in x)
            replay(tracker, [x.replace("2026-11-29T07:", "2026-11-29T05:") for x in lines]
                   + ["2026-11-29T05:50:00.000000000Z 2026-11-29 05:50:00,000 - services."
                      "market_data_feed_manager - ERROR - Error cleaning up feed binance: timeout"])
            tracker.tick(day + 9 * 3600 + 1)
            wait_until(lambda: len(everything.accepted) == 2, 30, "the burst message and the digest")
            time.sleep(0.5)
        finally:
            notifier.stop()
    burst, digest = everything.accepted
    assert burst["title"].startswith("[WARNING] New error no rule knows: 11 times within 10 min in")
    assert "hb-medic rules suggest v2:" in burst["message"] and PING in burst["message"]
    assert digest["title"].startswith("[INFO] Errors no rule knows: 2 since ")
    body = digest["message"]
    assert f"{pings:,} times in hummingbot-api" in body
    newest_first = sorted(store.unknown.most_frequent(), key=lambda e: -e.last_seen)
    assert body.index(newest_first[0].fingerprint) < body.index(newest_first[1].fingerprint)
    assert body.count("hb-medic rules suggest v2:") == 2
    assert paging.accepted == []  # info and warning: not for the pager


def test_counts_wait_in_memory_while_the_state_file_cannot_be_written(store, monkeypatch):
    from agent.state import StateUnwritable

    tracker = UnknownTracker(store, Redactor(), digest=DigestSchedule.parse("09:00"),
                             on_digest=lambda *a: pytest.fail("no digest while nothing can be recorded"))
    save = store.unknown.save

    def full(*args, **kw):
        store.file.write_problem = "database or disk is full"
        raise StateUnwritable("database or disk is full")

    monkeypatch.setattr(store.unknown, "save", full)
    lines = ping_lines(5, 1_800_000_000.0)
    matcher = Matcher(RULES)
    for e in replay_lines(lines, "hummingbot-api"):
        assert matcher.match(e) is None and tracker.observe(e)
    with pytest.raises(StateUnwritable):
        tracker.flush()
    tracker._maybe_digest(1_800_100_000.0)  # not sent: it could not be recorded as sent
    monkeypatch.setattr(store.unknown, "save", save)
    store.file.write_problem = None
    tracker.flush()
    (entry,) = store.unknown.most_frequent()
    assert entry.count == 5 and len(entry.samples) == 3
    assert entry.samples[0]["text"] == lines[0].split(" ", 1)[1]


def test_a_long_digest_fits_telegram_and_points_to_the_rest():
    from agent.notify.render import telegram
    from agent.notify.unknown import digest_message
    from agent.records import Unknown

    now = 1_800_000_000.0
    entries = [Unknown("default", f"v2:{n:016x}", "hummingbot-api", ["hummingbot-api"], "stderr", "line",
                       f"services.module_{n}", "ERROR", [], f"something failed number {n} " + "x" * 150,
                       n + 1, now - 3600, now - n) for n in range(60)]
    msg = digest_message(entries, now - 86400, now)
    _title, body = telegram(msg)
    assert len(body) <= 4096
    shown = body.count("hb-medic rules suggest v2:")
    assert 5 <= shown < 60 and f"{60 - shown} more are not shown: hb-medic unknown --since 24h" in body
    assert "v2:0000000000000000" in body  # the newest first


def test_a_failed_deploy_a_rule_explains_is_not_an_unknown_error(store, tmp_path):
    """The seed deploy's 500, seen by the recorder, belongs to the incident the log line opened
    (in either order: the answer waits for the line); a failed deploy no incident owns counts."""
    from agent.recorder.events import event_from_exchange
    from agent.remedy.engine import Remedy

    rules = {r.id: r for r in RULES}
    remedy = Remedy(store, lambda: rules, lambda: None, mode="observe", stale_after=1e10)
    tracker = UnknownTracker(store, Redactor())
    owned = event_from_exchange("deploy-v2-script", 500, {"instance_name": "sharp-bot",
                                                          "credentials_profile": "client_sharp"},
                                "[Errno 2] No such file or directory: 'bots/credentials/client_sharp'")
    stranger = event_from_exchange("deploy-v2-script", 500, {"instance_name": "other-bot",
                                                             "credentials_profile": "other"}, "boom", n=2)
    for event in (owned, stranger):  # the answers come first
        assert tracker.observe(event, explained=remedy.owns_deploy)
    line = (f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime())}.000000001Z"
            f" {time.strftime('%Y-%m-%d %H:%M:%S,000', time.gmtime())} - root - ERROR - Error deploying V2"
            " script: [Errno 2] No such file or directory: 'bots/credentials/client_sharp'")
    (event,) = list(replay_lines([line], "hummingbot-api"))
    remedy.submit(Matcher(RULES).match(event))
    tracker.stop()  # what waits is decided now
    summaries = [u.summary for u in store.unknown.most_frequent()]
    assert summaries == ["boom"]


def _named(i: int) -> str:
    """A name no fingerprint normalises away (letters only)."""
    out = ""
    while True:
        out = chr(ord("a") + i % 26) + out
        i //= 26
        if not i:
            return out


def test_one_source_flooding_new_fingerprints_pushes_out_only_its_own(store):
    """Over a thousand fingerprints from one container's stream do not push out an error of
    another's, in the tracker or in the state file; the flood keeps its most recent."""
    tracker = UnknownTracker(store, Redactor())
    (real,) = replay_lines(["2026-11-29 07:00:00,000 - services.real - ERROR - the real one broke"],
                           "hummingbot-api")
    real.stream = "stderr"
    assert tracker.observe(real)
    tracker.flush()
    for n in range(1500):
        (forged,) = replay_lines([f"2026-11-29 08:{n // 60 % 60:02d}:{n % 60:02d},000 - root - ERROR -"
                                  f" account acct_{_named(n)} leaked"], "rb-evil")
        forged.stream = "log"
        tracker.observe(forged)
        if n % 100 == 99:
            tracker.flush()
    tracker.flush()
    kept = store.unknown.most_frequent(limit=5000)
    assert len(kept) == 1000
    assert [e.fingerprint for e in kept if e.container == "hummingbot-api"] == [real.fingerprint]
    flood = sorted(e.last_seen for e in kept if e.container == "rb-evil")
    assert len(flood) == 999 and flood[-1] == max(e.last_seen for e in kept)
    assert (("default", real.fingerprint) in tracker._live) and len(tracker._live) <= 1000


def test_the_store_drops_from_the_source_holding_the_most(store):
    """Two sources over the limit: the larger one loses its least recently seen until they are
    even, then they take turns."""
    from agent.records import Unknown

    def entry(fp: str, container: str, at: float) -> Unknown:
        return Unknown(stack="default", fingerprint=fp, container=container, containers=[container],
                       stream="stderr", kind="line", logger="x", level="ERROR", exceptions=[], summary="s",
                       count=1, first_seen=at, last_seen=at)

    old = [entry(f"a{i}", "a", float(i)) for i in range(3)]  # the oldest of all
    flood = [entry(f"b{i}", "b", 100.0 + i) for i in range(10)]
    assert store.unknown.save(old + flood, keep=8) == 5
    left = {e.fingerprint for e in store.unknown.most_frequent()}
    assert left == {"a0", "a1", "a2", *(f"b{i}" for i in range(5, 10))}
    assert store.unknown.save([entry("a3", "a", 200.0)], keep=8) == 1  # b still holds the most
    left = {e.fingerprint for e in store.unknown.most_frequent()}
    assert "b5" not in left and {"a0", "a3"} <= left
