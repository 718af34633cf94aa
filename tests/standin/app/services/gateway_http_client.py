"""The gateway client of the hummingbot library inside the current generation (with a
newer library): it pings the gateway every 2 s from start, and with no gateway config
password each ping fails with the same AttributeError, logged with its traceback, for
as long as hummingbot-api runs (about 43,000 a day). Raised for real, through the
same three calls as the real one (ping_gateway -> api_request -> _http_client)."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("hummingbot.core.gateway.gateway_http_client")


class Security:
    secrets_manager = None  # set only when a gateway is configured


class GatewayHttpClient:
    def __init__(self) -> None:
        self._gateway_config: dict = {}

    def _http_client(self, gateway_config: dict):
        password = Security.secrets_manager.password.get_secret_value()
        return password, gateway_config

    async def api_request(self, method: str, path: str, fail_silently: bool = False):
        client = self._http_client(self._gateway_config)
        return client, method, path, fail_silently

    async def ping_gateway(self) -> bool:
        try:
            response = await self.api_request("get", "", fail_silently=True)
            return bool(response)
        except Exception as e:
            log.error(f"✗ Failed to ping gateway: {type(e).__name__}: {e}", exc_info=True)
            return False


async def run(interval: float) -> None:
    client = GatewayHttpClient()
    while True:
        await client.ping_gateway()
        await asyncio.sleep(interval)
