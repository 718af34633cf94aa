"""A local HTTP receiver for apprise's json:// plugin: records what it accepted, and plays
an outage of Slack or Telegram in three ways: answer 500 (`failing`), refuse connections
(`mode = "refuse"`: nothing listens on the port) or accept and close without an answer
(`mode = "close"`)."""

from __future__ import annotations

import json
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
        self._mode = "ok"
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer._lock:
                    if outer._mode == "close":  # read the request, then hang up without an answer
                        outer.refused += 1
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if outer.failing:
                        outer.refused += 1
                        status = 500
                    else:
                        outer.accepted.append(json.loads(body))
                        outer.accepted_at.append(time.time())
                        status = 200
                self.send_response(status)
                self.end_headers()

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

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def messages(self) -> list[str]:
        with self._lock:
            return [m.get("message", "") for m in self.accepted]

    def titles(self) -> list[str]:
        with self._lock:
            return [m.get("title", "") for m in self.accepted]

    def timed(self) -> list[tuple[float, str]]:
        """(when, message) of each accepted message."""
        with self._lock:
            return [(t, m.get("message", "")) for t, m in zip(self.accepted_at, self.accepted, strict=True)]
