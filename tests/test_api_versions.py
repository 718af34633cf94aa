"""A client and hummingbot-api of different releases, end to end: the real agent (in this process)
with its recorder in front of the stand-in of the older generation (`STANDIN_GENERATION=legacy`),
a client calling routes only the current generation has, a 404 of no generation, and path text a
client chose that must never reach a message, the state file or the agent's log."""

from __future__ import annotations

import time

import httpx
import pytest

from agent.names import ROUTE_MISSING
from agent.service import Service
from agent.settings import Settings
from tests.stack import ADMIN, free_port, prefixed_rules, wait_until

pytestmark = pytest.mark.docker
CANARY = "CANARYpath4c1e"


@pytest.fixture
def agent(tmp_path, receiver, start_service):
    def start(stack) -> Service:
        settings = Settings(
            containers=[stack.prefix + "hummingbot-api"], state_db=tmp_path / "state.db",
            hummingbot_url=stack.url, catchup_window=120,
            rules_dir=prefixed_rules(stack.prefix, tmp_path / "rules"),
            recorder_addr=f"127.0.0.1:{free_port()}", notify_urls=receiver.url)
        return start_service(settings)

    return start


def call(service: Service, method: str, path: str, auth=ADMIN) -> httpx.Response:
    with httpx.Client(base_url=f"http://{service.settings.recorder_addr}", auth=auth, timeout=30) as c:
        return c.request(method, path, json={} if method == "POST" else None)


def missing_records(service: Service) -> list:
    rows = service.store.file.conn().execute(
        "SELECT path, request_body FROM deploys WHERE route = ?", (ROUTE_MISSING,)).fetchall()
    return [tuple(r) for r in rows]


def mismatches(service: Service) -> list:
    return [i for i in service.store.incidents.recent(50) if i.rule == "api-version-mismatch"]


def counted(service: Service) -> dict[tuple[str, str], float]:
    return {(s.labels["method"], s.labels["template"]): s.value for family in service.metrics()
            if family.name == "hb_medic_recorder_routes_missing" for s in family.samples
            if s.name.endswith("_total")}


def test_a_client_of_the_current_release_on_a_legacy_hummingbot_api_is_told_once(
        make_stack, agent, receiver, tmp_path, caplog):
    caplog.set_level("INFO")
    stack = make_stack(generation="legacy")
    service = agent(stack)
    # a 404 of no generation, and a handler's own 404 on a route every generation has: nothing
    assert call(service, "GET", f"/no/such/route-{stack.run_id}").status_code == 404
    assert call(service, "POST", "/add-connector-keys").status_code == 404  # no such template either
    assert call(service, "GET", "/accounts/nobody/credentials").status_code == 404
    # a route of the current generation, three times, and without the login (not counted)
    for _ in range(3):
        answer = call(service, "POST", "/backtesting/run")
        assert answer.status_code == 404 and answer.json() == {"detail": "Not Found"}  # passed unchanged
    assert call(service, "POST", "/backtesting/run", auth=("admin", "wrong")).status_code == 404
    inc = wait_until(lambda: mismatches(service), 60, "the api-version-mismatch incident")[0]
    assert inc.captures["method"] == "POST" and inc.captures["route"] == "/backtesting/run"
    assert inc.captures["generation"] == "current"
    (msg,) = wait_until(lambda: [m for m in receiver.accepted if "another release" in m.get("title", "")], 30,
                        "the message")
    assert "current generation" in msg["title"] and "POST /backtesting/run" in msg["message"]
    assert "upgrade hummingbot-api" in msg["message"] and "/docs" in msg["message"]
    assert missing_records(service) == [
        ("/backtesting/run", '{"method": "POST", "template": "/backtesting/run", "generations": "current"}')]
    assert counted(service) == {("POST", "/backtesting/run"): 3.0}

    # path text the client chose, inside a parameter of a current route: kept as the template only,
    # counted on the same incident, and never written anywhere
    hostile = f"/executors/{CANARY}%3Cb%3E*%60rm%20-rf%60%20%7B%7D%20-%20root%20-%20CRITICAL%20-%20pwned"
    assert call(service, "GET", hostile).status_code == 404
    wait_until(lambda: len(missing_records(service)) == 2, 30, "the second record")
    assert missing_records(service)[1][0] == "/executors/{executor_id}"
    wait_until(lambda: service.store.incidents.get(inc.id).events >= 2, 30, "the incident counting it")
    time.sleep(2)  # any further message would come now
    assert [m for m in receiver.accepted if "another release" in m.get("title", "")] == [msg]
    assert [i.id for i in mismatches(service)] == [inc.id]
    assert not [m for m in receiver.accepted if CANARY in str(m) or "pwned" in str(m)]
    trail = service.store.incidents.audit_trail(inc.id)
    assert CANARY not in str(trail) and CANARY not in str(service.store.incidents.get(inc.id))
    for f in tmp_path.glob("state.db*"):
        assert CANARY.encode() not in f.read_bytes(), f.name
    agent_log = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("agent"))
    assert "a client called POST /backtesting/run" in agent_log and CANARY not in agent_log
