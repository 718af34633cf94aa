"""A local HTTP receiver for apprise's json:// plugin: records what it accepted,
and can answer 500 for a while, to play an outage of Slack or Telegram."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self) -> None:
        self.accepted: list[dict] = []
        self.at: list[float] = []  # when each was accepted (wall clock)
        self.refused = 0
        self.failing = False
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer._lock:
                    if outer.failing:
                        outer.refused += 1
                        status = 500
                    else:
                        outer.accepted.append(json.loads(body))
                        outer.at.append(time.time())
                        status = 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/notify"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def messages(self) -> list[str]:
        with self._lock:
            return [m.get("message", "") for m in self.accepted]

    def titles(self) -> list[str]:
        with self._lock:
            return [m.get("title", "") for m in self.accepted]

    def timed(self) -> list[tuple[float, str]]:
        """(when, message) of each accepted message."""
        with self._lock:
            return [(t, m.get("message", "")) for t, m in zip(self.at, self.accepted, strict=True)]
