"""Which containers are bots hummingbot-api deployed, and which of them to follow.

hummingbot-api recognises its bots two ways, and so does the agent: the
instance folder bind-mounted at /home/hummingbot/conf from
`.../bots/instances/<instance>/conf` (what its deploy does), or an image named
like `<owner>/hummingbot:<tag>` (what its status route lists).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

from agent.names import CONTAINER_NAME_PATTERN

CONF_MOUNT = "/home/hummingbot/conf"
LOGS_MOUNT = "/home/hummingbot/logs"
_INSTANCE = re.compile(r"/instances/(?P<instance>[^/]+)/(?:conf|logs)/?$")
_IMAGE = re.compile(r".+/hummingbot:")
_NAME = re.compile(CONTAINER_NAME_PATTERN)


@dataclass(frozen=True)
class BotSelection:
    """MEDIC_BOTS: `all` (the default), `off`, or shell patterns of container names."""

    patterns: tuple[str, ...] | None  # None: all

    @classmethod
    def parse(cls, value: str | None) -> BotSelection | None:
        """None when following bots is off."""
        text = (value or "all").strip()
        if text.lower() == "off":
            return None
        if text.lower() in ("all", "*"):
            return cls(None)
        return cls(tuple(p.strip() for p in text.split(",") if p.strip()))

    def wants(self, name: str) -> bool:
        return self.patterns is None or any(fnmatch.fnmatchcase(name, p) for p in self.patterns)


@dataclass(frozen=True)
class BotInfo:
    name: str
    instance: str  # its folder under bots/instances (the container's name, as hummingbot-api made it)
    running: bool
    tty: bool


def recognise(info: dict) -> BotInfo | None:
    """A bot, from `docker inspect` of a container; None for anything else."""
    name = (info.get("Name") or "").lstrip("/")
    if not _NAME.fullmatch(name):
        return None
    instance = None
    for mount in info.get("Mounts") or []:
        if mount.get("Destination") in (CONF_MOUNT, LOGS_MOUNT):
            m = _INSTANCE.search(mount.get("Source") or "")
            if m and _NAME.fullmatch(m["instance"]) and ".." not in m["instance"]:
                instance = m["instance"]
                if mount.get("Destination") == CONF_MOUNT:
                    break
    image = (info.get("Config") or {}).get("Image") or ""
    if instance is None and not _IMAGE.match(image):
        return None
    state = info.get("State") or {}
    return BotInfo(name, instance or name, bool(state.get("Running")),
                   bool((info.get("Config") or {}).get("Tty")))


def maybe_bot(listed: dict) -> bool:
    """From the engine's container listing (its mounts and image): could it be a bot?"""
    if _IMAGE.match(listed.get("Image") or ""):
        return True
    return any(m.get("Destination") in (CONF_MOUNT, LOGS_MOUNT) and _INSTANCE.search(m.get("Source") or "")
               for m in listed.get("Mounts") or [])


def logs_folder(bots_dir: Path | None, bot: BotInfo) -> Path | None:
    """Where its logs/ are as the agent sees hummingbot-api's bots/ folder (MEDIC_BOTS_DIR)."""
    if bots_dir is None:
        return None
    return bots_dir / "instances" / bot.instance / "logs"
