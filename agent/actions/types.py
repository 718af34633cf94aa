"""Typed, validated parameter values shared by actions: nothing free-form reaches Docker or HTTP."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from agent.names import CONTAINER_NAME_PATTERN, IMAGE_PATTERN, PROFILE_PATTERN, protected_profile

ImageRef = Annotated[str, StringConstraints(pattern=IMAGE_PATTERN, max_length=255)]
ContainerName = Annotated[str, StringConstraints(pattern=CONTAINER_NAME_PATTERN)]
def _not_protected(value: str) -> str:
    if protected_profile(value):
        raise ValueError(f"{value} is a protected profile: hb-medic never touches it")
    return value


ProfileName = Annotated[str, StringConstraints(pattern=PROFILE_PATTERN), AfterValidator(_not_protected)]
ConnectorName = Annotated[str, StringConstraints(pattern=PROFILE_PATTERN)]  # binance, kucoin_perpetual


def _api_path(value: str) -> str:
    if not value.startswith("/") or ".." in value or "//" in value or "\\" in value:
        raise ValueError("must be an absolute path on hummingbot-api without '..' or '//'")
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise ValueError("must not contain whitespace or control characters")
    return value


ApiPath = Annotated[str, StringConstraints(max_length=512), AfterValidator(_api_path)]


# hummingbot's own client settings folder: conf/ beside its installed package, in a Python's
# site-packages (hummingbot's root_path()). Captured from a log line, so held to this shape alone.
_SITE_PACKAGES_CONF = re.compile(r"^(?:/[A-Za-z0-9_.+-]+)*/lib/python3\.\d{1,2}/site-packages/conf$")


def _site_packages_conf(value: str) -> str:
    if not _SITE_PACKAGES_CONF.fullmatch(value) or any(p in (".", "..") for p in value.split("/")):
        raise ValueError("must be <prefix>/lib/python3.N/site-packages/conf, an absolute path without"
                         " '.' or '..' segments")
    return value


SitePackagesConf = Annotated[str, StringConstraints(max_length=200), AfterValidator(_site_packages_conf)]
