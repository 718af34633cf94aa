"""Connector settings: the key fields add-credential wants (real: GET /connectors/<c>/config-map)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from security import auth

router = APIRouter(prefix="/connectors", dependencies=[Depends(auth)])


@router.get("/{connector_name}/config-map")
async def config_map(connector_name: str):
    return {f"{connector_name}_api_key": {"type": "SecretStr", "required": True},
            f"{connector_name}_api_secret": {"type": "SecretStr", "required": True}}
