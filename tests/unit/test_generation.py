"""hummingbot-api's generation, told by the routes it serves: the table's verdict, the parse of an
OpenAPI document, and the recorder's watch (asked in the background, again while unknown, kept once
known, waited for only within the time it is given) against a local HTTP server."""

from __future__ import annotations

import asyncio
import threading
import time

import aiohttp
import httpx
import pytest
from aiohttp import web
from yarl import URL

from agent.recorder.generation import FALLBACK, GenerationWatch, served
from agent.recorder.routes import generation_of

SHARED = {("GET", "/accounts/"), ("POST", "/bot-orchestration/deploy-v2-script"), ("GET", "/")}


@pytest.mark.parametrize(("routes", "generation"), [
    (SHARED | {("POST", "/portfolio/accounts-distribution")}, "legacy"),
    (SHARED | {("POST", "/backtesting/run-backtesting"), ("DELETE", "/gateway/pools/{address}")}, "legacy"),
    (SHARED | {("GET", "/portfolio/accounts-distribution")}, "current"),
    (SHARED | {("get", "/rate-oracle/sources"), ("POST", "/executors/")}, "current"),  # any case
    (SHARED | {("DELETE", "/archived-bots/{db_path}")}, "current"),  # OpenAPI drops FastAPI's `:path`
    (SHARED | {("DELETE", "/archived-bots/{db_path:path}")}, "current"),
    (SHARED | {("POST", "/create-hummingbot-instance")}, "backend-api"),
    (SHARED, None),  # routes every generation has say nothing
    (set(), None),
    (SHARED | {("POST", "/portfolio/accounts-distribution"), ("GET", "/portfolio/accounts-distribution")},
     None),  # a build between two generations: no guess
    ({("PUT", "/portfolio/accounts-distribution"), ("GET", "/rate-oracle")}, None),  # near misses
])
def test_the_table_names_the_generation(routes, generation):
    assert generation_of(routes) == generation


def test_an_openapi_document_gives_its_routes_and_nothing_else():
    doc = {"openapi": "3.1.0", "paths": {
        "/portfolio/accounts-distribution": {"post": {}, "parameters": [], "summary": "x"},
        "/accounts/": {"get": {}}, 7: {"get": {}}, "/bad": ["get"], "/odd": {3: {}}}}
    assert served(doc) == {("POST", "/portfolio/accounts-distribution"), ("GET", "/accounts/")}
    for junk in (None, [], "text", {"paths": []}, {}):
        assert served(junk) == set()


class OpenAPI:
    """A local server whose /openapi.json answers as it is told, counting the asks."""

    def __init__(self) -> None:
        self.asks = 0
        self.answer: tuple[int, object] = (200, {"paths": {"/portfolio/accounts-distribution": {"post": {}}}})
        self.delay = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        self.asks += 1
        assert request.headers.get("Authorization") is None  # asked without a login
        await asyncio.sleep(self.delay)
        status, body = self.answer
        return web.json_response(body, status=status) if not isinstance(body, bytes) else \
            web.Response(body=body, status=status)

    async def start(self) -> tuple[web.AppRunner, URL]:
        app = web.Application()
        app.router.add_get("/openapi.json", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        return runner, URL(f"http://127.0.0.1:{port}")


def test_the_watch_asks_again_while_unknown_and_keeps_what_it_learnt():
    async def go() -> None:
        server = OpenAPI()
        runner, url = await server.start()
        server.answer = (503, {"detail": "starting"})
        watch = GenerationWatch(url, ask_every=0.2)
        async with aiohttp.ClientSession() as session:
            watch.start(session)
            await asyncio.sleep(0.1)
            assert (watch.generation, server.asks) == (FALLBACK, 1)
            assert watch.said() == "unknown (its /openapi.json answered HTTP 503): taken as current"
            server.answer = (200, b"not json")
            await asyncio.sleep(0.2)
            assert server.asks == 2 and "not JSON" in watch.said()
            server.answer = (200, {"paths": {"/accounts/": {"get": {}}}})
            await asyncio.sleep(0.2)
            assert server.asks == 3 and "no route only one generation has" in watch.said()
            server.answer = (200, {"paths": {"/portfolio/accounts-distribution": {"post": {}}}})
            await asyncio.sleep(0.2)
            assert (watch.generation, watch.said(), server.asks) == ("legacy", "legacy", 4)
            await asyncio.sleep(0.5)
            assert server.asks == 4  # known: never asked again
            await watch.stop()
        await runner.cleanup()

    asyncio.run(go())


def test_a_deploy_waits_for_the_first_ask_only_within_its_time():
    async def go() -> None:
        server = OpenAPI()
        runner, url = await server.start()
        async with aiohttp.ClientSession() as session:
            server.delay = 0.3
            slow = GenerationWatch(url)
            slow.start(session)
            await asyncio.sleep(0.05)
            started = time.monotonic()
            assert await slow.wait(0.1) == FALLBACK  # not yet told: the deploy goes on as current
            assert time.monotonic() - started < 0.25
            assert await slow.wait(1.0) == "legacy"  # the same ask, awaited to its end
            await slow.stop()
            server.delay = 0.0
            gone = GenerationWatch(URL("http://127.0.0.1:9"), timeout=0.5)  # nothing listens there
            gone.start(session)
            assert await gone.wait(2.0) == FALLBACK  # refused at once: unknown, taken as current
            await asyncio.sleep(0.6)
            assert gone.known is None and "did not answer" in gone.said()
            await gone.stop()
        await runner.cleanup()

    asyncio.run(go())


def test_the_recorder_tells_its_checks_the_generation_it_asked(tmp_path):
    """A recorder in front of a hummingbot-api whose /openapi.json is legacy's: the checks of a
    deploy are given `generation` legacy, the deploy is forwarded as sent, and /healthz's words
    say it (the request to /openapi.json carries no login)."""
    from agent.preflight.checks import Context, DeployRequest, Finding
    from agent.recorder.preflight import Preflight
    from agent.recorder.proxy import Recorder, RecorderServer
    from agent.state import State
    from tests.stack import free_port

    upstream = OpenAPI()
    seen: list[str] = []
    deploys: list[bytes] = []

    def keeps(req: DeployRequest, ctx: Context) -> Finding | None:
        seen.append(req.generation)
        return None

    async def deploy(request: web.Request) -> web.Response:
        deploys.append(await request.read())
        return web.json_response({"success": True})

    async def serve(ready: asyncio.Event, done: asyncio.Event, where: list) -> None:
        app = web.Application()
        app.router.add_get("/openapi.json", upstream.handle)
        app.router.add_post("/bot-orchestration/deploy-v2-script", deploy)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        where.append(runner.addresses[0][1])
        ready.set()
        await done.wait()
        await runner.cleanup()

    where: list = []
    loop = asyncio.new_event_loop()
    ready, done = asyncio.Event(), asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(ready, done, where),), daemon=True)
    thread.start()
    started = time.monotonic()
    while not where and time.monotonic() - started < 5:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{where[0]}"
    preflight = Preflight("warn", 2.0, Context, checks=(keeps,))
    server = RecorderServer(Recorder(url, State(tmp_path / "s.db"), preflight=preflight), "127.0.0.1",
                            port := free_port())
    server.start()
    try:
        assert server.ready.wait(10) and server.error is None, server.error
        body = b'{"instance_name": "b1", "credentials_profile": "p"}'
        resp = httpx.post(f"http://127.0.0.1:{port}/bot-orchestration/deploy-v2-script", content=body,
                          headers={"Content-Type": "application/json"}, timeout=10)
        assert resp.status_code == 200 and deploys == [body]
        assert seen == ["legacy"] and server.generation() == "legacy"
        assert upstream.asks == 1
    finally:
        server.stop()
        loop.call_soon_threadsafe(done.set)
        thread.join(5)
