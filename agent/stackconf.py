"""A stack: one Docker engine and one hummingbot-api (with its optional recorder, bots folder
and credentials folder), as the config file describes it, checked whole at start.

`MEDIC_CONFIG_FILE` may list stacks; without that list the environment's settings are the
one stack named `default`. A stack's engine is `unix://`, `tcp://` (TLS with client
certificates, the server verified against the stack's CA unless said otherwise) or
`ssh://` (paramiko, with the agent user's ~/.ssh/config and known_hosts). Secrets come from files
only: a password is never written in the config file itself. Everything a check finds wrong
names the stack and the field.
"""

from __future__ import annotations

import base64
import os
import ssl
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from agent import sshengine
from agent.names import CONTAINER_NAME_PATTERN, DEFAULT_STACK

STACK_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
ADDR_PATTERN = r"^[^\s:]*:\d{1,5}$"
SCHEMES = ("unix://", "tcp://", "ssh://")
PROVISIONAL_API = "1.24"  # until the engine says its own


def _readable(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ValueError(f"{what} {path}: no such file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{what} {path}: user {os.getuid()} may not read it")
    return path


class TLS(BaseModel):
    """TLS to a `tcp://` engine: the CA that signed the engine's certificate (verification is on
    unless `verify: false`), and the client certificate and key the engine asks for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca: Path | None = Field(None, description="CA certificate (PEM) that signed the engine's certificate.")
    cert: Path | None = Field(None, description="Client certificate (PEM).")
    key: Path | None = Field(None, description="Client key (PEM): a secret, kept in a file only you read.")
    verify: bool = Field(True, description="Verify the engine's certificate against `ca` (on by default).")

    @model_validator(mode="after")
    def _files(self) -> TLS:
        if self.verify and self.ca is None:
            raise ValueError("ca: needed to verify the engine's certificate (or verify: false, which lets"
                             " anyone between the agent and the engine pose as it)")
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key: give both (the client certificate and its key) or neither")
        if self.ca is not None:
            _readable(self.ca, "ca")
            try:
                ssl.create_default_context(cafile=str(self.ca))
            except (ssl.SSLError, ValueError) as exc:
                raise ValueError(f"ca {self.ca}: not a PEM certificate ({exc})") from None
        if self.cert is not None and self.key is not None:
            _readable(self.cert, "cert")
            _readable(self.key, "key")
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(str(self.cert), str(self.key))
            except ssl.SSLError as exc:
                raise ValueError(f"cert {self.cert} and key {self.key}: not a certificate and its own key"
                                 f" in PEM ({exc.reason or exc})") from None
        return self


class StackConfig(BaseModel):
    """One stack of the config file's `stacks:` list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=STACK_NAME_PATTERN, description="Shown in messages, incidents and metrics.")
    docker_host: str | None = Field(
        None, description="unix:///path, tcp://host:port (with tls) or ssh://user@host; the `default` stack"
                          " may leave it out (DOCKER_HOST or the local socket).")
    tls: TLS | Literal["off"] | None = Field(
        None, description="For tcp://: ca, cert, key (verify: true by default); `off` only for a plain"
                          " socket proxy on a private network.")
    containers: list[str] = Field(default_factory=lambda: ["hummingbot-api"], min_length=1)
    hummingbot_url: str = Field("http://127.0.0.1:8000", pattern=r"^https?://[^\s/]+(/\S*)?$")
    hummingbot_username: str = "admin"
    hummingbot_password_file: Path | None = Field(
        None, description="A file holding hummingbot-api's PASSWORD (never the password itself here).")
    recorder_addr: str | None = Field(None, pattern=ADDR_PATTERN)
    bots_dir: Path | None = None
    credentials_dir: Path | None = None
    bots: str | None = Field(None, pattern=r"^[^\s]+$",
                             description="all, off, or name patterns (MEDIC_BOTS).")
    gateway: Literal["auto", "present", "absent"] = Field(
        "auto", description="Whether the stack has a Hummingbot Gateway (MEDIC_GATEWAY); auto: a gateway"
                            " container (named gateway, or of a `*/gateway:*` image) on its engine.")
    # Read from hummingbot_password_file at validation (or the environment, for `default`).
    hummingbot_password: SecretStr | None = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secrets(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("hummingbot_password") is not None \
                and not isinstance(data["hummingbot_password"], SecretStr):
            raise ValueError("hummingbot_password: secrets are not written in the config file: put it in a"
                             " file only the agent's user reads and name it in hummingbot_password_file")
        return data

    @field_validator("tls", mode="before")
    @classmethod
    def _off(cls, value: object) -> object:
        """`tls: off` (YAML reads a bare off as false)."""
        if value is False or (isinstance(value, str) and value.lower() == "off"):
            return "off"
        if value is True:
            raise ValueError("give ca, cert and key (tls: {ca: ..., cert: ..., key: ...}), or off")
        return value

    @field_validator("containers")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        import re

        for name in value:
            if not re.fullmatch(CONTAINER_NAME_PATTERN, name):
                raise ValueError(f"{name[:80]!r} is not a container name")
        return value

    @model_validator(mode="after")
    def _engine(self) -> StackConfig:
        host = self.docker_host
        if host is None:
            if self.name != DEFAULT_STACK:
                raise ValueError("docker_host: needed (unix:///var/run/docker.sock, tcp://host:2376 or"
                                 " ssh://user@host): only the stack `default` may use the environment's"
                                 " engine")
        elif not host.startswith(SCHEMES) or len(host) <= 7 or any(c.isspace() for c in host):
            raise ValueError(f"docker_host: {host[:80]!r} is not unix://, tcp:// or ssh://")
        tcp = host is not None and host.startswith("tcp://")
        if tcp and self.tls is None:
            raise ValueError("tls: a tcp:// engine needs TLS (ca, cert, key): the Docker API is root on that"
                             " host; `tls: off` only for a socket proxy on a private network")
        if not tcp and self.tls is not None:
            raise ValueError("tls: only for a tcp:// engine (unix:// and ssh:// bring their own security)")
        if self.hummingbot_password_file is not None:
            path = _readable(self.hummingbot_password_file, "hummingbot_password_file")
            secret = path.read_text().strip()
            if not secret:
                raise ValueError(f"hummingbot_password_file {path}: empty")
            object.__setattr__(self, "hummingbot_password", SecretStr(secret))
        return self

    @property
    def remote(self) -> bool:
        return self.docker_host is not None and not self.docker_host.startswith("unix://")

    def engine(self) -> str:
        """Where its engine is, as a person would write it."""
        return self.docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    def plain_engine(self) -> str | None:
        """Why its engine is spoken to in plain HTTP without its config saying so, or None: an
        engine taken from DOCKER_HOST=tcp://... with neither DOCKER_TLS_VERIFY nor DOCKER_CERT_PATH
        (docker-py then uses no TLS). `tls: off` in the config file is a choice, warned of apart."""
        host = os.environ.get("DOCKER_HOST", "")
        if self.docker_host is not None or not host.startswith("tcp://"):
            return None
        if os.environ.get("DOCKER_TLS_VERIFY") or os.environ.get("DOCKER_CERT_PATH"):
            return None
        return (f"DOCKER_HOST={host} without TLS: the Docker API, root on that host, goes in plain HTTP;"
                " anyone on that network can use it or pose as it. Fine for a socket proxy on a private"
                " network (compose.hardened.yaml); otherwise set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH,"
                " or name the engine with tls in MEDIC_CONFIG_FILE")

    def secrets(self) -> list[str]:
        """Values never shown: the password, and the login in HTTP Basic's form (the base64 of
        `user:password`, as an `Authorization: Basic` header or alone, padded or not)."""
        if not self.hummingbot_password:
            return []
        password = self.hummingbot_password.get_secret_value()
        return [password, *basic_forms(self.hummingbot_username, password)]


def basic_forms(user: str, password: str) -> list[str]:
    """The login as HTTP Basic sends it: base64 of `user:password` (standard and URL-safe
    alphabets, with and without its padding)."""
    raw = f"{user}:{password}".encode()
    forms = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    return sorted(forms | {f.rstrip("=") for f in forms})


def engine_client(stack: StackConfig, *, timeout: float = 60, max_pool_size: int = 10):
    """A docker-py client for the stack's engine. Nothing is sent until it is used."""
    import docker
    from docker.tls import TLSConfig

    if stack.docker_host is None:
        return docker.from_env(timeout=timeout, max_pool_size=max_pool_size)
    if stack.docker_host.startswith("ssh://"):
        sshengine.enable()
        # paramiko, as docker-py does it: the user's ~/.ssh/config and known_hosts, an unknown host
        # key refused; no ssh client needed where the agent runs.
        return docker.DockerClient(base_url=stack.docker_host, timeout=timeout, max_pool_size=max_pool_size)
    if not isinstance(stack.tls, TLS):
        return docker.DockerClient(base_url=stack.docker_host, timeout=timeout, max_pool_size=max_pool_size)
    cert = (str(stack.tls.cert), str(stack.tls.key)) if stack.tls.cert and stack.tls.key else None
    tls = TLSConfig(client_cert=cert, ca_cert=str(stack.tls.ca) if stack.tls.ca else None,
                    verify=stack.tls.verify)
    # Made without asking the engine's version yet: requests lets REQUESTS_CA_BUNDLE (set on many
    # hosts) replace the stack's own CA unless the environment is ignored, so it is, first.
    client = docker.DockerClient(base_url=stack.docker_host, tls=tls, timeout=timeout,
                                 max_pool_size=max_pool_size, version=PROVISIONAL_API)
    client.api.trust_env = False
    client.api._version = client.api._retrieve_server_version()
    return client


def engine_problem(exc: BaseException) -> str:
    """Why an engine did not answer, in words that say what to fix: a TLS failure is a
    configuration problem (no retry heals it), and docker-py buries it in a chain of wrappers."""
    text = " ".join(str(e) for e in _chain(exc))
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        if "mismatch" in text or ("match" in text and "hostname" in text):
            return ("TLS: the engine's certificate is not for the address in docker_host (its subject"
                    " alternative names must hold that host or IP)")
        return ("TLS: the engine's certificate is not signed by this stack's CA (tls.ca): the engine is"
                " not who docker_host says, or tls.ca is the wrong file")
    names = {type(e).__name__ for e in _chain(exc)}
    if "not found in known_hosts" in text:
        return ("SSH: the engine host's key is not in the agent user's ~/.ssh/known_hosts: check it, then add"
                " it (ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts); an unknown host is never trusted")
    if "AuthenticationException" in names or "BadAuthenticationType" in names:
        return ("SSH: the engine host refused the login: give the agent's user the key it accepts"
                " (IdentityFile in ~/.ssh/config, or an ssh-agent)")
    if "SSHException" in names or "NoValidConnectionsError" in names:
        return f"SSH: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        return "TLS: the engine at docker_host does not speak TLS there (a plain tcp:// port?)"
    if "SSL" in text or "TLSV1_ALERT" in text or "tlsv1 alert" in text:
        return ("TLS: the engine refused the handshake: it does not accept this stack's client"
                " certificate (tls.cert and tls.key must be signed by the CA the engine trusts, its"
                " --tlscacert)")
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return first[:200]


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out and len(out) < 10:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out
