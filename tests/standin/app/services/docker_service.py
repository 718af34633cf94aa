"""Creates bot instances: the disk steps and the Docker call of the real deploy.

Order matters and is the real one: instance folders first (left behind when a
later step fails), then the credentials copy (a genuine shutil.copytree that
raises for a missing profile), configs, conf_client.yml, then the container.
Docker errors are caught here and returned as success false, with no log line.
"""

from __future__ import annotations

import logging
import os
import re
import shutil

import docker
from docker.errors import DockerException

import config
from utils import file_system as fs

logger = logging.getLogger(__name__)
BOT_IMAGE = re.compile(r".+/hummingbot:")


class DockerService:
    def __init__(self) -> None:
        # Unguarded, as in the real orchestrator: no socket, no start-up.
        self.client = docker.from_env()

    def create_hummingbot_instance(self, config_) -> dict:
        name = config_.instance_name
        instance_dir = os.path.join("bots", "instances", name)
        if not os.path.exists(instance_dir):
            os.makedirs(os.path.join(instance_dir, "data"))
            os.makedirs(os.path.join(instance_dir, "logs"))

        source_credentials_dir = os.path.join("bots", "credentials", config_.credentials_profile)
        destination_credentials_dir = os.path.join(instance_dir, "conf")
        if os.path.exists(destination_credentials_dir):
            shutil.rmtree(destination_credentials_dir)
        shutil.copytree(source_credentials_dir, destination_credentials_dir)

        if config_.script_config:
            self._copy_script_config(config_.script_config, destination_credentials_dir)

        conf_file = f"instances/{name}/conf/conf_client.yml"
        client_config = fs.read_yaml_file(conf_file)
        client_config["instance_id"] = name
        fs.dump_dict_to_yaml(conf_file, client_config)

        host_dir = os.path.abspath(os.path.join(config.BOTS_PATH, "bots", "instances", name))
        host_bots = os.path.abspath(os.path.join(config.BOTS_PATH, "bots"))
        volumes = {
            f"{host_dir}/conf": {"bind": "/home/hummingbot/conf", "mode": "rw"},
            f"{host_dir}/conf/connectors": {"bind": "/home/hummingbot/conf/connectors", "mode": "rw"},
            f"{host_dir}/conf/scripts": {"bind": "/home/hummingbot/conf/scripts", "mode": "rw"},
            f"{host_dir}/conf/controllers": {"bind": "/home/hummingbot/conf/controllers", "mode": "rw"},
            f"{host_dir}/data": {"bind": "/home/hummingbot/data", "mode": "rw"},
            f"{host_dir}/logs": {"bind": "/home/hummingbot/logs", "mode": "rw"},
            f"{host_bots}/scripts": {"bind": "/home/hummingbot/scripts", "mode": "rw"},
            f"{host_bots}/controllers": {"bind": "/home/hummingbot/controllers", "mode": "rw"},
        }
        environment = {}
        if config.CONFIG_PASSWORD:
            environment["CONFIG_PASSWORD"] = config.CONFIG_PASSWORD
        if config_.script_config:
            if not config.CONFIG_PASSWORD:
                return {"success": False,
                        "message": "Password not provided. We cannot start the bot without a password."}
            environment["SCRIPT_CONFIG"] = config_.script_config
        if config_.headless:
            environment["HEADLESS_MODE"] = "true"

        try:
            self.client.containers.run(
                image=config_.image,
                name=name,
                volumes=volumes,
                environment=environment,
                network_mode="host",
                detach=True,
                tty=True,
                stdin_open=True,
                labels=config.BOT_LABELS,
                log_config={"type": "json-file", "config": {"max-size": "10m", "max-file": "5"}},
            )
            return {"success": True, "message": f"Instance {name} created successfully."}
        except DockerException as e:
            return {"success": False, "message": str(e)}

    def _copy_script_config(self, script_config: str, conf_dir: str) -> None:
        scripts_dir = os.path.join(conf_dir, "scripts")
        os.makedirs(scripts_dir, exist_ok=True)
        source = os.path.join("bots", "conf", "scripts", script_config)
        if not os.path.exists(source):
            logger.warning(f"Script config file {script_config} not found in bots/conf/scripts")
            return
        shutil.copy(source, scripts_dir)
        try:
            controllers = fs.read_yaml_file(f"conf/scripts/{script_config}").get("controllers_config", [])
        except Exception as e:
            logger.error(f"Error reading script config file {script_config}: {e}")
            return
        controllers_dir = os.path.join(conf_dir, "controllers")
        os.makedirs(controllers_dir, exist_ok=True)
        for controller in controllers or []:
            src = os.path.join("bots", "conf", "controllers", controller)
            if os.path.exists(src):
                shutil.copy(src, controllers_dir)
                logger.info(f"Copied controller config: {controller}")
            else:
                logger.warning(f"Controller config file {controller} not found in bots/conf/controllers")

    def running_bots(self) -> list[str]:
        """Running containers whose image is named like `<owner>/hummingbot:<tag>`: all the real
        orchestrator looks at (a dead bot is simply not there)."""
        # One listing (no inspect of each container, which races with containers going away).
        return [(c.get("Names") or ["/"])[0].lstrip("/") for c in self.client.api.containers()
                if BOT_IMAGE.match(c.get("Image") or "")]

    def bot_status(self, mqtt) -> dict:
        """Every running bot reads "stopped" (nothing trades here); `recently_active` is a message
        from it over MQTT in the last 30 s; error_logs and general_logs, the records it sent."""
        status = {}
        for name in self.running_bots():
            error_logs, general_logs = mqtt.logs(name)
            status[name] = {"status": "stopped", "performance": {}, "error_logs": error_logs,
                            "general_logs": general_logs, "recently_active": mqtt.recently_active(name),
                            "source": "docker"}
        return status
