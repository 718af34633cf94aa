"""The current generation's gateway routes as they answer with no gateway it can reach (as captured):
the container routes look for a container named `gateway` (404 `Gateway container not found`
without one), and every route that needs the gateway itself pings it first and answers 503
`Gateway service is not available` (no application log line: only the request and access lines).
HTTP Basic first, as on every router: an unauthenticated request is 401 and never reaches them."""

from __future__ import annotations

from docker.errors import NotFound
from fastapi import APIRouter, Depends, HTTPException, Query, Request

import config
from security import auth

router = APIRouter(prefix="/gateway", dependencies=[Depends(auth)])
accounts_router = APIRouter(prefix="/accounts/gateway", dependencies=[Depends(auth)])
UNAVAILABLE = "Gateway service is not available"
NOT_FOUND = "Gateway container not found"


def _container(request: Request):
    try:
        return request.app.state.docker_manager.client.containers.get(config.GATEWAY_NAME)
    except NotFound:
        return None


@router.get("/status")
async def gateway_status(request: Request):
    c = _container(request)
    if c is None:
        return {"running": False, "container_id": None, "image": None, "created_at": None, "port": None}
    return {"running": c.status == "running", "container_id": c.id,
            "image": c.image.tags[0] if c.image.tags else c.image.id[:12], "created_at": c.attrs.get("Created"),
            "port": 15888 if c.attrs.get("HostConfig", {}).get("NetworkMode") == "host" else None}


@router.get("/logs")
async def gateway_logs(request: Request, tail: int = Query(default=100, ge=1, le=10000)):
    c = _container(request)
    if c is None:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    return {"success": True, "logs": c.logs(tail=tail, timestamps=True).decode(errors="replace")}


@router.post("/stop")
async def gateway_stop(request: Request):
    c = _container(request)
    if c is None:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    if c.status == "running":
        c.stop()
    return {"success": True, "message": "Gateway stopped successfully"}


async def _ping() -> bool:
    """hummingbot-api's own gateway client: no gateway it can reach here."""
    return False


async def _needs_gateway() -> dict:
    if not await _ping():
        raise HTTPException(status_code=503, detail=UNAVAILABLE)
    return {}


# The GET routes that take no body or required query (a POST's body is validated first: 422).
for path in ("/connectors", "/connectors/{connector_name}", "/chains", "/networks", "/networks/{network_id}",
             "/networks/{network_id}/tokens", "/apiKeys"):
    router.add_api_route(path, _needs_gateway, methods=["GET"])
accounts_router.add_api_route("/wallets", _needs_gateway, methods=["GET"])
