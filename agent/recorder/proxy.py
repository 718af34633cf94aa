"""An HTTP (and websocket) pass-through that records every deploy exchange.

Clients point at it instead of hummingbot-api. Every method, path, query,
header and body goes upstream unchanged and hummingbot-api's status, headers
and body come back unchanged; bodies stream, except those of the two deploy
routes, which are read whole (at most 1 MiB: larger ones are answered 413 and
never forwarded) so they can be recorded. Every body, on every route, must
come within BODY_TIMEOUT of its headers (408 and closed otherwise), so a client
trickling a body holds no place for long.

A deploy request is written to the state file before it is forwarded (a crash
before the answer never loses it) when it carries hummingbot-api's login, as
far as the recorder knows it; the answer completes the record. Only exchanges
that hummingbot-api answered and whose answer proves the request was
authenticated (the deploy handler ran: 2xx or 500) are kept; a 401/403 (or any
other refusal) and an exchange hummingbot-api never answered (the recorder's
own 502) leave nothing behind. The Authorization header is never stored.

Credential uploads (`POST /accounts/add-credential/<account>/<connector>`) stream through too; a
refusal (400 or 422) that carried the login is kept as route, path, status and answer only:
their bodies hold exchange keys and are never stored. A 503 on hummingbot-api's gateway routes is
kept the same way (route `gateway`, path and answer; no body) when the request carried the login.

Before a deploy with a JSON object body is written ahead and forwarded, its preflight runs (when
the recorder was given one: agent.recorder.preflight): what the checks foresee failing is fixed
first or told, within a deadline; the request itself is forwarded unchanged either way. The checks
are told hummingbot-api's generation, asked of its /openapi.json in the background
(agent.recorder.generation).

A 404 with FastAPI's own `{"detail":"Not Found"}` to a request whose method and path match a route
of another generation of hummingbot-api (agent.recorder.routes) means a client of another release:
it is kept as that route's template (never the path the client sent, nor a body), once per template
per `routes.KEEP_EVERY` seconds, every one counted.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from yarl import URL

from agent.component import Loop, OneLoop
from agent.names import CREDENTIAL_ROUTE, DEFAULT_STACK, GATEWAY_ROUTE, ROUTE_MISSING, base_name
from agent.preflight.checks import DeployRequest
from agent.recorder import routes
from agent.recorder.events import credential_target
from agent.recorder.generation import GenerationWatch
from agent.recorder.guard import ConnectionGuard, OneLineErrors
from agent.redact import mask_assignments
from agent.state import State

if TYPE_CHECKING:
    from agent.recorder.preflight import Preflight

log = logging.getLogger(__name__)

CREDENTIAL_PREFIX = "/accounts/add-credential/"
DEPLOY_ROUTES = {
    "/bot-orchestration/deploy-v2-script": "deploy-v2-script",
    "/bot-orchestration/deploy-v2-controllers": "deploy-v2-controllers",
}
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade"}
CHUNK = 64 * 1024
MAX_DEPLOY_BODY = 1024 * 1024  # a deploy body is a few hundred bytes; more is never forwarded
BODY_TIMEOUT = 30.0  # seconds to send a request body, on every route
HEADER_TIMEOUT = 10.0  # seconds from connecting to a request's complete headers
KEEPALIVE = 30.0  # an idle connection between requests is closed after this
MAX_CONNECTIONS = 256
HOLD = 30.0  # at most this long a client's deploy waits behind the agent's re-send of that name
KEEP_BODY = 64 * 1024  # longer request bodies are not stored (so never re-sent); responses are cut
KEEP_DAYS = 30  # retention of deploy records, by age ...
KEEP_COUNT = 1000  # ... and by count
PRUNE_EVERY = 100  # records between two prunes
NOT_FOUND = {"detail": "Not Found"}  # FastAPI's answer when no route has the path
NOT_FOUND_MAX = 256  # a longer 404 body is no router's "Not Found": not read, streamed


KEEP_GATEWAY_ANSWER = 4096


def is_gateway_path(path: str) -> bool:
    """hummingbot-api's routes that need the gateway: /gateway/..., /accounts/gateway/..."""
    return path.startswith(("/gateway/", "/accounts/gateway/")) or path in ("/gateway", "/accounts/gateway")


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


def scrub_answer(answer: bytes, body: bytes) -> str:
    """An answer to a credential upload, fit to keep: a validation error's echo of the input
    (`input`, `ctx`) dropped, every string the request body held (the keys) masked."""
    text = answer.decode("utf-8", "replace")[:8192]
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("detail"), list):
        data["detail"] = [{k: v for k, v in e.items() if k not in ("input", "ctx")} if isinstance(e, dict)
                          else e for e in data["detail"]]
        text = json.dumps(data)
    for secret in sorted(_strings(body), key=len, reverse=True):
        text = text.replace(secret, "***")
    return mask_assignments(text)


def _strings(body: bytes) -> set[str]:
    """The string values (and keys' values) of a JSON body: what must never be kept."""
    try:
        data = json.loads(body)
    except ValueError:
        return set()
    found: set[str] = set()

    def walk(v) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str | int | float) and len(str(v)) >= 4:
            found.add(str(v))
    walk(data)
    return found


class _Body:
    """A request body streamed upstream within a deadline. `late` tells, once the upstream
    exchange failed, that it failed for the client's sake: it sent too slowly, or went."""

    def __init__(self, request: web.Request, timeout: float, tap: Callable[[bytes], None] | None = None):
        self.request, self.tap = request, tap
        self.deadline = asyncio.get_running_loop().time() + timeout
        self.late = False

    async def chunks(self):
        it = aiter(self.request.content.iter_chunked(CHUNK))
        while True:
            try:
                async with asyncio.timeout_at(self.deadline):
                    chunk = await anext(it)
            except StopAsyncIteration:
                return
            except (TimeoutError, ConnectionError):
                self.late = True
                raise
            if self.tap is not None:
                self.tap(chunk)
            yield chunk


def too_slow() -> web.Response:
    refused = web.Response(status=408, text="Request Timeout: the request body came too slowly\n")
    refused.force_close()  # the rest of the body is not read
    return refused


def proves_login(status: int) -> bool:
    """Only the deploy handler itself answers 2xx or 500; hummingbot-api checks the login before
    it runs (a refused login is 401, a body it cannot parse is 422 whatever the login)."""
    return 200 <= status < 300 or status == 500


class Recorder:
    def __init__(self, upstream: str, store: State, *, on_record: Callable[[int], None] | None = None,
                 login: tuple[str, str] | None = None, connect_timeout: float = 5.0,
                 max_connections: int = MAX_CONNECTIONS, header_timeout: float = HEADER_TIMEOUT,
                 body_timeout: float = BODY_TIMEOUT, stack: str = DEFAULT_STACK,
                 hold: float = HOLD, preflight: Preflight | None = None) -> None:
        """`login`: hummingbot-api's username and password, when known: a deploy carrying them is
        written ahead as authenticated; one without them is stored only if the answer proves a
        login after all. `stack`: whose hummingbot-api it stands in front of (its records say so).
        `preflight`: the checks a deploy passes before it is forwarded (none: forwarded at once)."""
        self.upstream = URL(upstream.rstrip("/"))
        self.stack = stack
        self.store = store
        self.on_record = on_record
        self.login = f"{login[0]}:{login[1]}".encode() if login else None
        self.connect_timeout = connect_timeout
        self.body_timeout = body_timeout
        self.hold = hold
        self.preflight = preflight
        self.generation = GenerationWatch(self.upstream)  # which hummingbot-api, for the preflight
        self.session: aiohttp.ClientSession | None = None
        self._last_warning = -1e9
        self._writes = 0
        self._missing_kept: dict[tuple[str, str], float] = {}  # (method, template) -> loop time kept
        self.routes_missing: dict[tuple[str, str, str], int] = {}  # (method, template, gens) -> 404s seen
        self._db = ThreadPoolExecutor(1, thread_name_prefix="recorder-db")  # one writer, in order
        self.guard = ConnectionGuard(max_connections=max_connections, header_timeout=header_timeout)
        self.app = web.Application(client_max_size=0, middlewares=[self.guard.middleware])
        self.app.router.add_route("*", r"/{tail:[\s\S]*}", self.handle)  # a decoded newline too
        self.app.on_startup.append(self._open)
        self.app.on_cleanup.append(self._close)

    async def _open(self, _app) -> None:
        self.session = aiohttp.ClientSession(
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
            connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=300),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        if self.preflight is not None:
            self.generation.start(self.session)
        lost = await self._in_db(self.store.deploys.mark_lost, self.stack)
        if lost:
            log.warning("recorder: %d deploy(s) forwarded before the last stop never got their answer"
                        " recorded; a retry may use them if hummingbot-api's log shows they failed", lost)
        await self._in_db(self._prune)

    async def _close(self, _app) -> None:
        await self.generation.stop()
        if self.session is not None:
            await self.session.close()
        if self.preflight is not None:
            self.preflight.close()
        self._db.shutdown(wait=True)  # writes still queued land before the stop

    async def _in_db(self, func, *args, **kw):
        return await asyncio.get_running_loop().run_in_executor(self._db, partial(func, *args, **kw))

    # -- HTTP -----------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        url = URL(str(self.upstream) + request.raw_path, encoded=True)
        route = DEPLOY_ROUTES.get(request.path) if request.method == "POST" else None
        headers = _forward_headers(request.headers)
        if route is not None:
            return await self._deploy(request, route, url, headers)
        if request.method == "POST" and request.path.startswith(CREDENTIAL_PREFIX) \
                and credential_target(request.path) is not None:
            return await self._credential(request, url, headers)
        body = _Body(request, self.body_timeout) if request.body_exists else None
        assert self.session is not None
        try:
            upstream = await self.session.request(request.method, url, headers=headers,
                                                  data=body.chunks() if body else None,
                                                  allow_redirects=False)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return too_slow() if body and body.late else self._unreachable(request, exc)
        # hummingbot-api's 503 on its gateway routes ("Gateway service is not available") is kept
        # (route gateway, path, status, answer): nothing in its log says it. Only for a request that
        # carries the login (as far as the recorder knows it): something in front of hummingbot-api
        # may answer 503 before any login is checked.
        gateway = upstream.status == 503 and is_gateway_path(request.path) \
            and self._may_carry_login(request.headers.get("Authorization"))
        kept = bytearray()
        async with upstream:
            response = self._response(upstream)
            missing = routes.missing_route(request.method, request.path) if upstream.status == 404 else None
            if missing is not None and upstream.content_length is not None \
                    and upstream.content_length <= NOT_FOUND_MAX:
                try:
                    data = await upstream.read()
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    return self._unreachable(request, exc)
                self._route_missing(request, missing, data)
                await response.prepare(request)
                await response.write(data)
                await response.write_eof()
                return response
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    if gateway and len(kept) < KEEP_GATEWAY_ANSWER:
                        kept.extend(chunk[:KEEP_GATEWAY_ANSWER - len(kept)])
                    await response.write(chunk)
            except (TimeoutError, aiohttp.ClientError, OSError):
                # The exchange broke after the answer began (the body came too slowly, or
                # hummingbot-api went): the client sees the connection end short.
                response.force_close()
                if request.transport is not None:
                    request.transport.close()
                return response
            await response.write_eof()
        if gateway:
            answer = kept.decode("utf-8", "replace")
            self._submit(self._write_evidence, GATEWAY_ROUTE, request.path, 503, answer,
                         outcome(503, bytes(kept))[1])
        return response

    def _route_missing(self, request: web.Request, missing: routes.Missing, answer: bytes) -> None:
        """A 404 to a route of another generation: counted, and kept once per template per
        KEEP_EVERY seconds, when no route had the path (FastAPI's own answer) and the client holds
        hummingbot-api's login where the recorder knows it (anyone else could only make noise)."""
        try:
            if json.loads(answer) != NOT_FOUND:
                return
        except ValueError:
            return
        if self.login is not None and not self._carries_login(request.headers.get("Authorization")):
            return
        generations = " ".join(missing.generations)
        key = (missing.method, missing.template, generations)
        self.routes_missing[key] = self.routes_missing.get(key, 0) + 1
        now = asyncio.get_running_loop().time()
        last = self._missing_kept.get(key[:2])
        if last is not None and now - last < routes.KEEP_EVERY:
            return
        self._missing_kept[key[:2]] = now
        log.warning("recorder: a client called %s %s, a route of hummingbot-api's %s generation; this"
                    " hummingbot-api has no such route (404)", missing.method, missing.template, generations)
        self._submit(self._write_missing, missing)

    def _write_missing(self, missing: routes.Missing) -> None:
        generations = " ".join(missing.generations)
        request = {"method": missing.method, "template": missing.template, "generations": generations}
        self._write_evidence(
            ROUTE_MISSING, missing.template, 404, json.dumps(NOT_FOUND),
            f"{missing.method} {missing.template}: no such route here (hummingbot-api {generations})",
            request_body=json.dumps(request))

    def _response(self, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for k, v in upstream.headers.items():
            if k.lower() not in HOP_BY_HOP:
                response.headers.add(k, v)
        return response

    def _unreachable(self, request: web.Request, exc: BaseException) -> web.Response:
        reason = f"hummingbot-api unreachable: {type(exc).__name__}"
        now = asyncio.get_running_loop().time()
        if now - self._last_warning > 60:  # dashboards poll: say it once a minute
            self._last_warning = now
            log.warning("recorder: %s %s: %s (answering 502)", request.method, request.path, reason)
        return web.Response(status=502, text=f"Bad Gateway: {reason}\n")

    async def _read_deploy_body(self, request: web.Request) -> bytes | web.Response:
        """The whole body, or the answer that refuses it (too large, too slow)."""
        refused: web.Response | None = None
        if request.content_length is not None and request.content_length > MAX_DEPLOY_BODY:
            refused = web.Response(status=413, text="Payload Too Large: a deploy body is at most 1 MiB\n")
        else:
            buf = bytearray()
            try:
                async with asyncio.timeout(self.body_timeout):
                    async for chunk in request.content.iter_chunked(CHUNK):
                        buf += chunk
                        if len(buf) > MAX_DEPLOY_BODY:
                            refused = web.Response(
                                status=413, text="Payload Too Large: a deploy body is at most 1 MiB\n")
                            break
            except TimeoutError:
                return too_slow()
            if refused is None:
                return bytes(buf)
        refused.force_close()  # the rest of the body is not read
        return refused

    def _may_carry_login(self, header: str | None) -> bool:
        """The known login, or any Basic credentials when the recorder knows none."""
        if self.login is None:
            return bool(header) and header.partition(" ")[0].lower() == "basic"
        return self._carries_login(header)

    def _carries_login(self, header: str | None) -> bool:
        if self.login is None or not header:
            return False
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, self.login)

    async def _deploy(self, request: web.Request, route: str, url: URL, headers) -> web.StreamResponse:
        body = await self._read_deploy_body(request)
        if isinstance(body, web.Response):
            return body
        text = body.decode("utf-8", "replace")
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        fields = parsed if isinstance(parsed, dict) else {}
        if self.preflight is not None and isinstance(parsed, dict):
            await self.preflight.check(DeployRequest(route, parsed),
                                       self._carries_login(request.headers.get("Authorization")),
                                       generation=self.generation.wait)
        # A secret a client pasted into a field (`x CONFIG_PASSWORD=...` as a profile name) is kept
        # masked: such a body is refused by hummingbot-api and by every retry's checks, so its raw
        # bytes are never needed, while the current generation answers its refusal 500 (kept).
        row = dict(route=route, path=request.path,
                   request_body=mask_assignments(text) if len(body) <= KEEP_BODY else "",
                   profile=_masked(fields.get("credentials_profile")),
                   instance=_masked(fields.get("instance_name")), stack=self.stack)
        deploy_id = None
        if self.login is None or self._carries_login(request.headers.get("Authorization")):
            try:  # written ahead: awaited, so the record exists before hummingbot-api sees the request
                deploy_id = await self._admit(row)
            except Exception:
                log.exception("recorder: could not store a deploy request (forwarding it anyway)")
        assert self.session is not None
        settled = False  # the record's fate is decided
        try:
            try:
                upstream = await self.session.request("POST", url, headers=headers, data=body,
                                                      allow_redirects=False)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                return self._unreachable(request, exc)
            async with upstream:
                try:
                    data = await upstream.read()
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    return self._unreachable(request, exc)
                settled = True
                self._answered(deploy_id, row, upstream.status, data)
                response = self._response(upstream)
                await response.prepare(request)
                await response.write(data)
                await response.write_eof()
                return response
        except asyncio.CancelledError:
            settled = True  # a stop: the request stays pending, marked lost at the next start
            raise
        finally:
            if not settled and deploy_id is not None:
                self._submit(self.store.deploys.drop, deploy_id)

    async def _admit(self, row: dict) -> int | None:
        """Write the request ahead once no re-send of the agent's for that instance name is out
        (see agent.state.sends): held meanwhile, at most `hold` seconds, then forwarded anyway."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.hold
        base = base_name(row["instance"] or "")
        held = False
        while True:
            admission = await self._in_db(self.store.sends.client_request, **row, base=base,
                                          authenticated=self.login is not None)
            if admission.deploy_id is not None:
                if held:
                    log.info("recorder: a deploy of %s was held %.1f s while hb-medic's re-send of it"
                             " was out; forwarded now", base, self.hold - (deadline - loop.time()))
                return admission.deploy_id
            if loop.time() >= deadline:
                log.warning("recorder: a deploy of %s held %.0f s behind hb-medic's re-send of it:"
                            " forwarding it anyway", base, self.hold)
                return await self._in_db(self.store.deploys.requested, **row,
                                         authenticated=self.login is not None)
            held = True
            await asyncio.sleep(min(max(admission.not_before - time.time(), 0.01), 0.2,
                                    max(deadline - loop.time(), 0.0)))

    async def _credential(self, request: web.Request, url: URL, headers) -> web.StreamResponse:
        """A credential upload: forwarded unchanged (streamed); a refusal (400, 422) is kept as
        route, path, status and answer only. The body holds exchange keys: it is never stored, and
        any of its values an answer repeats is masked before the answer is."""
        kept = bytearray()  # the body, to mask what an answer repeats of it (never stored)
        too_long = False

        def keep(chunk: bytes) -> None:
            nonlocal too_long
            if not too_long:
                too_long = len(kept) + len(chunk) > KEEP_BODY
                kept.extend(b"" if too_long else chunk)

        body = _Body(request, self.body_timeout, keep) if request.body_exists else None
        assert self.session is not None
        try:
            upstream = await self.session.request("POST", url, headers=headers, allow_redirects=False,
                                                  data=body.chunks() if body else None)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return too_slow() if body and body.late else self._unreachable(request, exc)
        async with upstream:
            try:
                data = await upstream.read()
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                return too_slow() if body and body.late else self._unreachable(request, exc)
            # Neither status proves the login: a body that is not JSON (422) or not UTF-8 (400) is
            # refused before the login check, so only a refusal carrying the login is kept.
            status = upstream.status
            # An answer to a body too long to check it against is not kept (it could repeat a key).
            if not too_long and status in (400, 422) and self._carries_login(
                    request.headers.get("Authorization")):
                answer = scrub_answer(data, bytes(kept))
                message = outcome(status, answer.encode())[1]
                self._submit(self._write_evidence, CREDENTIAL_ROUTE, request.path, status, answer, message)
            response = self._response(upstream)
            await response.prepare(request)
            await response.write(data)
            await response.write_eof()
            return response

    def _write_evidence(self, route: str, path: str, status: int, answer: str, message: str,
                        request_body: str = "") -> None:
        """An answer kept as evidence for the matcher (a credential refusal, a gateway 503, a missing
        route): never a request a retry may send."""
        deploy_id = self.store.deploys.record(
            route=route, path=path, request_body=request_body, status=status, response_body=answer,
            failed=True, message=message, profile=None, instance=None, stack=self.stack)
        if self.on_record is not None:
            self.on_record(deploy_id)

    def _answered(self, deploy_id: int | None, row: dict, status: int, data: bytes) -> None:
        """Complete the record (in the background: the client's answer never waits for it)."""
        if not proves_login(status):
            if deploy_id is not None:
                self._submit(self.store.deploys.drop, deploy_id)
            return
        failed, message = outcome(status, data)
        answer = dict(status=status, response_body=mask_assignments(data.decode("utf-8", "replace")[:8192]),
                      failed=failed, message=mask_assignments(message))
        self._submit(self._write_answer, deploy_id, row, answer)

    def _write_answer(self, deploy_id: int | None, row: dict, answer: dict) -> None:
        if deploy_id is None:  # not written ahead (no login the recorder knew): the answer proves one
            deploy_id = self.store.deploys.requested(**row, authenticated=True)
        self.store.deploys.answered(deploy_id, **answer)
        self._writes += 1
        if self._writes % PRUNE_EVERY == 0:
            self._prune()
        if self.on_record is not None:
            self.on_record(deploy_id)

    def _prune(self) -> None:
        n = self.store.deploys.prune(max_age=KEEP_DAYS * 86400, max_count=KEEP_COUNT)
        if n:
            log.info("recorder: %d deploy record(s) past retention removed", n)

    def _submit(self, func, *args) -> None:
        def run() -> None:
            try:
                func(*args)
            except Exception:
                log.exception("recorder: could not store a deploy exchange")

        try:
            self._db.submit(run)
        except RuntimeError:  # the executor is shut down: the process is stopping
            log.warning("recorder: stopping; a deploy exchange was not stored")

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


class RecorderServer(OneLoop):
    """Runs the recorder's event loop in a thread of its own beside the agent (or alone,
    `hb-medic recorder`). After `start`, `ready` is set once it listens or failed to (`error`)."""

    def __init__(self, recorder: Recorder, host: str, port: int) -> None:
        self.name = "recorder" if recorder.stack == DEFAULT_STACK else f"recorder-{recorder.stack}"
        self.recorder, self.host, self.port = recorder, host, port
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._aio: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self.loop = Loop(self.name, self._run, on_stop=self._signal_stop)

    def generation(self) -> str:
        """hummingbot-api's generation as the preflight takes it (or why it is unknown)."""
        return self.recorder.generation.said()

    def metrics(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "hb_medic_recorder_routes_missing", "404s to a route of another hummingbot-api generation",
            labels=["stack", "method", "template", "generations"])
        for (method, template, generations), n in sorted(list(self.recorder.routes_missing.items())):
            family.add_metric([self.recorder.stack, method, template, generations], n)
        yield family

    def _signal_stop(self) -> None:
        if self._aio is not None and self._stop_event is not None:
            with contextlib.suppress(RuntimeError):  # its loop has closed already
                self._aio.call_soon_threadsafe(self._stop_event.set)

    def _run(self) -> None:
        loop = self._aio = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # bind failures and the like: reported to the starter
            self.error = exc
            self.ready.set()
        finally:
            left = asyncio.all_tasks(loop)  # connections the shutdown cut short
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(_settle(left))
            loop.close()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        runner = web.AppRunner(self.recorder.app, access_log=None, handle_signals=False,
                               shutdown_timeout=0.5, keepalive_timeout=KEEPALIVE,
                               logger=OneLineErrors(logging.getLogger("aiohttp.server"), "recorder"))
        await runner.setup()
        guard = self.recorder.guard
        guard.attach(runner.server)
        server = None
        sweeper = asyncio.create_task(guard.sweep())
        try:
            server = await asyncio.get_running_loop().create_server(
                guard.protocol, self.host, self.port, reuse_address=True)
            self.ready.set()
            if self.loop.stopping.is_set():  # stopped while it was binding
                return
            await self._stop_event.wait()
        finally:
            sweeper.cancel()
            if server is not None:
                server.close()
            await runner.cleanup()


async def _settle(tasks) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


def _masked(value: object) -> str | None:
    return mask_assignments(value) if isinstance(value, str) else None
