"""A local Slack: the Web API methods hb-medic calls and a Socket Mode websocket, speaking the
documented shapes, on 127.0.0.1 (aiohttp, in a thread with its own event loop).

Web API (`POST|GET /api/<method>`, a bearer token): `auth.test`, `conversations.info`,
`chat.postMessage`, `chat.update`, `chat.postEphemeral` with the bot token, `apps.connections.open`
with the app-level token (it answers a `ws://127.0.0.1:<port>/link/?ticket=...` URL). Answers are
`{"ok": true, ...}` or `{"ok": false, "error": "..."}` (HTTP 200, as Slack does), a rate limit a
429 with `Retry-After` and `{"ok": false, "error": "ratelimited"}`.

Socket Mode (`/link/`): `hello` on connect, then the envelopes a test delivers (`press`,
`command`, `mention`, from any user id), each with an `envelope_id` the client must acknowledge;
`drop()` cuts the connection (the client must open a new one). Every call, acknowledgement and
connection is recorded."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

BOT_USER = "U0MEDICBOT"
TEAM = "T0FAKE"
APP = "A0MEDIC"
BOT_METHODS = {"auth.test", "conversations.info", "chat.postMessage", "chat.update", "chat.postEphemeral"}


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list
    edits: list[dict] = field(default_factory=list)  # each chat.update's text and blocks, in order

    def buttons(self) -> list[tuple[str, str]]:
        """(label, value) of the message's buttons as they stand."""
        blocks = self.edits[-1]["blocks"] if self.edits else self.blocks
        return [(e["text"]["text"], e["value"]) for b in blocks if b.get("type") == "actions"
                for e in b.get("elements", [])]

    @property
    def current(self) -> str:
        return self.edits[-1]["text"] if self.edits else self.text


class FakeSlack:
    def __init__(self, bot_token: str = "xoxb-1-fake-bot-token", app_token: str = "xapp-1-fake-app-token",
                 channel: str = "C0MEDIC") -> None:
        self.bot_token, self.app_token, self.channel = bot_token, app_token, channel
        self.calls: list[dict] = []  # {"method", "args", "status", "error", "at"}
        self.messages: dict[str, Message] = {}  # ts -> message
        self.ephemeral: list[dict] = []  # chat.postEphemeral's channel, user, text
        self.acks: dict[str, float] = {}  # envelope_id -> when acknowledged
        self.connections = 0  # websocket connections accepted
        self.gone: dict[str, str] = {}  # ts -> the error chat.update answers for it
        self.failing: dict[str, str] = {}  # method -> the error it answers (until cleared)
        self._limits: dict[str, float] = {}  # method -> rate limited until (monotonic)
        self._sockets: set[web.WebSocketResponse] = set()
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-slack", daemon=True)
        self.port = 0

    # -- life -------------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake Slack did not start")
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/link/", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()

    async def _shutdown(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        await self._runner.cleanup()

    # -- what a test plays ------------------------------------------------------------------

    def limit(self, method: str, seconds: float) -> None:
        """The method answers 429 with Retry-After for this long."""
        with self._lock:
            self._limits[method] = time.monotonic() + seconds

    def delete(self, ts: str, error: str = "message_not_found") -> None:
        """The message can no longer be edited: chat.update answers this error for it."""
        with self._lock:
            self.gone[ts] = error

    def wait_connected(self, timeout: float = 10.0, count: int = 1) -> None:
        """Until a client has had `count` connections in all and holds one now."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connections >= count and self._sockets:
                return
            time.sleep(0.02)
        raise TimeoutError(f"no Socket Mode connection (accepted {self.connections})")

    def drop(self) -> None:
        """Cut every Socket Mode connection, without a close frame (as a lost network does)."""
        def cut() -> None:
            for ws in list(self._sockets):
                self._sockets.discard(ws)
                transport = ws._req.transport if ws._req is not None else None  # type: ignore[union-attr]
                if transport is not None:
                    transport.abort()
        self._loop.call_soon_threadsafe(cut)

    def press(self, user: str, value: str, ts: str = "", channel: str | None = None,
              label: str = "") -> str:
        """A button press (block_actions) by this user on the message `ts`: its envelope id."""
        channel = channel or self.channel
        return self._deliver("interactive", {
            "type": "block_actions", "api_app_id": APP, "token": "verification-token",
            "user": {"id": user, "username": f"user-{user.lower()}", "name": f"user-{user.lower()}",
                     "team_id": TEAM},
            "team": {"id": TEAM, "domain": "fake"},
            "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
            "channel": {"id": channel, "name": "medic"}, "trigger_id": uuid.uuid4().hex,
            "response_url": f"http://127.0.0.1:{self.port}/actions/{uuid.uuid4().hex}",
            "actions": [{"type": "button", "action_id": value, "block_id": "medic", "value": value,
                         "text": {"type": "plain_text", "text": label or value},
                         "action_ts": f"{time.time():.6f}"}],
        }, accepts=False)

    def command(self, user: str, text: str, channel: str | None = None, command: str = "/medic") -> str:
        """A slash command typed by this user."""
        return self._deliver("slash_commands", {
            "token": "verification-token", "team_id": TEAM, "team_domain": "fake", "api_app_id": APP,
            "channel_id": channel or self.channel, "channel_name": "medic", "user_id": user,
            "user_name": f"user-{user.lower()}", "command": command, "text": text,
            "response_url": f"http://127.0.0.1:{self.port}/commands/{uuid.uuid4().hex}",
            "trigger_id": uuid.uuid4().hex}, accepts=True)

    def mention(self, user: str, text: str, channel: str | None = None) -> str:
        """`@hb-medic <text>` in a channel (an app_mention event)."""
        now = f"{time.time():.6f}"
        return self._deliver("events_api", {
            "token": "verification-token", "team_id": TEAM, "api_app_id": APP, "type": "event_callback",
            "event_id": "Ev" + uuid.uuid4().hex[:10], "event_time": int(time.time()),
            "event": {"type": "app_mention", "user": user, "text": f"<@{BOT_USER}> {text}", "ts": now,
                      "channel": channel or self.channel, "event_ts": now}}, accepts=False)

    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> float:
        """When the envelope was acknowledged."""
        return self._wait(lambda: self.acks.get(envelope_id), timeout, f"no ack of {envelope_id}")

    def wait_ephemeral(self, count: int = 1, timeout: float = 10.0) -> list[dict]:
        self._wait(lambda: len(self.ephemeral) >= count, timeout, f"fewer than {count} answers")
        return list(self.ephemeral)

    def methods(self) -> list[str]:
        return [c["method"] for c in self.calls]

    def _wait(self, probe, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = probe()
            if got:
                return got
            time.sleep(0.02)
        raise TimeoutError(what)

    def _deliver(self, kind: str, payload: dict, accepts: bool) -> str:
        envelope_id = str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                    "accepts_response_payload": accepts, "retry_attempt": 0, "retry_reason": ""}

        async def send() -> None:
            if not self._sockets:
                raise ConnectionError("no Socket Mode connection to deliver to")
            await next(iter(self._sockets)).send_str(json.dumps(envelope))
        asyncio.run_coroutine_threadsafe(send(), self._loop).result(10)
        return envelope_id

    # -- the Web API --------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(dict(await request.post()))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        status, body, headers = self._answer(method, args, token)
        with self._lock:
            self.calls.append({"method": method, "args": args, "status": status, "error": body.get("error"),
                               "at": time.time()})
        return web.json_response(body, status=status, headers=headers)

    def _answer(self, method: str, args: dict, token: str) -> tuple[int, dict, dict]:
        with self._lock:
            until = self._limits.get(method, 0.0)
            left = until - time.monotonic()
            if left > 0:
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(max(1, round(left)))}
            if method in self.failing:
                return 200, {"ok": False, "error": self.failing[method]}, {}
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if method == "apps.connections.open":
            if token == self.bot_token:
                return 200, {"ok": False, "error": "not_allowed_token_type"}, {}
            if token != self.app_token:
                return 200, {"ok": False, "error": "invalid_auth"}, {}
            return 200, {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?ticket={uuid.uuid4()}"
                                            f"&app_id={APP}"}, {}
        if method not in BOT_METHODS:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        if token == self.app_token:
            return 200, {"ok": False, "error": "not_allowed_token_type"}, {}
        if token != self.bot_token:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        return 200, getattr(self, "_" + method.replace(".", "_"))(args), {}

    def _auth_test(self, args: dict) -> dict:
        return {"ok": True, "url": "https://fake.slack.com/", "team": "Fake", "user": "hb-medic",
                "team_id": TEAM, "user_id": BOT_USER, "bot_id": "B0MEDIC", "is_enterprise_install": False}

    def _conversations_info(self, args: dict) -> dict:
        if args.get("channel") != self.channel:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": {"id": self.channel, "name": "medic", "is_channel": True,
                                        "is_member": True, "is_archived": False}}

    def _chat_postMessage(self, args: dict) -> dict:
        if args.get("channel") != self.channel:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        with self._lock:
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            self.messages[ts] = Message(self.channel, ts, args.get("text", ""), _blocks(args))
        return {"ok": True, "channel": self.channel, "ts": ts,
                "message": {"type": "message", "user": BOT_USER, "text": args.get("text", ""), "ts": ts,
                            "blocks": _blocks(args)}}

    def _chat_update(self, args: dict) -> dict:
        ts = str(args.get("ts", ""))
        with self._lock:
            if args.get("channel") != self.channel:
                return {"ok": False, "error": "channel_not_found"}
            if ts in self.gone:
                return {"ok": False, "error": self.gone[ts]}
            message = self.messages.get(ts)
            if message is None:
                return {"ok": False, "error": "message_not_found"}
            message.edits.append({"text": args.get("text", ""), "blocks": _blocks(args), "at": time.time()})
        return {"ok": True, "channel": self.channel, "ts": ts, "text": args.get("text", "")}

    def _chat_postEphemeral(self, args: dict) -> dict:
        if not args.get("channel") or not args.get("user"):
            return {"ok": False, "error": "invalid_arguments"}
        with self._lock:
            self.ephemeral.append({"channel": args["channel"], "user": args["user"],
                                   "text": args.get("text", ""), "at": time.time()})
        return {"ok": True, "message_ts": f"{time.time():.6f}"}

    # -- Socket Mode ---------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections += 1
        await ws.send_str(json.dumps({"type": "hello", "num_connections": len(self._sockets) + 1,
                                      "debug_info": {"host": "fake-slack",
                                                     "approximate_connection_time": 3600},
                                      "connection_info": {"app_id": APP}}))
        self._sockets.add(ws)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                if isinstance(data, dict) and data.get("envelope_id"):
                    with self._lock:
                        self.acks.setdefault(str(data["envelope_id"]), time.time())
        finally:
            self._sockets.discard(ws)
        return ws


def _blocks(args: dict) -> list:
    blocks = args.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)
