"""docker-py's ssh:// transport (paramiko), loaded only when a stack's engine uses it.

docker-py imports paramiko, and with it cryptography, as it loads its transports: about 20 MB
of memory in every agent, though most stacks reach their engine by unix:// or tcp://. `defer`
(run as the agent package loads, before docker-py) holds that import back; `enable` makes it
when an ssh:// engine client is about to be made. docker-py's own fallback for a missing
paramiko (`try: from .sshconn import ... except ImportError`) is what `defer` relies on, so the
docker version is pinned below its next major in pyproject.toml and the ssh:// stack test
checks the whole path.
"""

from __future__ import annotations

import os
import sys
import threading

_TRANSPORT = "docker.transport.sshconn"
_lock = threading.Lock()


def defer() -> None:
    """Hold back docker-py's ssh transport, unless docker-py is already loaded or the
    environment's own engine (DOCKER_HOST) is an ssh:// one."""
    if "docker" in sys.modules or os.environ.get("DOCKER_HOST", "").startswith("ssh://"):
        return
    sys.modules.setdefault(_TRANSPORT, None)  # type: ignore[arg-type]  # an ImportError for docker-py


def enable() -> None:
    """Load the ssh transport (once) and hand it to docker-py, as its own import would have."""
    with _lock:
        if sys.modules.get(_TRANSPORT, False) is not None:
            return
        del sys.modules[_TRANSPORT]
        import docker.api.client
        import docker.transport
        from docker.transport.sshconn import SSHHTTPAdapter

        docker.transport.SSHHTTPAdapter = SSHHTTPAdapter
        docker.api.client.SSHHTTPAdapter = SSHHTTPAdapter


def errors() -> tuple[type[Exception], ...]:
    """paramiko's exception for an ssh:// engine that does not let the agent in; none while no
    ssh:// engine is used (nothing could raise it)."""
    paramiko = sys.modules.get("paramiko")
    return (paramiko.SSHException,) if paramiko is not None else ()
