"""Connector routes: the key fields a connector wants (what a UI asks before add-credential).
An unknown connector is not handled: the KeyError escapes (500 and uvicorn's traceback)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from security import auth
from services.connector_settings import AllConnectorSettings

router = APIRouter(prefix="/connectors", dependencies=[Depends(auth)])


@router.get("/{connector_name}/config-map")
async def get_connector_config_map(connector_name: str):
    return AllConnectorSettings.get_connector_config_keys(connector_name)
