"""One scenario's test bed: the stand-in hummingbot-api (prefixed names, so scenarios run side
by side with each other and with the tests), the shipped rules watching it, a work folder,
and what a scenario asks of it: deploys through the agent's recorder, the bots that run, the
accounts hummingbot-api was asked to add."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import docker
import httpx
import yaml

from faults.agent import Agent
from tests.images import ensure_images
from tests.stack import ADMIN, Stack, free_port, prefixed_rules


class Bed:
    def __init__(self, name: str, *, quick: bool = False, rules: dict[str, dict] | None = None,
                 **stack_options) -> None:
        """`rules`: changes to shipped rules by id (e.g. a shorter cooldown for a quick run).
        `quick`: a retried bot counts as alive after 3 s instead of MEDIC_BOT_SETTLE's 30."""
        self.name = name
        self.quick = quick
        self.tag = uuid.uuid4().hex[:4]  # in the names of the bots this scenario deploys
        self.client = docker.from_env()
        ensure_images(self.client, log=lambda _msg: None)
        self.work = Path(tempfile.mkdtemp(prefix=f"medic-faults-{name}-"))
        self.stack = Stack(self.client, **stack_options)
        self.rule_changes = rules or {}
        self.agents: list[Agent] = []

    def __enter__(self) -> Bed:
        try:
            self.stack.start()
            self.rules = prefixed_rules(self.stack.prefix, self.work / "rules")
            for rule_id, change in self.rule_changes.items():
                path = self.rules / f"{rule_id}.yml"
                doc = yaml.safe_load(path.read_text())
                for key, value in change.items():
                    doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
                path.write_text(yaml.safe_dump(doc, sort_keys=False))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for agent in self.agents:
            with contextlib.suppress(Exception):
                agent.kill9()
        with contextlib.suppress(Exception):
            self.stack.close()
        if os.environ.get("FAULTS_KEEP"):
            print(f"  kept {self.work}", file=sys.stderr)
        else:
            shutil.rmtree(self.work, ignore_errors=True)
        self.client.close()

    # -- the agent -------------------------------------------------------------------------------
    @property
    def api_container(self) -> str:
        return self.stack.prefix + "hummingbot-api"

    def agent(self, *, recorder: bool = True, folder: str = "agent", command: str = "run",
              **env: str) -> Agent:
        """An agent (not started) following this stand-in with the suite's rules (or, with
        command="recorder", the recorder alone in its own process)."""
        work = self.work / folder
        work.mkdir(exist_ok=True)
        # Only this scenario's bots: others' tests share the engine, and their bots are no concern.
        settings = {"MEDIC_CONTAINERS": self.api_container, "MEDIC_RULES_DIR": str(self.rules),
                    "MEDIC_HUMMINGBOT_URL": self.stack.url, "MEDIC_CATCHUP_WINDOW": "900",
                    "MEDIC_BOTS": f"*{self.tag}*"}
        # A re-sent bot must live MEDIC_BOT_SETTLE: the shipped 30 s in the full run, 3 s in the quick one.
        settings["MEDIC_BOT_SETTLE"] = "3" if self.quick else "30"
        if recorder:
            settings["MEDIC_RECORDER_ADDR"] = f"127.0.0.1:{free_port()}"
        agent = Agent(work, {**settings, **env}, command)
        self.agents.append(agent)
        return agent

    # -- what the scenario does and sees ------------------------------------------------------
    @staticmethod
    def deploy(agent: Agent, instance: str, profile: str, timeout: float = 60.0) -> int | str:
        """A client's deploy through the agent's recorder: the status, or why there was none."""
        url = f"http://{agent.env['MEDIC_RECORDER_ADDR']}/bot-orchestration/deploy-v2-script"
        try:
            return httpx.post(url, auth=ADMIN, timeout=timeout,
                              json={"instance_name": instance, "credentials_profile": profile}).status_code
        except httpx.HTTPError as exc:
            return type(exc).__name__

    def bots(self) -> dict[str, list[str]]:
        """Bot containers by the base name the client sent: their states (one listing call, so
        a container going away meanwhile cannot make it fail)."""
        out: dict[str, list[str]] = {}
        for c in self.client.api.containers(all=True, filters={"label": f"medic-test={self.stack.run_id}"}):
            m = re.match(r"^/?(.+)-\d{8}-\d{6}$", (c.get("Names") or [""])[0])
            if m:
                out.setdefault(m[1], []).append(c.get("State", ""))
        return out

    def reached(self) -> set[str]:
        """Instance names hummingbot-api processed a deploy of (it leaves the instance folder,
        deployed or not): the truth about which deploys reached it."""
        folder = self.stack.bots / "instances"
        return {m[1] for p in folder.iterdir() if (m := re.match(r"^(.+)-\d{8}-\d{6}$", p.name))}

    def add_account_calls(self) -> dict[str, int]:
        """POST /accounts/add-account calls hummingbot-api answered, by profile."""
        out: dict[str, int] = {}
        for line in self.stack.lines("stdout"):
            m = re.search(r'"POST /accounts/add-account\?account_name=([\w-]+) HTTP/1\.1" 201', line)
            if m:
                out[m[1]] = out.get(m[1], 0) + 1
        return out
