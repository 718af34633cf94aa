"""Attacks end to end, against the real agent (in this process) and the stand-in
hummingbot-api under its real names: nobody without the login steers a fix."""

from __future__ import annotations

import httpx
import pytest

from tests.test_remedy import agent, deploy, incident, via  # noqa: F401 (the agent fixture)

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
    assert inc.state == "waiting", (inc.state, inc.detail)
    assert (stack.bots / "credentials" / "client_victim").is_dir()  # the fix itself ran
    names = [c.name for c in stack.client.containers.list(all=True) if "pwned" in c.name]
    assert names == []
    assert service.store.find_deploy(profile="client_victim") is None
