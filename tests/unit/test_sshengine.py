"""docker-py's ssh:// transport is loaded only for an ssh:// engine: an agent of unix:// and
tcp:// stacks does not carry paramiko and cryptography (about 20 MB). Each case runs in a
fresh interpreter, as the agent starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(code: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"} | env
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=environ, capture_output=True,
                          text=True, timeout=60)


def test_the_agent_loads_without_paramiko():
    done = run("import sys, agent.cli, agent.service, agent.doctor, docker\n"
               "from agent import sshengine\n"
               "print('paramiko' in sys.modules, 'cryptography' in sys.modules, sshengine.errors())")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "()"]


def test_an_ssh_engine_loads_the_transport_and_its_errors():
    done = run("import sys, agent.service, docker.api.client, docker.transport\n"
               "from agent import sshengine\n"
               "sshengine.enable(); sshengine.enable()\n"
               "print(docker.api.client.SSHHTTPAdapter is docker.transport.SSHHTTPAdapter,"
               " [e.__name__ for e in sshengine.errors()])")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "['SSHException']"]


def test_an_ssh_docker_host_in_the_environment_is_never_held_back():
    done = run("import agent.cli, docker.api.client\nprint(hasattr(docker.api.client, 'SSHHTTPAdapter'))",
               DOCKER_HOST="ssh://nobody@127.0.0.1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True"]


def test_an_ssh_stack_without_the_transport_yet_gets_it():
    """The client docker-py makes for ssh:// tries to connect at once: refused here, as paramiko
    (not as 'install paramiko') says."""
    done = run("import socket\n"
               "s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()\n"
               "from agent.stackconf import StackConfig, engine_client, engine_problem\n"
               "stack = StackConfig(name='lab', docker_host=f'ssh://nobody@127.0.0.1:{port}',"
               " containers=['x'], hummingbot_url='http://127.0.0.1:1')\n"
               "try:\n    engine_client(stack, timeout=5)\nexcept Exception as exc:\n"
               "    print(type(exc).__name__, '|', engine_problem(exc))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("NoValidConnectionsError | SSH: "), (done.stdout, done.stderr)
