"""A deploy's preflight in the recorder: the checks of agent.preflight.checks run against the
request before it is forwarded, off the event loop (they read files, hummingbot-api and the
engine) and within a deadline; what they foresee goes to the remedy (fixed first, or told).

The request itself is never changed, never held past the deadline and never refused: past the
deadline it is forwarded as is, and the log says so (one line per deploy).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Protocol

from agent.preflight import checks
from agent.preflight.checks import Check, Context, DeployRequest, Finding
from agent.remedy.prevent import Cutoff, Verdict

log = logging.getLogger(__name__)
WORKERS = 4  # deploys checked side by side
NO_LOGIN = ("the request did not carry hummingbot-api's login hb-medic holds: only such a request is"
            " fixed for")
WARN_MODE = "MEDIC_PREFLIGHT=warn: told, not fixed"
OBSERVE_MODE = "observe mode: told, not fixed"


class Prevent(Protocol):
    """The remedy's way in (agent.remedy.engine.Remedy.prevent)."""

    def __call__(self, req: DeployRequest, findings: list[Finding], *, fix: bool, why_not: str,
                 cutoff: Cutoff, container: str, ask: bool = False) -> Verdict: ...


class Preflight:
    """`mode`: fix, warn or off (agent.settings.Settings.preflight_mode). `context`: what the
    checks read, made on first use in a worker (it may open the engine). `prevent`: the remedy's
    entry; without one (the recorder alone) what the checks foresee is only logged. `checks`: the
    checks run (all of CHECKS; a test passes its own). `warn_why`: why warn mode fixes nothing.
    `ask`: ask mode, where a warned fix of a request with the login is offered as a button."""

    def __init__(self, mode: str, deadline: float, context: Callable[[], Context], *,
                 prevent: Prevent | None = None, container: str = "hummingbot-api",
                 checks: tuple[Check, ...] | None = None, warn_why: str = WARN_MODE,
                 ask: bool = False) -> None:
        self.ask = ask
        self.mode = mode
        self.deadline = deadline
        self._make_context = context
        self._context: Context | None = None
        self.prevent = prevent
        self.container = container
        self.checks = checks
        self.warn_why = warn_why  # why a warn-mode preflight fixes nothing (the setting, or observe mode)
        self.passed = 0  # deploys forwarded as is because their preflight passed the deadline
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="recorder-preflight")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def check(self, req: DeployRequest, login: bool,
                    generation: Callable[[float], Awaitable[str]] | None = None) -> Verdict | None:
        """Run the preflight of one deploy, waiting at most the deadline. None: nothing to say, or
        the deadline passed (the preflight goes on in its worker and tells what it finds).
        `generation`: hummingbot-api's generation, given how long it may be waited for (its time
        counts against the deadline); without it, the request's own."""
        if self.mode == "off":
            return None
        cutoff = Cutoff()
        ends = time.monotonic() + self.deadline
        if generation is not None:
            req = replace(req, generation=await generation(self.deadline))
        try:
            work: Future = self._pool.submit(self._run, req, login, cutoff, ends)
        except RuntimeError:  # shut down: the recorder is stopping
            return None
        waiting = asyncio.wrap_future(work)
        try:
            return await asyncio.wait_for(asyncio.shield(waiting), max(ends - time.monotonic(), 0.0))
        except TimeoutError:
            if not cutoff.expire():  # it finished at this very moment
                return await waiting
            self.passed += 1
            log.warning("recorder: the preflight of the deploy of %s took longer than %g s"
                        " (MEDIC_PREFLIGHT_DEADLINE): forwarded as is; what it finds is told when it ends",
                        _name(req), self.deadline)
            waiting.add_done_callback(_quiet)
            return None
        except Exception:
            log.exception("recorder: the preflight of a deploy failed (forwarded as is)")
            return None

    def _run(self, req: DeployRequest, login: bool, cutoff: Cutoff, ends: float) -> Verdict | None:
        try:
            if self._context is None:
                self._context = self._make_context()
            kw = {} if self.checks is None else {"checks": self.checks}
            findings, complete = checks.run(req, self._context, ends, **kw)
            failed = [f for f in findings if not f.ok]
            if not complete:
                log.warning("recorder: the preflight checks of the deploy of %s were cut short by the"
                            " deadline", _name(req))
            if not failed:
                return None
            fix = self.mode == "fix" and login
            why_not = "" if fix else self.warn_why if self.mode == "warn" else NO_LOGIN
            if self.prevent is None:
                for f in failed:
                    log.warning("recorder: the deploy of %s will fail: %s (forwarded as is)", _name(req),
                                f.says)
                return None
            ask = self.ask and self.mode == "warn" and login
            return self.prevent(req, failed, fix=fix, why_not=why_not, cutoff=cutoff,
                                container=self.container, **({"ask": True} if ask else {}))
        finally:
            cutoff.finish()


def _name(req: DeployRequest) -> str:
    """The instance name as a log line may show it (repr: no line breaks of a client's)."""
    name = req.instance
    return repr(name[:128]) if name else "(no name)"


def _quiet(fut: asyncio.Future) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.error("recorder: a preflight that passed its deadline failed: %s", fut.exception())
