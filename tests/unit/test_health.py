"""/healthz: unhealthy when a stream is detached from a running container, when the
loop stalls, or when the outbox is stuck; metrics render."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from agent.http import _Collector, health
from agent.ingest.follow import FollowerStatus
from agent.service import Service
from agent.settings import Settings
from tests.stack import REPO


@pytest.fixture
def service(tmp_path):
    s = Service(Settings(state_db=tmp_path / "s.db", rules_dir=REPO / "rules", hummingbot_password="x"),
                listen=False)
    s.ingest.followers = {"hummingbot-api": SimpleNamespace(status=FollowerStatus("hummingbot-api",
                                                                                   state="attached"))}
    s.threads_alive = lambda: {"pipeline": True, "remedy": True}  # not started in these tests
    return s


def test_healthy_then_each_problem(service):
    assert health(service)[0]
    service.ingest.followers["hummingbot-api"].status.state = "stopped"  # known to be down: fine
    assert health(service)[0]
    service.ingest.followers["hummingbot-api"].status.state = "engine-down"
    ok, detail = health(service)
    assert not ok and detail["problems"] == ["hummingbot-api: engine-down"]
    service.ingest.followers["hummingbot-api"].status.state = "attached"
    service.pipeline.last_loop = time.monotonic() - 60
    ok, detail = health(service)
    assert not ok and detail["problems"][0].startswith("pipeline loop stalled")
    service.pipeline.last_loop = time.monotonic()
    row = service.store.outbox.enqueue(incident="i", rule="r", target="t", message="{}")
    service.store.file.conn().execute("UPDATE outbox SET created = ? WHERE id = ?", (time.time() - 7200, row))
    ok, detail = health(service)
    assert not ok and detail["problems"][0].startswith("notifications undelivered for")
    service.threads_alive = lambda: {"pipeline": True, "remedy": False}
    assert "remedy thread has stopped" in health(service)[1]["problems"]


def test_metrics_render(service):
    from agent.events import Event
    service.counts["matches"]["credentials-profile-missing"] = 2
    for n in range(3):
        service.unknown.observe(Event("hummingbot-api", "stderr", "line",
                                      [f"2026-11-29 07:27:4{n},788 - services.x - ERROR - broke"], n, n))
    service.unknown.flush()
    service.store.incidents.audit("i", "action", "ensure_account", ok=True)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(service))
    text = generate_latest(registry).decode()
    assert 'hb_medic_matches_total{rule="credentials-profile-missing",stack="default"} 2.0' in text
    assert 'hb_medic_actions_total{action="ensure_account",result="ok",stack="default"} 1.0' in text
    assert 'hb_medic_stream_attached{container="hummingbot-api",stack="default",state="attached"} 1.0' in text
    assert 'hb_medic_engine_up{stack="default"} 1.0' in text
    assert "hb_medic_unknown_events_total 3.0" in text and "hb_medic_unknown_fingerprints 1.0" in text


def test_incident_steps_are_logged_at_their_level(caplog):
    import logging

    from agent.remedy.engine import log_step

    inc = type("Inc", (), {"id": "inc1", "rule": "r"})()
    caplog.set_level(logging.DEBUG, logger="agent")
    for step in ("detected", "acting", "resolved", "observed", "failed", "waiting", "refused", "stale",
                 "gave-up"):
        log_step(inc, step, "text")
    assert [r.levelname for r in caplog.records] == ["INFO"] * 4 + ["WARNING"] * 4 + ["ERROR"]
