"""A hummingbot-api double whose deploy answers a test can hold back, to look at the
recorder between forwarding a request and its answer (in flight, killed mid-way).
It checks the login as hummingbot-api does (401 before the handler runs) and
answers a held deploy like a missing credentials profile (500). Its gateway routes answer 503
`Gateway service is not available`; with `login_checked=False` before any login check, as a
proxy in front of hummingbot-api that answers for it would."""

from __future__ import annotations

import asyncio
import base64
import json
import threading

from aiohttp import web

from tests.stack import free_port


class HeldUpstream:
    def __init__(self, user: str = "admin", password: str = "admin", login_checked: bool = True) -> None:
        self.login_checked = login_checked
        self.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.received: list[tuple[str, bytes]] = []  # (path, body) of every request that arrived
        self.hold = threading.Event()  # while set, deploys wait for release()
        self._release: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HeldUpstream:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        assert self._loop is not None and self._stop is not None
        self.release()
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def release(self) -> None:
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    async def _handle(self, request: web.Request) -> web.Response:
        if request.path.startswith("/gateway/") and not self.login_checked:
            return web.json_response({"detail": "Gateway service is not available"}, status=503)
        if request.headers.get("Authorization") != self.expected:
            return web.json_response({"detail": "Incorrect username or password"}, status=401)
        body = await request.read()
        self.received.append((request.path, body))
        if request.path.startswith("/gateway/"):
            return web.json_response({"detail": "Gateway service is not available"}, status=503)
        if "deploy" not in request.path:
            return web.json_response([])
        if self.hold.is_set():
            assert self._release is not None
            await self._release.wait()
        profile = json.loads(body).get("credentials_profile")
        return web.json_response(
            {"detail": f"[Errno 2] No such file or directory: 'bots/credentials/{profile}'"}, status=500)

    def _run(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self._release, self._stop = asyncio.Event(), asyncio.Event()
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()

        asyncio.run(serve())
