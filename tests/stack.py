"""The test bed: a hummingbot-api stand-in with its broker and postgres stand-ins,
as real containers on the host network, over a temporary `bots/` folder.

Everything a Stack makes carries the label ``medic-test=<run id>`` (bot
containers too, through the stand-in) and is removed by :meth:`Stack.close`,
also when a test fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import re
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker
import httpx
from docker.errors import DockerException, NotFound

from tests.images import BOT_IMAGE, STANDIN_IMAGE, TOOLS_IMAGE

LABEL = "medic-test"
OWNER = "medic-test.owner"  # the pid of the test process that made the container
ADMIN = ("admin", "admin")
REAL_NAMES_LOCK = Path(tempfile.gettempdir()) / "medic-test-real-names.lock"


def labels(run_id: str) -> dict[str, str]:
    """The labels of everything a test makes: which run, and which process owns it."""
    return {LABEL: run_id, OWNER: str(os.getpid())}

TEMPLATE = {
    "conf_client.yml": (
        "instance_id: master_account\n"
        "mqtt_bridge:\n  mqtt_host: 127.0.0.1\n  mqtt_port: {broker_port}\n"
    ),
    "conf_fee_overrides.yml": "{}\n",
    "hummingbot_logs.yml": "version: 1\n",
    # No .password_verification: the stand-in makes it at start, as hummingbot-api does.
}


# Below the kernel's ephemeral range (32768-60999 by default): a port asked of the kernel comes from
# that range, which every outgoing connection on the host also draws from, so a port chosen there
# can be taken by a connection (the real stack's, a bot's) before the test binds it.
_PORTS = range(20000, 32000)


def free_port() -> int:
    """A port that is free on 127.0.0.1 right now, outside the range outgoing connections use."""
    for _ in range(200):
        port = random.SystemRandom().choice(_PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port on 127.0.0.1 between 20000 and 32000")


def container_lines(container, *, stdout: bool, stderr: bool) -> list[str]:
    raw = container.logs(stdout=stdout, stderr=stderr)
    return raw.decode(errors="replace").splitlines()


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval=0.1):
    """Poll until predicate() is truthy; return its value or fail naming what."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Stack:
    client: docker.DockerClient
    generation: str = "current"
    log_info: bool = False
    noise_interval: float = 0
    gateway_ping: float = 0  # the current generation's gateway-ping traceback every N s (0: quiet)
    broker: bool = True
    postgres: bool = True
    postgres_password: str = "hummingbot-api"
    database_password: str = "hummingbot-api"
    mount_socket: bool = True
    env: dict[str, str] = field(default_factory=dict)
    wait_ready: bool = True
    real_names: bool = False  # hummingbot-api, hummingbot-broker, hummingbot-postgres, as the rules expect
    postgres_running: bool = True
    docker_socket: str = "/var/run/docker.sock"  # the engine's socket, as the stand-in mounts it

    def __post_init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.prefix = "" if self.real_names else f"medic-t{self.run_id}-"
        self.root = Path(tempfile.mkdtemp(prefix="medic-bots-"))
        self.bots = self.root / "bots"
        self.api_port = free_port()
        self.broker_port = free_port()
        self.db_port = free_port()
        self.api = None
        self.broker_container = None
        self.postgres_container = None
        self._lock = None

    def _take_real_names(self) -> None:
        """Containers named as in a real stack exist once per engine: one test process at a time."""
        self._lock = open(REAL_NAMES_LOCK, "w")  # noqa: SIM115 (held until close)
        fcntl.flock(self._lock, fcntl.LOCK_EX)

    # --- lifecycle -------------------------------------------------------
    def start(self) -> Stack:
        if self.real_names:
            self._take_real_names()
        self._make_bots_folder()
        if self.broker:
            self.broker_container = self._run_tool("hummingbot-broker", "broker", self.broker_port)
        if self.postgres:
            self.postgres_container = self._run_tool(
                "hummingbot-postgres", "postgres", self.db_port,
                environment={"POSTGRES_PASSWORD": self.postgres_password},
            )
        for listener in (self.broker_container, self.postgres_container):
            if listener is not None:
                wait_until(lambda c=listener: "listener on" in "".join(
                    container_lines(c, stdout=True, stderr=True)), 20, "a listener to start")
        if self.postgres_container is not None and not self.postgres_running:
            self.postgres_container.stop(timeout=1)
        for attempt in range(3):
            self.api = self.client.containers.run(
                STANDIN_IMAGE,
                name=self.prefix + "hummingbot-api",
                detach=True,
                network_mode="host",
                labels=labels(self.run_id),
                volumes=self._api_volumes(),
                environment=self._api_env(),
            )
            if not self.wait_ready:
                break
            wait_until(self._ready_or_exited, 30, "the stand-in to start")
            if self.api_status() == "running":
                break
            lines = "\n".join(self.lines("all"))
            if "address already in use" not in lines or attempt == 2:
                raise AssertionError("stand-in exited:\n" + lines)
            # The free port was taken by another process meanwhile (tests and fault scenarios
            # run side by side): another port, another try.
            self.api.remove(force=True)
            self.api_port = free_port()
        return self

    def close(self) -> None:
        for c in self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.run_id}"}):
            with contextlib.suppress(NotFound):
                c.remove(force=True)
        try:
            shutil.rmtree(self.root)
        except PermissionError:
            # Files written by root inside a container: remove them from one.
            self.client.containers.run(
                TOOLS_IMAGE, entrypoint=["rm", "-rf", "/w/bots"], remove=True,
                volumes={str(self.root): {"bind": "/w", "mode": "rw"}}, network_mode="none",
            )
            shutil.rmtree(self.root)
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> Stack:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()

    # --- pieces ----------------------------------------------------------
    def _make_bots_folder(self) -> None:
        master = self.bots / "credentials" / "master_account"
        (master / "connectors").mkdir(parents=True)
        for name, text in TEMPLATE.items():
            (master / name).write_text(text.replace("{broker_port}", str(self.broker_port)))
        for sub in ("conf/scripts", "conf/controllers", "instances", "scripts", "controllers"):
            (self.bots / sub).mkdir(parents=True)
        # As in hummingbot-api's bots/scripts: the script every controllers deploy runs.
        (self.bots / "scripts" / "v2_with_controllers.py").write_text("markets = {}\n")

    def _run_tool(self, name: str, mode: str, port: int, environment=None):
        return self.client.containers.run(
            TOOLS_IMAGE, ["listener", mode, str(port)],
            name=self.prefix + name, detach=True, network_mode="host",
            labels=labels(self.run_id), environment=environment or {},
        )

    def _api_volumes(self) -> dict:
        volumes = {str(self.bots): {"bind": "/hummingbot-api/bots", "mode": "rw"}}
        if self.mount_socket:
            volumes[self.docker_socket] = {"bind": "/var/run/docker.sock", "mode": "rw"}
        return volumes

    def _api_env(self) -> dict[str, str]:
        env = {
            "PORT": str(self.api_port),
            "BOTS_PATH": str(self.root),
            "BROKER_PORT": str(self.broker_port),
            "MQTT_RECONNECT_INTERVAL": "1",
            "MQTT_START_TIMEOUT": "2",
            "DATABASE_URL": (
                f"postgresql+asyncpg://hbot:{self.database_password}@127.0.0.1:{self.db_port}"
                "/hummingbot_api"
            ),
            "STANDIN_GENERATION": self.generation,
            "STANDIN_DEFAULT_IMAGE": BOT_IMAGE,
            "STANDIN_BOT_LABELS": ",".join(f"{k}={v}" for k, v in labels(self.run_id).items()),
        }
        if self.log_info:
            env["STANDIN_LOG_INFO"] = "1"
        if self.noise_interval:
            env["STANDIN_NOISE_INTERVAL"] = str(self.noise_interval)
        env["STANDIN_GATEWAY_PING"] = str(self.gateway_ping)
        env.update(self.env)
        return env

    def _ready_or_exited(self) -> bool:
        if self.api_status() != "running":
            return True
        return any("Uvicorn running on" in line for line in self.lines("stderr"))

    # --- observation -----------------------------------------------------
    def api_status(self) -> str:
        self.api.reload()
        return self.api.status

    def lines(self, stream: str) -> list[str]:
        """Log lines of the stand-in: "stdout", "stderr" or "all" (engine order)."""
        return container_lines(
            self.api, stdout=stream in ("stdout", "all"), stderr=stream in ("stderr", "all")
        )

    def wait_line(self, stream: str, pattern: str, timeout: float = 15, count: int = 1) -> list[str]:
        """Wait until `count` lines of the stream match the regex; return the matches."""
        rx = re.compile(pattern)

        def found():
            hits = [line for line in self.lines(stream) if rx.search(line)]
            return hits if len(hits) >= count else None

        return wait_until(found, timeout, f"{count} x /{pattern}/ on {stream}")

    def wait_exit(self, timeout: float = 30) -> int:
        result = self.api.wait(timeout=timeout)
        return result["StatusCode"]

    # --- HTTP --------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def http(self, method: str, path: str, *, auth=ADMIN, **kw) -> httpx.Response:
        with httpx.Client(base_url=self.url, timeout=60) as http:
            return http.request(method, path, auth=auth, **kw)

    def deploy(self, route: str = "deploy-v2-script", **body) -> httpx.Response:
        return self.http("POST", f"/bot-orchestration/{route}", json=body)

    def bot(self, name: str):
        return self.client.containers.get(name)

    def unique(self, base: str) -> str:
        """An instance or profile name no other test uses."""
        return f"{base}-{uuid.uuid4().hex[:6]}"


def _alive(pid: str | None) -> bool:
    try:
        os.kill(int(pid or ""), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def sweep(client: docker.DockerClient) -> None:
    """Remove containers (and compose volumes) left by earlier runs that were killed before
    cleanup; those of a test process still running (another checkout's run) stay."""
    # One listing (docker-py's list inspects each container, which races with other runs' removals).
    for c in client.api.containers(all=True, filters={"label": LABEL}):
        if _alive((c.get("Labels") or {}).get(OWNER)):
            continue
        with contextlib.suppress(DockerException):
            client.api.remove_container(c["Id"], force=True)
    for v in client.volumes.list(filters={"label": LABEL}):
        if _alive((v.attrs.get("Labels") or {}).get(OWNER)):
            continue
        with contextlib.suppress(DockerException):
            v.remove(force=True)


REPO = Path(__file__).resolve().parent.parent


def start_raiser(client: docker.DockerClient, name: str, label: str, tty: bool = False, **env):
    """A container running tests/raiser.py (genuine tracebacks, noise, heartbeats)."""
    return client.containers.run(
        TOOLS_IMAGE, entrypoint=["python3", "-u", "-m", "tests.raiser"], working_dir="/w",
        name=name, detach=True, network_mode="none", labels=labels(label), tty=tty,
        volumes={str(REPO): {"bind": "/w", "mode": "ro"}},
        environment={k: str(v) for k, v in env.items()},
    )


SIBLINGS = ("hummingbot-api", "hummingbot-broker", "hummingbot-postgres")


def prefixed_rules(prefix: str, folder: Path, *more: str) -> Path:
    """The shipped rules, watching (and acting on) this stack's prefixed container names, as a
    user folder (it replaces the shipped rules by id), so a test needs no real-names lock. With
    `more` prefixes (other stacks'), a list of names watches every stack's; a single name (an
    action's target) stays the first stack's."""
    import yaml

    prefixes = (prefix, *more)

    def rename(value):
        if isinstance(value, dict):  # roles name kinds of containers, not containers
            return {k: v if k == "roles" else rename(v) for k, v in value.items()}
        if isinstance(value, list):
            if value and all(isinstance(v, str) and v in SIBLINGS for v in value):
                return [p + v for v in value for p in prefixes]
            return [rename(v) for v in value]
        return prefix + value if isinstance(value, str) and value in SIBLINGS else value

    folder.mkdir(parents=True, exist_ok=True)
    # libyaml's loader and dumper where PyYAML has them: every agent a test starts has this made.
    load, dump = getattr(yaml, "CSafeLoader", yaml.SafeLoader), getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    for rule in sorted((REPO / "rules").glob("*.yml")):
        doc = yaml.load(rule.read_text(), Loader=load)
        for key in ("where", "actions", "verify", "incident"):
            if key in doc:
                doc[key] = rename(doc[key])
        (folder / rule.name).write_text(yaml.dump(doc, Dumper=dump, sort_keys=False))
    return folder
