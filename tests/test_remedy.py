"""The remedy loop end to end: the real agent (in this process), the stand-in
hummingbot-api and its siblings as containers under their real names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from agent.records import IncidentState
from agent.service import Service
from agent.settings import Settings
from tests.stack import ADMIN, REPO, free_port, wait_until

pytestmark = pytest.mark.docker


@pytest.fixture
def agent(tmp_path, start_service):
    def start(stack, *, recorder: bool = True, start_remedy: bool = True, **extra) -> Service:
        # The retried bot must live a settle time (shortened here); bots are tests/test_bots.py's.
        settings = Settings(**{
            "containers": ["hummingbot-api"], "state_db": tmp_path / "state.db", "rules_dir": REPO / "rules",
            "hummingbot_url": stack.url, "catchup_window": 120, "bots": "off", "bot_settle": 2,
            "recorder_addr": f"127.0.0.1:{free_port()}" if recorder else None, **extra})
        return start_service(settings, drive=not start_remedy)

    return start


def via(service: Service) -> str:
    return f"http://{service.settings.recorder_addr}"


def deploy(base: str, **body) -> httpx.Response:
    with httpx.Client(base_url=base, auth=ADMIN, timeout=60) as c:
        return c.post("/bot-orchestration/deploy-v2-script", json=body)


def incident(service: Service, rule: str, states: tuple[str, ...], timeout: float = 60):
    def found():
        for inc in service.store.incidents.recent(50):
            if inc.rule == rule and inc.state in states:
                return inc
        return None
    return wait_until(found, timeout, f"{rule} incident in {states}")


def running_bots(stack, base: str) -> list:
    return [c for c in stack.client.containers.list(filters={"label": f"medic-test={stack.run_id}"})
            if c.name == base or c.name.startswith(base + "-")]


@pytest.mark.parametrize("generation", ["legacy", "current"])
def test_seed_incident_fixed_and_deploy_retried_with_the_recorded_body(make_stack, agent, generation):
    stack = make_stack(generation=generation, real_names=True)
    service = agent(stack)
    body = {"instance_name": "sharp-bot", "credentials_profile": "client_sharp", "headless": True}
    resp = deploy(via(service), **body)
    assert resp.status_code == 500
    inc = incident(service, "credentials-profile-missing", ("resolved", "gave-up", "waiting", "failed"))
    assert inc.state == IncidentState.RESOLVED, inc.detail
    bots = running_bots(stack, "sharp-bot")
    assert len(bots) == 1 and bots[0].status == "running"
    assert "HEADLESS_MODE=true" in bots[0].attrs["Config"]["Env"]  # the recorded body, not a guess
    assert (stack.bots / "credentials" / "client_sharp" / "conf_client.yml").is_file()
    trail = service.store.incidents.audit_trail(inc.id)
    steps = [(a["kind"], a["name"], a["ok"]) for a in trail if a["kind"] in ("action", "retry")]
    assert steps == [("action", "ensure_account", True), ("action", "provision_credentials", True),
                     ("retry", "retry_deploy", True)]
    assert next(a for a in trail if a["name"] == "deploy request found")["params"]["source"] == "recorder"
    # What a person reads in the trail: the body that was re-sent (a profile name is no secret)...
    retry = next(a for a in trail if a["name"] == "retry_deploy")
    assert retry["params"]["body"] == body
    # ...and where the failure is in the log: container, stream, `docker logs -t` timestamps.
    stamped = stack.api.logs(timestamps=True, stdout=False).decode().splitlines()
    mark = "Error deploying V2 script" if generation == "current" else "FileNotFoundError: [Errno 2]"
    last = next(x for x in stamped if mark in x).split(" ", 1)[0]
    first = last if generation == "current" else next(
        x for x in stamped if "Exception in ASGI application" in x).split(" ", 1)[0]
    detected = next(a for a in trail if a["name"] == "detected")["params"]
    assert detected == {"captures": {"profile": "client_sharp"}, "container": "hummingbot-api",
                        "stream": "stderr", "first": first, "last": last}
    assert "hummingbot-api: " in "\n".join(service.summary()) and " as admin" in "\n".join(service.summary())
    # From the engine's timestamp of the failure line to the bot container's start.
    failed_at = _ts(last)
    running_at = _ts(bots[0].attrs["State"]["StartedAt"])
    print(f"\n{generation}: failure line -> bot running in {running_at - failed_at:.2f} s")
    assert 0 < running_at - failed_at < 30


def _ts(stamp: str) -> float:
    """Docker's RFC 3339 nanosecond timestamp to epoch seconds."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float(f"0.{frac or 0}")


def test_without_recorder_account_fixed_and_retry_deploy_finishes(make_stack, agent, tmp_path):
    stack = make_stack(real_names=True)
    service = agent(stack, recorder=False)
    assert deploy(stack.url, instance_name="sharp-bot", credentials_profile="client_sharp").status_code == 500
    inc = incident(service, "credentials-profile-missing", ("waiting", "resolved", "gave-up", "failed"))
    assert inc.state == IncidentState.WAITING, inc.detail
    assert "not guessed" in inc.detail and f"hb-medic retry-deploy {inc.id} --body" in inc.detail
    assert (stack.bots / "credentials" / "client_sharp" / "conf_client.yml").is_file()  # account fixed
    assert running_bots(stack, "sharp-bot") == []  # the deploy was not guessed
    env = {**os.environ, "MEDIC_STATE_DB": str(tmp_path / "state.db"), "MEDIC_HUMMINGBOT_URL": stack.url,
           "MEDIC_RULES_DIR": str(REPO / "rules"), "MEDIC_BOT_SETTLE": "2", "MEDIC_BOTS": "off"}
    bad = subprocess.run([sys.executable, "-m", "agent", "retry-deploy", inc.id, "--body",
                          json.dumps({"instance_name": "../x", "credentials_profile": "client_sharp"})],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 1 and "instance_name must be letters" in bad.stderr
    out = subprocess.run([sys.executable, "-m", "agent", "retry-deploy", inc.id[:6], "--body",
                          json.dumps({"instance_name": "sharp-bot", "credentials_profile": "client_sharp"})],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "still running after 2 s with no failure of its own" in out.stdout
    assert len(running_bots(stack, "sharp-bot")) == 1
    assert service.store.incidents.get(inc.id).state == IncidentState.RESOLVED
    listing = subprocess.run([sys.executable, "-m", "agent", "incidents"], capture_output=True, text=True,
                             env=env)
    assert f"{inc.id}" in listing.stdout and "retry-deploy by hand" in listing.stdout


def test_half_made_profile_repaired_and_deploy_retried(make_stack, agent):
    stack = make_stack(real_names=True)
    (stack.bots / "credentials" / "half_made").mkdir()  # somebody ran mkdir -p
    service = agent(stack)
    resp = deploy(via(service), instance_name="half-bot", credentials_profile="half_made")
    assert resp.status_code == 500 and "conf_client.yml" in resp.json()["detail"]
    inc = incident(service, "credentials-profile-incomplete", ("resolved", "gave-up", "waiting", "failed"))
    assert inc.state == IncidentState.RESOLVED, inc.detail
    trail = service.store.incidents.audit_trail(inc.id)
    ensure = next(a for a in trail if a["name"] == "ensure_account")
    assert ensure["params"] == {"profile": "half_made"} and "repaired half-made" in ensure["result"]
    assert (stack.bots / "credentials" / "half_made" / "connectors").is_dir()
    assert len(running_bots(stack, "half-bot")) == 1


def test_client_that_redeployed_itself_gets_no_duplicate(make_stack, agent):
    stack = make_stack(generation="legacy", real_names=True)
    service = agent(stack, start_remedy=False)
    assert deploy(via(service), instance_name="self-bot", credentials_profile="own").status_code == 500
    inc = incident(service, "credentials-profile-missing", ("detected",))
    # The client fixes things itself before the agent gets to it.
    stack.http("POST", "/accounts/add-account", params={"account_name": "own"})
    assert deploy(stack.url, instance_name="self-bot", credentials_profile="own").json()["success"]
    service.remedy.attempt(service.store.incidents.get(inc.id))
    inc = service.store.incidents.get(inc.id)
    assert inc.state == IncidentState.RESOLVED, inc.detail
    retry = next(a for a in service.store.incidents.audit_trail(inc.id) if a["name"] == "retry_deploy")
    assert retry["result"].startswith("already deployed as self-bot (not sent again); self-bot still running")
    assert len(running_bots(stack, "self-bot")) == 1


def test_fifty_failures_in_a_minute_act_at_most_the_attempt_limit(make_stack, agent):
    stack = make_stack(real_names=True)
    # The agent's own login is wrong, so no attempt can fix it and the failure repeats.
    service = agent(stack, hummingbot_password="wrong")
    for _ in range(50):
        deploy(via(service), instance_name="storm", credentials_profile="client_storm")
    wait_until(lambda: sum(i.events for i in service.store.incidents.recent(50)
                           if i.rule == "credentials-profile-missing") >= 50, 30, "50 events counted")
    incs = [i for i in service.store.incidents.recent(50) if i.rule == "credentials-profile-missing"]
    assert len(incs) == 1
    actions = [a for a in service.store.incidents.audit_trail(incs[0].id) if a["kind"] in ("action", "retry")]
    assert 1 <= len(actions) <= 3
    assert incs[0].state in (IncidentState.FAILED, IncidentState.GAVE_UP)


def test_observe_mode_changes_nothing(make_stack, agent):
    stack = make_stack(real_names=True)
    before = sorted(p.name for p in (stack.bots / "credentials").iterdir())
    service = agent(stack, mode="observe")
    deploy(via(service), instance_name="sharp-bot", credentials_profile="client_sharp")
    inc = incident(service, "credentials-profile-missing", ("observed",))
    assert inc.detail == ("would have run: ensure_account(profile='client_sharp') -> "
                          "provision_credentials(profile='client_sharp') -> retry_deploy")
    time.sleep(1)
    assert sorted(p.name for p in (stack.bots / "credentials").iterdir()) == before
    assert running_bots(stack, "sharp-bot") == []
    assert not [a for a in service.store.incidents.audit_trail(inc.id) if a["kind"] in ("action", "retry")]


def test_refused_capture_changes_nothing(make_stack, agent):
    stack = make_stack(generation="legacy", real_names=True)
    service = agent(stack)
    before = sorted(str(p.relative_to(stack.bots)) for p in (stack.bots / "credentials").rglob("*"))
    deploy(via(service), instance_name="evil", credentials_profile="../etc")
    inc = incident(service, "credentials-profile-missing", ("refused",))
    assert inc.detail == "not acting: capture profile='../etc' contains '..'"
    assert sorted(str(p.relative_to(stack.bots)) for p in (stack.bots / "credentials").rglob("*")) == before
    assert not [a for a in service.store.incidents.audit_trail(inc.id) if a["kind"] in ("action", "retry")]


def test_broker_outage_starts_the_broker(make_stack, agent):
    stack = make_stack(real_names=True)
    service = agent(stack, recorder=False)
    stack.broker_container.stop(timeout=1)
    inc = incident(service, "broker-unreachable", ("resolved", "gave-up", "failed"), timeout=60)
    assert inc.state == IncidentState.RESOLVED, inc.detail
    stack.broker_container.reload()
    assert stack.broker_container.status == "running"
    steps = [(a["kind"], a["name"], a["ok"]) for a in service.store.incidents.audit_trail(inc.id)
             if a["kind"] in ("action", "verify")]
    assert steps == [("action", "start_container", True), ("verify", "wait_container_running", True)]
    # hummingbot-api reconnects by itself: its MQTT errors stop.
    time.sleep(2.5)
    count = len([x for x in stack.lines("stderr") if "MQTT" in x])
    time.sleep(2.5)
    assert len([x for x in stack.lines("stderr") if "MQTT" in x]) == count


def test_database_down_at_start_waits_then_starts_hummingbot_api(make_stack, agent):
    stack = make_stack(real_names=True, postgres_running=False, wait_ready=False)
    assert stack.wait_exit() == 3
    service = agent(stack, recorder=False)
    inc = incident(service, "database-unavailable", ("acting", "verifying", "resolved", "failed"))
    time.sleep(1)
    stack.postgres_container.start()  # postgres comes up while the agent waits for it
    inc = incident(service, "database-unavailable", ("resolved", "gave-up", "failed"), timeout=120)
    assert inc.state == IncidentState.RESOLVED, inc.detail
    assert stack.api_status() == "running"
    assert stack.http("GET", "/").status_code == 200
    trail = service.store.incidents.audit_trail(inc.id)
    steps = [a["name"] for a in trail if a["kind"] in ("action", "verify")]
    assert steps == ["wait_container_running", "start_container", "wait_http"]


def test_incidents_command_json(make_stack, agent, tmp_path):
    stack = make_stack(real_names=True)
    service = agent(stack, mode="observe")
    deploy(via(service), instance_name="sharp-bot", credentials_profile="client_sharp")
    incident(service, "credentials-profile-missing", ("observed",))
    out = subprocess.run([sys.executable, "-m", "agent", "incidents", "--json"], capture_output=True,
                         text=True, env={**os.environ, "MEDIC_STATE_DB": str(tmp_path / "state.db")})
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert rows[0]["rule"] == "credentials-profile-missing" and rows[0]["state"] == "observed"
    assert [a["name"] for a in rows[0]["audit"]][:2] == ["detected", "observe"]
    assert Path(tmp_path / "state.db").is_file()


def test_keys_provisioned_and_never_shown(make_stack, agent, tmp_path, caplog):
    canary = "canary-SECRET-key-5521"
    keys = tmp_path / "keys" / "client_sharp"
    keys.mkdir(parents=True)
    (keys / "bitmart.json").write_text(json.dumps(
        {"bitmart_api_key": "k-123456", "bitmart_secret_key": canary, "bitmart_memo": "m"}))
    stack = make_stack(real_names=True)
    service = agent(stack, credentials_dir=tmp_path / "keys")
    deploy(via(service), instance_name="sharp-bot", credentials_profile="client_sharp")
    inc = incident(service, "credentials-profile-missing", ("resolved", "gave-up", "waiting", "failed"))
    assert inc.state == IncidentState.RESOLVED, inc.detail
    assert stack.http("GET", "/accounts/client_sharp/credentials").json() == ["bitmart"]
    trail = service.store.incidents.audit_trail(inc.id)
    provision = next(a for a in trail if a["name"] == "provision_credentials")
    assert provision["result"] == "added keys for client_sharp: bitmart"
    service.store.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    assert canary.encode() not in stored and b"k-123456" not in stored
    assert canary not in caplog.text and "k-123456" not in caplog.text
