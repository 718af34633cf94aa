"""/healthz: unhealthy when a stream is detached from a running container, when the
loop stalls, or when the outbox is stuck; metrics render."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from agent.component import Component
from agent.http import _Collector
from agent.ingest.follow import FollowerStatus
from agent.service import Service
from agent.settings import Settings
from tests.stack import REPO


@pytest.fixture
def service(tmp_path):
    """An agent whose components run but its engine's sources (no engine here): what the
    engine would report of the followed container is its follower's status."""
    s = Service(Settings(state_db=tmp_path / "s.db", rules_dir=REPO / "rules", hummingbot_password="x"),
                listen=False)
    s.ingest.followers = {"hummingbot-api": SimpleNamespace(
        status=FollowerStatus("hummingbot-api", state="attached"), stop=lambda deadline: None)}
    rt = s.main
    for part in (s.notifier, s.unknown, s.watcher, rt.remedy, rt.pipeline, rt.feed):
        part.start()
    yield s
    s.stop()


def test_every_part_is_a_component(service):
    rt = service.main
    for part in (service.notifier, service.unknown, service.watcher, rt, rt.remedy, rt.pipeline, rt.feed,
                 rt.ingest, rt.api_watch):
        assert isinstance(part, Component), part


def test_healthy_then_each_problem(service):
    report = service.report
    assert report() == (True, report()[1]) and report()[1]["problems"] == []
    service.ingest.followers["hummingbot-api"].status.state = "stopped"  # known to be down: fine
    assert report()[0]
    service.ingest.followers["hummingbot-api"].status.state = "engine-down"
    ok, detail = report()
    assert not ok and detail["problems"] == ["hummingbot-api: engine-down"]
    assert detail["stacks"]["default"]["streams"] == {"hummingbot-api": "engine-down"}
    service.ingest.followers["hummingbot-api"].status.state = "attached"
    row = service.store.outbox.enqueue(incident="i", rule="r", target="t", message="{}")
    service.store.file.conn().execute("UPDATE outbox SET created = ? WHERE id = ?", (time.time() - 7200, row))
    ok, detail = report()
    assert not ok and detail["problems"] == [detail["problems"][0]]
    assert detail["problems"][0].startswith("notifications undelivered for")
    service.store.file.conn().execute("DELETE FROM outbox")
    assert report()[0]
    service.main.remedy.stop(time.monotonic() + 5)
    assert "remedy thread has stopped" in report()[1]["problems"]
    service.main.pipeline.stop(time.monotonic() + 5)
    service.main.pipeline.last_loop = time.monotonic() - 60
    ok, detail = report()
    assert not ok and detail["problems"][0].startswith("pipeline loop stalled")
    assert "pipeline thread has stopped" in detail["problems"]


def test_metrics_render(service):
    from agent.events import Event
    service.counts["matches"]["credentials-profile-missing"] = 2
    for n in range(3):
        service.unknown.observe(Event("hummingbot-api", "stderr", "line",
                                      [f"2026-11-29 07:27:4{n},788 - services.x - ERROR - broke"], n, n))
    service.unknown.flush()
    service.store.incidents.audit("i", "action", "ensure_account", ok=True)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(service.metrics))
    text = generate_latest(registry).decode()
    assert 'hb_medic_matches_total{rule="credentials-profile-missing",stack="default"} 2.0' in text
    assert 'hb_medic_actions_total{action="ensure_account",result="ok",stack="default"} 1.0' in text
    assert 'hb_medic_stream_attached{container="hummingbot-api",stack="default",state="attached"} 1.0' in text
    assert 'hb_medic_engine_up{stack="default"} 1.0' in text
    assert "hb_medic_unknown_events_total 3.0" in text and "hb_medic_unknown_fingerprints 1.0" in text
    assert text.count("# TYPE hb_medic_lines_total counter") <= 1  # one family a name


def test_incident_steps_are_logged_at_their_level(caplog):
    import logging

    from agent.remedy.engine import log_step

    inc = type("Inc", (), {"id": "inc1", "rule": "r"})()
    caplog.set_level(logging.DEBUG, logger="agent")
    for step in ("detected", "acting", "resolved", "observed", "failed", "waiting", "refused", "stale",
                 "gave-up"):
        log_step(inc, step, "text")
    assert [r.levelname for r in caplog.records] == ["INFO"] * 4 + ["WARNING"] * 4 + ["ERROR"]
