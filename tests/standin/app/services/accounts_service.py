"""Credentials profiles (accounts) on disk under bots/credentials.

add-account copies the four template files of master_account; a missing
template raises mid-way and leaves the half-made folder, as the real one does.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil

import yaml

import config
from services import exchanges
from services.connector_settings import AllConnectorSettings
from utils import file_system as fs

log = logging.getLogger("services.accounts_service")

TEMPLATE_FILES = ("conf_client.yml", "conf_fee_overrides.yml", "hummingbot_logs.yml",
                  ".password_verification")


def list_accounts() -> list[str]:
    return fs.list_folders("credentials")


def add_account(name: str) -> None:
    if name in list_accounts():
        raise FileExistsError("Account already exists.")
    base = os.path.join(fs.BASE, "credentials", name)
    os.makedirs(base)
    os.makedirs(os.path.join(base, "connectors"))
    for file in TEMPLATE_FILES:
        src = os.path.join(fs.BASE, "credentials", "master_account", file)
        if not os.path.isfile(src):
            raise FileNotFoundError(f"Source file 'credentials/master_account/{file}' not found")
        shutil.copy2(src, os.path.join(base, file))


def delete_account(name: str) -> None:
    fs.delete_folder("credentials", name)


def list_credentials(name: str) -> list[str]:
    files = fs.list_files(f"credentials/{name}/connectors")
    return [f[:-4] for f in files if f.endswith(".yml")]


def add_credentials(name: str, connector: str, keys: dict) -> None:
    """Store keys as the real app does in spirit: never in clear text, and sealed with
    CONFIG_PASSWORD (the stand-in bot says MAC mismatch when its password differs). Any failure is
    logged (current generation) as one ERROR line without a traceback, then answered 400."""
    try:
        _add_credentials(name, connector, keys)
    except Exception as e:
        if not config.LEGACY:
            log.error(f"Error adding connector credentials for account {name}: {e}")
        raise


def _add_credentials(name: str, connector: str, keys: dict) -> None:
    path = os.path.join(fs.BASE, "credentials", name, "connectors", f"{connector}.yml")
    if not os.path.isdir(os.path.dirname(path)):
        raise FileNotFoundError(f"Directory 'credentials/{name}/connectors' not found")
    fields = AllConnectorSettings.get_connector_config_keys(connector)  # an unknown connector: KeyError
    for key in keys:  # a missing field is not checked; one the connector does not have is
        if key not in fields:
            raise AttributeError(f"Object has no attribute '{key}'")
    if exchanges.is_offline(connector):  # keys are checked by calling the exchange
        exchanges.check_network(connector)
    sealed = {k: base64.b64encode(str(v).encode()).decode() for k, v in keys.items()}
    password = hashlib.sha256(config.CONFIG_PASSWORD.encode()).hexdigest()
    with open(path, "w") as fh:
        yaml.safe_dump({"connector": connector, "encrypted": sealed, "password_sha256": password}, fh)
