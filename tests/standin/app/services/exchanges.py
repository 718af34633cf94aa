"""Exchanges out of reach, as a host without a route to them sees it (real: more/o2a, o5).

Which exchanges are cut off: `STANDIN_EXCHANGES_OFFLINE` (names, comma separated, `*` for all)
and, so a test can cut one off and bring it back while the stand-in runs, the names in the
bots folder's `scripts/.standin-offline` (the bots read the same file through their scripts
mount). Nothing here asks a DNS server: the failure is raised as aiohttp raises it.

While an exchange is cut off, hummingbot-api's connectors for it log the time synchroniser's
warning and the exchange-info error with its traceback every STANDIN_EXCHANGE_INTERVAL seconds,
and add-credential for it fails as the real one does (it validates keys by calling the exchange).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from services.noise import ClientConnectorDNSError

CONTROL = os.path.join("bots", "scripts", ".standin-offline")
INTERVAL = float(os.environ.get("STANDIN_EXCHANGE_INTERVAL", "5"))
HOSTS = {"binance": "api.binance.com", "binance_perpetual": "fapi.binance.com", "kucoin": "api.kucoin.com",
         "gate_io": "api.gateio.ws", "okx": "www.okx.com", "hyperliquid": "api.hyperliquid.xyz",
         "bitmart": "api-cloud.bitmart.com"}
_time_sync = logging.getLogger("hummingbot.connector.time_synchronizer")


def offline() -> set[str]:
    names = {n.strip() for n in os.environ.get("STANDIN_EXCHANGES_OFFLINE", "").split(",") if n.strip()}
    try:
        with open(CONTROL) as f:
            names |= {n.strip() for n in f.read().replace(",", "\n").splitlines() if n.strip()}
    except OSError:
        pass
    return names


def is_offline(connector: str) -> bool:
    names = offline()
    return "*" in names or connector in names


def _exchange_logger(connector: str) -> logging.Logger:
    camel = "".join(part.capitalize() for part in connector.split("_"))
    kind = "derivative" if connector.endswith("_perpetual") else "exchange"
    return logging.getLogger(f"hummingbot.connector.{kind}.{connector}.{connector}_{kind}.{camel}"
                             f"{'Derivative' if kind == 'derivative' else 'Exchange'}")


def _connect(host: str) -> None:
    try:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    except socket.gaierror as exc:
        raise ClientConnectorDNSError(
            f"Cannot connect to host {host}:443 ssl:default [{exc.strerror}]") from exc


def check_network(connector: str) -> None:
    """What a connector start prints and raises when its exchange is out of reach."""
    host = HOSTS.get(connector, f"api.{connector.split('_')[0]}.com")
    _time_sync.warning("Could not refresh server time. Check network connection.")
    try:
        _connect(host)
    except ClientConnectorDNSError:
        _exchange_logger(connector).error("There was an error requesting exchange info.", exc_info=True)
    _time_sync.warning("Could not refresh server time. Check network connection.")
    _connect(host)


async def run() -> None:
    """The connectors hummingbot-api keeps for its accounts retry on an interval."""
    while True:
        for connector in sorted(offline() - {"*"}):
            with contextlib.suppress(ClientConnectorDNSError):
                check_network(connector)
        await asyncio.sleep(INTERVAL)
