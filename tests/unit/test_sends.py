"""The agent's re-sends and the clients' deploys of one instance name never reach hummingbot-api
together (agent.state.sends): each side is written ahead only while the other is not out."""

from __future__ import annotations

import math
import time

from agent.records import Incident, IncidentState
from agent.state import State

ROW = dict(route="deploy-v2-script", path="/bot-orchestration/deploy-v2-script",
           request_body='{"instance_name": "bot", "credentials_profile": "p"}', profile="p",
           instance="bot", authenticated=True)


def state_with_incident(tmp_path, stack: str = "default") -> State:
    state = State(tmp_path / "state.db")
    state.incidents.create(Incident(id="i1", rule="credentials-profile-missing", key="p",
                                    state=IncidentState.RETRYING, severity="critical", container="c",
                                    summary="s", fingerprint="f", captures={"profile": "p"}, stack=stack))
    return state


def test_a_clients_deploy_on_its_way_keeps_the_agents_resend_back(tmp_path):
    state = state_with_incident(tmp_path)
    client = state.sends.client_request(base="bot", **ROW)
    assert client.deploy_id is not None
    flying = state.sends.agent_send("i1", [7], "bot")
    assert [d.id for d in flying] == [client.deploy_id]
    assert state.incidents.deploys("i1") == []  # nothing written ahead: not sent
    state.deploys.answered(client.deploy_id, status=500, response_body="{}", failed=True, message="x")
    assert state.sends.agent_send("i1", [7], "bot") == []
    assert [r["state"] for r in state.incidents.deploys("i1")] == ["sending"]
    # Its own failed record does not keep it back.
    assert state.sends.agent_send("i1", [7], "bot", exclude={client.deploy_id}) == []


def test_the_agents_resend_out_holds_a_clients_deploy_until_the_next_second_after_its_answer(tmp_path):
    state = state_with_incident(tmp_path)
    assert state.sends.agent_send("i1", [7], "bot") == []
    held = state.sends.client_request(base="bot", **ROW)
    assert held.deploy_id is None and held.not_before > time.time()
    assert state.deploys.in_flight("bot") == []  # not written ahead while held
    other = state.sends.client_request(base="other", **{**ROW, "instance": "other"})
    assert other.deploy_id is not None  # another name is never held
    state.incidents.mark_deploy("i1", 7, "bot", "done", "running: bot-1")
    answered = state.incidents.deploys("i1")[0]["updated"]
    after = state.sends.client_request(base="bot", **ROW)
    if after.deploy_id is None:  # answered this very second: held until the next one
        assert after.not_before == math.floor(answered) + 1
        time.sleep(max(after.not_before - time.time(), 0) + 0.01)
        after = state.sends.client_request(base="bot", **ROW)
    assert after.deploy_id is not None
    assert state.deploys.get(after.deploy_id).at >= math.floor(answered) + 1


def test_another_stacks_resend_holds_nothing_and_an_old_one_nothing_either(tmp_path):
    state = state_with_incident(tmp_path, stack="east")
    assert state.sends.agent_send("i1", [7], "bot", stack="east") == []
    assert state.sends.client_request(base="bot", **ROW).deploy_id is not None  # the default stack's
    state.file.conn().execute("UPDATE incident_deploys SET sent_at = ?", (time.time() - 600,))
    assert state.sends.client_request(base="bot", **ROW, stack="east").deploy_id is not None
