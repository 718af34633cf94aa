"""The start-up try of the doors anyone could open (agent/ingest/exposure.py): a real broker,
Debian's mosquitto, open to anonymous clients or requiring a login; what the agent makes of what
it found (lines on hummingbot-api's engine channel, which insecure-default-credentials tells), and
that a log line cannot pose as one."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent.events import API, Origin
from agent.ingest.environment import ENGINE
from agent.ingest.exposure import (
    API_OPEN,
    BROKER_OPEN,
    api_accepts_default_login,
    broker_accepts_anonymous,
    broker_address,
    open_doors,
)
from agent.ingest.replay import replay_lines
from agent.match.loader import load_rules
from agent.match.matcher import Matcher
from tests.mosquitto import mosquitto
from tests.stack import free_port

RULES = load_rules(Path(__file__).resolve().parent.parent / "rules").rules


def test_a_broker_open_to_anonymous_clients_is_found_open():
    with mosquitto(anonymous=True) as port:
        assert broker_accepts_anonymous("127.0.0.1", port) is True


def test_a_broker_that_requires_a_login_is_not():
    with mosquitto(anonymous=False) as port:
        assert broker_accepts_anonymous("127.0.0.1", port) is False


def test_nothing_listening_or_a_listener_that_never_answers_cannot_be_told():
    assert broker_accepts_anonymous("127.0.0.1", free_port(), timeout=2) is None
    with socket.socket() as quiet:  # accepts the connection, never answers a CONNECT
        quiet.bind(("127.0.0.1", 0))
        quiet.listen()
        assert broker_accepts_anonymous("127.0.0.1", quiet.getsockname()[1], timeout=1.5) is None


@pytest.mark.parametrize("data,want", [
    ({"broker_host": "emqx", "broker_port": 1883}, ("emqx", 1883)),
    ({"broker_host": "127.0.0.1", "broker_port": 41883}, ("127.0.0.1", 41883)),
    ({"broker_host": "emqx; rm -rf /", "broker_port": 1883}, None),
    ({"broker_host": "emqx", "broker_port": "1883"}, None),
    ({"broker_host": "emqx", "broker_port": True}, None),
    ({"broker_host": "emqx", "broker_port": 70000}, None),
    (None, None),
])
def test_only_a_plain_host_and_port_from_hummingbot_api_is_tried(data, want):
    assert broker_address(data) == want


class _Api(BaseHTTPRequestHandler):
    """hummingbot-api where the probe looks: /accounts/ behind HTTP Basic, /bot-orchestration/mqtt."""

    login = "admin:admin"
    broker_port = 0

    def do_GET(self):
        import base64
        import json
        auth = self.headers.get("Authorization", "")
        given = base64.b64decode(auth[6:]).decode() if auth.startswith("Basic ") else ""
        if given != self.login:
            self.send_response(401)
            self.end_headers()
            return
        body = {"/accounts/": ["master_account"],
                "/bot-orchestration/mqtt": {"status": "success", "data": {
                    "broker_host": "127.0.0.1", "broker_port": self.broker_port}}}.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def log_message(self, *args):
        pass


def _serve(login: str, broker_port: int) -> ThreadingHTTPServer:
    handler = type("Api", (_Api,), {"login": login, "broker_port": broker_port})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_both_doors_open_give_both_lines_and_each_is_told_by_the_rule():
    with mosquitto(anonymous=True) as port:
        server = _serve("admin:admin", port)
        try:
            url = f"http://127.0.0.1:{server.server_port}"
            assert api_accepts_default_login(url) is True
            lines = open_doors(url, "admin", "admin")
        finally:
            server.shutdown()
    assert lines == [API_OPEN.format(url=url), BROKER_OPEN.format(host="127.0.0.1", port=port)]
    matcher = Matcher(RULES)
    origin = Origin("hummingbot-api", ENGINE, API)
    results = [matcher.match(e) for e in replay_lines([f"ENGINE {line}" for line in lines], "hummingbot-api")]
    assert [(r.rule.id, r.captures["exposure"]) for r in results] == [
        ("insecure-default-credentials", "insecure-defaults"),
        ("insecure-default-credentials", "broker-anonymous")]
    assert results[1].captures["broker"] == f"127.0.0.1:{port}"
    assert origin.channel == results[0].event.stream


def test_closed_doors_give_nothing_and_the_broker_is_asked_with_the_agents_own_login():
    with mosquitto(anonymous=False) as port:
        server = _serve("medic:other-password", port)
        try:
            url = f"http://127.0.0.1:{server.server_port}"
            assert api_accepts_default_login(url) is False
            assert open_doors(url, "medic", "other-password") == []
        finally:
            server.shutdown()


def test_a_hummingbot_api_that_does_not_answer_is_tried_again_later():
    assert open_doors(f"http://127.0.0.1:{free_port()}", "admin", "admin", timeout=2) is None


def test_doctor_warns_of_each_open_door_with_its_fix_and_still_passes(monkeypatch, tmp_path, capsys):
    from agent import doctor

    monkeypatch.setenv("MEDIC_PROBE_DEFAULTS", "true")
    monkeypatch.setenv("MEDIC_STATE_DB", str(tmp_path / "s.db"))
    with mosquitto(anonymous=True) as port:
        server = _serve("admin:admin", port)
        try:
            url = f"http://127.0.0.1:{server.server_port}"
            monkeypatch.setenv("MEDIC_HUMMINGBOT_URL", url)
            assert doctor.run(checks=[doctor.default_credentials]) == 0
            out = capsys.readouterr().out
            monkeypatch.setenv("MEDIC_PROBE_DEFAULTS", "false")  # the setting turns the try off
            assert doctor.run(checks=[doctor.default_credentials]) == 0
            off = capsys.readouterr().out
        finally:
            server.shutdown()
    assert f"! hummingbot-api at {url} accepts the default login admin/admin\n" \
           "    fix: set USERNAME and" in out
    assert f"! the MQTT broker at 127.0.0.1:{port} accepts clients without a login\n" \
           "    fix: require a login" in out
    assert "(2 warnings above)" in out
    assert "admin/admin" not in off and "broker" not in off


def test_doctor_says_so_when_both_doors_are_closed(monkeypatch, tmp_path, capsys):
    from agent import doctor

    monkeypatch.setenv("MEDIC_PROBE_DEFAULTS", "true")
    monkeypatch.setenv("MEDIC_STATE_DB", str(tmp_path / "s.db"))
    monkeypatch.setenv("MEDIC_HUMMINGBOT_USERNAME", "medic")
    monkeypatch.setenv("MEDIC_HUMMINGBOT_PASSWORD", "other-password")
    with mosquitto(anonymous=False) as port:
        server = _serve("medic:other-password", port)
        try:
            monkeypatch.setenv("MEDIC_HUMMINGBOT_URL", f"http://127.0.0.1:{server.server_port}")
            assert doctor.run(checks=[doctor.default_credentials]) == 0
        finally:
            server.shutdown()
    assert "✓ default credentials: hummingbot-api refuses admin/admin, and its broker did not take a client" \
           " without a login" in capsys.readouterr().out


@pytest.mark.docker
@pytest.mark.parametrize("generation", ["legacy", "current"])
def test_the_agent_tells_each_open_door_once_and_changes_nothing(docker_client, make_stack, tmp_path,
                                                                  generation):
    """A running agent on the real engine, the stand-in hummingbot-api (admin/admin) naming a real
    mosquitto open to anonymous clients as its broker: one message for the default login (the legacy
    generation never warns; the current one's warning and the try are one incident) and one for the
    broker, with the steps; the broker's configuration and hummingbot-api's login are unchanged."""
    from tests.receiver import Receiver
    from tests.stack import ADMIN, prefixed_rules, wait_until
    from tests.test_run import start_agent, stop_agent

    stack = make_stack(generation=generation, broker=False)
    with mosquitto(anonymous=True, port=stack.broker_port), Receiver() as rx:
        rules = prefixed_rules(stack.prefix, tmp_path / "rules")
        log = tmp_path / "agent.log"
        agent = start_agent({"MEDIC_CONTAINERS": stack.api.name, "MEDIC_HUMMINGBOT_URL": stack.url,
                             "MEDIC_RULES_DIR": str(rules), "MEDIC_STATE_DB": str(tmp_path / "s.db"),
                             "MEDIC_NOTIFY_URLS": rx.url, "MEDIC_PROBE_DEFAULTS": "true",
                             "MEDIC_MODE": "observe"}, log)
        try:
            try:
                wait_until(lambda: sum("mqtt-broker is open to anyone" in t for t in rx.titles()) == 1
                           and sum("hummingbot-api is open to anyone" in t for t in rx.titles()) == 1,
                           60, "one message for each open door")
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {rx.titles()}\n{log.read_text()[-4000:]}") from None
            time.sleep(5)  # nothing more comes of it
        finally:
            stop_agent(agent)
        titles = rx.titles()
        assert sum("hummingbot-api is open to anyone" in t for t in titles) == 1, titles
        assert sum("mqtt-broker is open to anyone" in t for t in titles) == 1, titles
        broker = next(m for t, m in zip(titles, rx.messages(), strict=True) if "mqtt-broker is open" in t)
        assert f"127.0.0.1:{stack.broker_port}" in broker and "allow_anonymous false" in broker, broker
        assert broker_accepts_anonymous("127.0.0.1", stack.broker_port) is True  # left as it was
    assert stack.http("GET", "/accounts/", auth=ADMIN).status_code == 200
    text = log.read_text()
    assert "accepts clients without a login" in text and "Traceback" not in text, text[-3000:]
