"""The agent's domain records, apart from where they are stored: an incident and the states
it goes through, a recorded deploy, an error no rule knows. Every layer may import this
module; it imports nothing of the agent's storage (agent.state converts them to rows)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from enum import StrEnum

from agent.names import DEFAULT_STACK


class IncidentState(StrEnum):
    """Where an incident stands. The values are what the state file, `hb-medic incidents`
    and the JSON output show, so they never change."""

    DETECTED = "detected"  # seen, nothing done yet
    ACTING = "acting"  # an attempt's actions are running
    VERIFYING = "verifying"  # the actions ran; waiting for the bot to stay alive
    RETRYING = "retrying"  # re-sending the failed deploy
    FAILED = "failed"  # an attempt failed; another is due at next_attempt
    WAITING = "waiting"  # held: the budget is spent, or another fix works on the same profile
    OUTAGE = "outage"  # waiting for hummingbot-api or the Docker engine to answer again
    ONGOING = "ongoing"  # a condition that lasts (an exchange out of reach) and ends by itself
    RESOLVED = "resolved"  # fixed and verified, or the condition ended
    GAVE_UP = "gave-up"  # the attempts are spent; a person must look
    # Told, nothing done: observe mode, or an attempt of telling actions only (its message "Needs
    # you"). A rule that runs no action at all ends resolved ("notified").
    OBSERVED = "observed"
    REFUSED = "refused"  # the captures were refused: no action ran
    STALE = "stale"  # too old to act on when seen (a catch-up after a long stop)
    # Preflight (the recorder checked a deploy before forwarding it): its failure was foreseen and
    # fixed first, so it never happened; or it was foreseen and not fixed, and told before it came.
    PREVENTED = "prevented"
    WARNED = "warned"
    # Ask mode, or a rule that always asks: its plan waits for a person's Fix now (agent.chat).
    AWAITING_APPROVAL = "awaiting-approval"
    EXPIRED = "expired"  # nobody approved within MEDIC_APPROVAL_TTL: nothing was done

    @property
    def open(self) -> bool:
        return self in OPEN_STATES


OPEN_STATES = frozenset({IncidentState.DETECTED, IncidentState.ACTING, IncidentState.VERIFYING,
                         IncidentState.RETRYING, IncidentState.FAILED, IncidentState.WAITING,
                         IncidentState.OUTAGE, IncidentState.ONGOING, IncidentState.AWAITING_APPROVAL})
# An attempt was running in these: a restart of the agent cut it short.
RUNNING_STATES = frozenset({IncidentState.DETECTED, IncidentState.ACTING, IncidentState.VERIFYING,
                            IncidentState.RETRYING})

# A line of a container's log is placed by its timestamp and its index among the lines of that
# very nanosecond: ts_ns << DUP_BITS | index.
DUP_BITS = 10


@dataclass
class Incident:
    """One incident per (rule, key) at a time."""

    id: str
    rule: str
    key: str
    state: IncidentState
    severity: str
    container: str
    summary: str
    fingerprint: str
    captures: dict
    deploy: dict | None = None
    attempts: int = 0
    events: int = 1
    next_attempt: float = 0.0
    detail: str = ""
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    closed: float | None = None
    outage: str | None = None  # what it waits for: "hummingbot-api" or "the Docker engine"
    outage_since: float | None = None
    stack: str = DEFAULT_STACK
    opened_by: dict = field(default_factory=dict)  # the opening event's values (agent.templates)

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES


# A recorded deploy's state: forwarded, no answer yet; answered; or lost (the recorder stopped
# before the answer came).
PENDING, ANSWERED, LOST = "pending", "answered", "lost"


@dataclass(frozen=True)
class Deploy:
    """One deploy request and, once it came, hummingbot-api's answer, as the recorder saw them.

    `state`: PENDING, ANSWERED or LOST. `authenticated`: the request carried hummingbot-api's
    login (checked by the recorder) or its answer proves it did (the deploy handler ran).
    """

    id: int
    at: float
    route: str
    path: str
    request_body: str
    status: int
    response_body: str
    failed: bool
    message: str
    profile: str | None
    instance: str | None
    state: str = ANSWERED
    authenticated: bool = True

    def body(self) -> dict | None:
        """The request body as sent, if it was a JSON object."""
        try:
            value = json.loads(self.request_body)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    @property
    def retryable(self) -> bool:
        """May a retry re-send it? Only an authenticated request that failed, or whose answer
        was lost with the recorder (the failure then shows in hummingbot-api's log)."""
        return self.authenticated and (self.state == LOST or (self.state == ANSWERED and self.failed))


@dataclass
class Unknown:
    """One error no rule knows: counted by fingerprint, with up to 3 samples (redacted and
    size-capped: the first, one in between, the latest)."""

    stack: str
    fingerprint: str
    container: str  # where it was seen last
    containers: list[str]  # every container it was seen in (the latest first, a few at most)
    stream: str
    kind: str  # line | traceback | response
    logger: str | None
    level: str | None
    exceptions: list[str]  # the chain, the outermost last
    summary: str  # one line: the outermost exception, or the record's message
    count: int
    first_seen: float
    last_seen: float
    samples: list[dict] = field(default_factory=list)  # {"at", "container", "stream", "text"}
    digested: int = 0  # the count when it was last in a digest
    burst_at: float | None = None  # when its burst message went out
    role: str = "hummingbot-api"  # what wrote it: hummingbot-api, bot, sibling, recorder
