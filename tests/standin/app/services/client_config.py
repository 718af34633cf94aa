"""hummingbot's own client settings, as an older hummingbot-api loads them (hummingbot-api#57; the
builds vendored for the real lane patch save_to_yml out, so they never print this).

hummingbot's `load_client_config_map_from_file` reads conf/conf_client.yml beside its installed
package (root_path(): the site-packages folder) when it exists, and writes it back either way
(`save_to_yml`), which logs `Error writing configs: ...` with the traceback when that conf folder
is missing from the image. Here the site-packages folder is the stand-in's own venv's, and the
load runs every `interval` seconds, so a test sees the error stop once the file is in place.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import fastapi

ROOT = Path(fastapi.__file__).resolve().parent.parent  # site-packages, as hummingbot's root_path()
CLIENT_CONFIG_PATH = ROOT / "conf" / "conf_client.yml"


def save_to_yml(yml_path: Path, text: str) -> None:
    try:
        with open(yml_path, "w", encoding="utf-8") as outfile:
            outfile.write(text)
    except Exception as e:
        logging.getLogger().error(f"Error writing configs: {e}", exc_info=True)


def load_client_config_map_from_file() -> str:
    text = CLIENT_CONFIG_PATH.read_text(encoding="utf-8") if CLIENT_CONFIG_PATH.exists() else "{}\n"
    save_to_yml(CLIENT_CONFIG_PATH, text)
    return text


async def run(interval: float) -> None:
    while True:
        await asyncio.to_thread(load_client_config_map_from_file)
        await asyncio.sleep(interval)
