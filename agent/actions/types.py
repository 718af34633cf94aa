"""Typed, validated parameter values shared by actions: nothing free-form reaches Docker or HTTP."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints

# A Docker image reference: [registry[:port]/]path[:tag][@sha256:digest]
IMAGE_PATTERN = (
    r"^(?:[A-Za-z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
ImageRef = Annotated[str, StringConstraints(pattern=IMAGE_PATTERN, max_length=255)]
CONTAINER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
PROFILE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ContainerName = Annotated[str, StringConstraints(pattern=CONTAINER_NAME_PATTERN)]
ProfileName = Annotated[str, StringConstraints(pattern=PROFILE_PATTERN)]


def _api_path(value: str) -> str:
    if not value.startswith("/") or ".." in value or "//" in value or "\\" in value:
        raise ValueError("must be an absolute path on hummingbot-api without '..' or '//'")
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise ValueError("must not contain whitespace or control characters")
    return value


ApiPath = Annotated[str, StringConstraints(max_length=512), AfterValidator(_api_path)]
