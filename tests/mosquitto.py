"""A real MQTT broker for a test: Debian's mosquitto on a free loopback port, as the real lane runs
it (tests/realstack/stack.py), either open to anonymous clients (upstream's compose) or requiring a
login (a password file made with mosquitto_passwd). Stopped by its pid; dies with the test process."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.realstack.stack import MOSQUITTO, _as_user, _dies_with_parent
from tests.stack import free_port

USER, PASSWORD = "medic", "s3cret-broker"


@contextlib.contextmanager
def mosquitto(anonymous: bool, port: int | None = None) -> Iterator[int]:
    """Yields the port it listens on (127.0.0.1)."""
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="medic-test-mosquitto-") as folder:
        root = Path(folder)
        root.chmod(0o755)  # mosquitto, run as its own user, reads its files here
        conf = [f"listener {port} 127.0.0.1", "persistence false", "log_dest stdout",
                f"allow_anonymous {'true' if anonymous else 'false'}"]
        if not anonymous:
            passwd = root / "passwd"
            subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), USER, PASSWORD], check=True,
                           capture_output=True)
            passwd.chmod(0o644)
            conf.append(f"password_file {passwd}")
        (root / "mosquitto.conf").write_text("\n".join(conf) + "\n")
        with open(root / "mosquitto.log", "ab") as out:
            proc = subprocess.Popen([MOSQUITTO, "-c", str(root / "mosquitto.conf")], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    preexec_fn=_dies_with_parent(signal.SIGTERM),
                                    **_as_user("mosquitto", root))
        try:
            deadline = time.monotonic() + 15
            while True:
                if proc.poll() is not None:
                    raise RuntimeError("mosquitto exited: " + (root / "mosquitto.log").read_text()[-2000:])
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("mosquitto did not listen within 15 s")
                time.sleep(0.1)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
