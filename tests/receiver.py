"""A local HTTP receiver for apprise's json:// plugin: records what it accepted, and plays
an outage of Slack or Telegram in three ways: answer 500 (`failing`), refuse connections
(`mode = "refuse"`: nothing listens on the port) or accept and close without an answer
(`mode = "close"`), and a rate limit (`limit(seconds)`: 429 asking to wait).

It also answers as Telegram's Bot API (a path `/bot<token>/sendMessage`) and as a Slack
webhook (`/services/...`) would, for their apprise plugins pointed at it: a Telegram rate
limit is said only in the JSON answer (`parameters.retry_after`), Slack's and the others' in
a `Retry-After` header."""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("ok", "refuse", "close")


class Receiver:
    def __init__(self, port: int = 0) -> None:
        self.accepted: list[dict] = []
        self.accepted_at: list[float] = []
        self.refused = 0
        self.failing = False
        self.requests_at: list[float] = []  # when each request came, whatever the answer
        self.limited = 0  # requests answered 429
        self.early = 0  # of those, the ones that came before the wait asked for had passed
        self._limit: float | None = None  # armed: the next request starts a rate limit this long
        self._limited_until = 0.0
        self._mode = "ok"
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                flavour = ("telegram" if self.path.startswith("/bot") else
                           "slack" if self.path.startswith("/services/") else "json")
                headers: dict[str, str] = {}
                answer = b"ok" if flavour == "slack" else b'{"ok":true,"result":{}}'
                with outer._lock:
                    now = time.time()
                    outer.requests_at.append(now)
                    if outer._mode == "close":  # read the request, then hang up without an answer
                        outer.refused += 1
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if outer._limit is not None:  # the first request of a rate limit
                        outer._limited_until, outer._limit = now + outer._limit, None
                    elif now < outer._limited_until:
                        outer.early += 1
                    if now < outer._limited_until:
                        outer.limited += 1
                        status, left = 429, math.ceil(outer._limited_until - now)
                        if flavour == "telegram":
                            answer = json.dumps({"ok": False, "error_code": 429,
                                                 "description": f"Too Many Requests: retry after {left}",
                                                 "parameters": {"retry_after": left}}).encode()
                        else:
                            headers["Retry-After"] = str(left)
                            answer = b"rate_limited"
                    elif outer.failing:
                        outer.refused += 1
                        status = 500
                    else:
                        outer.accepted.append(json.loads(body))
                        outer.accepted_at.append(now)
                        status = 200
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self._handler = Handler
        self.server = self._serve(port)
        self.port = self.server.server_address[1]

    def _serve(self, port: int) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(("127.0.0.1", port), self._handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/notify"

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        """ok, refuse (stop listening: connection refused) or close (accept, then hang up)."""
        assert mode in MODES, mode
        if mode == "refuse" and self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        elif mode != "refuse" and self.server is None:
            for _ in range(50):  # the port was ours a moment ago; TIME_WAIT may hold it briefly
                try:
                    self.server = self._serve(self.port)
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                raise OSError(f"cannot listen on 127.0.0.1:{self.port} again")
        self._mode = mode

    def limit(self, seconds: float) -> None:
        """The next request is answered 429, asking to wait `seconds`; so is every one before
        they have passed (counted in `early`), asking for the time left."""
        with self._lock:
            self._limit = seconds

    @property
    def limited_until(self) -> float:
        """When the current (or last) rate limit ends; 0 before any."""
        with self._lock:
            return self._limited_until

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def messages(self) -> list[str]:
        with self._lock:
            return [m.get("message", m.get("text", "")) for m in self.accepted]

    def titles(self) -> list[str]:
        with self._lock:
            return [m.get("title", "") for m in self.accepted]

    def timed(self) -> list[tuple[float, str]]:
        """(when, message) of each accepted message."""
        with self._lock:
            return [(t, m.get("message", m.get("text", "")))
                    for t, m in zip(self.accepted_at, self.accepted, strict=True)]
