"""The gateway, end to end with a running agent on the real engine: the current generation's
gateway-ping noise on a stack without a gateway (one info message, never an error no rule knows),
hummingbot-api's 503 on its gateway routes through the recorder where a gateway is expected, and a
gateway container that crashes at start and is restarted in a loop (found on the engine, one
message for the loop, each Node.js crash one event), recreated with its certificates through
hummingbot-api when hummingbot-api manages it."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from agent.events import GATEWAY, role_of
from agent.ingest.follow import is_gateway_image
from agent.state import State
from tests.images import TOOLS_IMAGE
from tests.receiver import Receiver
from tests.stack import ADMIN, REPO, Stack, free_port, labels, wait_until
from tests.test_run import start_agent, stop_agent

pytestmark = pytest.mark.docker
PING = "Failed to ping gateway"
NOT_CONFIGURED = "No gateway on this stack"
UNAVAILABLE = "Gateway out of reach (api-503)"
SECRET = "gw-passphrase-never-read"
CERTS = "Gateway certificates missing or mismatched (gateway-no-certs)"


def gateways_on(client) -> list[str]:
    """Containers of the engine the agent would take for a gateway (MEDIC_GATEWAY auto)."""
    names = [((c.get("Names") or ["/"])[0].lstrip("/"), c.get("Image") or "")
             for c in client.api.containers(all=True)]
    return [n for n, image in names if role_of(n) == GATEWAY or is_gateway_image(image)]


def unknown_counts(db) -> dict[str, int]:
    """Errors no rule knows, but the stand-in's start-up warning about its default credentials (the
    shipped rule watches "hummingbot-api", not a test's prefixed name)."""
    store = State(db)
    try:
        return {e.summary: e.count for e in store.unknown.most_frequent()
                if not e.summary.startswith("SECURITY WARNING")}
    finally:
        store.close()


def _listening(port: int) -> bool:
    import socket
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_ping_noise_without_a_gateway_is_one_info_message_and_never_an_unknown_error(
        docker_client, make_stack, tmp_path):
    # MEDIC_GATEWAY auto looks at the whole engine: another test's gateway container would make this
    # stack one with a gateway. Wait for none.
    wait_until(lambda: not gateways_on(docker_client), 180, "no gateway container on the engine")
    stack = make_stack(gateway_ping=2)  # the real interval
    base = {"MEDIC_CONTAINERS": stack.api.name, "MEDIC_HUMMINGBOT_URL": stack.url,
            "MEDIC_UNKNOWN_BURST_COUNT": "3", "MEDIC_UNKNOWN_BURST_MINUTES": "1"}
    with Receiver() as auto_rx, Receiver() as present_rx:
        auto = start_agent({**base, "MEDIC_STATE_DB": str(tmp_path / "auto.db"),
                            "MEDIC_NOTIFY_URLS": auto_rx.url}, tmp_path / "auto.log")
        # The same noise where the stack is said to have a gateway: there it is an error no rule knows.
        present = start_agent({**base, "MEDIC_STATE_DB": str(tmp_path / "present.db"),
                               "MEDIC_NOTIFY_URLS": present_rx.url, "MEDIC_GATEWAY": "present",
                               "MEDIC_HTTP_ADDR": f"127.0.0.1:{free_port()}"}, tmp_path / "present.log")
        try:
            wait_until(lambda: any(NOT_CONFIGURED in t for t in auto_rx.titles()), 60, "the info message")
            told = len([x for x in stack.lines("stderr") if PING in x])
            # At least 20 s of noise after the message (a ping every 2 s).
            stack.wait_line("stderr", PING, count=told + 11, timeout=60)
            pings = len([x for x in stack.lines("stderr") if PING in x])
            wait_until(lambda: (tmp_path / "auto.log").read_text().count(
                "rule gateway-not-configured matched") >= pings, 30, "the agent to match every ping")
            wait_until(lambda: any("New error no rule knows" in t for t in present_rx.titles()), 30,
                       "the other agent's burst message")
        finally:
            stop_agent(auto)
            stop_agent(present)
    assert [t for t in auto_rx.titles() if NOT_CONFIGURED in t] == [
        next(t for t in auto_rx.titles() if NOT_CONFIGURED in t)], auto_rx.titles()
    assert len(auto_rx.titles()) == 1, auto_rx.titles()  # nothing else: no error, no burst
    message = auto_rx.accepted[0]
    assert message["type"] == "info", message
    assert "hb-medic does not count it as an error" in message["message"]
    assert unknown_counts(tmp_path / "auto.db") == {}
    assert "error no rule knows" not in (tmp_path / "auto.log").read_text()
    # MEDIC_GATEWAY=present: never called not-configured, and the ping stays an unknown error.
    assert not [t for t in present_rx.titles() if NOT_CONFIGURED in t], present_rx.titles()
    assert "gateway-not-configured" not in (tmp_path / "present.log").read_text()
    counted = unknown_counts(tmp_path / "present.db")
    assert any("'NoneType' object has no attribute 'password'" in s and n >= 11
               for s, n in counted.items()), counted


def test_recorded_503s_of_the_gateway_routes_open_gateway_unavailable_only_with_the_login(
        make_stack, tmp_path):
    stack = make_stack()
    port = free_port()
    db = tmp_path / "state.db"
    with Receiver() as rx:
        env = {"MEDIC_CONTAINERS": stack.api.name, "MEDIC_STATE_DB": str(db), "MEDIC_NOTIFY_URLS": rx.url,
               "MEDIC_HUMMINGBOT_URL": stack.url, "MEDIC_RECORDER_ADDR": f"127.0.0.1:{port}",
               "MEDIC_GATEWAY": "present"}
        agent = start_agent(env, tmp_path / "agent.log")
        try:
            wait_until(lambda: _listening(port), 20, "the recorder")
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as via:
                # Without the login hummingbot-api refuses before its handler: 401, nothing kept.
                for auth in (None, ("admin", "nope"), ("admin", "nope"), None):
                    assert via.get("/gateway/connectors", auth=auth).status_code == 401
                time.sleep(3)
                store = State(db)
                try:
                    assert store.deploys.after(0) == []
                finally:
                    store.close()
                assert rx.titles() == []
                assert "gateway-unavailable" not in (tmp_path / "agent.log").read_text()
                # With it: the handler's own 503, twice within the rule's window, opens one incident.
                for path in ("/gateway/connectors", "/accounts/gateway/wallets"):
                    r = via.get(path, auth=ADMIN)
                    assert (r.status_code, r.json()) == (503, {"detail": "Gateway service is not available"})
            wait_until(lambda: any(UNAVAILABLE in t for t in rx.titles()), 30, "its message")
            time.sleep(2)
        finally:
            stop_agent(agent)
    assert [t for t in rx.titles() if "Gateway" in t] == [next(t for t in rx.titles() if UNAVAILABLE in t)]
    store = State(db)
    try:
        kept = [(d.route, d.path, d.status, d.message) for _, d in store.deploys.after(0)]
        incidents = [i for i in store.incidents.recent() if i.rule == "gateway-unavailable"]
    finally:
        store.close()
    assert kept == [("gateway", "/gateway/connectors", 503, "Gateway service is not available"),
                    ("gateway", "/accounts/gateway/wallets", 503, "Gateway service is not available")], kept
    assert len(incidents) == 1, incidents


def _console(name: str) -> str:
    """A saved console, without the capture's `###` notes and `docker logs -t` stamps."""
    text = (REPO / "tests" / "real_logs" / "gateway" / name).read_text()
    lines = text.splitlines(keepends=True)
    return "".join(re.sub(r"^\S+Z ", "", x) for x in lines if not x.startswith("###"))


def test_a_gateway_restarted_in_a_loop_is_found_and_told_once(docker_client, make_stack, tmp_path):
    """A container named like hummingbot-api's gateway prints what the real gateway 2.13 printed
    without its certificates (a Node.js crash), and an older gateway's record of the same, exits 7
    and is restarted by the engine (restart policy always, as hummingbot-api starts it). It is not
    the gateway hummingbot-api manages (it manages none here): never recreated, one message for the
    whole loop with the steps."""
    stack = make_stack()
    output = _console("g1-gateway-console.log")
    (tmp_path / "out.txt").write_text(
        "2023-03-02 10:12:13 | error | \tFailed to start the server with https. Confirm that the SSL "
        "certificate files exist and are correct.\n" + output)
    name = stack.prefix + "gateway"
    with Receiver() as rx:
        env = {"MEDIC_CONTAINERS": stack.api.name, "MEDIC_STATE_DB": str(tmp_path / "state.db"),
               "MEDIC_NOTIFY_URLS": rx.url, "MEDIC_HUMMINGBOT_URL": stack.url}
        log = tmp_path / "agent.log"
        agent = start_agent(env, log)
        try:
            wait_until(lambda: " mode" in log.read_text(), 30, "the agent to start")
            gateway = docker_client.containers.run(
                TOOLS_IMAGE, entrypoint=["sh", "-c", "cat /t/out.txt; exit 7"], name=name, detach=True,
                network_mode="host", labels=labels(stack.run_id), restart_policy={"Name": "always"},
                volumes={str(tmp_path): {"bind": "/t", "mode": "ro"}},
                environment={"DEV": "false", "GATEWAY_PASSPHRASE": SECRET})  # as the capture's gateway
            wait_until(lambda: gateway.reload() or gateway.attrs["RestartCount"] >= 5, 90, "five restarts")
            boots = gateway.attrs["RestartCount"] + 1
            crash = f"rule gateway-certs-missing matched in {name}: file='server_key.pem'"
            wait_until(lambda: log.read_text().count(crash) >= boots, 30, "every crash matched")
            time.sleep(2)
        finally:
            stop_agent(agent)
    text = log.read_text()
    assert f"following the gateway {name}" in text
    crashes = text.count(f"rule gateway-certs-missing matched in {name}: file='server_key.pem'")
    records = text.count(f"rule gateway-certs-missing matched in {name}: reason='gateway-no-certs'")
    # One event per crash (the frames, the error's properties and the version line are not lines of
    # their own), and the older record once per start too.
    assert boots <= crashes <= boots + 1 and boots <= records <= boots + 1, (boots, crashes, records)
    told = [m for m in rx.accepted if name in m["message"] or name in m["title"]]
    assert [m["title"] for m in told] == [f"[ERROR] Needs you: {CERTS}"], rx.titles()
    assert "not the gateway hummingbot-api manages" in told[0]["message"]
    assert "POST http://HUMMINGBOT_API:8000/gateway/restart" in told[0]["message"]
    assert docker_client.containers.get(name).id == gateway.id  # never recreated
    assert unknown_counts(tmp_path / "state.db") == {}
    assert SECRET not in text and all(SECRET not in str(m) for m in rx.accepted)


def test_a_gateway_hummingbot_api_manages_is_recreated_with_its_certificates(docker_client, tmp_path):
    """Catalogue kind 1's safe fix, end to end: the gateway hummingbot-api started loses its
    certificates and crashes in a loop; the agent has hummingbot-api make the set and recreate it,
    and calls it fixed only once the new one ran its settle time. One incident for the loop."""
    import json

    stack = Stack(docker_client)
    name = stack.prefix + "gateway"
    # Without its server key it prints what the real gateway 2.13 printed then (its Node.js crash).
    crash = _console("g1-gateway-console.log")
    assert "\nEOF\n" not in crash
    command = [*FAKE_GATEWAY[:2], FAKE_GATEWAY[2].replace(
        "echo \"Error: ENOENT: no such file or directory, open './certs/server_key.pem'\" >&2; exit 7",
        f"cat <<'EOF'\n{crash}\nEOF\nexit 7")]
    assert command != FAKE_GATEWAY
    stack.env.update(STANDIN_GATEWAY_NAME=name, STANDIN_GATEWAY_IMAGE=TOOLS_IMAGE,
                     STANDIN_GATEWAY_COMMAND=json.dumps(command))
    with stack, Receiver() as rx:
        started = stack.http("POST", "/gateway/start", json={"image": "hummingbot/gateway:latest",
                                                              "port": 15888})
        assert started.status_code == 200 and started.json()["success"], started.text
        certs = stack.bots / "gateway-files" / "certs"
        env = {"MEDIC_CONTAINERS": stack.api.name, "MEDIC_STATE_DB": str(tmp_path / "state.db"),
               "MEDIC_NOTIFY_URLS": rx.url, "MEDIC_HUMMINGBOT_URL": stack.url}
        log = tmp_path / "agent.log"
        agent = start_agent(env, log)
        try:
            wait_until(lambda: f"following the gateway {name}" in log.read_text(), 60, "the gateway followed")
            assert stack.api.exec_run(["sh", "-c", "rm -f bots/gateway-files/certs/*.pem"]).exit_code == 0
            crashing = docker_client.containers.get(name)
            crashing.restart(timeout=1)
            wait_until(lambda: any(m["title"].startswith("[ERROR] Fixed") for m in rx.accepted), 120,
                       f"the fix (messages: {rx.titles()})")
            time.sleep(2)
        finally:
            stop_agent(agent)
        new = docker_client.containers.get(name)
        assert new.id != crashing.id and new.status == "running" and new.attrs["RestartCount"] == 0
        assert (certs / "server_key.pem").is_file()
        text = log.read_text()
    store = State(tmp_path / "state.db")
    try:
        incs = [i for i in store.incidents.recent(20) if i.rule == "gateway-certs-missing"]
    finally:
        store.close()
    assert [i.state for i in incs] == ["resolved"], [(i.state, i.detail) for i in incs]
    told = [m["title"] for m in rx.accepted if "Gateway certificates" in m["title"]]
    assert told[-1] == f"[ERROR] Fixed: {CERTS}" and len(told) <= 2, told
    assert "hummingbot-api recreated the gateway" in text or any(
        "hummingbot-api recreated the gateway" in m["message"] for m in rx.accepted)
    assert unknown_counts(tmp_path / "state.db") == {}


# The test bed's gateway: the real 2.13's crash without its server key (or with conf/crash there, to
# make one that crashes whatever its certificates), else its start line.
FAKE_GATEWAY = [
    "sh", "-c", "if [ -f /home/gateway/certs/server_key.pem ] && [ ! -f /home/gateway/conf/crash ]; then"
    " echo \"$(date '+%F %T') | info | \tGateway version 2.13.0 starting at https://localhost:15888\";"
    " exec sleep 3600; else echo \"Error: ENOENT: no such file or directory, open"
    " './certs/server_key.pem'\" >&2; exit 7; fi"]


def test_recreate_gateway_through_hummingbot_api_makes_the_certificates_and_refuses_a_foreign_gateway(
        docker_client, tmp_path):
    import json

    from agent.actions import registry
    from agent.actions.base import ActionContext, ActionError, NeedsHuman
    from agent.hummingbot_api import HummingbotAPI

    spec = registry()["recreate_gateway"]
    stack = Stack(docker_client)
    name = stack.prefix + "gateway"
    stack.env.update(STANDIN_GATEWAY_NAME=name, STANDIN_GATEWAY_IMAGE=TOOLS_IMAGE,
                     STANDIN_GATEWAY_COMMAND=json.dumps(FAKE_GATEWAY))
    with stack:
        api = HummingbotAPI(stack.url, "admin", "admin")
        ctx = ActionContext(docker=docker_client, api=api)
        started = stack.http("POST", "/gateway/start", json={"image": "hummingbot/gateway:latest",
                                                              "port": 15888})
        assert started.status_code == 200 and started.json()["success"], started.text
        certs = stack.bots / "gateway-files" / "certs"
        assert sorted(p.name for p in certs.iterdir()) == sorted(
            ["ca_cert.pem", "ca_key.pem", "client_cert.pem", "client_csr.pem", "client_key.pem",
             "server_cert.pem", "server_csr.pem", "server_key.pem"])
        # The certificates go missing under it: at its next start it crashes, and again and again.
        assert stack.api.exec_run(["sh", "-c", "rm -f bots/gateway-files/certs/*.pem"]).exit_code == 0
        crashing = docker_client.containers.get(name)
        crashing.restart(timeout=1)
        wait_until(lambda: crashing.reload() or crashing.attrs["RestartCount"] >= 2, 60, "the restart loop")
        foreign = docker_client.containers.run(
            TOOLS_IMAGE, entrypoint=["sleep", "300"], name=stack.prefix + "dex-gateway", detach=True,
            network_mode="none", labels=labels(stack.run_id))
        try:
            with pytest.raises(NeedsHuman, match="not the gateway hummingbot-api manages"):
                spec.func(spec.params.model_validate({"container": foreign.name}), ctx)
            assert docker_client.containers.get(name).id == crashing.id  # nothing was recreated
            done = spec.func(spec.params.model_validate({"container": name, "settle": 3}), ctx)
        finally:
            api.close()
        assert done.startswith(f"hummingbot-api recreated the gateway ({name}), running 3 s"), done
        new = docker_client.containers.get(name)
        assert new.id != crashing.id and new.status == "running" and new.attrs["RestartCount"] == 0
        assert (certs / "server_key.pem").is_file()
        assert "Gateway version 2.13.0 starting" in new.logs().decode()
        # A gateway that crashes even so is not called fixed.
        assert stack.api.exec_run(["touch", "bots/gateway-files/conf/crash"]).exit_code == 0
        api = HummingbotAPI(stack.url, "admin", "admin")
        try:
            new.restart(timeout=1)
            wait_until(lambda: new.reload() or new.attrs["RestartCount"] >= 1, 60, "the new loop")
            with pytest.raises(ActionError, match="the new gateway exited"):
                spec.func(spec.params.model_validate({"container": name, "settle": 3}),
                          ActionContext(docker=docker_client, api=api))
        finally:
            api.close()
