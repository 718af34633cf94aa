"""The real test lane's stack: the REAL hummingbot-api (either generation) with its real broker
(Debian's mosquitto) and database (Debian's PostgreSQL 15), deploying REAL Hummingbot bots, all on
127.0.0.1 with host networking.

The broker and postgres are processes this harness starts on free loopback ports and stops by
their pids (they also die with the test process); hummingbot-api is a container named with a
prefix (several stacks side by side) and labelled ``medic-test`` so the test bed's sweep removes
a killed run's leftover. The bots hummingbot-api starts carry no label of ours: they are found by
their bind mounts, which all lie under this stack's folder, and removed at close; a killed run's
folder (its owner pid gone) and bots are swept when the next stack starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx
from docker.errors import DockerException, NotFound

from tests.engines import PR_SET_PDEATHSIG
from tests.images import TOOLS_IMAGE
from tests.realstack.images import ARCHIVES, BOT_IMAGE, VENDOR, api_image
from tests.stack import ADMIN, _alive, container_lines, free_port, labels, wait_until

FOLDER_PREFIX = "medic-real-"
OWNER_FILE = "medic-test.owner"  # the pid of the test process that made the folder
CONFIG_PASSWORD = "admin"  # as in the captures: the bots get CONFIG_PASSWORD=admin
DB_USER, DB_PASSWORD, DB_NAME = "hbot", "hummingbot-api", "hummingbot_api"  # upstream's compose
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"  # sbin is not on every user's PATH


def _postgres_bin() -> Path:
    """PostgreSQL 15's programs (Debian keeps them out of PATH)."""
    folder = Path("/usr/lib/postgresql/15/bin")
    if not (folder / "postgres").exists():
        raise RuntimeError("PostgreSQL 15 is missing: scripts/prepare installs postgresql-15")
    return folder


def _dies_with_parent(sig: signal.Signals) -> Callable[[], None]:
    """A preexec_fn: `sig` to the child when the test process goes, however it goes. It runs after
    the switch to the child's user, which would clear it (so the child must not switch itself)."""

    def arm() -> None:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)

    return arm


def _as_user(name: str, cwd: Path) -> dict:
    """Popen arguments that run a child as `name` when we are root (postgres refuses root; mosquitto
    started as root switches by itself, which would clear its parent-death signal); cwd, because that
    user may not enter the test's working folder."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam(name)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "cwd": cwd}


def _bots_under(client: docker.DockerClient, root: Path) -> list[dict]:
    """Containers with a bind mount from inside `root`: the bots hummingbot-api made for it."""
    prefix = str(root) + "/"
    return [c for c in client.api.containers(all=True)
            if any(m.get("Source", "").startswith(prefix) for m in c.get("Mounts") or [])
            and not (c.get("Labels") or {}).get("medic-test")]


def _remove_folder(client: docker.DockerClient, root: Path) -> None:
    """Files written by root inside containers may need a container to remove them."""
    with contextlib.suppress(OSError):
        shutil.rmtree(root)
    if root.exists():
        client.containers.run(TOOLS_IMAGE, entrypoint=["rm", "-rf", "/w/bots"], remove=True,
                              volumes={str(root): {"bind": "/w", "mode": "rw"}}, network_mode="none")
        shutil.rmtree(root, ignore_errors=True)


def sweep_real(client: docker.DockerClient) -> None:
    """Remove the bots and folders of real stacks whose test process is gone (killed before close)."""
    for root in Path(tempfile.gettempdir()).glob(FOLDER_PREFIX + "*"):
        try:
            owner = (root / OWNER_FILE).read_text()
        except OSError:
            continue
        if _alive(owner):
            continue
        for c in _bots_under(client, root):
            with contextlib.suppress(DockerException):
                client.api.remove_container(c["Id"], force=True)
        _remove_folder(client, root)


@dataclass
class Deployment:
    """A deploy's answer, and the bot's container name when hummingbot-api says it made one
    (the current generation appends -YYYYMMDD-HHMMSS to the instance name, legacy does not)."""

    response: httpx.Response
    name: str | None


class RealStack:
    """One real hummingbot-api (``generation`` "current" or "legacy") with its broker and
    database, over a bots folder started as a copy of the generation's own ``bots/``.

    ``with RealStack(client) as stack:`` ... ``stack.deploy("bot", "profile")``.
    """

    def __init__(self, client: docker.DockerClient, generation: str = "current",
                 env: dict[str, str] | None = None, ready_timeout: float = 120) -> None:
        self.client = client
        self.generation = generation
        self.image = api_image(generation)
        self.extra_env = env or {}
        self.ready_timeout = ready_timeout
        self.run_id = uuid.uuid4().hex[:8]
        self.api_name = f"medic-r{self.run_id}-hummingbot-api"
        self.root = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
        self.root.chmod(0o755)  # postgres, run as its own user, works in a folder inside
        (self.root / OWNER_FILE).write_text(str(os.getpid()))
        self.bots = self.root / "bots"
        self.api_port = free_port()
        self.broker_port = free_port()
        self.db_port = free_port()
        self.api = None
        self._broker: subprocess.Popen | None = None
        self._postgres: subprocess.Popen | None = None

    # --- lifecycle -------------------------------------------------------
    def __enter__(self) -> RealStack:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> RealStack:
        sweep_real(self.client)
        self._make_bots_folder()
        self.start_broker()
        self._start_postgres()
        self.api = self.client.containers.run(
            self.image,
            entrypoint=["uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(self.api_port)],
            name=self.api_name, detach=True, network_mode="host", labels=labels(self.run_id),
            environment=self._api_env(),
            # The bots folder at ./bots (the API's relative paths) and at its host path, as upstream's
            # compose: the bots' bind mounts are built from BOTS_PATH as the host sees it.
            volumes=[f"{self.bots}:/hummingbot-api/bots:rw", f"{self.bots}:{self.bots}:rw",
                     "/var/run/docker.sock:/var/run/docker.sock:rw"],
        )
        wait_until(self._ready_or_exited, self.ready_timeout, f"{self.api_name} to answer", interval=0.5)
        if self.api_status() != "running":
            raise AssertionError(f"{self.api_name} exited:\n" + "\n".join(self.lines("all")[-60:]))
        return self

    def close(self) -> None:
        for c in _bots_under(self.client, self.root):
            with contextlib.suppress(DockerException):
                self.client.api.remove_container(c["Id"], force=True)
        if self.api is not None:
            with contextlib.suppress(NotFound):
                self.api.remove(force=True)
            self.api = None
        self.stop_broker()
        self._stop(self._postgres, signal.SIGINT)  # postgres' fast shutdown
        self._postgres = None
        _remove_folder(self.client, self.root)

    # --- the broker and the database ---------------------------------------
    def start_broker(self) -> None:
        """mosquitto on 127.0.0.1:<broker_port>, anonymous allowed (as upstream's compose)."""
        conf = self.root / "mosquitto.conf"
        conf.write_text(f"listener {self.broker_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        "log_dest stdout\nlog_type error\nlog_type warning\nlog_type notice\n")
        with open(self.root / "mosquitto.log", "ab") as out:
            self._broker = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            preexec_fn=_dies_with_parent(signal.SIGTERM),
                                            **_as_user("mosquitto", self.root))
        wait_until(lambda: self._listening(self.broker_port, self._broker), 15, "mosquitto to listen")

    def stop_broker(self) -> None:
        """Stop the broker (a broker outage); start_broker() brings it back on the same port."""
        self._stop(self._broker, signal.SIGTERM)
        self._broker = None

    def _start_postgres(self) -> None:
        """initdb in this stack's folder, then postgres on 127.0.0.1:<db_port> (socket in the folder),
        as the `postgres` user when run as root (postgres refuses root); the role and database of
        DATABASE_URL made over the socket."""
        pg = _postgres_bin()
        data, sockets = self.root / "pgdata", self.root / "pgsock"
        as_user = _as_user("postgres", self.root)
        for folder in (data, sockets):
            folder.mkdir()
            if as_user:
                os.chown(folder, as_user["user"], as_user["group"])
        done = subprocess.run(
            [str(pg / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
             "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
            capture_output=True, text=True, **as_user)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()[-2000:]}")
        with open(self.root / "postgres.log", "ab") as out:
            self._postgres = subprocess.Popen(
                [str(pg / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(self.db_port),
                 "-k", str(sockets), "-c", "fsync=off", "-c", "full_page_writes=off"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                # SIGINT, its fast shutdown: SIGTERM waits for hummingbot-api's connections to end.
                preexec_fn=_dies_with_parent(signal.SIGINT), **as_user)

        def psql(sql: str) -> subprocess.CompletedProcess:
            return subprocess.run([str(pg / "psql"), "-h", str(sockets), "-p", str(self.db_port), "-U",
                                   "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql],
                                  capture_output=True, text=True)

        wait_until(lambda: self._postgres.poll() is not None or psql("SELECT 1").returncode == 0, 30,
                   "postgres to accept connections", interval=0.2)
        if self._postgres.poll() is not None:
            raise RuntimeError("postgres exited:\n" + (self.root / "postgres.log").read_text()[-2000:])
        for sql in (f"CREATE ROLE {DB_USER} LOGIN PASSWORD '{DB_PASSWORD}'",
                    f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}"):
            done = psql(sql)
            if done.returncode != 0:
                raise RuntimeError(f"{sql}: {done.stderr.strip()}")

    @staticmethod
    def _listening(port: int, proc: subprocess.Popen | None) -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process for port {port} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        return False

    @staticmethod
    def _stop(proc: subprocess.Popen | None, sig: signal.Signals) -> None:
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    # --- the bots folder and hummingbot-api --------------------------------
    def _make_bots_folder(self) -> None:
        """A copy of the archive's bots/, with master_account's broker set to ours before any
        profile is made from it (bots read mqtt_host/mqtt_port from their profile, not the env)."""
        prefix = "hummingbot-api/bots/"
        with tarfile.open(VENDOR / "hummingbot-api" / ARCHIVES[self.generation]) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
            for m in members:
                m.name = m.name[len("hummingbot-api/"):]
            tar.extractall(self.root, members=members, filter="data")
        conf = self.bots / "credentials" / "master_account" / "conf_client.yml"
        text = conf.read_text()
        text, hosts = re.subn(r"(?m)^(  mqtt_host:) .*$", r"\1 127.0.0.1", text)
        text, ports = re.subn(r"(?m)^(  mqtt_port:) .*$", rf"\g<1> {self.broker_port}", text)
        if (hosts, ports) != (1, 1):
            raise RuntimeError(f"{conf.name} has no mqtt_bridge host and port to set")
        conf.write_text(text)

    def _api_env(self) -> dict[str, str]:
        return {
            "USERNAME": ADMIN[0], "PASSWORD": ADMIN[1], "CONFIG_PASSWORD": CONFIG_PASSWORD,
            "BROKER_HOST": "127.0.0.1", "BROKER_PORT": str(self.broker_port),
            "DATABASE_URL": f"postgresql+asyncpg://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{self.db_port}/{DB_NAME}",
            "BOTS_PATH": str(self.root),
            **self.extra_env,
        }

    def _ready_or_exited(self) -> bool:
        if self.api_status() != "running":
            return True
        with contextlib.suppress(httpx.HTTPError):
            return self.http("GET", "/bot-orchestration/status", timeout=5).status_code == 200
        return False

    # --- observation -----------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def api_status(self) -> str:
        self.api.reload()
        return self.api.status

    def lines(self, stream: str) -> list[str]:
        """hummingbot-api's log lines: "stdout", "stderr" or "all" (engine order)."""
        return container_lines(self.api, stdout=stream in ("stdout", "all"),
                               stderr=stream in ("stderr", "all"))

    def wait_line(self, stream: str, pattern: str, timeout: float = 30) -> str:
        """Wait until a line of hummingbot-api's stream matches the regex; return it."""
        rx = re.compile(pattern)
        return wait_until(lambda: next((x for x in self.lines(stream) if rx.search(x)), None), timeout,
                          f"/{pattern}/ on {self.api_name}'s {stream}", interval=0.5)

    def bot_containers(self) -> list:
        """The bot containers hummingbot-api made for this stack (running or not)."""
        return [self.client.containers.get(c["Id"]) for c in _bots_under(self.client, self.root)]

    def bot_logs(self, name: str) -> Path:
        """A bot's log folder on the host (errors.log, logs_hummingbot.log, logs_<config>.log)."""
        return self.bots / "instances" / name / "logs"

    def status(self) -> dict:
        """GET /bot-orchestration/status's data: bot name -> its status."""
        answer = self.http("GET", "/bot-orchestration/status")
        answer.raise_for_status()
        return answer.json()["data"]

    # --- HTTP --------------------------------------------------------------
    def http(self, method: str, path: str, *, auth: tuple[str, str] | None = ADMIN, timeout: float = 60,
             **kw) -> httpx.Response:
        with httpx.Client(base_url=self.url, timeout=timeout) as http:
            return http.request(method, path, auth=auth, **kw)

    def add_account(self, profile: str) -> httpx.Response:
        """A credentials profile, as a user makes one (a copy of master_account)."""
        return self.http("POST", "/accounts/add-account", params={"account_name": profile})

    def write_script_config(self, name: str, script: str = "v2_with_controllers.py",
                            **fields) -> httpx.Response:
        """bots/conf/scripts/<name>.yml through hummingbot-api (deploy it as script_config=<name>.yml)."""
        body = {"script_file_name": script, "controllers_config": [], **fields}
        return self.http("POST", f"/scripts/configs/{name}", json=body)

    def deploy(self, instance: str, profile: str, image: str = BOT_IMAGE, script_config: str | None = None,
               script: str | None = None, headless: bool = True, **more) -> Deployment:
        """POST /bot-orchestration/deploy-v2-script (both generations have it)."""
        body = {"instance_name": instance, "credentials_profile": profile, "image": image,
                "headless": headless, **more}
        if script_config is not None:
            body["script_config"] = script_config
        if script is not None:
            body["script"] = script
        response = self.http("POST", "/bot-orchestration/deploy-v2-script", json=body)
        name = None
        if response.status_code == 200 and response.json().get("success"):
            name = response.json().get("unique_instance_name", instance)
        return Deployment(response, name)
