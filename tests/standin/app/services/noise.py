"""Background noise of a real deployment that cannot reach exchanges.

The time synchroniser's warning and the rate oracle's chained DNS-failure
traceback, raised for real (types carry aiohttp's module name), on an interval.
"""

from __future__ import annotations

import asyncio
import logging
import socket

ClientConnectorDNSError = type(
    "ClientConnectorDNSError", (OSError,), {"__module__": "aiohttp.client_exceptions"}
)
_time_sync = logging.getLogger("hummingbot.connector.time_synchronizer")
_rate_source = logging.getLogger("hummingbot.core.rate_oracle.sources.rate_source_base")
SOURCES = (("Binance", "api.binance.com"), ("Gate.IO", "api.gateio.ws"))


def _resolve(host: str) -> None:
    raise socket.gaierror(-3, "Temporary failure in name resolution")


def _create_direct_connection(host: str) -> None:
    try:
        _resolve(host)
    except socket.gaierror as exc:
        raise ClientConnectorDNSError(
            f"Cannot connect to host {host}:443 ssl:default [{exc.strerror}]"
        ) from exc


def get_prices(host: str) -> None:
    _create_direct_connection(host)


async def run(interval: float) -> None:
    n = 0
    while True:
        source, host = SOURCES[n % len(SOURCES)]
        n += 1
        _time_sync.warning("Could not refresh server time. Check network connection.")
        try:
            get_prices(host)
        except Exception:
            _rate_source.error(
                f"Unexpected error while retrieving rates from {source}. Check the log file for more info.",
                exc_info=True,
            )
        await asyncio.sleep(interval)
