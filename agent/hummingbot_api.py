"""A small client for hummingbot-api's own API (HTTP Basic), used by actions.

Every request goes to the configured base URL only; paths are validated by
the callers' parameter types.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx

from agent.names import PROFILE_PATTERN

_NAME = re.compile(PROFILE_PATTERN)


class HummingbotAPI:
    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0,
                 observe: Callable[[int | None], None] | None = None) -> None:
        """`observe(status)`: told every answer's status (None: no answer), so the agent's view of
        this hummingbot-api (/healthz) follows what its fixes meet."""
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, auth=(username, password), timeout=timeout)
        self._observe = observe

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.TransportError:
            if self._observe is not None:
                self._observe(None)
            raise
        if self._observe is not None:
            self._observe(resp.status_code)
        return resp

    def accounts(self) -> list[str]:
        """Account names; anything that is not a plain name is left out (never put in a path)."""
        resp = self.request("GET", "/accounts/")
        resp.raise_for_status()
        return [a for a in resp.json() if isinstance(a, str) and _NAME.fullmatch(a)]

    def account_credentials(self, account: str) -> list[str] | None:
        """Connector names of an account; None when its connectors folder is missing (half-made)."""
        resp = self.request("GET", f"/accounts/{account}/credentials")
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return list(resp.json())

    def add_account(self, account: str) -> httpx.Response:
        return self.request("POST", "/accounts/add-account", params={"account_name": account})

    def delete_account(self, account: str) -> httpx.Response:
        return self.request("POST", "/accounts/delete-account", params={"account_name": account})


def broker_status(api: HummingbotAPI) -> dict | None:
    """What GET /bot-orchestration/mqtt says of hummingbot-api's broker (`mqtt_connected`,
    `broker_host`, `broker_port`, ...), or None when it cannot be told."""
    return broker_reply(api)[0]


def broker_reply(api: HummingbotAPI) -> tuple[dict | None, str]:
    """The broker's status, or None and why it cannot be told: hummingbot-api itself did not
    answer (stopped, say), or answered something else than the status (its broker may be fine)."""
    try:
        resp = api.request("GET", "/bot-orchestration/mqtt")
    except httpx.TransportError as exc:
        return None, f"hummingbot-api did not answer ({type(exc).__name__})"
    except httpx.HTTPError as exc:
        return None, f"hummingbot-api's answer about its broker could not be read ({type(exc).__name__})"
    try:
        data = resp.json().get("data") if resp.status_code == 200 else None  # {"status": ..., "data": {...}}
    except (ValueError, AttributeError):
        data = None
    if isinstance(data, dict):
        return data, ""
    return None, f"hummingbot-api answered {resp.status_code} without its broker's status"
