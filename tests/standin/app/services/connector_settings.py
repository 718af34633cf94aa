"""The connectors hummingbot knows and the key fields each wants (a few real ones).

An unknown connector is a KeyError, as in the real library: add-credential answers 400
with its repr, and `GET /connectors/<name>/config-map` lets it escape (500, uvicorn's
traceback), as the real current generation does.
"""

from __future__ import annotations

_KEYS = {
    "binance": ("binance_api_key", "binance_api_secret"),
    "binance_perpetual": ("binance_perpetual_api_key", "binance_perpetual_api_secret"),
    "bitmart": ("bitmart_api_key", "bitmart_secret_key", "bitmart_memo"),
    "gate_io": ("gate_io_api_key", "gate_io_secret_key"),
    "hyperliquid": ("hyperliquid_api_key", "hyperliquid_api_secret"),
    "kucoin": ("kucoin_api_key", "kucoin_secret_key", "kucoin_passphrase"),
    "okx": ("okx_api_key", "okx_secret_key", "okx_passphrase"),
}


class ConnectorSetting:
    def __init__(self, config_keys: tuple[str, ...]) -> None:
        self.config_keys = {k: {"type": "SecretStr", "required": True} for k in config_keys}


class AllConnectorSettings:
    @classmethod
    def get_connector_settings(cls) -> dict[str, ConnectorSetting]:
        return {name: ConnectorSetting(keys) for name, keys in _KEYS.items()}

    @classmethod
    def get_connector_config_keys(cls, connector: str) -> dict:
        return cls.get_connector_settings()[connector].config_keys
