"""Name patterns shared along the whole flow: what a Docker image reference, a container
name and a credentials profile name may look like. Kept at the bottom of the package so
matching, actions and the API client all use one definition without importing each other."""

from __future__ import annotations

import re

# A Docker image reference: [registry[:port]/]path[:tag][@sha256:digest]
IMAGE_PATTERN = (
    r"^(?:[A-Za-z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
CONTAINER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
PROFILE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

# The stack of the environment-only setup (and of everything stored before stacks existed).
DEFAULT_STACK = "default"

# The current generation of hummingbot-api names an instance <name>-YYYYmmdd-HHMMSS.
STAMP = re.compile(r"^(?P<base>.+)-(?P<ts>\d{8}-\d{6})$")


def base_name(instance: str) -> str:
    """The name the client sent: the current generation appends -YYYYmmdd-HHMMSS."""
    m = STAMP.fullmatch(instance)
    return m["base"] if m else instance
# Profiles hb-medic never touches, whatever a log or a request says: master_account is
# hummingbot-api's template (add-account copies it). Compared case-folded: on a case-insensitive
# mount `Master_Account` is the same folder.
PROTECTED_PROFILES = frozenset({"master_account"})


def protected_profile(name: str) -> bool:
    return name.casefold() in PROTECTED_PROFILES


# The recorder's name for credential uploads (POST /accounts/add-credential/<account>/<connector>),
# beside the two deploy routes.
CREDENTIAL_ROUTE = "add-credential"
GATEWAY_ROUTE = "gateway"  # the recorder's route of hummingbot-api's answers on its gateway routes
# ... for a 404 on a route of another generation of hummingbot-api (agent.recorder.routes): the
# route's template only. Neither is a deploy a retry may send.
ROUTE_MISSING = "route-missing"
EVIDENCE_ROUTES = (CREDENTIAL_ROUTE, GATEWAY_ROUTE, ROUTE_MISSING)


def parse_addr(addr: str) -> tuple[str, int]:
    """`host:port` (or `:port`, every address) where the agent listens: health server, recorder."""
    host, _, port = addr.rpartition(":")
    return (host or "0.0.0.0"), int(port)

# Where the agent serves /healthz and /metrics unless told otherwise (agent.settings), and what an
# address looks like. Here, not in the settings, so `hb-medic health` can know them without
# loading pydantic (the image's HEALTHCHECK runs it every 15 s).
DEFAULT_HTTP_ADDR = "127.0.0.1:9108"
SECRETS_DIR = "/run/secrets"  # Docker's secret files, one a setting (medic_<name>)
HTTP_ADDR_PATTERN = r"^[^\s:]*:\d{1,5}$"
