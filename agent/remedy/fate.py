"""A bot's failure and its death, told as one incident; and what the agent saw of its bots.

hummingbot-api answers a deploy with success and never notices that the bot died.
The bot's last words (a line or traceback that a `fatal` rule knows) come just
before its death, from another source (its console or log files) than the death
itself (the engine's events). A fatal match is held until the bot dies (or
MEDIC_BOT_EXIT_WAIT passes: a legacy bot's full-screen UI keeps a bot whose
strategy failed alive), then goes on with how the bot ended (`{fate}`), the
deploy that created it (from the recorder), as one incident.

A death no held match explains is matched again from the bot's last lines
(after an agent restart, say), then by the rules about deaths (`kind: exit`,
such as an out-of-memory kill), and at least by bot-died, which shows the last
lines. A bot stopped by a person or by hummingbot-api is no incident.

The same view answers the verification of a fix ("the bot lives"): which bot
rules matched a container lately, and how it died.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent import templates
from agent.actions.base import BotMatch
from agent.events import BOT, CONSOLE, ERRORS, EXIT, LOG, Event, Origin
from agent.ingest.replay import replay_lines
from agent.match.matcher import SAME_RECORD, Matcher, Result
from agent.match.model import Rule
from agent.remedy import intent as intents
from agent.state import State

log = logging.getLogger(__name__)
KEEP = 3600.0  # what was seen of a bot is kept this long
AFTERMATH = 30.0  # a bot's errors this long after a fatal match are that failure's, not unknown
STILL_RUNNING = "is still running (without what failed)"


@dataclass
class _Held:
    res: Result
    until: float  # monotonic


@dataclass
class _Seen:
    # (the match, its channel, the record's message): the last two tell one record seen twice
    matches: deque[tuple[BotMatch, str, str]] = field(default_factory=lambda: deque(maxlen=64))
    death: dict | None = None
    at: float = field(default_factory=time.time)
    fatal_at: float | None = None  # monotonic: the latest fatal match


class Fate:
    def __init__(self, rules: Callable[[], list[Rule]], submit: Callable[[Result], Any], *,
                 store: State | None = None, exit_wait: float = 10.0) -> None:
        self.rules = rules
        self.submit = submit
        self.store = store
        self.exit_wait = exit_wait
        self._held: dict[str, _Held] = {}
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()

    # -- from the pipeline thread ----------------------------------------------------------------
    def matched(self, res: Result) -> None:
        """Every match: a bot's is remembered; a fatal one waits for the bot's death."""
        event = res.event
        if event.role == BOT:
            if not res.below_threshold:  # one line of a rule that wants several is no failure yet
                self._note(res)
            if res.rule.fatal and not res.refused:
                with self._lock:
                    self._seen[event.container].fatal_at = time.monotonic()
                held = self._held.get(event.container)
                if held is None:
                    self._held[event.container] = _Held(res, time.monotonic() + self.exit_wait)
                elif res.rule.priority > held.res.rule.priority:
                    held.res = res  # the same failure seen again (console and log file), or a better reason
                return
        self.submit(res)

    def explains(self, event: Event) -> bool:
        """Is this unmatched event of a bot the aftermath of a failure a fatal rule already told
        (`root - ERROR - Failed to load strategy. Exiting.` after the strategy failed)? Then it is
        no unknown error of its own."""
        if event.role != BOT:
            return False
        with self._lock:
            seen = self._seen.get(event.container)
            return seen is not None and seen.fatal_at is not None \
                and time.monotonic() - seen.fatal_at < AFTERMATH

    def exited(self, event: Event, res: Result | None) -> None:
        """A bot's end, from the engine's life events (with its last lines)."""
        data = event.data or {}
        name = event.container
        with self._lock:
            seen = self._seen.setdefault(name, _Seen())
            seen.death = {**{k: data.get(k) for k in ("exit_code", "lived_s", "fate", "stopped",
                                                      "oom_killed")}, "at": time.time()}
        if data.get("stopped"):
            self._held.pop(name, None)
            return
        held = self._held.pop(name, None)
        reason = held.res if held is not None else self._from_last_lines(event)
        chosen = reason if reason is not None and (res is None or reason.rule.priority >= res.rule.priority) \
            else res
        if chosen is None:
            log.warning("bot %s %s and no rule matched its death", name, data.get("fate"))
            return
        chosen = _with_fate(chosen, data)
        self._with_deploy(chosen, data.get("created"))
        with self._lock:
            seen.death["reason"] = f"{chosen.rule.id}: {_summary(chosen)}"
        self.submit(chosen)

    def tick(self, now: float) -> None:
        """Held matches whose bot did not die in time go on: it is still running."""
        for name in [n for n, h in self._held.items() if now >= h.until]:
            held = self._held.pop(name)
            res = _with_fate(held.res, {"fate": STILL_RUNNING})
            self._with_deploy(res, None)
            self.submit(res)
        if int(now) % 60 == 0:
            cutoff = time.time() - KEEP
            with self._lock:
                for n in [n for n, s in self._seen.items() if s.at < cutoff]:
                    del self._seen[n]

    # -- the verification's view (the remedy worker) --------------------------------------------
    def matches_since(self, container: str, since: float, rule: str | None = None) -> list[BotMatch]:
        with self._lock:
            seen = self._seen.get(container)
            return [m for m, _, _ in (seen.matches if seen else ())
                    if m.at >= since and (rule is None or m.rule == rule)]

    def death(self, container: str) -> dict | None:
        with self._lock:
            seen = self._seen.get(container)
            return dict(seen.death) if seen is not None and seen.death is not None else None

    # -- inside ------------------------------------------------------------------------------------
    def _note(self, res: Result) -> None:
        """Remember a bot's match at the time its line was written: a check that starts later
        must not count it, however late the agent read it (a log file is polled)."""
        event = res.event
        at = event.ts / 1e9 if event.ts else time.time()
        channel = event.origin.channel if event.origin is not None else event.stream
        match = BotMatch(res.rule.id, _summary(res), at, condition=res.rule.incident.quiet is not None)
        with self._lock:
            seen = self._seen.setdefault(event.container, _Seen())
            seen.at = time.time()
            if any(m.rule == match.rule and msg == event.message and ch != channel
                   and abs(m.at - at) <= SAME_RECORD for m, ch, msg in seen.matches):
                return  # the same record, read from the bot's other channel
            seen.matches.append((match, channel, event.message))

    def _from_last_lines(self, event: Event) -> Result | None:
        """The bot's last lines, through the rules again: the best fatal bot rule that knows them."""
        data = event.data or {}
        matcher = Matcher(self.rules())
        best: Result | None = None
        for channel in (ERRORS, CONSOLE, LOG):
            lines = data.get(f"last_{channel}") or []
            if not lines:
                continue
            origin = Origin(event.container, channel, BOT, event.stack)
            for e in replay_lines(lines, event.container, origin=origin):
                res = matcher.match(e)
                if res is not None and res.rule.fatal and not res.refused and (
                        best is None or res.rule.priority > best.rule.priority):
                    best = res
        return best

    def _with_deploy(self, res: Result, created: float | None) -> None:
        """The deploy that created the bot, as the recorder saw it (its exact request)."""
        if self.store is None or res.deploy is not None:
            return
        d = intents.creator_of(self.store, res.event.container, created, res.event.stack)
        if d is None:
            return
        res.deploy = {"route": d.route, "body": d.body(), "deploy_id": d.id, "source": "bot"}
        res.values.update(templates.deploy_values(d.body()))


def _with_fate(res: Result, data: dict) -> Result:
    """The match, telling how the bot ended."""
    fate = data.get("fate") or STILL_RUNNING
    res.captures["fate"] = fate
    res.values.update(templates.fate_values(fate, data.get("exit_code")))
    if data.get("exit_code") is not None:
        res.captures["exit_code"] = str(data["exit_code"])
    return res


def _summary(res: Result) -> str:
    e = res.event
    if e.kind == EXIT:
        return e.lines[0] if e.lines else ""
    line = e.lines[-1] if e.kind == "traceback" and e.lines else (e.lines[0] if e.lines else "")
    return line[:300]
