"""Which generation of hummingbot-api the recorder stands in front of, told by what it serves.

Both generations are FastAPI apps whose `/openapi.json` (served without a login) lists every route;
the routes only one generation has (agent.recorder.routes) say which it is. The preflight needs it:
the generations take names differently, and only the legacy one names a bot's container exactly as
its instance (Docker's 409 on a name in use).

Asked in the background from the recorder's start, over the recorder's own connection to
hummingbot-api (no other address, no redirect followed), with a short timeout; while the answer is
unknown, asked again at most every ASK_EVERY seconds; once known, kept (a hummingbot-api replaced
by another generation is a restart of the agent). A deploy never waits for it beyond its preflight's
deadline; unknown, the checks take the current generation, as before this was asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import aiohttp
from yarl import URL

from agent.recorder.routes import generation_of
from agent.redact import shown_url

log = logging.getLogger(__name__)

FALLBACK = "current"  # what the checks take while the generation is unknown
ASK_EVERY = 60.0  # seconds between two asks while unknown
TIMEOUT = 5.0  # seconds for one ask (the first /openapi.json of a FastAPI app is built on demand)
MAX_SCHEMA = 8 * 1024 * 1024  # hummingbot-api's is well under 1 MiB; a larger answer is not read
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}


def served(schema: object) -> set[tuple[str, str]]:
    """The (method, path template) pairs an OpenAPI document lists (nothing else of it is read)."""
    paths = schema.get("paths") if isinstance(schema, dict) else None
    if not isinstance(paths, dict):
        return set()
    return {(method.upper(), path) for path, ops in paths.items()
            if isinstance(path, str) and isinstance(ops, dict)
            for method in ops if isinstance(method, str) and method.upper() in METHODS}


class GenerationWatch:
    """The generation of one stack's hummingbot-api, asked in the recorder's event loop."""

    def __init__(self, upstream: URL, *, ask_every: float = ASK_EVERY, timeout: float = TIMEOUT) -> None:
        self.upstream = upstream
        self.ask_every = ask_every
        self.timeout = timeout
        self.known: str | None = None  # legacy | current (or backend-api), once told
        self.problem = "not asked yet"  # why it is unknown
        self._task: asyncio.Task | None = None
        self._asking: asyncio.Future | None = None

    @property
    def generation(self) -> str:
        """What the checks take: the generation told, else FALLBACK."""
        return self.known or FALLBACK

    def said(self) -> str:
        """For /healthz: the generation, or why it is unknown and what is taken meanwhile."""
        return self.known or f"unknown ({self.problem}): taken as {FALLBACK}"

    def start(self, session: aiohttp.ClientSession) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(session))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait(self, most: float) -> str:
        """The generation, waiting at most `most` seconds for an ask in flight (the first one,
        when a deploy comes right at the start)."""
        asking = self._asking
        if self.known is None and asking is not None and not asking.done():
            with contextlib.suppress(Exception):  # late or failed: the deploy goes on, as current
                await asyncio.wait_for(asyncio.shield(asking), max(most, 0.0))
        return self.generation

    async def _run(self, session: aiohttp.ClientSession) -> None:
        while self.known is None:
            self._asking = asyncio.ensure_future(self.ask(session))
            try:
                await self._asking
            except Exception:  # a fault of this code, not of hummingbot-api: said, asked again later
                log.exception("recorder: asking hummingbot-api's generation failed")
                self.problem = "the ask failed"
            if self.known is None:
                await asyncio.sleep(self.ask_every)

    async def ask(self, session: aiohttp.ClientSession) -> str | None:
        """One look at hummingbot-api's /openapi.json: the generation, or None (and `problem`)."""
        url = URL(str(self.upstream) + "/openapi.json", encoded=True)
        gen, problem, body = None, None, bytearray()
        try:
            async with session.get(url, allow_redirects=False,
                                   timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                if resp.status != 200:
                    problem = f"its /openapi.json answered HTTP {resp.status}"
                else:
                    async for chunk in resp.content.iter_chunked(64 * 1024):
                        body += chunk
                        if len(body) > MAX_SCHEMA:
                            problem = "its /openapi.json is too large to be hummingbot-api's"
                            break
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            problem = f"its /openapi.json did not answer ({type(exc).__name__})"
        if problem is None:
            try:
                gen = generation_of(served(json.loads(body)))
            except ValueError:
                problem = "its /openapi.json is not JSON"
            else:
                problem = None if gen else "its /openapi.json has no route only one generation has"
        if problem is None and gen is not None:
            self.known = gen
            log.info("recorder: hummingbot-api at %s is of the %s generation (by its /openapi.json)",
                     shown_url(str(self.upstream)), gen)
            return gen
        if problem != self.problem:
            log.warning("recorder: the generation of hummingbot-api at %s is unknown (%s): the preflight"
                        " takes it as %s, asked again within %g s", shown_url(str(self.upstream)), problem,
                        FALLBACK, self.ask_every)
        self.problem = problem or "unknown"
        return None
