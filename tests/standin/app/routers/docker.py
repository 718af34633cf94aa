"""Docker status routes (dashboards poll them; they appear in real baselines)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from security import auth

router = APIRouter(prefix="/docker", dependencies=[Depends(auth)])


@router.get("/running")
async def is_docker_running(request: Request):
    try:
        request.app.state.docker_manager.client.ping()
        return {"is_docker_running": True}
    except Exception:
        return {"is_docker_running": False}


@router.get("/active-containers")
async def active_containers(request: Request):
    client = request.app.state.docker_manager.client
    return [
        {"id": c.id, "name": c.name, "status": c.status,
         "image": c.image.tags[0] if c.image.tags else c.image.id}
        for c in client.containers.list()
    ]
