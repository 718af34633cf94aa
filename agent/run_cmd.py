"""`hb-medic run` (the agent) and `hb-medic health` (is the running agent healthy?)."""

from __future__ import annotations

import argparse
import os
import sys
import threading

from agent.commands import command, read_settings, setup_logging, signals


def _engine_problem(done: threading.Event, patience: float = 10.0) -> str | None:
    """None when the Docker engine answers (a socket proxy over TCP, started beside the agent,
    gets a few seconds to come up; a local socket answers or not); else one line with the fix,
    instead of a traceback."""
    import time

    import docker
    from docker.errors import DockerException

    from agent.doctor import docker_fix

    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    deadline = time.monotonic() + (0 if host.startswith("unix://") else patience)
    while True:
        try:
            docker.from_env(timeout=10).close()
            return None
        except DockerException as exc:
            if done.is_set():
                return None  # asked to stop meanwhile: no complaint
            if time.monotonic() > deadline or done.wait(1.0):
                if done.is_set():
                    return None
                return f"the Docker engine at {host} does not answer: {exc}\n    fix: {docker_fix(host)}"


def _plain_http_addr() -> str | None:
    """The address when only the environment can set it (no config file, no secret file) and it
    is well formed; else None, and the settings decide (and say what is wrong). The image's
    HEALTHCHECK runs `hb-medic health` every 15 s: this spares it loading pydantic each time
    (0.4 s instead of 1.5 s)."""
    import re

    from agent.names import DEFAULT_HTTP_ADDR, HTTP_ADDR_PATTERN, SECRETS_DIR

    if os.environ.get("MEDIC_CONFIG_FILE") or os.path.exists(os.path.join(SECRETS_DIR, "medic_http_addr")):
        return None
    addr = os.environ.get("MEDIC_HTTP_ADDR", DEFAULT_HTTP_ADDR)  # settings.Settings reads the same
    return addr if re.fullmatch(HTTP_ADDR_PATTERN, addr) else None


@command("run", help="run the agent (settings from MEDIC_* environment variables)")
def run(args: argparse.Namespace) -> int:
    from agent import logs
    from agent.notify.targets import TargetError
    from agent.service import RecorderError, RulesError, Service, SettingsError
    from agent.settings import BadSettings

    done = signals()  # before anything slow: a stop during start-up is honoured
    setup_logging()
    settings = read_settings()
    if settings is None:
        return 2
    try:
        service = Service(settings)
        logs.setup(settings.log_format, service.redactor, level=settings.log_level)
    except RulesError as exc:
        print(f"hb-medic: the rules have errors:\n{exc}", file=sys.stderr)
        return 2
    except (RecorderError, TargetError, SettingsError, BadSettings, OSError) as exc:
        print(f"hb-medic: {exc}", file=sys.stderr)
        return 2
    # One stack on the environment's engine (the setup of a container beside hummingbot-api): an
    # engine that does not answer at start is a setup problem, said once. With several stacks,
    # each stack's engine is its own business: the others start anyway.
    problem = _engine_problem(done) if not service.show_stack else None
    if problem:  # nothing has started yet: the process ends here
        print(f"hb-medic: {problem}", file=sys.stderr)
        return 2
    if done.is_set():  # stopped while starting: nothing runs yet, so nothing to stop
        service.store.close()
        return 0
    service.start()
    done.wait()
    service.stop()
    return 0


@command("health", help="exit 0 when the running agent's /healthz says healthy (HEALTHCHECK)")
def health(args: argparse.Namespace) -> int:
    """Asks where the agent listens (MEDIC_HTTP_ADDR, or the config file's http_addr); a bad
    address is unhealthy, as an agent that cannot answer."""
    import urllib.request

    addr = _plain_http_addr()
    if addr is None:
        from agent.settings import BadSettings, load

        try:
            addr = load({"http_addr"}).http_addr
        except BadSettings as exc:
            for message in exc.problems.values():
                print(f"hb-medic: {message}", file=sys.stderr)
            return 1
    host, _, port = addr.rpartition(":")
    host = "127.0.0.1" if host in ("", "0.0.0.0") else host
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=3) as resp:
            print(resp.read().decode())
            return 0
    except Exception as exc:  # 503 (unhealthy) and connection errors alike
        body = exc.read().decode() if hasattr(exc, "read") else str(exc)
        print(body, file=sys.stderr)
        return 1
