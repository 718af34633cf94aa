"""Health and metrics on MEDIC_HTTP_ADDR (loopback by default).

`/healthz` answers 200 while the report it is given says healthy, 503 otherwise (the
service's report: every followed stream attached or its container known to be down, the
pipelines' loops fresh, the outbox not stuck...). `/metrics` is Prometheus text
(prometheus-client) of the families it is given, read at scrape time, so counting costs
the hot path almost nothing.

The server may listen beyond loopback (the image binds 0.0.0.0), so a client
gets at most `DEADLINE` seconds for its whole exchange and at most
`MAX_CONNECTIONS` are served at once: slow or many clients cannot hold the
agent's threads. When every place is taken, a new connection gets the place of
the one that has been sending its request longest, if that one has taken more
than `GRACE` (a normal client sends its request at once: one still sending is
slow); only when none has, the new one gets a 503 and is closed. So clients
that trickle their requests, however often they reconnect, never keep the
container's own health check (`hb-medic health`) from an answer.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from agent.component import Loop, OneLoop

DEADLINE = 5.0  # seconds a client has for its whole request and answer
MAX_CONNECTIONS = 16
GRACE = 0.25  # seconds a connection may take to send its request before its place can go to another
BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

Report = Callable[[], tuple[bool, dict]]  # /healthz: (healthy, what to show)
Metrics = Callable[[], Iterable[Metric]]  # /metrics: the families, read at scrape time


class _Collector:
    def __init__(self, metrics: Metrics) -> None:
        self.collect = metrics


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, but a bounded number of them, each with a deadline."""

    daemon_threads = True

    def __init__(self, addr, handler, *, max_connections: int, deadline: float) -> None:
        super().__init__(addr, handler)
        self.deadline = deadline
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._reading: dict[socket.socket, float] = {}  # connections still sending their request
        self.evicted = 0

    def answering(self, sock: socket.socket) -> None:
        """The connection's request is in: its place can no longer go to another."""
        with self._lock:
            self._reading.pop(sock, None)

    def _evict_slowest(self) -> bool:
        now = time.monotonic()
        with self._lock:
            slow = [(since, s) for s, since in self._reading.items() if now - since > GRACE]
            if not slow:
                return False
            _since, sock = min(slow, key=lambda c: c[0])
            del self._reading[sock]
        _cut(sock)  # its thread ends and gives its place back
        self.evicted += 1
        return True

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False) and not (
                self._evict_slowest() and self._slots.acquire(timeout=1.0)):
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                request.sendall(BUSY)
            self.shutdown_request(request)
            return
        with self._lock:
            self._reading[request] = time.monotonic()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.answering(request)
            self._slots.release()
            raise

    def handle_error(self, request, client_address) -> None:
        """A client that left before its answer is its own business, not a traceback in the log."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        request.settimeout(self.deadline)  # each read and write
        cut = threading.Timer(self.deadline, _cut, (request,))  # and the exchange as a whole
        cut.daemon = True
        cut.start()
        try:
            super().process_request_thread(request, client_address)
        finally:
            cut.cancel()
            self.answering(request)
            self._slots.release()


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class HealthServer(OneLoop):
    """Serves what it is given to call; it knows nothing of what it reports on."""

    name = "http"

    def __init__(self, report: Report, metrics: Metrics, host: str, port: int, *,
                 max_connections: int = MAX_CONNECTIONS, deadline: float = DEADLINE) -> None:
        """Binds now: a taken port stops the start."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(metrics))

        class Handler(BaseHTTPRequestHandler):
            def parse_request(self) -> bool:
                parsed = super().parse_request()
                self.server.answering(self.connection)  # type: ignore[attr-defined]
                return parsed

            def do_GET(self):
                if self.path.split("?")[0] == "/healthz":
                    ok, detail = report()
                    self._send(200 if ok else 503, json.dumps(detail).encode(), "application/json")
                elif self.path.split("?")[0] == "/metrics":
                    self._send(200, generate_latest(registry), "text/plain; version=0.0.4; charset=utf-8")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = _BoundedServer((host, port), Handler, max_connections=max_connections,
                                     deadline=deadline)
        self.loop = Loop("http", self.server.serve_forever, on_stop=self._shutdown)

    def stop(self, deadline: float | None = None) -> None:
        self.loop.stop(deadline)
        self.server.server_close()

    def _shutdown(self) -> None:
        if self.loop.alive:  # shutdown() waits for serve_forever, which must have begun
            self.server.shutdown()
