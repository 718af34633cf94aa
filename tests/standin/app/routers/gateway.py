"""The current generation's gateway routes as they answer with no gateway it can reach (as captured):
the container routes look for a container named `gateway` (404 `Gateway container not found`
without one), and every route that needs the gateway itself pings it first and answers 503
`Gateway service is not available` (no application log line: only the request and access lines).
HTTP Basic first, as on every router: an unauthenticated request is 401 and never reaches them.

`POST /gateway/start` and `/gateway/restart` do what the real ones do (its services/gateway_service.py):
the shared certificate set in bots/gateway-files/certs when it is missing (here: the eight files'
names, not real certificates), then the container, secured (DEV=false, GATEWAY_PASSPHRASE =
CONFIG_PASSWORD), restart policy always, the certificates mounted read-only; a restart with a body
removes the container and starts it anew. The test bed's gateway is STANDIN_GATEWAY_IMAGE running
STANDIN_GATEWAY_COMMAND as its entrypoint (nothing is pulled)."""

from __future__ import annotations

import logging
import os

from docker.errors import DockerException, NotFound
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

import config
from security import auth

router = APIRouter(prefix="/gateway", dependencies=[Depends(auth)])
accounts_router = APIRouter(prefix="/accounts/gateway", dependencies=[Depends(auth)])
logger = logging.getLogger("services.gateway_service")
UNAVAILABLE = "Gateway service is not available"
CERT_FILES = ("ca_cert.pem", "ca_key.pem", "client_cert.pem", "client_csr.pem", "client_key.pem",
              "server_cert.pem", "server_csr.pem", "server_key.pem")


class GatewayConfig(BaseModel):
    image: str = Field(default="hummingbot/gateway:latest")
    port: int = Field(default=15888)
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


def _certs_present(certs: str) -> bool:
    """The full server and client set (a partial set is made anew, as the real one does)."""
    return all(os.path.exists(os.path.join(certs, f)) for f in (
        "ca_cert.pem", "ca_key.pem", "server_cert.pem", "server_key.pem", "client_cert.pem", "client_key.pem"))


def _start(request: Request, cfg: GatewayConfig) -> dict:
    existing = _container(request)
    if existing is not None:
        if existing.status == "running":
            return {"success": False, "message": "Gateway is already running. Use stop first or restart to"
                                                 " update configuration."}
        logger.info("Removing stopped Gateway container")
        existing.remove(force=True)
    local = os.path.join("bots", "gateway-files")
    for sub in ("conf", "logs", "certs"):
        os.makedirs(os.path.join(local, sub), exist_ok=True)
    certs = os.path.join(local, "certs")
    if not _certs_present(certs):
        for name in CERT_FILES:
            with open(os.path.join(certs, name), "w") as fh:
                fh.write(f"stand-in {name}\n")
    host = os.path.abspath(os.path.join(config.BOTS_PATH, "bots", "gateway-files"))
    logger.info("Starting Gateway in secured mode (TLS + mTLS, DEV=false)")
    try:
        container = request.app.state.docker_manager.client.containers.run(
            config.GATEWAY_IMAGE or cfg.image, entrypoint=config.GATEWAY_COMMAND, name=config.GATEWAY_NAME,
            detach=True,
            volumes={os.path.join(host, "conf"): {"bind": "/home/gateway/conf", "mode": "rw"},
                     os.path.join(host, "logs"): {"bind": "/home/gateway/logs", "mode": "rw"},
                     os.path.join(host, "certs"): {"bind": "/home/gateway/certs", "mode": "ro"}},
            environment={"GATEWAY_PASSPHRASE": config.CONFIG_PASSWORD, "DEV": "false"},
            restart_policy={"Name": "always"}, network_mode="host", labels=config.BOT_LABELS)
    except DockerException as e:
        logger.error(f"Failed to start Gateway container: {e}")
        return {"success": False, "message": f"Failed to start Gateway: {e!s}"}
    logger.info(f"Gateway container started successfully: {container.id}")
    return {"success": True, "message": "Gateway started successfully", "container_id": container.id,
            "port": cfg.port}


@router.post("/start")
async def gateway_start(request: Request, cfg: GatewayConfig):
    result = _start(request, cfg)
    if not result["success"]:
        raise HTTPException(status_code=400 if "already running" in result["message"] else 500,
                            detail=result["message"])
    return result


@router.post("/restart")
async def gateway_restart(request: Request, cfg: GatewayConfig | None = None):
    c = _container(request)
    if c is None and cfg is None:
        raise HTTPException(status_code=404, detail="Gateway container not found. Use start with configuration"
                                                    " to create one.")
    if c is not None and cfg is None:
        c.restart()
        logger.info("Gateway container restarted")
        return {"success": True, "message": "Gateway restarted successfully"}
    if c is not None:
        c.remove(force=True)
        logger.info("Removed existing Gateway container for restart with new config")
    result = _start(request, cfg)
    if not result["success"]:
        raise HTTPException(status_code=500, detail=result["message"])
    return result


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
