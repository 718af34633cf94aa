"""Limits on what slow or numerous clients can hold in an aiohttp server.

aiohttp has no cap on connections and no deadline for a request's headers, so
a client that opens many connections, or sends its headers a byte at a time,
holds the recorder's sockets and memory for as long as it likes. The guard
answers connections beyond the cap with a 503 and closes any connection that
has not finished its first request's headers in time; after a request, idle
connections are closed by aiohttp's keep-alive timeout.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

log = logging.getLogger(__name__)
BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Busy(asyncio.Protocol):
    """One connection too many: a short 503, then closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(BUSY)  # type: ignore[attr-defined]
        transport.close()


class ConnectionGuard:
    def __init__(self, *, max_connections: int, header_timeout: float) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.server: web.Server | None = None
        self.refused = 0
        self._waiting: dict[object, float] = {}  # connections without a first request, since when
        self._last_warning = -1e9

    def attach(self, server: web.Server) -> None:
        self.server = server

    def protocol(self) -> asyncio.BaseProtocol:
        """The protocol factory for loop.create_server."""
        assert self.server is not None
        loop = asyncio.get_running_loop()
        # Accepted connections get their protocol before they count among the server's own:
        # count those too, or a burst of connections would all slip in.
        if len(set(self.server.connections).union(self._waiting)) >= self.max_connections:
            self.refused += 1
            if loop.time() - self._last_warning > 60:
                self._last_warning = loop.time()
                log.warning("recorder: %d connections open, the limit: refusing more (503)",
                            self.max_connections)
            return _Busy()
        handler = self.server()
        self._waiting[handler] = loop.time()
        return handler

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        self._waiting.pop(request.protocol, None)  # headers complete
        return await handler(request)

    async def sweep(self, interval: float = 1.0) -> None:
        """Close connections that are still sending their first request's headers too late."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            assert self.server is not None
            live = set(self.server.connections)
            now = loop.time()
            for conn, since in list(self._waiting.items()):
                if conn not in live and now - since > interval:
                    del self._waiting[conn]  # closed already
                elif now - since > self.header_timeout:
                    del self._waiting[conn]
                    transport = getattr(conn, "transport", None)
                    if transport is not None:
                        transport.close()
