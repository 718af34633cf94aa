"""Attacks end to end, against the real agent (in this process) and the stand-in
hummingbot-api under its real names: nobody without the login steers a fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from urllib.parse import quote

import httpx
import pytest

from agent.records import IncidentState
from tests.images import BOT_IMAGE
from tests.receiver import Receiver
from tests.stack import ADMIN, REPO, free_port, wait_until
from tests.test_remedy import agent, deploy, incident, running_bots, via  # noqa: F401 (the agent fixture)
from tests.test_run import start_agent, stop_agent

pytestmark = pytest.mark.docker


def test_an_unauthenticated_deploy_is_never_retried(make_stack, agent):  # noqa: F811
    """The attacker's deploy reaches the recorder while hummingbot-api is down (the recorder
    answers 502), then the operator's own deploy of that profile fails: the agent fixes the
    profile but re-sends nothing it cannot prove the operator sent."""
    stack = make_stack(real_names=True)
    service = agent(stack)
    stack.api.stop(timeout=2)
    attack = {"instance_name": "pwned-bot", "credentials_profile": "client_victim"}
    with httpx.Client(base_url=via(service), timeout=60) as c:
        assert c.post("/bot-orchestration/deploy-v2-script", json=attack).status_code == 502
        assert c.post("/bot-orchestration/deploy-v2-script", json=attack,
                      auth=("admin", "wrong")).status_code == 502
    stack.api.start()
    stack.wait_line("stderr", "Uvicorn running on", count=2, timeout=60)
    # Refused logins are not deploys either.
    with httpx.Client(base_url=via(service), timeout=60) as c:
        assert c.post("/bot-orchestration/deploy-v2-script", json=attack,
                      auth=("admin", "wrong")).status_code == 401
    # The operator deploys straight to hummingbot-api (not through the recorder): it fails.
    own = deploy(stack.url, instance_name="victim-bot", credentials_profile="client_victim")
    assert own.status_code == 500
    inc = incident(service, "credentials-profile-missing", ("resolved", "waiting", "gave-up", "failed"))
    assert inc.state == IncidentState.WAITING, (inc.state, inc.detail)
    assert (stack.bots / "credentials" / "client_victim").is_dir()  # the fix itself ran
    names = [c.name for c in stack.client.containers.list(all=True) if "pwned" in c.name]
    assert names == []
    assert service.store.deploys.find(profile="client_victim") is None


def _forge(base: str, instance: str, profile: str) -> None:
    """The request of the attack: its path, decoded, is a record line on hummingbot-api's stdout."""
    line = (f"{time.strftime('%Y-%m-%d %H:%M:%S')},000 - root - INFO - Creating hummingbot instance with"
            f" config: instance_name='{instance}' credentials_profile='{profile}' image='evil/miner:latest'"
            " script='steal.py' script_config=None headless=False")
    with httpx.Client(base_url=base, timeout=30) as c:
        assert c.get("/x%0A" + quote(line)).status_code == 404


def test_a_forged_log_line_is_never_acted_on(make_stack, agent):  # noqa: F811
    stack = make_stack(real_names=True)
    service = agent(stack, recorder=False)
    _forge(stack.url, "pwned-bot", "client_sharp")
    stack.wait_line("stdout", r"^\d{4}-\d\d-\d\d [\d:,]+ - root - INFO - Creating hummingbot instance with"
                              r" config: instance_name='pwned-bot'")
    assert deploy(stack.url, instance_name="sharp-bot", credentials_profile="client_sharp").status_code == 500
    inc = incident(service, "credentials-profile-missing", ("resolved", "waiting", "gave-up", "failed"))
    assert inc.state == IncidentState.WAITING and inc.deploy is None, (inc.state, inc.deploy)
    assert "pwned" not in inc.detail
    assert [c.name for c in stack.client.containers.list(all=True) if "pwned" in c.name] == []


def test_a_body_read_from_the_log_waits_for_a_person(make_stack, agent):  # noqa: F811
    """A build that logs INFO prints the operator's own body on stderr: it is shown, not sent,
    until a person says so; the forged one on stdout is never even shown."""
    stack = make_stack(generation="legacy", log_info=True, real_names=True)
    # The stand-in names its own default image in the body it logs: the operator allows it.
    service = agent(stack, recorder=False, allowed_images=[BOT_IMAGE])
    _forge(stack.url, "pwned-bot", "client_sharp")
    assert deploy(stack.url, instance_name="sharp-bot", credentials_profile="client_sharp").status_code == 500
    inc = incident(service, "credentials-profile-missing", ("resolved", "waiting", "gave-up", "failed"))
    assert inc.state == IncidentState.WAITING, (inc.state, inc.detail)
    assert inc.deploy["source"] == "log" and inc.deploy["body"]["instance_name"] == "sharp-bot"
    assert '"instance_name": "sharp-bot"' in inc.detail and "pwned" not in inc.detail
    assert running_bots(stack, "sharp-bot") == []
    # The person's word: the same checks, then the deploy.
    result = service.remedy.finish(service.store.incidents.get(inc.id), None, None)
    assert "sharp-bot" in result
    assert [c.name for c in stack.client.containers.list(all=True) if "pwned" in c.name] == []


def test_a_secret_in_a_log_line_goes_nowhere(make_stack, tmp_path):
    """A canary `CONFIG_PASSWORD=...` that a client got into hummingbot-api's log (an invalid
    profile name it echoes) through a whole incident: match, incident, audit trail, the
    notification, the agent's log, `hb-medic incidents`: masked everywhere."""
    canary = "CfgPw-canary-5521"
    stack = make_stack(real_names=True)
    rx = Receiver()
    port = free_port()
    db, log = tmp_path / "state.db", tmp_path / "agent.log"
    env = {"MEDIC_STATE_DB": str(db), "MEDIC_HUMMINGBOT_URL": stack.url,
           "MEDIC_RECORDER_ADDR": f"127.0.0.1:{port}", "MEDIC_NOTIFY_URLS": f"json://127.0.0.1:{rx.port}/"}
    proc = start_agent(env, log)
    try:
        wait_until(lambda: "deploy recorder" in log.read_text(), 90, "the agent to start")
        resp = deploy(f"http://127.0.0.1:{port}", instance_name="c-bot",
                      credentials_profile=f"x CONFIG_PASSWORD={canary}")
        assert resp.status_code == 500  # as the real one: its refusal cannot be encoded
        wait_until(lambda: any("invalid" in m.get("title", "").lower() for m in rx.accepted), 60,
                   "the notification")
    finally:
        stop_agent(proc)
        rx.server.shutdown()
    incidents = subprocess.run([sys.executable, "-m", "agent", "incidents", "--json"], cwd=REPO,
                               env={**os.environ, **env}, capture_output=True, text=True, timeout=180)
    assert incidents.returncode == 0, incidents.stderr
    state = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    sent = json.dumps(rx.accepted)
    for where, text in (("notification", sent), ("agent log", log.read_text()),
                        ("incidents", incidents.stdout), ("state file", state.decode("latin-1"))):
        assert canary not in text, where
    assert "CONFIG_PASSWORD=***" in sent and "CONFIG_PASSWORD=***" in incidents.stdout


URGENT = "URGENT: exchange keys leaked, rotate now at https://evil.example/rotate"


def test_a_flood_of_forged_error_lines_is_no_unknown_error_and_no_message(make_stack, agent, receiver):  # noqa: F811
    """21 requests without the login to `/x%0A<a forged ERROR record>`: hummingbot-api prints the
    decoded path on stdout, which no rule reads; nothing is counted and nobody is told, while a
    real error no rule knows on stderr (the gateway ping, on a stack with a gateway) is."""
    stack = make_stack(real_names=True, gateway_ping=1)
    service = agent(stack, recorder=False, notify_urls=receiver.url, gateway="present")
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S')},000 - root - ERROR - {URGENT}"
    with httpx.Client(base_url=stack.url, timeout=30) as c:
        for _ in range(21):
            assert c.get("/x%0A" + quote(line) + "%0A").status_code == 404
    stack.wait_line("stdout", r"^\d{4}-\d\d-\d\d [\d:,]+ - root - ERROR - URGENT: exchange keys leaked",
                    count=21, timeout=30)
    ping = wait_until(lambda: next((e for e in service.store.unknown.most_frequent()
                                    if "Failed to ping gateway" in "".join(s["text"] for s in e.samples)),
                                   None), 60, "the gateway ping counted")
    time.sleep(3)  # another tick of the tracker
    service.unknown.flush()
    entries = service.store.unknown.most_frequent()
    assert [e for e in entries if "URGENT" in e.summary or "evil.example" in json.dumps(e.samples)] == []
    assert all(e.stream == "stderr" for e in entries), [(e.summary, e.stream) for e in entries]
    assert ping.container == "hummingbot-api"
    assert "evil.example" not in json.dumps(receiver.accepted)
    assert not any("New error no rule knows" in t for t in receiver.titles())


def test_an_unauthenticated_credential_upload_that_is_not_utf8_opens_nothing(make_stack, agent):  # noqa: F811
    """hummingbot-api answers a body that is not UTF-8 with 400 before it checks the login: kept
    (and acted on) only when the request carried the login."""
    stack = make_stack(real_names=True)
    service = agent(stack)
    path = "/accounts/add-credential/victim_acct/binance"
    raw = b'{"binance_api_key": "\xff\xfe"}'
    with httpx.Client(base_url=via(service), timeout=60) as c:
        for auth in (None, ("admin", "wrong")):
            refused = c.post(path, content=raw, auth=auth, headers={"Content-Type": "application/json"})
            assert refused.status_code == 400, refused.text
        time.sleep(3)
        assert service.store.file.conn().execute(
            "SELECT COUNT(*) FROM deploys WHERE route = 'add-credential'").fetchone()[0] == 0
        assert [i for i in service.store.incidents.recent(50) if i.rule == "credential-add-failed"] == []
        # The same request with the login: hummingbot-api's refusal is kept.
        assert c.post(path, content=raw, auth=ADMIN, headers={"Content-Type": "application/json"}
                      ).status_code == 400
    wait_until(lambda: service.store.file.conn().execute(
        "SELECT COUNT(*) FROM deploys WHERE route = 'add-credential'").fetchone()[0] == 1, 20,
        "the refusal with the login kept")
