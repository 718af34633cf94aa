""""Docker engine unreachable / reachable again" is said once each way per outage, even
when a restarting engine answers, drops and answers again."""

from __future__ import annotations

import logging
import time

from agent.ingest.engine import EngineHealth
from tests.stack import wait_until

ERR = ConnectionError("connection refused")


def said(caplog) -> list[str]:
    return [r.getMessage().split(" (")[0].split(" after")[0] for r in caplog.records
            if r.getMessage().startswith("Docker engine")]


def test_flapping_engine_is_one_outage(caplog):
    caplog.set_level(logging.WARNING)
    health = EngineHealth(settle=0.3)
    health.ok()  # up from the start: nothing to say
    for _ in range(3):  # a restart: several callers fail, one gets an answer, then it drops again
        health.failed(ERR)
        health.failed(ERR)
        health.ok()
        health.ok()
    wait_until(lambda: len(said(caplog)) >= 2, 10, "the engine to be reported back")
    time.sleep(0.5)
    assert said(caplog) == ["Docker engine unreachable", "Docker engine reachable again"]
    # a second, separate outage is reported again, once each way
    health.failed(ERR)
    health.ok()
    wait_until(lambda: len(said(caplog)) >= 4, 10, "the second outage to end")
    assert said(caplog)[2:] == ["Docker engine unreachable", "Docker engine reachable again"]


def test_a_source_waits_quietly_for_a_state_file_that_cannot_be_written(caplog):
    """A source whose store write fails (StateUnwritable: the store logged it once) is called
    again a second later, with no traceback in the log; a bug is still logged with its traceback."""
    import threading

    from agent.ingest.engine import keep_running
    from agent.state import StateUnwritable

    stopping = threading.Event()
    calls = []

    def call():
        calls.append(1)
        if len(calls) <= 2:
            raise StateUnwritable("attempt to write a readonly database")
        if len(calls) == 3:
            raise KeyError("a bug")
        stopping.set()

    with caplog.at_level("DEBUG"):
        keep_running(call, stopping, on_engine_failure=lambda _s: None, what="a source")
    assert len(calls) == 4
    # With its traceback: on the record, or already formatted by the agent's own log filter
    # (agent.logs.SafeFilter, when an earlier test in this process set the agent's logging up).
    assert [r.getMessage() for r in caplog.records if r.exc_info or r.exc_text] == [
        "a source failed; trying again in 1 s"]
    assert "readonly" not in caplog.text


def test_an_answer_of_the_engine_is_no_outage(caplog):
    """The logs of a container being removed answer 409 (seen on the real stack when a bot was
    removed as it ended): the engine answered, so nothing is said and /healthz stays fine."""
    import requests
    from docker.errors import APIError

    caplog.set_level(logging.WARNING)
    health = EngineHealth(settle=0.1)
    response = requests.Response()
    response.status_code = 409
    health.failed(APIError("409 Client Error: can not get logs from container which is dead or marked"
                           " for removal", response=response))
    assert health.down_since is None and said(caplog) == []
    response.status_code = 500  # the engine failing inside is an outage of its own kind
    health.failed(APIError("500 Server Error", response=response))
    assert health.down_since is not None
