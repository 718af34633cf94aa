"""Request bodies of the deploy routes, with the current generation's name checks."""

from __future__ import annotations

import re

from pydantic import BaseModel, field_validator

import config

_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def _check(label: str, value: str) -> str:
    name = value[:-4] if value.endswith(".yml") else value
    if not config.LEGACY and not _SAFE.match(name):
        raise ValueError(
            f"Invalid {label}: '{value}'. Only letters, numbers, underscores and hyphens are allowed."
        )
    return value


class V2ScriptDeployment(BaseModel):
    instance_name: str
    credentials_profile: str
    image: str = config.DEFAULT_IMAGE
    script: str | None = None
    script_config: str | None = None
    headless: bool = False

    @field_validator("instance_name", "credentials_profile", "script_config")
    @classmethod
    def _safe(cls, value, info):
        return value if value is None else _check(info.field_name, value)


class V2ControllerDeployment(BaseModel):
    instance_name: str
    credentials_profile: str
    controllers_config: list[str]
    max_global_drawdown_quote: float | None = None
    max_controller_drawdown_quote: float | None = None
    image: str = config.DEFAULT_IMAGE
    script_config: str | None = None
    headless: bool = False

    @field_validator("instance_name", "credentials_profile", "script_config")
    @classmethod
    def _safe(cls, value, info):
        return value if value is None else _check(info.field_name, value)

    @field_validator("controllers_config")
    @classmethod
    def _safe_list(cls, value):
        return [_check("controllers_config", v) for v in value]
