"""A Docker engine of the test's own, beside the shared one: its own dockerd with its own
socket, data root, exec root and pid file under a temporary folder, no bridge and no iptables
rules; optionally also listening on tcp://127.0.0.1:<port> with TLS, from certificates made
at test time (openssl). The shared engine is never touched: this one is stopped by its pid
and removed when done, and dies with the process that started it.

Nothing can be pulled here: images come from the shared engine (`docker save | docker load`,
all of them in one archive so shared layers travel once).
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import DockerException

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process goes, however it goes."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _openssl(*args: str, cwd: Path) -> None:
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {out.stderr.strip()[-500:]}")


@dataclass(frozen=True)
class Certs:
    """A CA, the engine's certificate (for 127.0.0.1) and a client certificate it signed; and a
    client certificate of another CA, which the engine must refuse."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    def pair(self, name: str) -> tuple[Path, Path]:
        return self.folder / f"{name}-cert.pem", self.folder / f"{name}-key.pem"

    @classmethod
    def make(cls, folder: Path) -> Certs:
        folder.mkdir(parents=True, exist_ok=True)
        curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for ca in ("ca", "other-ca"):
            _openssl("req", "-x509", *curve, "-keyout", f"{ca}-key.pem", "-out", f"{ca}.pem", "-days", "2",
                     "-subj", f"/CN=medic-test {ca}", cwd=folder)
        for name, ca, usage in (("server", "ca", "serverAuth"), ("client", "ca", "clientAuth"),
                                ("stranger", "other-ca", "clientAuth")):
            ext = folder / f"{name}.ext"
            ext.write_text(f"subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n")
            _openssl("req", *curve, "-keyout", f"{name}-key.pem", "-out", f"{name}.csr",
                     "-subj", f"/CN=medic-test {name}", cwd=folder)
            _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}-key.pem",
                     "-CAcreateserial", "-out", f"{name}-cert.pem", "-days", "2", "-extfile", ext.name,
                     cwd=folder)
        for key in folder.glob("*-key.pem"):
            key.chmod(0o600)
        return cls(folder)


class SecondEngine:
    def __init__(self, *, tls_port: int | None = None) -> None:
        # Short paths: containerd's socket under the exec root must fit a unix socket path.
        self.root = Path(tempfile.mkdtemp(prefix="mse-", dir="/tmp"))
        self.socket = self.root / "d.sock"
        self.url = f"unix://{self.socket}"
        self.tls_port = tls_port
        self.certs = Certs.make(self.root / "certs") if tls_port is not None else None
        self.proc: subprocess.Popen | None = None
        self.log = self.root / "dockerd.log"
        self.driver = "overlay2"

    @property
    def tcp_url(self) -> str:
        assert self.tls_port is not None
        return f"tcp://127.0.0.1:{self.tls_port}"

    def _argv(self) -> list[str]:
        binary = shutil.which("dockerd")
        if binary is None:
            raise RuntimeError("dockerd is not installed: a second engine needs it (scripts/engine"
                               " installs it)")
        argv = [binary, "--host", self.url, "--data-root", str(self.root / "data"),
                "--exec-root", str(self.root / "x"), "--pidfile", str(self.root / "d.pid"),
                "--iptables=false", "--ip6tables=false", "--bridge=none", f"--storage-driver={self.driver}",
                "--log-level=warn"]
        if self.certs is not None:
            server_cert, server_key = self.certs.pair("server")
            argv += ["--host", f"tcp://127.0.0.1:{self.tls_port}", "--tlsverify",
                     "--tlscacert", str(self.certs.ca), "--tlscert", str(server_cert),
                     "--tlskey", str(server_key)]
        return argv

    def start(self, timeout: float = 60.0) -> SecondEngine:
        """Start (again, after stop: same data, so containers with a restart policy come back)."""
        for attempt in (1, 2):
            with self.log.open("ab") as fh:
                self.proc = subprocess.Popen(self._argv(), stdout=fh, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.answers():
                    return self
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError(f"the second dockerd did not answer within {timeout:.0f} s")
            if attempt == 1 and self.driver == "overlay2":  # as scripts/engine: vfs where overlay fails
                self.driver = "vfs"
                continue
        raise RuntimeError(f"the second dockerd exited: {self.log.read_text()[-2000:]}")

    def answers(self) -> bool:
        client = None
        try:
            client = docker.DockerClient(base_url=self.url, timeout=5)
            return bool(client.ping())
        except (DockerException, OSError):
            return False
        finally:
            if client is not None:
                client.close()

    def stop(self) -> None:
        """SIGTERM to our dockerd, as a service manager stops it (its containers stop with it)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def restart(self) -> float:
        """Stop and start again; returns the moment (time.monotonic) it answers again."""
        self.stop()
        self.start()
        return time.monotonic()

    def client(self, timeout: float = 120) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, timeout=timeout)

    @contextlib.contextmanager
    def using(self) -> Iterator[docker.DockerClient]:
        client = self.client()
        try:
            yield client
        finally:
            client.close()

    def load_images(self, shared: docker.DockerClient, images: list[str]) -> None:
        """The images, from the shared engine, in one archive (`docker save | docker load`)."""
        resp = shared.api._get(shared.api._url("/images/get"), params={"names": images}, stream=True)
        shared.api._raise_for_status(resp)
        with self.using() as mine:
            for _ in mine.api.load_image(resp.iter_content(1 << 20)):
                pass
            for image in images:
                mine.images.get(image)  # there under its name: running it never tries a registry

    def close(self) -> None:
        with contextlib.suppress(Exception), self.using() as mine:
            for c in mine.api.containers(all=True):
                with contextlib.suppress(DockerException):
                    mine.api.remove_container(c["Id"], force=True)
        self.stop()
        # dockerd unmounts its layers on a clean stop; anything left mounted is not deleted.
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(self.root))]
        for mount in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True)
        # Its image layers take a while to delete: done beside the tests, not in their way.
        subprocess.Popen(["rm", "-rf", str(self.root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)


class SshGate:
    """An sshd of the test's own on 127.0.0.1:<port> (keys made at test time, root by key only),
    through which `ssh://root@127.0.0.1:<port>` reaches this host's engine (`docker system
    dial-stdio`), and a home folder for the agent with the ~/.ssh/config and known_hosts that
    let it in. Stopped by its pid; dies with the test process."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="mssh-", dir="/tmp"))
        self.home = self.root / "home"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"ssh://root@127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> SshGate:
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        if not Path(sshd).exists():
            raise RuntimeError("sshd is not installed: the ssh:// stack test needs it (scripts/prepare"
                               " installs openssh-server)")
        for name in ("host", "client"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.root / name)],
                           check=True)
        (self.root / "authorized_keys").write_text((self.root / "client.pub").read_text())
        ssh = self.home / ".ssh"
        ssh.mkdir(parents=True)
        host_key = " ".join((self.root / "host.pub").read_text().split()[:2])
        (ssh / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_key}\n")
        (ssh / "config").write_text(f"Host 127.0.0.1\n  IdentityFile {self.root / 'client'}\n")
        for f in (*ssh.iterdir(), self.root / "authorized_keys"):
            f.chmod(0o600)
        Path("/run/sshd").mkdir(exist_ok=True)  # its privilege separation folder
        with (self.root / "sshd.log").open("ab") as fh:
            self.proc = subprocess.Popen(
                [sshd, "-D", "-e", "-f", "/dev/null", "-o", f"Port={self.port}",
                 "-o", "ListenAddress=127.0.0.1", "-o", f"HostKey={self.root / 'host'}",
                 "-o", f"AuthorizedKeysFile={self.root / 'authorized_keys'}",
                 "-o", "PermitRootLogin=prohibit-password", "-o", "PasswordAuthentication=no",
                 "-o", f"PidFile={self.root / 'sshd.pid'}", "-o", "StrictModes=no", "-o", "UsePAM=no"],
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while "Server listening" not in (self.root / "sshd.log").read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {(self.root / 'sshd.log').read_text()[-1000:]}")
            time.sleep(0.05)
        return self

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.root, ignore_errors=True)
