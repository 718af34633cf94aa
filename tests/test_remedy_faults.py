"""The incident logic under faults, end to end against the stand-in: every failed deploy of a
profile is retried (not one per profile); a client's own deploy still in flight through the
recorder gets no duplicate bot; an outage of hummingbot-api waits instead of burning attempts,
and a new failure of a different deploy after it is not hidden by the cooldown."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from agent.remedy.engine import Remedy
from agent.service import Service
from tests.stack import ADMIN, wait_until

pytestmark = pytest.mark.docker



@pytest.fixture
def agent(driven_agent):
    return driven_agent


def deploy(service: Service, **body) -> httpx.Response:
    with httpx.Client(base_url=f"http://{service.settings.recorder_addr}", auth=ADMIN, timeout=60) as c:
        return c.post("/bot-orchestration/deploy-v2-script", json=body)


def incidents(service: Service, rule: str = "credentials-profile-missing") -> list:
    return [i for i in service.store.incidents.recent(50) if i.rule == rule]


def one_incident(service: Service, states: tuple[str, ...], timeout: float = 60):
    def found():
        got = [i for i in incidents(service) if i.state in states]
        return got[0] if got else None
    return wait_until(found, timeout, f"an incident in {states}")


def bots(stack, base: str) -> list:
    return [c for c in stack.client.containers.list(all=True, filters={"label": f"medic-test={stack.run_id}"})
            if c.name == base or c.name.startswith(base + "-")]


def add_accounts(stack) -> list[str]:
    return [x for x in stack.lines("stdout") if "POST /accounts/add-account" in x and "HTTP/1.1" in x]


def answers(stack) -> bool:
    try:
        return stack.http("GET", "/").status_code == 200
    except httpx.HTTPError:
        return False


def test_every_failed_deploy_of_a_profile_is_retried(make_stack, agent):
    stack = make_stack()
    service = agent(stack)
    a, b = stack.unique("alpha"), stack.unique("beta")
    for name in (a, a, b):  # the same profile, two instance names, one of them sent twice
        assert deploy(service, instance_name=name, credentials_profile="client_two").status_code == 500
    inc = one_incident(service, ("detected",))
    wait_until(lambda: service.store.incidents.get(inc.id).events >= 3, 30, "three failures counted")
    service.remedy.attempt(service.store.incidents.get(inc.id))
    inc = service.store.incidents.get(inc.id)
    assert inc.state == "resolved", inc.detail
    assert len(incidents(service)) == 1
    assert [c.status for c in bots(stack, a)] == ["running"]
    assert [c.status for c in bots(stack, b)] == ["running"]
    assert len(add_accounts(stack)) == 1
    retries = [r for r in service.store.incidents.audit_trail(inc.id) if r["name"] == "retry_deploy"]
    assert len(retries) == 2 and all(r["ok"] for r in retries)


def test_a_clients_own_deploy_in_flight_gets_no_duplicate_bot(make_stack, agent):
    stack = make_stack()
    service = agent(stack)
    name = stack.unique("race")
    assert deploy(service, instance_name=name, credentials_profile="client_race").status_code == 500
    inc = one_incident(service, ("detected",))
    # The client sends the same deploy again; it is on its way through the recorder (written
    # ahead, no answer yet) when the agent is about to re-send its failed one.
    flying = service.store.deploys.requested(
        route="deploy-v2-script", path="/bot-orchestration/deploy-v2-script",
        request_body=f'{{"instance_name": "{name}", "credentials_profile": "client_race"}}',
        profile="client_race", instance=name, authenticated=True)
    worker = threading.Thread(target=service.remedy.attempt, args=(service.store.incidents.get(inc.id),))
    worker.start()
    wait_until(lambda: stack.http("GET", "/accounts/").json().count("client_race"), 30, "the account fixed")
    time.sleep(1.0)
    assert bots(stack, name) == []  # the agent waits for the client's answer
    resp = stack.deploy(instance_name=name, credentials_profile="client_race")  # the client's lands
    assert resp.json()["success"] is True
    service.store.deploys.answered(flying, status=200, response_body=resp.text, failed=False, message="")
    worker.join(90)
    inc = service.store.incidents.get(inc.id)
    assert inc.state == "resolved", inc.detail
    assert len(bots(stack, name)) == 1
    retry = next(r for r in service.store.incidents.audit_trail(inc.id) if r["name"] == "retry_deploy")
    assert retry["result"].startswith("already deployed as ")


def test_a_clients_deploy_waits_behind_the_agents_resend_of_that_name(make_stack, agent):
    """The other way round: the agent's re-send is out when the client sends the same deploy
    again. Side by side (or in the same second) hummingbot-api would replace the re-sent bot's
    conf folder before refusing the second container; the recorder holds the client's until the
    re-send is answered and the next second has begun."""
    stack = make_stack()
    service = agent(stack)
    name = stack.unique("held")
    assert deploy(service, instance_name=name, credentials_profile="client_held").status_code == 500
    inc = one_incident(service, ("detected",))
    assert service.store.sends.agent_send(inc.id, [0], name) == []  # the agent's re-send is out
    seen = len(deploys_seen(stack))
    answer: list[httpx.Response] = []
    client = threading.Thread(target=lambda: answer.append(
        deploy(service, instance_name=name, credentials_profile="client_held")))
    client.start()
    time.sleep(2.0)
    assert client.is_alive() and len(deploys_seen(stack)) == seen  # held, not forwarded
    service.store.incidents.mark_deploy(inc.id, 0, name, "done", "running: x")
    answered = service.store.incidents.deploys(inc.id)[0]["updated"]
    client.join(60)
    assert answer and answer[0].status_code == 500  # hummingbot-api's own answer, unchanged
    assert len(deploys_seen(stack)) == seen + 1
    [record] = [d for d in service.store.deploys.of(profile="client_held", since=answered - 1)]
    assert record.at >= int(answered) + 1  # not in the second the re-send was answered


def deploys_seen(stack) -> list[str]:
    return [x for x in stack.lines("stdout") if "POST /bot-orchestration/deploy-v2-script" in x
            and "HTTP/1.1" in x]


def test_hummingbot_api_outage_waits_then_finishes(make_stack, agent):
    stack = make_stack()
    service = agent(stack)
    name = stack.unique("outage")
    assert deploy(service, instance_name=name, credentials_profile="client_out").status_code == 500
    inc = one_incident(service, ("detected",))
    stack.api.stop(timeout=2)  # hummingbot-api goes down right after the failure
    for _ in range(5):  # however often the agent tries, nothing is used up
        service.remedy.attempt(service.store.incidents.get(inc.id)) if service.store.incidents.get(
            inc.id).state != "outage" else service.remedy.attempts.look_again(
                service.store.incidents.get(inc.id))
    waiting = service.store.incidents.get(inc.id)
    assert waiting.state == "outage" and waiting.attempts == 0, (waiting.state, waiting.detail)
    assert waiting.detail.startswith("hummingbot-api does not answer") and "up to a day" in waiting.detail
    stack.api.start()
    wait_until(lambda: answers(stack), 60, "hummingbot-api back")
    Remedy.start(service.remedy)  # its workers look again by themselves
    # How soon after the return it finishes is measured by the fault suite (api-outage-*).
    inc = one_incident(service, ("resolved", "gave-up", "failed", "waiting"), timeout=60)
    assert inc.state == "resolved", inc.detail
    assert inc.attempts == 1
    assert [c.status for c in bots(stack, name)] == ["running"]
    # A different deploy failing after that is a new failure, not hidden by the cooldown.
    stack.http("POST", "/accounts/delete-account", params={"account_name": "client_out"})
    other = stack.unique("after")
    assert deploy(service, instance_name=other, credentials_profile="client_out").status_code == 500
    wait_until(lambda: len(incidents(service)) == 2, 30, "a second incident")
    wait_until(lambda: [c.status for c in bots(stack, other)] == ["running"], 60, "the other deploy retried")
