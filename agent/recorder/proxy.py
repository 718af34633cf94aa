"""An HTTP (and websocket) pass-through that records every deploy exchange.

Clients point at it instead of hummingbot-api. Every method, path, query,
header and body goes upstream unchanged and hummingbot-api's status, headers
and body come back unchanged; bodies stream, except those of the two deploy
routes, which are small and read whole so they can be recorded. The record is
written after the response is sent, so it adds no latency. The Authorization
header is never stored. When hummingbot-api cannot be reached, the client gets
a 502 with a short reason, as from any reverse proxy, and that is recorded too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from agent.store import Store

log = logging.getLogger(__name__)

DEPLOY_ROUTES = {
    "/bot-orchestration/deploy-v2-script": "deploy-v2-script",
    "/bot-orchestration/deploy-v2-controllers": "deploy-v2-controllers",
}
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade"}
CHUNK = 64 * 1024


def _forward_headers(headers) -> CIMultiDict:
    drop = HOP_BY_HOP | {h.strip().lower() for h in headers.get("Connection", "").split(",") if h.strip()}
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in drop)


def outcome(status: int, body: bytes) -> tuple[bool, str]:
    """(failed, message) of a deploy response: 5xx, or 200 with success false, failed."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        message = data.get("message") if "message" in data else data.get("detail", "")
        if not isinstance(message, str):
            message = json.dumps(message)[:2000]
        failed = status >= 500 or (status < 300 and data.get("success") is False)
        return failed, message[:2000]
    return status >= 500, text[:2000]


class Recorder:
    def __init__(self, upstream: str, store: Store, *, on_record: Callable[[int], None] | None = None,
                 connect_timeout: float = 5.0) -> None:
        self.upstream = URL(upstream.rstrip("/"))
        self.store = store
        self.on_record = on_record
        self.connect_timeout = connect_timeout
        self.session: aiohttp.ClientSession | None = None
        self._last_warning = -1e9
        self.app = web.Application(client_max_size=0)
        self.app.router.add_route("*", "/{tail:.*}", self.handle)
        self.app.on_startup.append(self._open)
        self.app.on_cleanup.append(self._close)

    async def _open(self, _app) -> None:
        self.session = aiohttp.ClientSession(
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
            connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=300),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )

    async def _close(self, _app) -> None:
        if self.session is not None:
            await self.session.close()

    # -- HTTP -----------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        url = URL(str(self.upstream) + request.raw_path, encoded=True)
        route = DEPLOY_ROUTES.get(request.path) if request.method == "POST" else None
        headers = _forward_headers(request.headers)
        if route is not None:
            body: object = await request.read()
        elif request.body_exists:
            body = request.content.iter_chunked(CHUNK)
        else:
            body = None
        assert self.session is not None
        try:
            upstream = await self.session.request(request.method, url, headers=headers, data=body,
                                                  allow_redirects=False)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            reason = f"hummingbot-api unreachable: {type(exc).__name__}"
            if route is not None:
                self._record(route, request.path, body, 502, reason.encode(), True, reason)
            now = asyncio.get_running_loop().time()
            if now - self._last_warning > 60:  # dashboards poll: say it once a minute
                self._last_warning = now
                log.warning("recorder: %s %s: %s (answering 502)", request.method, request.path, reason)
            return web.Response(status=502, text=f"Bad Gateway: {reason}\n")
        async with upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for k, v in upstream.headers.items():
                if k.lower() not in HOP_BY_HOP:
                    response.headers.add(k, v)
            if route is not None:
                data = await upstream.read()
                await response.prepare(request)
                await response.write(data)
                await response.write_eof()
                failed, message = outcome(upstream.status, data)
                self._record(route, request.path, body, upstream.status, data, failed, message)
                return response
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    def _record(self, route: str, path: str, body, status: int, data: bytes, failed: bool,
                message: str) -> None:
        raw = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else ""
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        fields = parsed if isinstance(parsed, dict) else {}
        profile = fields.get("credentials_profile")
        instance = fields.get("instance_name")
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, self._write, dict(
            route=route, path=path, request_body=raw[:65536], status=status,
            response_body=data.decode("utf-8", "replace")[:65536], failed=failed, message=message,
            profile=profile if isinstance(profile, str) else None,
            instance=instance if isinstance(instance, str) else None))

    def _write(self, row: dict) -> None:
        try:
            deploy_id = self.store.record_deploy(**row)
        except Exception:
            log.exception("recorder: could not store a deploy exchange")
            return
        if self.on_record is not None:
            self.on_record(deploy_id)

    # -- websockets ---------------------------------------------------------------------------
    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        url = URL(str(self.upstream).replace("http", "ws", 1) + request.raw_path, encoded=True)
        headers = _forward_headers(request.headers)
        for h in ("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions",
                  "Sec-WebSocket-Protocol"):
            headers.pop(h, None)
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
                     if p.strip()]
        assert self.session is not None
        try:
            upstream = await self.session.ws_connect(url, headers=headers, protocols=protocols,
                                                     autoping=False)
        except aiohttp.WSServerHandshakeError as exc:
            return web.Response(status=exc.status, text=exc.message or "")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return web.Response(status=502, text=f"Bad Gateway: hummingbot-api unreachable: "
                                                  f"{type(exc).__name__}\n")
        client = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else (),
                                       autoping=False)
        await client.prepare(request)

        async def pump(src, dst) -> None:
            async for msg in src:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await dst.send_str(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    await dst.send_bytes(msg.data)
                elif msg.type == aiohttp.WSMsgType.PING:
                    await dst.ping(msg.data)
                elif msg.type == aiohttp.WSMsgType.PONG:
                    await dst.pong(msg.data)
                else:
                    break
            await dst.close()

        tasks = [asyncio.create_task(pump(client, upstream)), asyncio.create_task(pump(upstream, client))]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await upstream.close()
        await client.close()
        return client


class RecorderThread(threading.Thread):
    """Runs the recorder's event loop beside the agent (or alone, `hb-medic recorder`)."""

    def __init__(self, recorder: Recorder, host: str, port: int) -> None:
        super().__init__(name="recorder", daemon=True)
        self.recorder, self.host, self.port = recorder, host, port
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    def run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # bind failures and the like: reported to the starter
            self.error = exc
            self.ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        runner = web.AppRunner(self.recorder.app, access_log=None, handle_signals=False,
                               shutdown_timeout=0.5)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
            await site.start()
            self.ready.set()
            await self._stop_event.wait()
        finally:
            await runner.cleanup()

    def stop(self, timeout: float = 5.0) -> None:
        if self._loop is not None and self._stop_event is not None:
            self._loop.call_soon_threadsafe(self._stop_event.set)
        self.join(timeout)


def parse_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return (host or "0.0.0.0"), int(port)
