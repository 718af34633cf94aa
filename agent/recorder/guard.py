"""Limits on what slow or numerous clients can hold in an aiohttp server.

aiohttp has no cap on connections and no deadline for a request's headers, so
a client that opens many connections, or sends its headers a byte at a time,
holds the recorder's sockets and memory for as long as it likes. The guard
closes any connection that has not finished its first request's headers in time
(bodies have their handler's deadline; idle connections after a request,
aiohttp's keep-alive timeout). When every place is taken, a new connection is
let in by closing the one that has been sending its request longest (a
connection still sending after a second is a slow client, not a normal one);
only when none is, it gets a 503 and is closed.

aiohttp writes a traceback for each request it cannot parse; a client's
malformed request is the client's problem, so it becomes one line (and a flood
of them, one line every few seconds).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger(__name__)
GRACE = 1.0  # seconds a connection may take to send its request before it can be closed for another
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
        self._reading: dict[object, tuple[float, web.Request]] = {}  # requests whose body is coming
        self.evicted = 0
        self._last_warning = -1e9

    def attach(self, server: web.Server) -> None:
        self.server = server

    def protocol(self) -> asyncio.BaseProtocol:
        """The protocol factory for loop.create_server."""
        assert self.server is not None
        loop = asyncio.get_running_loop()
        # Accepted connections get their protocol before they count among the server's own:
        # count those too, or a burst of connections would all slip in.
        if len(set(self.server.connections).union(self._waiting)) >= self.max_connections \
                and not self._evict_slowest(loop.time()):
            self.refused += 1
            if loop.time() - self._last_warning > 60:
                self._last_warning = loop.time()
                log.warning("recorder: %d connections open, the limit: refusing more (503)",
                            self.max_connections)
            return _Busy()
        handler = self.server()
        self._waiting[handler] = loop.time()
        return handler

    def _evict_slowest(self, now: float) -> bool:
        """Close the connection that has been sending its request (headers or body) longest, if
        it has taken more than GRACE: the place is the new connection's."""
        candidates = [(since, conn) for conn, since in self._waiting.items() if now - since > GRACE]
        candidates += [(since, conn) for conn, (since, request) in self._reading.items()
                       if now - since > GRACE and not request.content.is_eof()]
        if not candidates:
            return False
        _since, conn = min(candidates, key=lambda c: c[0])
        self._waiting.pop(conn, None)
        self._reading.pop(conn, None)
        transport = getattr(conn, "transport", None)
        if transport is None:
            return False
        transport.close()
        self.evicted += 1
        return True

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        since = self._waiting.pop(request.protocol, None)  # headers complete
        if request.content.is_eof():
            return await handler(request)
        loop = asyncio.get_running_loop()
        self._reading[request.protocol] = (loop.time() if since is None else since, request)
        try:
            return await handler(request)
        finally:
            self._reading.pop(request.protocol, None)

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


class OneLineErrors(logging.LoggerAdapter):
    """aiohttp's server logger with a client's malformed request told in one line, no traceback
    (at most one line every `every` seconds, with how many more came); anything else as it was."""

    def __init__(self, logger: logging.Logger, what: str, every: float = 10.0) -> None:
        super().__init__(logger, {})
        self.what, self.every = what, every
        self.malformed = 0
        self._told_at = -1e9
        self._untold = 0

    def exception(self, msg, *args, exc_info=True, **kw) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if not isinstance(exc, HttpProcessingError):
            self.logger.exception(msg, *args, exc_info=exc_info, **kw)
            return
        self.malformed += 1
        now = time.monotonic()
        if now - self._told_at < self.every:
            self._untold += 1
            return
        more = f"; {self._untold} more since the last such line" if self._untold else ""
        self._told_at, self._untold = now, 0
        detail = next((line.strip() for line in str(exc.message).splitlines() if line.strip()), "")
        self.logger.warning("%s: refused a malformed request (%d, %s: %s)%s", self.what, exc.code,
                            type(exc).__name__, detail[:120], more)
