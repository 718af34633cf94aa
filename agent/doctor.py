"""`hb-medic doctor`: can the agent do its job here? Each check says ✓ or ✗, and for ✗ the fix.

A check is one function registered with :func:`check`: it gets the :class:`Doctor`
(settings, a Docker client, hummingbot-api's URL...) and yields :class:`Finding`s.
The exit status is 0 only when no finding the configured features need failed.
"""

from __future__ import annotations

import difflib
import errno
import json
import os
import socket
import sqlite3
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import docker
import httpx
from docker.errors import DockerException, NotFound

from agent import __version__
from agent.settings import SECRETS_DIR, BadSettings, Settings, load

OK, FAIL = "✓", "✗"


@dataclass
class Finding:
    ok: bool
    what: str  # what was found, in a line
    fix: str = ""  # for a failure: exactly what to do


class Doctor:
    """What the checks share; the Docker client is made once, on first use."""

    def __init__(self, settings: Settings, bad: dict[str, str], send: bool = False) -> None:
        self.settings = settings
        self.bad = bad  # settings that failed validation (field -> message); defaults in their place
        self.send = send
        self._docker: docker.DockerClient | None = None
        self.docker_error: str | None = None

    def docker(self) -> docker.DockerClient | None:
        """A client that answered a ping, or None (the reason in docker_error)."""
        if self._docker is None and self.docker_error is None:
            try:
                client = docker.from_env(timeout=10)
                client.ping()
                self._docker = client
            except DockerException as exc:
                self.docker_error = str(exc)
        return self._docker

    def own_health(self) -> dict | None:
        """The /healthz of an agent running with these settings on this host, if one answers."""
        host, port = _addr(self.settings.http_addr)
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=3) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 503: unhealthy, but it is an agent answering
            try:
                return json.loads(exc.read())
            except ValueError:
                return None
        except (OSError, ValueError):
            return None


Check = Callable[[Doctor], Iterable[Finding]]
CHECKS: list[Check] = []


def check(fn: Check) -> Check:
    """Register a check; they run in the order they are registered."""
    CHECKS.append(fn)
    return fn


def _addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return ("127.0.0.1" if host in ("", "0.0.0.0") else host), int(port)


# -- the checks ---------------------------------------------------------------------------------

@check
def settings_valid(d: Doctor) -> Iterator[Finding]:
    for message in d.bad.values():
        yield Finding(False, message, "fix the value (environment, secret file or MEDIC_CONFIG_FILE);"
                                      " the checks below use the default meanwhile")
    if d.settings.hummingbot_password is None:
        yield Finding(False, "hummingbot-api's password is not set: the agent will not start",
                      f"write it to the secret file {SECRETS_DIR}/medic_hummingbot_password (compose:"
                      " secrets/hummingbot_password) or set MEDIC_HUMMINGBOT_PASSWORD")
    elif not d.bad:
        yield Finding(True, "settings valid")


@check
def docker_engine(d: Doctor) -> Iterator[Finding]:
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    client = d.docker()
    if client is None:
        yield Finding(False, f"Docker engine at {host} does not answer: {d.docker_error}", docker_fix(host))
        return
    v = client.version()
    yield Finding(True, f"Docker engine {v.get('Version', '?')} (API {v.get('ApiVersion', '?')}, "
                        f"{v.get('Os', '?')}/{v.get('Arch', '?')}) at {host}")


def docker_fix(host: str) -> str:
    """The fix for an engine that does not answer, by how it is reached."""
    if host.startswith("unix://"):
        path = host[len("unix://"):]
        if not os.path.exists(path):
            return (f"mount the Docker socket into the container ({path}:{path}), or set DOCKER_HOST to the"
                    " engine (the hardened compose: its socket proxy)")
        if not os.access(path, os.R_OK | os.W_OK):
            gid = os.stat(path).st_gid
            return (f"user {os.getuid()} may not use {path} (group {gid}): add that group to the container"
                    f" (compose: DOCKER_GID={gid}, group_add)")
        return f"is the Docker engine running? (systemctl status docker; docker -H {host} info)"
    return f"start the engine or socket proxy that DOCKER_HOST={host} names, or correct DOCKER_HOST"


@check
def followed_containers(d: Doctor) -> Iterator[Finding]:
    client = d.docker()
    if client is None:
        return  # the engine's own ✗ says why
    # The raw list: no inspect of each container (one removed meanwhile would fail the check).
    names = [n.lstrip("/") for c in client.api.containers(all=True) for n in c.get("Names") or []]
    for name in d.settings.containers:
        try:
            c = client.containers.get(name)
        except NotFound:
            near = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            yield Finding(False, f"container {name}: not found on this engine",
                          (f"did you mean {near[0]}? " if near else "")
                          + f"start {name}, or set MEDIC_CONTAINERS to the names of the containers to follow"
                            " (docker ps -a --format '{{.Names}}')")
            continue
        state = c.attrs.get("State", {})
        if c.status == "running":
            since = state.get("StartedAt", "?")[:19]
            yield Finding(True, f"container {name}: running ({_image(c)}, since {since})")
        else:
            yield Finding(False, f"container {name}: {c.status} (exit code {state.get('ExitCode')})"
                                 " (the agent follows it again when it starts)",
                          f"docker logs --tail 50 {name} says why it stopped; start it: docker start {name}")


def _image(container) -> str:
    tags = container.image.tags if container.image is not None else []
    return tags[0] if tags else container.attrs.get("Config", {}).get("Image", "?")


@check
def hummingbot_api(d: Doctor) -> Iterator[Finding]:
    s = d.settings
    url = s.hummingbot_url.rstrip("/")
    try:
        root = httpx.get(url + "/", timeout=5)
    except httpx.HTTPError as exc:
        yield Finding(False, f"hummingbot-api at {url} cannot be reached: {exc}",
                      "start hummingbot-api, or set MEDIC_HUMMINGBOT_URL (on its compose network:"
                      " http://hummingbot-api:8000; on the host network: http://127.0.0.1:8000)")
        return
    if s.hummingbot_password is None:
        yield Finding(True, f"hummingbot-api at {url} answers (HTTP {root.status_code}); login not checked:"
                            " no password")
        return
    auth = (s.hummingbot_username, s.hummingbot_password.get_secret_value())
    try:
        resp = httpx.get(url + "/accounts/", auth=auth, timeout=10)
    except httpx.HTTPError as exc:
        yield Finding(False, f"hummingbot-api at {url} answered / but not /accounts/: {exc}",
                      "check hummingbot-api's log: docker logs --tail 50 hummingbot-api")
        return
    if resp.status_code == 401:
        yield Finding(False, f"hummingbot-api at {url} refused the login of user {s.hummingbot_username}"
                             " (401)",
                      "give the agent hummingbot-api's USERNAME and PASSWORD (its .env):"
                      " MEDIC_HUMMINGBOT_USERNAME and the secret file"
                      f" {SECRETS_DIR}/medic_hummingbot_password")
    elif resp.is_success:
        yield Finding(True, f"hummingbot-api at {url} accepts the login of user {s.hummingbot_username}")
    else:
        yield Finding(False, f"hummingbot-api at {url} answered /accounts/ with HTTP {resp.status_code}",
                      "check hummingbot-api's log: docker logs --tail 50 hummingbot-api")


def _port_free(host: str, port: int) -> str | None:
    """None when the port can be listened on, else why not."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            s.bind((host, port))
        except OSError as exc:
            return "in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
    return None


@check
def listening_ports(d: Doctor) -> Iterator[Finding]:
    s = d.settings
    ports = [("health and metrics", "MEDIC_HTTP_ADDR", s.http_addr)]
    if s.recorder_addr:
        ports.append(("deploy recorder", "MEDIC_RECORDER_ADDR", s.recorder_addr))
    else:
        yield Finding(True, "deploy recorder: off (set MEDIC_RECORDER_ADDR=0.0.0.0:8001 and point clients"
                            " at it so a failed deploy can be re-sent exactly)")
    health = None
    for what, setting, addr in ports:
        host, _, port = addr.rpartition(":")
        problem = _port_free(host or "0.0.0.0", int(port))
        if problem is None:
            yield Finding(True, f"{what}: {addr} is free for the agent")
            continue
        if problem == "in use":
            health = health if health is not None else (d.own_health() or {})
            mine = health and (setting == "MEDIC_HTTP_ADDR" or health.get("recorder") == addr)
            if mine:
                yield Finding(True, f"{what}: {addr} is the running agent's")
                continue
        yield Finding(False, f"{what}: cannot listen on {addr}: {problem}",
                      f"stop what listens there (ss -ltnp 'sport = :{port}') or set {setting} to a free port")


@check
def rules(d: Doctor) -> Iterator[Finding]:
    from agent.match.library import load_library

    lib = load_library(d.settings.rules_dir)
    if lib.errors:
        shown = "; ".join(str(e) for e in lib.errors[:3]) + (" ..." if len(lib.errors) > 3 else "")
        yield Finding(False, f"rules: {len(lib.errors)} error(s): {shown}",
                      "hb-medic rules check" + (f" --rules {lib.user}" if lib.user else "")
                      + " lists them with file and line; fix or remove those files")
    else:
        yield Finding(True, f"rules: {lib.describe()}")


@check
def state_file(d: Doctor) -> Iterator[Finding]:
    path = d.settings.state_db
    fix = (f"set MEDIC_STATE_DB to a file in a folder user {os.getuid()} may write (the image: a volume"
           " at /data)")
    if path.exists():
        try:
            with sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=5) as db:
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            yield Finding(False, f"state file {path}: cannot open it for writing: {exc}", fix)
            return
        yield Finding(True, f"state file {path}: writable")
        return
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if os.access(parent, os.W_OK | os.X_OK):
        yield Finding(True, f"state file {path}: will be created")
    else:
        yield Finding(False, f"state file {path}: cannot be created ({parent} is not writable)", fix)


@check
def folders(d: Doctor) -> Iterator[Finding]:
    s = d.settings
    for setting, path, what, mount in (
            ("MEDIC_BOTS_DIR", s.bots_dir, "hummingbot-api's bots/ folder",
             "../hummingbot-api/bots:/bots:ro"),
            ("MEDIC_CREDENTIALS_DIR", s.credentials_dir, "exchange keys to provision",
             "./credentials:/credentials:ro")):
        if path is None:
            continue
        if not path.is_dir():
            yield Finding(False, f"{setting} {path}: no such folder",
                          f"mount {what} there (compose: {mount}) or unset {setting}")
        elif not os.access(path, os.R_OK | os.X_OK):
            yield Finding(False, f"{setting} {path}: user {os.getuid()} may not read it",
                          f"let user {os.getuid()} read it (chmod o+rx, or a group the container has)")
        elif setting == "MEDIC_BOTS_DIR" and not any((path / sub).is_dir()
                                                     for sub in ("instances", "credentials")):
            yield Finding(False, f"{setting} {path}: not hummingbot-api's bots/ folder (no instances/ or"
                                 " credentials/ in it)", f"mount {what} there (compose: {mount})")
        elif setting == "MEDIC_CREDENTIALS_DIR" and (unsafe := _unsafe_keys(path)):
            yield Finding(False, f"{setting}: {unsafe}", "keys are read only from regular files that only"
                                                         " their owner may change: copy, chmod go-w")
        else:
            yield Finding(True, f"{setting} {path}: readable")


def _unsafe_keys(root: Path) -> str | None:
    """Why provisioning would refuse a key file under the folder (links, writable by others)."""
    from agent.actions.base import ActionError
    from agent.actions.keyfiles import placed_keys

    try:
        for profile in sorted(p.name for p in root.iterdir()):
            placed_keys(root, profile)
    except ActionError as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot read {root}: {exc.strerror}"
    return None


@check
def notify_targets(d: Doctor) -> Iterator[Finding]:
    from agent.notify.notifier import deliver
    from agent.notify.sample import sample_message
    from agent.notify.targets import TargetError
    from agent.redact import Redactor
    from agent.service import notify_targets as parse

    try:
        targets = parse(d.settings, Redactor())
    except TargetError as exc:
        yield Finding(False, f"notifications: {exc}",
                      "correct MEDIC_NOTIFY_URLS / MEDIC_NOTIFY_CONFIG; try one URL with"
                      " hb-medic notify test --url URL")
        return
    if not targets:
        yield Finding(True, "notifications: off: nobody is told (set MEDIC_NOTIFY_URLS, e.g."
                            " tgram://BOTTOKEN/CHATID, in the secret file medic_notify_urls)")
        return
    for t in targets:
        tags = f" (only {', '.join(sorted(t.tags))})" if t.tags else ""
        if not d.send:
            yield Finding(True, f"notify target {t.private}{tags}: parsed (--send sends a test message)")
            continue
        ok, error = deliver(t, sample_message())
        yield (Finding(True, f"notify target {t.private}{tags}: test message sent") if ok else
               Finding(False, f"notify target {t.private}{tags}: sending failed ({error})",
                       "check the token and chat or channel in the URL, and that this host reaches"
                       " the service"))


@check
def mode(d: Doctor) -> Iterator[Finding]:
    s = d.settings
    if s.mode == "observe":
        yield Finding(True, "mode: observe: the agent records and reports what it would do and changes"
                            " nothing (MEDIC_MODE=enforce to let it act)")
    else:
        yield Finding(True, f"mode: enforce: the agent repairs what a rule knows (at most {s.action_budget}"
                            " fix attempts an hour) and re-sends the failed deploy"
                            " (MEDIC_MODE=observe to only report)")


# -- the command ----------------------------------------------------------------------------------

def run(send: bool = False, out: TextIO | None = None, checks: list[Check] | None = None) -> int:
    out = out or sys.stdout
    try:
        settings, bad = load(), {}
    except BadSettings as exc:
        settings, bad = load(needs=()), exc.problems
    d = Doctor(settings, bad, send=send)
    print(f"hb-medic {__version__} doctor", file=out)
    failed = total = 0
    for fn in checks if checks is not None else CHECKS:
        try:
            findings = list(fn(d))
        except Exception as exc:  # a check that breaks is a failed check, not a crash
            findings = [Finding(False, f"{fn.__name__}: the check itself failed: {exc!r}",
                                "report this with the output of hb-medic doctor")]
        for f in findings:
            total += 1
            failed += not f.ok
            print(f"{OK if f.ok else FAIL} {f.what}", file=out)
            if not f.ok and f.fix:
                print(f"    fix: {f.fix}", file=out)
    if failed:
        print(f"{failed} of {total} checks failed: fix them and run hb-medic doctor again", file=out)
        return 1
    print(f"all {total} checks passed: hb-medic can do its job here", file=out)
    return 0
