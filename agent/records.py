"""The agent's domain records, apart from where they are stored: an incident and the states
it goes through. Every layer may import this module; it imports nothing of the agent's
storage."""

from __future__ import annotations

from enum import StrEnum


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
    OBSERVED = "observed"  # observe mode, or a notify-only rule: told, nothing done
    REFUSED = "refused"  # the captures were refused: no action ran
    STALE = "stale"  # too old to act on when seen (a catch-up after a long stop)

    @property
    def open(self) -> bool:
        return self in OPEN_STATES


OPEN_STATES = frozenset({IncidentState.DETECTED, IncidentState.ACTING, IncidentState.VERIFYING,
                         IncidentState.RETRYING, IncidentState.FAILED, IncidentState.WAITING,
                         IncidentState.OUTAGE, IncidentState.ONGOING})
# An attempt was running in these: a restart of the agent cut it short.
RUNNING_STATES = frozenset({IncidentState.DETECTED, IncidentState.ACTING, IncidentState.VERIFYING,
                            IncidentState.RETRYING})

# A line of a container's log is placed by its timestamp and its index among the lines of that
# very nanosecond: ts_ns << DUP_BITS | index.
DUP_BITS = 10
