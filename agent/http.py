"""Health and metrics on MEDIC_HTTP_ADDR (loopback by default).

`/healthz` is 200 only while every followed stream is attached or its container
is known to be down, the pipeline's loop is fresh, and the outbox is not stuck.
`/metrics` is Prometheus text (prometheus-client), read from the agent's state
at scrape time, so counting costs the hot path almost nothing.

The server may listen beyond loopback (the image binds 0.0.0.0), so a client
gets at most `DEADLINE` seconds for its whole exchange and at most
`MAX_CONNECTIONS` are served at once (more get a 503 and are closed): slow or
many clients cannot hold the agent's threads.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from agent.service import Service

LOOP_STALE = 15.0  # seconds without a pipeline loop
OUTBOX_STUCK = 1800.0  # oldest undelivered message
DEADLINE = 5.0  # seconds a client has for its whole request and answer
MAX_CONNECTIONS = 16
BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def stack_health(service: Service, rt) -> tuple[list[str], dict]:
    """One stack's problems (unprefixed) and what /healthz shows of it."""
    problems: list[str] = []
    streams = {}
    for name, st in rt.ingest.status().items():
        streams[name] = st.state
        if st.state not in ("attached", "absent", "stopped"):
            problems.append(f"{name}: {st.state}")
    engine = rt.ingest.health
    if engine.down_since is not None and not rt.ingest.status():
        problems.append(f"Docker engine at {rt.config.engine()} unreachable for"
                        f" {time.monotonic() - engine.down_since:.0f} s: {engine.error}")
    age = time.monotonic() - rt.pipeline.last_loop
    if age > LOOP_STALE:
        problems.append(f"pipeline loop stalled for {age:.0f} s")
    if rt.api_watch.refused:  # not answering is hummingbot-api's own trouble, which rules watch
        problems.append(rt.api_watch.problem)
    detail = {"ok": not problems, "engine": "unreachable" if engine.down_since is not None else "ok",
              "api": "ok" if rt.api_watch.problem is None else rt.api_watch.problem,
              "streams": streams, "problems": problems}
    return problems, detail


def health(service: Service) -> tuple[bool, dict]:
    problems = []
    streams: dict[str, str] = {}
    stacks = {}
    for rt in service.stacks:
        mine, detail = stack_health(service, rt)
        problems += [rt.where + p for p in mine]
        streams.update({rt.where.replace("stack ", "").replace(": ", "/") + n: st
                        for n, st in detail["streams"].items()})
        stacks[rt.name] = detail
    for name, alive in service.threads_alive().items():
        if not alive:
            problems.append(f"{name} thread has stopped")
    if service.store.file.write_problem is not None:
        problems.append(f"state file {service.store.file.path} cannot be written:"
                        f" {service.store.file.write_problem}")
    oldest = service.store.outbox.oldest_pending()
    if oldest is not None and time.time() - oldest > OUTBOX_STUCK:
        problems.append(f"notifications undelivered for {time.time() - oldest:.0f} s")
    recorder = service.main.config.recorder_addr if service.recorder is not None else None
    recorders = {rt.name: rt.config.recorder_addr for rt in service.stacks if rt.recorder is not None}
    return not problems, {"ok": not problems, "streams": streams, "problems": problems, "recorder": recorder,
                          "recorders": recorders, "stacks": stacks}


class _Collector:
    def __init__(self, service: Service) -> None:
        self.s = service

    def collect(self):
        s = self.s
        lines = CounterMetricFamily("hb_medic_lines", "Log lines read", labels=["stack", "container"])
        attached = GaugeMetricFamily("hb_medic_stream_attached", "1 while the log stream is attached",
                                     labels=["stack", "container", "state"])
        age = GaugeMetricFamily("hb_medic_last_line_age_seconds", "Seconds since the last line",
                                labels=["stack", "container"])
        engine = GaugeMetricFamily("hb_medic_engine_up", "1 while the stack's Docker engine answers",
                                   labels=["stack"])
        api = GaugeMetricFamily("hb_medic_api_up", "1 while the stack's hummingbot-api answers and accepts"
                                " the login (as last looked at)", labels=["stack"])
        events = CounterMetricFamily("hb_medic_events", "Events assembled", labels=["stack", "kind"])
        matches = CounterMetricFamily("hb_medic_matches", "Events matched, per rule",
                                      labels=["stack", "rule"])
        now = time.time()
        for rt in s.stacks:
            for name, st in rt.ingest.status().items():
                lines.add_metric([rt.name, name], st.lines)
                attached.add_metric([rt.name, name, st.state], 1.0 if st.state == "attached" else 0.0)
                if st.last_line_at:
                    age.add_metric([rt.name, name], now - st.last_line_at)
            engine.add_metric([rt.name], 0.0 if rt.ingest.health.down_since is not None else 1.0)
            api.add_metric([rt.name], 0.0 if rt.api_watch.problem is not None else 1.0)
            for kind, n in sorted(rt.counts["events"].items()):
                events.add_metric([rt.name, kind], n)
            for rule, n in sorted(rt.counts["matches"].items()):
                matches.add_metric([rt.name, rule], n)
        yield from (lines, attached, age, engine, api, events, matches)
        actions = CounterMetricFamily("hb_medic_actions", "Actions run, by result",
                                      labels=["stack", "action", "result"])
        for (stack, name, ok), n in sorted(s.store.incidents.action_counts().items()):
            actions.add_metric([stack, name, "ok" if ok else "failed"], n)
        yield actions
        notes = GaugeMetricFamily("hb_medic_notifications", "Notification outbox, by status",
                                  labels=["status"])
        for status, n in sorted(s.store.outbox.counts().items()):
            notes.add_metric([status], n)
        yield notes
        yield CounterMetricFamily("hb_medic_notifications_failed_attempts",
                                  "Delivery attempts that failed", value=s.notifier.failed)
        yield CounterMetricFamily("hb_medic_unknown_events", "Errors no rule knows, counted",
                                  value=s.unknown.seen)
        yield GaugeMetricFamily("hb_medic_unknown_fingerprints", "Errors no rule knows, by fingerprint,"
                                " in the state file", value=s.store.unknown.count())
        open_ = GaugeMetricFamily("hb_medic_incidents_open", "Incidents not closed",
                                  labels=["stack", "rule"])
        for (stack, rule), n in sorted(s.store.incidents.open_counts().items()):
            open_.add_metric([stack, rule], n)
        yield open_


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, but a bounded number of them, each with a deadline."""

    daemon_threads = True

    def __init__(self, addr, handler, *, max_connections: int, deadline: float) -> None:
        super().__init__(addr, handler)
        self.deadline = deadline
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                request.sendall(BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        request.settimeout(self.deadline)  # each read and write
        cut = threading.Timer(self.deadline, _cut, (request,))  # and the exchange as a whole
        cut.daemon = True
        cut.start()
        try:
            super().process_request_thread(request, client_address)
        finally:
            cut.cancel()
            self._slots.release()


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class HealthServer:
    def __init__(self, service: Service, host: str, port: int, *, max_connections: int = MAX_CONNECTIONS,
                 deadline: float = DEADLINE) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(service))
        svc = service

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.split("?")[0] == "/healthz":
                    ok, detail = health(svc)
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
        self._thread = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
