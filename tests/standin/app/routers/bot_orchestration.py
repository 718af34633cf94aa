"""Deploy routes of both generations and the bot status route.

legacy: logs the body at INFO (suppressed in real deployments), no try/except,
so uvicorn prints the traceback and answers a plain-text 500.
current: timestamped instance name, one `Error deploying V2 ...` line, JSON 500.
"""

from __future__ import annotations

import logging
from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Request

import config as settings
from models import V2ControllerDeployment, V2ScriptDeployment
from security import auth
from utils import file_system as fs

router = APIRouter(prefix="/bot-orchestration", dependencies=[Depends(auth)])


def _docker(request: Request):
    return request.app.state.docker_manager


@router.get("/status")
async def get_active_bots_status(request: Request):
    return {"status": "success", "data": _docker(request).bot_status(request.app.state.mqtt)}


@router.get("/mqtt")
async def get_mqtt_status(request: Request):
    mqtt = request.app.state.mqtt
    connected = mqtt.connected.is_set()
    return {"status": "success", "data": {
        "mqtt_connected": connected, "discovered_bots": sorted(mqtt.heard),
        "active_bots": _docker(request).running_bots(), "broker_host": settings.BROKER_HOST,
        "broker_port": settings.BROKER_PORT, "broker_username": "admin",
        "client_state": "connected" if connected else "disconnected"}}


@router.get("/{bot_name}/status")
async def get_bot_status(bot_name: str, request: Request):
    entry = _docker(request).bot_status(request.app.state.mqtt).get(bot_name)
    if entry is None:
        return {"status": "success", "data": {"status": "not_found", "error": f"Bot {bot_name} not found"}}
    entry.pop("source", None)
    return {"status": "success", "data": entry}


@router.post("/deploy-v2-script")
async def deploy_v2_script(config: V2ScriptDeployment, request: Request):
    # `config`, as the legacy route names it: its traceback shows this call's line.
    docker_manager = _docker(request)
    if settings.LEGACY:
        logging.info(f"Creating hummingbot instance with config: {config}")
        response = docker_manager.create_hummingbot_instance(config)
        return response
    try:
        timestamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        unique_instance_name = f"{config.instance_name}-{timestamp}"
        config.instance_name = unique_instance_name
        response = docker_manager.create_hummingbot_instance(config)
        if response.get("success"):
            response["unique_instance_name"] = unique_instance_name
        return response
    except Exception as e:
        logging.error(f"Error deploying V2 script: {e!s}")
        raise HTTPException(status_code=500, detail=str(e)) from e


def _script_config_for(deployment: V2ControllerDeployment, name: str) -> tuple[str, list[str]]:
    controllers = [c if c.endswith(".yml") else f"{c}.yml" for c in deployment.controllers_config]
    content: dict = {"script_file_name": "v2_with_controllers.py", "controllers_config": controllers}
    if settings.LEGACY:
        content["candles_config"] = []
        content["markets"] = {}
    if deployment.max_global_drawdown_quote is not None:
        content["max_global_drawdown_quote"] = deployment.max_global_drawdown_quote
    if deployment.max_controller_drawdown_quote is not None:
        content["max_controller_drawdown_quote"] = deployment.max_controller_drawdown_quote
    filename = f"{name}.yml"
    fs.dump_dict_to_yaml(f"conf/scripts/{filename}", content)
    logging.info(f"Generated script config: {filename} with content: {content}")
    return filename, controllers


@router.post("/deploy-v2-controllers")
async def deploy_v2_controllers(deployment: V2ControllerDeployment, request: Request):
    docker_manager = _docker(request)
    timestamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    if settings.LEGACY:
        filename, _ = _script_config_for(deployment, f"{deployment.instance_name}-{timestamp}")
        script = V2ScriptDeployment(
            instance_name=deployment.instance_name,
            credentials_profile=deployment.credentials_profile,
            image=deployment.image,
            script="v2_with_controllers.py",
            script_config=filename,
            headless=deployment.headless,
        )
        logging.info(f"Creating hummingbot instance with config: {script}")
        return docker_manager.create_hummingbot_instance(script)
    try:
        unique_instance_name = f"{deployment.instance_name}-{timestamp}"
        filename, _ = _script_config_for(deployment, unique_instance_name)
        deployment.script_config = filename
        deployment.instance_name = unique_instance_name
        response = docker_manager.create_hummingbot_instance(deployment)
        if response.get("success"):
            response["script_config_generated"] = filename
            response["controllers_deployed"] = deployment.controllers_config
            response["unique_instance_name"] = unique_instance_name
        return response
    except Exception as e:
        logging.error(f"Error deploying V2 controllers: {e!s}")
        raise HTTPException(status_code=500, detail=str(e)) from e
