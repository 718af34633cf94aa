"""`hb-medic doctor`: can the agent do its job here? Each check says ✓ or ✗, and for ✗ the fix;
`!` is a warning: the agent works, but something is exposed (with what to do about it).

A check is one function registered with :func:`check`: it gets the :class:`Doctor`
(settings, a Docker client, hummingbot-api's URL...) and yields :class:`Finding`s.
The exit status is 0 only when no finding the configured features need failed.
"""

from __future__ import annotations

import contextlib
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
from typing import TYPE_CHECKING, TextIO

from agent import __version__, sshengine
from agent.names import DEFAULT_STACK
from agent.redact import shown_url
from agent.settings import SECRETS_DIR, BadSettings, Settings, load
from agent.stackconf import StackConfig, engine_client, engine_problem

if TYPE_CHECKING:  # docker-py and httpx load when a check needs them: `hb-medic health` does not
    import docker

OK, FAIL, WARN = "✓", "✗", "!"


@dataclass
class Finding:
    ok: bool
    what: str  # what was found, in a line
    fix: str = ""  # for a failure or a warning: exactly what to do
    warn: bool = False  # it works, but is exposed: told, not counted as a failure


class Doctor:
    """What the checks share; the Docker client is made once, on first use."""

    def __init__(self, settings: Settings, bad: dict[str, str], send: bool = False) -> None:
        self.settings = settings
        self.bad = bad  # settings that failed validation (field -> message); defaults in their place
        self.send = send
        try:
            self.stacks = settings.stack_list()
        except BadSettings as exc:
            self.bad = {**bad, **exc.problems}
            self.stacks = []
        self.several = len(self.stacks) > 1 or any(c.name != DEFAULT_STACK for c in self.stacks)
        self._docker: dict[str, docker.DockerClient | None] = {}
        self.docker_errors: dict[str, str] = {}

    @property
    def docker_error(self) -> str | None:
        return self.docker_errors.get(DEFAULT_STACK)

    def where(self, stack: StackConfig) -> str:
        return f"stack {stack.name}: " if self.several else ""

    def docker(self, stack: StackConfig | None = None) -> docker.DockerClient | None:
        """A client of the stack's engine that answered a ping, or None (the reason in
        docker_errors)."""
        from docker.errors import DockerException

        stack = stack or (self.stacks[0] if self.stacks else StackConfig(name=DEFAULT_STACK))
        if stack.name not in self._docker:
            try:
                client = engine_client(stack, timeout=10)
                client.ping()
                self._docker[stack.name] = client
            except (DockerException, OSError, *sshengine.errors()) as exc:
                self._docker[stack.name] = None
                self.docker_errors[stack.name] = engine_problem(exc) if stack.remote else str(exc)
        return self._docker[stack.name]

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
    missing = [c for c in d.stacks if c.hummingbot_password is None]
    for stack in missing:
        fix = (f"write it to the secret file {SECRETS_DIR}/medic_hummingbot_password (compose:"
               " secrets/hummingbot_password) or set MEDIC_HUMMINGBOT_PASSWORD" if stack.name == DEFAULT_STACK
               else "name a file holding it in hummingbot_password_file")
        yield Finding(False, f"{d.where(stack)}hummingbot-api's password is not set: the agent will not"
                             " start",
                      fix)
    if not missing and not d.bad:
        yield Finding(True, "settings valid")


@check
def docker_engine(d: Doctor) -> Iterator[Finding]:
    for stack in d.stacks:
        host = stack.engine()
        if plain := stack.plain_engine():  # whether it answers or not: the setting is the exposure
            what, _, fix = plain.partition(". ")
            yield Finding(True, f"{d.where(stack)}{what}", fix, warn=True)
        client = d.docker(stack)
        if client is None:
            yield Finding(False, f"{d.where(stack)}Docker engine at {host} does not answer:"
                                 f" {d.docker_errors[stack.name]}", docker_fix(host))
            continue
        v = client.version()
        yield Finding(True, f"{d.where(stack)}Docker engine {v.get('Version', '?')} (API"
                            f" {v.get('ApiVersion', '?')}, {v.get('Os', '?')}/{v.get('Arch', '?')})"
                            f" at {host}")


def docker_fix(host: str) -> str:
    """The fix for an engine that does not answer, by how it is reached."""
    if host.startswith("tcp://") or host.startswith("ssh://"):
        return (f"start the engine at {host}, or correct docker_host and tls in the config file; from this"
                " host: docker -H " + host + (" --tlsverify --tlscacert CA --tlscert CERT --tlskey KEY info"
                                              if host.startswith("tcp://") else " info"))
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
    for stack in d.stacks:
        client = d.docker(stack)
        if client is None:
            continue  # the engine's own ✗ says why
        yield from _containers(d.where(stack), client, stack.containers)


def _containers(where: str, client, wanted: list[str]) -> Iterator[Finding]:
    from docker.errors import NotFound

    # The raw list: no inspect of each container (one removed meanwhile would fail the check).
    names = [n.lstrip("/") for c in client.api.containers(all=True) for n in c.get("Names") or []]
    for name in wanted:
        try:
            c = client.containers.get(name)
        except NotFound:
            near = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            yield Finding(False, f"{where}container {name}: not found on this engine",
                          (f"did you mean {near[0]}? " if near else "")
                          + f"start {name}, or set MEDIC_CONTAINERS to the names of the containers to follow"
                            " (docker ps -a --format '{{.Names}}')")
            continue
        state = c.attrs.get("State", {})
        if c.status == "running":
            since = state.get("StartedAt", "?")[:19]
            yield Finding(True, f"{where}container {name}: running ({_image(c)}, since {since})")
        else:
            yield Finding(False, f"{where}container {name}: {c.status} (exit code {state.get('ExitCode')})"
                                 " (the agent follows it again when it starts)",
                          f"docker logs --tail 50 {name} says why it stopped; start it: docker start {name}")


@check
def api_environment(d: Doctor) -> Iterator[Finding]:
    """hummingbot-api started with an empty CONFIG_PASSWORD says nothing until a deploy answers
    "Password not provided": its environment, read through the engine, tells it before the first
    deploy. Values are never shown (they are secrets), only whether they are empty."""
    for stack in d.stacks:
        client = d.docker(stack)
        if client is not None:  # else the engine's own ✗ says why
            yield from _api_environment(d.where(stack), client, stack.containers)


def _api_environment(where: str, client, names: list[str]) -> Iterator[Finding]:
    from docker.errors import DockerException, NotFound

    for name in names:
        if not name.endswith("hummingbot-api"):
            continue
        try:
            env = client.api.inspect_container(name).get("Config", {}).get("Env") or []
        except NotFound:
            continue  # followed_containers says so
        except DockerException as exc:
            yield Finding(False, f"{where}container {name}: its environment cannot be read ({exc})",
                          "let the agent inspect containers (GET /containers/<name>/json)")
            continue
        values = dict(item.partition("=")[::2] for item in env if isinstance(item, str))
        if "CONFIG_PASSWORD" in values and not values["CONFIG_PASSWORD"]:
            yield Finding(False, f"{where}container {name}: CONFIG_PASSWORD is empty: every deploy will"
                                 " answer \"Password not provided\" and no bot starts",
                          f"set CONFIG_PASSWORD in {name}'s environment (its .env or compose file) to the"
                          " password the connector keys were encrypted with, then recreate it:"
                          f" docker compose up -d {name}")
        else:
            how = "set" if "CONFIG_PASSWORD" in values else "not set (hummingbot-api's default)"
            yield Finding(True, f"{where}container {name}: CONFIG_PASSWORD {how}")


def _image(container) -> str:
    tags = container.image.tags if container.image is not None else []
    return tags[0] if tags else container.attrs.get("Config", {}).get("Image", "?")


@check
def hummingbot_api(d: Doctor) -> Iterator[Finding]:
    for stack in d.stacks:
        yield from _api(d.where(stack), stack)


def _api(where: str, s: StackConfig) -> Iterator[Finding]:
    import httpx

    target = s.hummingbot_url.rstrip("/")
    url = shown_url(target)  # as doctor prints it
    secret = f"the secret file {SECRETS_DIR}/medic_hummingbot_password"
    try:
        root = httpx.get(target + "/", timeout=5)
    except httpx.HTTPError as exc:
        yield Finding(False, f"{where}hummingbot-api at {url} cannot be reached: {exc}",
                      "start hummingbot-api, or set MEDIC_HUMMINGBOT_URL (on its compose network:"
                      " http://hummingbot-api:8000; on the host network: http://127.0.0.1:8000)" if not where
                      else "start hummingbot-api, or correct the stack's hummingbot_url")
        return
    if s.hummingbot_password is None:
        yield Finding(True, f"{where}hummingbot-api at {url} answers (HTTP {root.status_code}); login not"
                            " checked: no password")
        return
    auth = (s.hummingbot_username, s.hummingbot_password.get_secret_value())
    try:
        resp = httpx.get(target + "/accounts/", auth=auth, timeout=10)
    except httpx.HTTPError as exc:
        yield Finding(False, f"{where}hummingbot-api at {url} answered / but not /accounts/: {exc}",
                      "check hummingbot-api's log: docker logs --tail 50 hummingbot-api")
        return
    if resp.status_code == 401:
        yield Finding(False, f"{where}hummingbot-api at {url} refused the login of user"
                             f" {s.hummingbot_username} (401)",
                      "give the agent hummingbot-api's USERNAME and PASSWORD (its .env): "
                      + ("hummingbot_username and hummingbot_password_file" if where else
                         f"MEDIC_HUMMINGBOT_USERNAME and {secret}"))
    elif resp.is_success:
        yield Finding(True, f"{where}hummingbot-api at {url} accepts the login of user"
                            f" {s.hummingbot_username}")
    else:
        yield Finding(False, f"{where}hummingbot-api at {url} answered /accounts/ with HTTP"
                             f" {resp.status_code}",
                      "check hummingbot-api's log: docker logs --tail 50 hummingbot-api")


API_FIX = ("set USERNAME and PASSWORD (and CONFIG_PASSWORD, before adding keys) in hummingbot-api's"
           " .env, recreate it (docker compose up -d hummingbot-api), give the new login to its clients"
           " and to hb-medic, and publish its port on 127.0.0.1 only"
           ' (ports: ["127.0.0.1:8000:8000"]) or behind a VPN')
BROKER_FIX = ("require a login on the broker (EMQX 5: dashboard, Access Control > Authentication >"
              " Password-Based; mosquitto: allow_anonymous false and a password_file made with"
              " mosquitto_passwd), give it to hummingbot-api (BROKER_USERNAME, BROKER_PASSWORD) and to"
              " the bots (mqtt_username, mqtt_password in bots/credentials/ACCOUNT/conf_client.yml),"
              ' publish its port on 127.0.0.1 only (ports: ["127.0.0.1:1883:1883"]), then restart the'
              " broker, hummingbot-api and the bots")


@check
def default_credentials(d: Doctor) -> Iterator[Finding]:
    """What anyone who reaches the stack could open without a password, tried as they would
    (MEDIC_PROBE_DEFAULTS): hummingbot-api with admin/admin, its broker without a login. A warning:
    the agent works, but the stack is open. Nothing is changed."""
    if not d.settings.probe_defaults:
        return
    from agent.ingest.exposure import API_OPEN, open_doors

    for stack in d.stacks:
        password = stack.hummingbot_password.get_secret_value() if stack.hummingbot_password else ""
        lines = open_doors(stack.hummingbot_url, stack.hummingbot_username, password)
        if lines is None:
            continue  # hummingbot_api's own ✗ says why
        api_line = API_OPEN.format(url=shown_url(stack.hummingbot_url.rstrip("/")))
        for line in lines:
            yield Finding(True, f"{d.where(stack)}{line}", API_FIX if line == api_line else BROKER_FIX,
                          warn=True)
        if not lines:
            yield Finding(True, f"{d.where(stack)}default credentials: hummingbot-api refuses admin/admin,"
                                " and its broker did not take a client without a login")


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
    for stack in d.stacks:
        if stack.recorder_addr:
            ports.append((f"{d.where(stack)}deploy recorder", "recorder_addr" if d.several
                          else "MEDIC_RECORDER_ADDR", stack.recorder_addr))
        else:
            yield Finding(True, f"{d.where(stack)}deploy recorder: off (set "
                                + ("its recorder_addr" if d.several else "MEDIC_RECORDER_ADDR=0.0.0.0:8001")
                                + " and point clients at it so a failed deploy can be re-sent exactly)")
    health = None
    for what, setting, addr in ports:
        host, _, port = addr.rpartition(":")
        problem = _port_free(host or "0.0.0.0", int(port))
        if problem is None:
            yield Finding(True, f"{what}: {addr} is free for the agent")
            continue
        if problem == "in use":
            health = health if health is not None else (d.own_health() or {})
            recorders = [*(health.get("recorders") or {}).values(), health.get("recorder")]
            mine = health and (setting == "MEDIC_HTTP_ADDR" or addr in recorders)
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
    for stack in d.stacks:
        yield from _folders(d.where(stack), stack)


def _folders(where: str, s: StackConfig) -> Iterator[Finding]:
    for setting, path, what, mount in (
            ("MEDIC_BOTS_DIR", s.bots_dir, "hummingbot-api's bots/ folder",
             "../hummingbot-api/bots:/bots:ro"),
            ("MEDIC_CREDENTIALS_DIR", s.credentials_dir, "exchange keys to provision",
             "./credentials:/credentials:ro")):
        if path is None:
            continue
        if where:  # a stack of the config file: its own field
            setting = f"{where}{setting.removeprefix('MEDIC_').lower()}"
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
def secret_files(d: Doctor) -> Iterator[Finding]:
    """Secret files anyone but their owner may read: the agent reads them all the same, but so can
    every user of the host (a file written with the usual umask 022 is 0644)."""
    files = sorted(Path(SECRETS_DIR).glob("medic_*")) if os.path.isdir(SECRETS_DIR) else []
    files += [s.hummingbot_password_file for s in d.stacks if s.hummingbot_password_file is not None]
    modes = {}
    for path in files:
        with contextlib.suppress(OSError):  # settings_valid tells of a secret it cannot read
            modes[path] = path.stat().st_mode & 0o777
    exposed = {path: mode for path, mode in modes.items() if mode & 0o044}
    for path, mode in exposed.items():
        who = "group and others" if mode & 0o044 == 0o044 else "others" if mode & 0o004 else "its group"
        yield Finding(True, f"secret file {path}: readable by {who} (mode {mode:04o})",
                      "let only the agent's user read it: on the host, chmod 600 the file and chown it to"
                      " uid 10001 (the image's user), e.g. printf '%s' \"$PASSWORD\" | sudo install -m 600"
                      " -o 10001 /dev/stdin secrets/hummingbot_password", warn=True)
    if modes and not exposed:
        yield Finding(True, f"secret files: {len(modes)}, readable by their owner only")


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
def telegram_chat(d: Doctor, wait: float | None = None) -> Iterator[Finding]:
    """The Telegram chat, when MEDIC_CHAT names it (agent.chat.checkup)."""
    if "telegram" not in d.settings.chat:
        return
    from agent.chat import checkup
    from agent.chat.channels import ChatSetupError, telegram_targets
    from agent.notify.targets import TargetError
    from agent.redact import Redactor
    from agent.service import notify_targets as parse

    try:
        found = telegram_targets(parse(d.settings, Redactor()))
    except (TargetError, ChatSetupError) as exc:
        yield Finding(False, f"telegram chat: {exc}", f"correct {checkup.TOKEN_WHERE}")
        return
    if not found:
        yield Finding(False, "telegram chat: MEDIC_CHAT names telegram, but no notify target is a Telegram"
                             " one", f"add {checkup.TOKEN_WHERE}")
        return
    chats = [(t.private, token, chat) for t, token, chat in found]
    for ok, what, fix in checkup.findings(d.settings, d.send, chats,
                                          wait=checkup.PRESS_WAIT if wait is None else wait):
        yield Finding(ok, what, fix)


@check
def slack_chat(d: Doctor, wait: float | None = None) -> Iterator[Finding]:
    """The Slack chat, when MEDIC_CHAT names it (agent.chat.slack_checkup)."""
    if "slack" not in d.settings.chat:
        return
    from agent.chat import slack_checkup

    for ok, what, fix in slack_checkup.findings(d.settings, d.send,
                                                wait=slack_checkup.PRESS_WAIT if wait is None else wait):
        yield Finding(ok, what, fix)


@check
def mode(d: Doctor) -> Iterator[Finding]:
    s = d.settings
    if s.mode == "observe":
        yield Finding(True, "mode: observe: the agent records and reports what it would do and changes"
                            " nothing (MEDIC_MODE=act to let it act)")
    elif s.mode == "ask":
        yield Finding(True, f"mode: ask: the agent posts each fix's plan and runs it once a listed person"
                            f" approves it (within {s.approval_ttl:g} s; MEDIC_MODE=act to let it act"
                            " by itself)")
    else:
        yield Finding(True, f"mode: act: the agent repairs what a rule knows (at most {s.action_budget}"
                            " fix attempts an hour) and re-sends the failed deploy"
                            " (MEDIC_MODE=observe to only report, ask to approve each fix)")


# -- the command ----------------------------------------------------------------------------------

def run(send: bool = False, out: TextIO | None = None, checks: list[Check] | None = None) -> int:
    out = out or sys.stdout
    try:
        settings, bad = load(), {}
    except BadSettings as exc:
        settings, bad = load(needs=()), exc.problems
    d = Doctor(settings, bad, send=send)
    print(f"hb-medic {__version__} doctor", file=out)
    failed = total = warned = 0
    for fn in checks if checks is not None else CHECKS:
        try:
            findings = list(fn(d))
        except Exception as exc:  # a check that breaks is a failed check, not a crash
            findings = [Finding(False, f"{fn.__name__}: the check itself failed: {exc!r}",
                                "report this with the output of hb-medic doctor")]
        for f in findings:
            total += 1
            failed += not f.ok
            warned += f.ok and f.warn
            print(f"{FAIL if not f.ok else WARN if f.warn else OK} {f.what}", file=out)
            if (not f.ok or f.warn) and f.fix:
                print(f"    fix: {f.fix}", file=out)
    if failed:
        print(f"{failed} of {total} checks failed: fix them and run hb-medic doctor again", file=out)
        return 1
    print(f"all {total} checks passed: hb-medic can do its job here"
          + (f" ({warned} warning{'s' if warned > 1 else ''} above)" if warned else ""), file=out)
    return 0
