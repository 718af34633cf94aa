"""A local Telegram Bot API server, speaking the documented shapes
(https://core.telegram.org/bots/api): `{"ok": true, "result": ...}`, errors as
`{"ok": false, "error_code": N, "description": ..., "parameters": {"retry_after": N}}`.

It keeps the chat's messages (sendMessage, editMessageText: 400 "message to edit not found"
for one that was deleted, 400 "message is not modified" for the same text), answers getMe,
getChat and answerCallbackQuery, and serves getUpdates as Telegram does: a long poll that
returns as soon as an update is queued, updates below `offset` forgotten. It records every
call, can answer 429 (`limit(seconds)`), go away (nothing listens on its port) and come back,
and delivers button presses (callback_query) and commands (message) from any user id.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "123456789:AAHfake-Token_for-tests-0123456789abc"
CHAT = "-100424242"
BOT = {"id": 123456789, "is_bot": True, "first_name": "medic", "username": "medic_test_bot"}
LIMITED = ("sendMessage", "editMessageText")  # what Telegram's flood control answers 429 to


@dataclass
class Call:
    method: str
    params: dict
    at: float
    status: int = 200
    description: str = ""  # an error's, as answered


@dataclass
class Sent:
    id: int
    chat: str
    text: str
    markup: dict | None
    edits: list[str] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True


class TelegramFake:
    def __init__(self, token: str = TOKEN, chat: str = CHAT, port: int = 0) -> None:
        self.token, self.chat_id = token, chat
        self.calls: list[Call] = []
        self.messages: dict[int, Sent] = {}
        self.answers: dict[str, str] = {}  # callback query id -> the text shown to the person
        self.updates: list[dict] = []
        self.limited = 0  # answers 429
        self.early = 0  # requests that came before the wait asked for had passed
        self.limited_until = 0.0
        self._limit: float | None = None
        self._ids = itertools.count(1)
        self._update_ids = itertools.count(1000)
        self._cond = threading.Condition()
        self._gone = False
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- life ------------------------------------------------------------------------------------
    def __enter__(self) -> TelegramFake:
        self._listen()
        return self

    def __exit__(self, *exc) -> None:
        self.go_away()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def notify_url(self) -> str:
        return f"tgram://{self.token}/{self.chat_id}"

    def _listen(self) -> None:
        self._server = _Server(("127.0.0.1", self._port), self._handler())
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        with self._cond:
            self._gone = False

    def go_away(self) -> None:
        """Stop listening: connections are refused, long polls in progress end unanswered."""
        with self._cond:
            self._gone = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def come_back(self) -> None:
        self._listen()

    def limit(self, seconds: float) -> None:
        """The next send or edit starts a rate limit this long (429 with retry_after)."""
        self._limit = seconds

    # -- what people do ---------------------------------------------------------------------------
    def press(self, user: int, data: str, message: int | None = None, chat: str | None = None,
              username: str = "someone") -> str:
        """A button press; returns the callback query's id (its answer lands in `answers`)."""
        query_id = str(next(self._ids) * 7919)
        msg = {"message_id": message or 0, "chat": {"id": int(chat or self.chat_id), "type": "supergroup"},
               "date": int(time.time())}
        sender = {"id": user, "is_bot": False, "first_name": username, "username": username}
        self._queue({"callback_query": {"id": query_id, "from": sender, "message": msg, "chat_instance": "1",
                                        "data": data}})
        return query_id

    def command(self, user: int, text: str, chat: str | None = None) -> None:
        self._queue({"message": {"message_id": next(self._ids), "date": int(time.time()), "text": text,
                                 "from": {"id": user, "is_bot": False, "first_name": "someone"},
                                 "chat": {"id": int(chat or self.chat_id), "type": "supergroup"},
                                 "entities": [{"type": "bot_command", "offset": 0,
                                               "length": len(text.split(" ")[0])}]}})

    def _queue(self, update: dict) -> None:
        with self._cond:
            self.updates.append({"update_id": next(self._update_ids), **update})
            self._cond.notify_all()

    def delete(self, message: int) -> None:
        """The person deleted a message: it can no longer be edited."""
        self.messages.pop(message, None)

    # -- what was asked ---------------------------------------------------------------------------
    def of(self, *methods: str) -> list[Call]:
        return [c for c in self.calls if c.method in methods and c.status == 200]

    def sent(self) -> list[Sent]:
        return [self.messages[k] for k in sorted(self.messages)]

    # -- the server -------------------------------------------------------------------------------
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    params = json.loads(raw) if raw else {}
                except ValueError:
                    params = {}
                prefix = f"/bot{fake.token}/"
                if not self.path.startswith(prefix):
                    self._answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"},
                                 self.path.rsplit("/", 1)[-1], params)
                    return
                method = self.path[len(prefix):].split("?", 1)[0]
                status, body = fake._call(method, params)
                if status == 0:  # gone while the poll waited: hang up without an answer
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self._answer(status, body, method, params)

            def _answer(self, status: int, body: dict, method: str, params: dict) -> None:
                said = str(body.get("description", ""))
                with fake._cond:
                    fake.calls.append(Call(method, params, time.time(), status, said))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _call(self, method: str, p: dict) -> tuple[int, dict]:
        now = time.time()
        if method in LIMITED:
            with self._cond:
                if self._limit is not None:
                    self.limited_until, self._limit = now + self._limit, None
                elif now < self.limited_until:
                    self.early += 1
                if now < self.limited_until:
                    self.limited += 1
                    left = max(1, int(self.limited_until - now + 0.999))
                    return 429, {"ok": False, "error_code": 429,
                                 "description": f"Too Many Requests: retry after {left}",
                                 "parameters": {"retry_after": left}}
        if method == "getMe":
            return 200, {"ok": True, "result": BOT}
        if method == "getChat":
            if str(p.get("chat_id")) != self.chat_id:
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
            chat = {"id": int(self.chat_id), "type": "supergroup", "title": "ops"}
            return 200, {"ok": True, "result": chat}
        if method == "sendMessage":
            if str(p.get("chat_id")) != self.chat_id and not self._known_chat(p.get("chat_id")):
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
            with self._cond:
                ident = next(self._ids)
                self.messages[ident] = Sent(ident, str(p.get("chat_id")), str(p.get("text")),
                                            p.get("reply_markup"))
            return 200, {"ok": True, "result": {"message_id": ident, "date": int(now), "text": p.get("text"),
                                                "chat": {"id": int(p["chat_id"]), "type": "supergroup"}}}
        if method == "editMessageText":
            sent = self.messages.get(int(p.get("message_id") or 0))
            if sent is None:
                return 400, {"ok": False, "error_code": 400,
                             "description": "Bad Request: message to edit not found"}
            if sent.text == p.get("text") and sent.markup == p.get("reply_markup"):
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message is not"
                             " modified: specified new message content and reply markup are exactly the same"
                             " as a current content and reply markup of the message"}
            sent.edits.append(sent.text)
            sent.text, sent.markup = str(p.get("text")), p.get("reply_markup")
            return 200, {"ok": True, "result": {"message_id": sent.id, "text": sent.text,
                                                "chat": {"id": int(sent.chat), "type": "supergroup"}}}
        if method == "answerCallbackQuery":
            self.answers[str(p.get("callback_query_id"))] = str(p.get("text", ""))
            return 200, {"ok": True, "result": True}
        if method == "getUpdates":
            return self._updates(p)
        return 404, {"ok": False, "error_code": 404, "description": "Not Found"}

    def _known_chat(self, chat: object) -> bool:
        return any(str(u.get(k, {}).get("chat", {}).get("id")) == str(chat)
                   for u in self.updates for k in ("message",))

    def _updates(self, p: dict) -> tuple[int, dict]:
        offset = int(p.get("offset") or 0)
        wait = min(float(p.get("timeout") or 0), 50.0)
        end = time.monotonic() + wait
        with self._cond:
            while True:
                if self._gone:
                    return 0, {}
                if offset:
                    self.updates = [u for u in self.updates if u["update_id"] >= offset]
                ready = [u for u in self.updates if u["update_id"] >= offset]
                if ready or time.monotonic() >= end:
                    return 200, {"ok": True, "result": ready[:100]}
                self._cond.wait(max(0.0, end - time.monotonic()))
