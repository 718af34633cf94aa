"""Settings of the stand-in, all from the environment (names of the real app where it has one)."""

from __future__ import annotations

import json
import os
from urllib.parse import urlparse

from pydantic import BaseModel


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


GENERATION = os.environ.get("STANDIN_GENERATION", "current")  # "legacy" or "current"
if GENERATION not in {"legacy", "current"}:
    raise SystemExit(f"STANDIN_GENERATION must be legacy or current, not {GENERATION!r}")
LEGACY = GENERATION == "legacy"

# A real deployment prints no application INFO records (a dependency configures
# logging first); a build with other dependencies might: this turns them on.
LOG_INFO = _flag("STANDIN_LOG_INFO")

HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "8000"))
USERNAME = os.environ.get("USERNAME", "admin")
PASSWORD = os.environ.get("PASSWORD", "admin")
CONFIG_PASSWORD = os.environ.get("CONFIG_PASSWORD", "a")
DEFAULTS = {"USERNAME": "admin", "PASSWORD": "admin", "CONFIG_PASSWORD": "a"}

# Host folder holding `bots/` (bind sources for bot containers are host paths).
BOTS_PATH = os.environ.get("BOTS_PATH", os.getcwd())

class BrokerSettings(BaseModel):
    """As the real app's settings models: validated at import, so a bad value stops the start with
    pydantic's ValidationError (`1 validation error for BrokerSettings` / `port` / ...)."""

    host: str = "127.0.0.1"
    port: int = 1883


class DatabaseSettings(BaseModel):
    url: str = "postgresql+asyncpg://hbot:hummingbot-api@127.0.0.1:5432/hummingbot_api"


def _from_env(model: type[BaseModel], prefix: str) -> BaseModel:
    return model(**{name: os.environ[prefix + name.upper()] for name in model.model_fields
                    if prefix + name.upper() in os.environ})


_broker = _from_env(BrokerSettings, "BROKER_")
_database = _from_env(DatabaseSettings, "DATABASE_")
BROKER_HOST = _broker.host
BROKER_PORT = _broker.port
MQTT_RECONNECT_INTERVAL = float(os.environ.get("MQTT_RECONNECT_INTERVAL", "5"))
MQTT_START_TIMEOUT = float(os.environ.get("MQTT_START_TIMEOUT", "5"))

_db = urlparse(_database.url)
DB_USER = _db.username or "hbot"
DB_PASSWORD = _db.password or ""
DB_HOST = _db.hostname or "127.0.0.1"
DB_PORT = _db.port or 5432

# Background noise of a real deployment without exchange access (0 = off).
NOISE_INTERVAL = float(os.environ.get("STANDIN_NOISE_INTERVAL", "0"))
# The current generation (with a newer hummingbot library) pings a gateway every 2 s and logs
# the failure with its traceback; seconds between pings, 0 = off.
GATEWAY_PING = float(os.environ.get("STANDIN_GATEWAY_PING", "0" if LEGACY else "2"))
# The container its gateway routes look for (hummingbot-api's POST /gateway/start names it gateway).
GATEWAY_NAME = os.environ.get("STANDIN_GATEWAY_NAME", "gateway")
# An older hummingbot-api loads hummingbot's client settings (conf/conf_client.yml under its
# site-packages) and logs "Error writing configs" when that folder is missing: seconds between
# loads, 0 = never (the builds of both generations captured here never do).
CLIENT_CONFIG_INTERVAL = float(os.environ.get("STANDIN_CLIENT_CONFIG_INTERVAL", "0"))
# Test-bed aids: the image and entrypoint (JSON list) a gateway start runs instead of the body's image.
GATEWAY_IMAGE = os.environ.get("STANDIN_GATEWAY_IMAGE", "")
GATEWAY_COMMAND = json.loads(os.environ.get("STANDIN_GATEWAY_COMMAND", "null"))

# Test-bed aids, invisible in the logs: the image a deploy uses when the body
# names none (so nothing is ever pulled), and labels put on bot containers so
# tests can clean them up.
DEFAULT_IMAGE = os.environ.get("STANDIN_DEFAULT_IMAGE", "hummingbot/hummingbot:latest")
BOT_LABELS = dict(
    item.split("=", 1) for item in os.environ.get("STANDIN_BOT_LABELS", "").split(",") if "=" in item
)
