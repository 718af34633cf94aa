"""Who may send a deploy of an instance name now: the agent's re-sends and the clients' own
requests through the recorder, decided in one write transaction each, so the two never reach
hummingbot-api together.

hummingbot-api names a current-generation bot after its instance name and the second it
handles the deploy, and replaces that name's `conf` folder before Docker refuses a second
container of the same name: a client's deploy that lands beside (or in the same second as) the
agent's re-send of the same instance kills the bot the re-send just started. So a re-send is
written ahead only while no client request of that name is on its way, a client's request is
let through only while no re-send of that name is out, and not before the next whole second
after the last one was answered.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from agent.names import DEFAULT_STACK
from agent.records import Deploy
from agent.state.deploys import in_flight, insert_request
from agent.state.file import StateFile
from agent.state.incidents import mark_deploy

OUT_FOR = 120.0  # a re-send written ahead this long ago and never answered (a kill) holds no one


@dataclass(frozen=True)
class Admission:
    """A client's request: written ahead as `deploy_id`, or held until `not_before` (epoch s)."""

    deploy_id: int | None
    not_before: float = 0.0


class Sends:
    def __init__(self, file: StateFile) -> None:
        self._file = file

    def agent_send(self, incident: str, deploy_ids: list[int], base: str, *,
                   stack: str = DEFAULT_STACK, exclude: set[int] | None = None,
                   within: float = 600.0) -> list[Deploy]:
        """Mark the incident's deploys of `base` as sending (written ahead), unless a client's
        deploy of that name is on its way through the recorder: then nothing is written and
        those requests are returned (wait for their answers and ask again)."""
        with self._file.transaction() as conn:
            flying = [d for d in in_flight(conn, base, within=within, stack=stack)
                      if d.id not in (exclude or set())]
            if flying:
                return flying
            now = time.time()
            for deploy_id in deploy_ids:
                mark_deploy(conn, incident, deploy_id, base, "sending", sent_at=now)
        return []

    def client_request(self, *, base: str, route: str, path: str, request_body: str,
                       profile: str | None, instance: str | None, authenticated: bool,
                       stack: str = DEFAULT_STACK) -> Admission:
        """Write a client's deploy ahead, unless the agent's re-send of that name is out (held
        until it is answered) or was answered this very second (held until the next one)."""
        with self._file.transaction() as conn:
            now = time.time()
            rows = conn.execute(
                "SELECT d.state, d.updated FROM incident_deploys d JOIN incidents i ON i.id = d.incident"
                " WHERE d.base = ? AND i.stack = ? AND d.sent_at >= ?",
                (base, stack, now - OUT_FOR)).fetchall()
            if any(state == "sending" for state, _updated in rows):
                return Admission(None, now + 0.1)
            last = max((updated for _state, updated in rows), default=0.0)
            if math.floor(last) + 1 > now:
                return Admission(None, math.floor(last) + 1)
            return Admission(insert_request(conn, route=route, path=path, request_body=request_body,
                                            profile=profile, instance=instance,
                                            authenticated=authenticated, at=now, stack=stack))
