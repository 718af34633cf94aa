"""A stop in the middle of a fix, end to end against the stand-in: the process ends within
MEDIC_STOP_TIMEOUT (under Docker's 10 s grace) though a re-sent bot is in its settle time, the
incident is saved where it stands and resolved after the restart with no second bot; an
incident whose deploys were all re-sent before the cut goes straight to verification; a
restart in the middle of an attempt tells no step twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from agent.records import IncidentState
from agent.settings import Settings
from tests.receiver import Receiver
from tests.stack import ADMIN, REPO, free_port, prefixed_rules, wait_until

pytestmark = pytest.mark.docker
RULE = "credentials-profile-missing"


def deploy(recorder: str, **body) -> httpx.Response:
    with httpx.Client(base_url=f"http://{recorder}", auth=ADMIN, timeout=60) as c:
        return c.post("/bot-orchestration/deploy-v2-script", json=body)


def bots(stack, base: str) -> list:
    return [c for c in stack.client.containers.list(all=True, filters={"label": f"medic-test={stack.run_id}"})
            if c.name == base or c.name.startswith(base + "-")]


def query(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def test_sigterm_during_a_bots_settle_time_ends_within_the_stop_timeout(make_stack, tmp_path):
    stack = make_stack()
    name = stack.unique("stop")
    recorder = f"127.0.0.1:{free_port()}"
    db = tmp_path / "state.db"
    env = {**os.environ, "MEDIC_CONTAINERS": stack.prefix + "hummingbot-api", "MEDIC_STATE_DB": str(db),
           "MEDIC_RULES_DIR": str(prefixed_rules(stack.prefix, tmp_path / "rules")),
           "MEDIC_HUMMINGBOT_URL": stack.url, "MEDIC_HUMMINGBOT_PASSWORD": "admin",
           "MEDIC_RECORDER_ADDR": recorder, "MEDIC_HTTP_ADDR": f"127.0.0.1:{free_port()}",
           "MEDIC_BOTS": "off", "MEDIC_BOT_SETTLE": "60", "MEDIC_STOP_TIMEOUT": "6"}
    log = tmp_path / "agent.log"

    def start() -> subprocess.Popen:
        with log.open("ab") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "agent", "run"], env=env, cwd=REPO, stdout=fh,
                                    stderr=subprocess.STDOUT)
        wait_until(lambda: _listening(recorder), 60, "the agent's recorder")
        return proc

    proc = start()
    try:
        assert deploy(recorder, instance_name=name, credentials_profile="client_stop").status_code == 500
        # Re-sent: the bot runs and the agent watches it for its 60 s settle time.
        wait_until(lambda: query(db, "SELECT state FROM incident_deploys") == [("sending",)], 60,
                   "the re-send")
        wait_until(lambda: [c.status for c in bots(stack, name)] == ["running"], 60, "the re-sent bot")
        time.sleep(1.0)
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, log.read_text()
        took = time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
    assert took < 6.0, f"the stop took {took:.1f} s"
    state, detail = query(db, "SELECT state, detail FROM incidents WHERE rule = ?", (RULE,))[0]
    assert (state, detail) == ("failed", "interrupted by a stop of the agent")
    assert query(db, "SELECT state FROM incident_deploys") == [("sending",)]  # never sent twice
    env["MEDIC_BOT_SETTLE"] = "3"
    proc = start()
    try:
        mine = f"SELECT state FROM incidents WHERE rule = '{RULE}'"
        wait_until(lambda: query(db, mine) == [("resolved",)],
                   90, "resolved after the restart")
        assert [c.status for c in bots(stack, name)] == ["running"]  # the same bot, not a second one
        trail = [r[0] for r in query(db, "SELECT result FROM audit WHERE name = 'retry_deploy'")]
        assert len(trail) == 1 and trail[0].startswith("already deployed as "), trail
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()



@pytest.fixture
def agent(driven_agent):
    return driven_agent


def test_a_resumed_incident_whose_deploys_are_all_done_goes_straight_to_verification(make_stack, agent):
    stack = make_stack()
    service = agent(stack)
    name = stack.unique("done")
    assert deploy(service.settings.recorder_addr, instance_name=name,
                  credentials_profile="client_done").status_code == 500
    inc = wait_until(lambda: next((i for i in service.store.incidents.recent(10) if i.rule == RULE), None),
                     30, "the incident")
    service.remedy.attempt(service.store.incidents.get(inc.id))
    assert service.store.incidents.get(inc.id).state == "resolved"
    # What a retry completing during shutdown leaves: the deploy done, the incident not closed.
    cut = service.store.incidents.get(inc.id)
    cut.state, cut.closed = IncidentState.RETRYING, None
    service.store.incidents.save(cut)
    actions = len([a for a in service.store.incidents.audit_trail(inc.id) if a["kind"] == "action"])
    service.remedy.recover()  # as at the next start
    service.remedy.attempt(service.store.incidents.get(inc.id))
    after = service.store.incidents.get(inc.id)
    assert after.state == "resolved", after.detail
    assert "re-sent before the agent's restart (not sent again); running: " + name in after.detail
    trail = service.store.incidents.audit_trail(inc.id)
    assert len([a for a in trail if a["kind"] == "action"]) == actions  # the fix is not run again
    assert len([a for a in trail if a["name"] == "retry_deploy"]) == 1
    assert [c.status for c in bots(stack, name)] == ["running"]


def test_a_restart_in_the_middle_of_an_attempt_tells_no_step_twice(make_stack, agent, start_service):
    stack = make_stack()
    with Receiver() as rx:
        service = agent(stack, drive=False, bot_settle=20, notify_urls=rx.url)
        name = stack.unique("twice")
        assert deploy(service.settings.recorder_addr, instance_name=name,
                      credentials_profile="client_twice").status_code == 500
        wait_until(lambda: any("Detected, fixing" in t for t in rx.titles()), 60, "the first message")
        wait_until(lambda: [c.status for c in bots(stack, name)] == ["running"], 60, "the re-sent bot")
        stopper = threading.Thread(target=start_service.stop, args=(service,))
        stopper.start()
        stopper.join(15)
        assert not stopper.is_alive()
        again = start_service(Settings(**{**service.settings.model_dump(), "bot_settle": 3}))
        wait_until(lambda: any("Fixed" in t for t in rx.titles()), 90, "the fixed message")
        time.sleep(2)
        titles = rx.titles()
        assert again.store.incidents.recent(5)[0].state == "resolved"
    assert len([t for t in titles if "Detected, fixing" in t]) == 1, titles
    assert len([t for t in titles if "Fixed" in t]) == 1, titles


def _listening(addr: str) -> bool:
    import socket

    host, _, port = addr.rpartition(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0
