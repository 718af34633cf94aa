"""hummingbot's own client settings inside hummingbot-api's container.

The hummingbot library reads and writes conf/conf_client.yml beside its installed package (in
site-packages), and some hummingbot-api images lack that folder (hummingbot-api#57: "Error writing
configs"). What people copy there by hand is the template account's conf_client.yml, which holds no
keys; `restore_client_config` does the same through the Docker API (archives: no exec, no shell)
and `client_config_restored` checks the result.

`conf_dir` comes from a log line: its type admits only `<prefix>/lib/python3.N/site-packages/conf`
without `.` or `..` segments, and every folder above it is confirmed through the engine to be a
real folder (no symbolic link) before anything is written. The container is the incident's own,
named by the engine. A file already there is never overwritten, and a template that looks like it
holds a secret is not copied.
"""

from __future__ import annotations

import io
import re
import tarfile
import time

import docker.errors
import requests
import yaml
from docker.utils import decode_json_header
from pydantic import BaseModel, ConfigDict

from agent.actions.base import ActionContext, ActionError, NeedsHuman
from agent.actions.registry import action
from agent.actions.types import ContainerName, SitePackagesConf

CLIENT_CONFIG = "conf_client.yml"
TEMPLATE = "bots/credentials/master_account/conf_client.yml"  # relative to hummingbot-api's folder
APP_DIR = "/hummingbot-api"  # its working folder in the official image, when the engine names none
MAX_BYTES = 256 * 1024  # a conf_client.yml is a few KiB
# Go's os.FileMode, as the engine reports a path's mode: the bits that make it other than a file.
MODE_DIR = 1 << 31
MODE_SYMLINK = 1 << 27
MODE_TYPE = MODE_DIR | MODE_SYMLINK | 1 << 26 | 1 << 25 | 1 << 24 | 1 << 21 | 1 << 19

# compose.hardened.yaml's socket proxy forbids reading and writing files of containers (as exec).
FORBIDDEN = ("the Docker engine refused to read or write files of containers (403: a socket proxy such as"
             " compose.hardened.yaml's allows no such call): copy the file by hand")
# A setting that holds a secret when it has a value (mqtt_password: '' is the template's).
_SECRET_KEY = re.compile(r"pass(?:word|phrase)|secret|api_?key|private_?key|mnemonic|seed_phrase|"
                         r"crypto|cipher", re.I)
# hummingbot's encrypted values: hex of a JSON key file ('{"crypto"...'), or any long hex or PEM key.
_SECRET_VALUE = re.compile(r"^[0-9a-fA-F]{64,}$|ciphertext|-----BEGIN [A-Z ]*PRIVATE KEY", re.S)


class ClientConfigParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    container: ContainerName
    conf_dir: SitePackagesConf


@action
def restore_client_config(params: ClientConfigParams, ctx: ActionContext) -> str:
    """Copy the template account's conf_client.yml to `conf_dir` in hummingbot-api's container
    (making conf_dir), owned by the container's user, mode 0644."""
    c = _container(ctx, params.container)
    target = f"{params.conf_dir}/{CLIENT_CONFIG}"
    folder = _checked_folder(ctx, c, params.conf_dir)
    if folder is not None and _stat(ctx, c, target) is not None:
        return f"{target} already exists in {c.name}: left as it is (never overwritten)"
    data = _template(ctx, c)
    uid, gid = _owner(ctx, c)
    if folder is None:  # conf itself, then the file in it, into site-packages
        parent, _, _ = params.conf_dir.rpartition("/")
        archive = _tar([("conf", None, 0o755), (f"conf/{CLIENT_CONFIG}", data, 0o644)], uid, gid)
        _put(c, parent, archive)
    else:
        _put(c, params.conf_dir, _tar([(CLIENT_CONFIG, data, 0o644)], uid, gid))
    return (f"copied the template account's {CLIENT_CONFIG} ({len(data)} bytes, no keys) to {target}"
            f" in {c.name}, owned by {uid}:{gid}, mode 644")


@action
def client_config_restored(params: ClientConfigParams, ctx: ActionContext) -> str:
    """The check after restore_client_config: the file is in place, readable by the container's
    user, with the template's content."""
    c = _container(ctx, params.container)
    target = f"{params.conf_dir}/{CLIENT_CONFIG}"
    if _stat(ctx, c, target) is None:
        raise ActionError(f"{target} is not in {c.name}")
    member, data = _read(ctx, c, target)
    uid, gid = _owner(ctx, c)
    readable = (uid == 0 or member.mode & 0o004 or (member.uid == uid and member.mode & 0o400)
                or (member.gid == gid and member.mode & 0o040))
    if not readable:
        raise ActionError(f"{target} in {c.name} is not readable by its user {uid}:{gid} (owner"
                          f" {member.uid}:{member.gid}, mode {member.mode & 0o7777:o})")
    if data != _template(ctx, c):
        raise ActionError(f"{target} in {c.name} differs from the template account's {CLIENT_CONFIG}")
    return f"{target} is in place in {c.name} ({len(data)} bytes, the template's)"


def _template(ctx: ActionContext, c) -> bytes:
    """The template account's conf_client.yml as hummingbot-api sees it (its bots folder, from
    its working folder), refused when it is missing, not a plain file, or looks like it holds a
    secret."""
    workdir = ((c.attrs.get("Config") or {}).get("WorkingDir") or "").rstrip("/")
    if not workdir.startswith("/") or "/." in workdir:
        workdir = APP_DIR
    path = f"{workdir}/{TEMPLATE}"
    st = _stat(ctx, c, path)
    if st is None:
        raise NeedsHuman(f"the template account's {CLIENT_CONFIG} is not in {c.name} ({path}): nothing"
                         " to copy; nothing written. Restore bots/credentials/master_account from"
                         " hummingbot-api's sources, or copy a conf_client.yml without keys by hand")
    if st["mode"] & MODE_TYPE:
        raise NeedsHuman(f"{path} in {c.name} is not a plain file (a link or a folder): refused")
    _member, data = _read(ctx, c, path)
    reason = secret_in(data)
    if reason:
        raise NeedsHuman(f"{path} in {c.name} {reason}: not copied (the template holds no keys; check"
                         " it)")
    return data


def secret_in(data: bytes) -> str | None:
    """Why this conf_client.yml may hold a secret (or is no settings file at all), or None."""
    try:
        doc = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError):
        return "is not a YAML file"
    if not isinstance(doc, dict):
        return "is not a settings file (no mapping)"
    todo: list[tuple[str, object]] = [(str(k), v) for k, v in doc.items()]
    while todo:
        key, value = todo.pop()
        if _SECRET_KEY.search(key) and _filled(value):
            return f"has a value for {key}, which looks like a secret"
        if isinstance(value, dict):
            todo.extend((str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            todo.extend((key, v) for v in value)
        elif isinstance(value, str) and _SECRET_VALUE.search(value):
            return f"has a value for {key} that looks like an encrypted key"
    return None


def _filled(value: object) -> bool:
    return value not in (None, "", [], {})


def _container(ctx: ActionContext, name: str):
    try:
        return ctx.docker.containers.get(name)
    except docker.errors.NotFound:
        raise ActionError(f"container {name} does not exist") from None


def _stat(ctx: ActionContext, c, path: str) -> dict | None:
    """What the engine says of a path in the container (its last part not followed), or None when
    there is nothing there. HEAD of the archive endpoint: the stat alone, no content."""
    api = ctx.docker.api
    url = f"{api.base_url}/v{api.api_version}/containers/{c.id}/archive"
    try:
        resp = api.head(url, params={"path": path}, timeout=api.timeout)
    except requests.RequestException as exc:
        raise ActionError(f"the Docker engine did not answer ({exc})") from None
    if resp.status_code == 404:
        return None
    if resp.status_code == 403:
        raise NeedsHuman(FORBIDDEN)
    header = resp.headers.get("X-Docker-Container-Path-Stat")
    if resp.status_code != 200 or not header:
        raise ActionError(f"the Docker engine answered {resp.status_code} on {path} in {c.name}")
    return decode_json_header(header)


def _checked_folder(ctx: ActionContext, c, conf_dir: str) -> dict | None:
    """Every folder above conf_dir must exist and be a real folder; conf_dir itself may be
    missing (None) or a real folder (its stat)."""
    parts = conf_dir.split("/")[1:]
    for i in range(1, len(parts)):
        path = "/" + "/".join(parts[:i])
        st = _stat(ctx, c, path)
        if st is None:
            raise NeedsHuman(f"{path} does not exist in {c.name}: {conf_dir} is not where its hummingbot"
                             " library is; nothing written")
        _real_folder(c, path, st)
    st = _stat(ctx, c, conf_dir)
    if st is not None:
        _real_folder(c, conf_dir, st)
    return st


def _real_folder(c, path: str, st: dict) -> None:
    if st.get("linkTarget") or st["mode"] & MODE_SYMLINK or not st["mode"] & MODE_DIR:
        raise NeedsHuman(f"{path} in {c.name} is not a folder (a symbolic link or a file): refused,"
                         " nothing written")


def _read(ctx: ActionContext, c, path: str) -> tuple[tarfile.TarInfo, bytes]:
    """A plain file of the container, at most MAX_BYTES, and its tar header (owner, mode)."""
    try:
        chunks, _st = c.get_archive(path)
        raw = bytearray()
        for chunk in chunks:
            raw += chunk
            if len(raw) > MAX_BYTES + 64 * 1024:
                raise ActionError(f"{path} in {c.name} is larger than {MAX_BYTES} bytes: refused")
    except docker.errors.NotFound:
        raise ActionError(f"{path} is not in {c.name}") from None
    except docker.errors.APIError as exc:
        if exc.status_code == 403:
            raise NeedsHuman(FORBIDDEN) from None
        raise ActionError(f"the Docker engine could not read {path} in {c.name} ({exc.explanation})") \
            from None
    with tarfile.open(fileobj=io.BytesIO(bytes(raw))) as tar:
        members = tar.getmembers()
        if len(members) != 1 or not members[0].isfile():
            raise ActionError(f"{path} in {c.name} is not a plain file: refused")
        return members[0], tar.extractfile(members[0]).read()


def _owner(ctx: ActionContext, c) -> tuple[int, int]:
    """The uid and gid the container runs as, as the engine resolves its USER: root when it names
    none; a user's primary group from the image's /etc/passwd, else group 0."""
    user = ((c.attrs.get("Config") or {}).get("User") or "").strip()
    name, _, group = user.partition(":")
    if not name:
        return 0, 0
    users = _table(ctx, c, "/etc/passwd")
    row = users.get(name) or next((r for r in users.values() if r[2] == name), None)
    if row is None and not name.isdigit():
        raise ActionError(f"the user {name} that {c.name} runs as is not in its /etc/passwd")
    uid = int(row[2]) if row else int(name)
    gid = int(row[3]) if row and row[3].isdigit() else 0
    if group.isdigit():
        gid = int(group)
    elif group:
        row = _table(ctx, c, "/etc/group").get(group)
        if row is None:
            raise ActionError(f"the group {group} that {c.name} runs as is not in its /etc/group")
        gid = int(row[2])
    return uid, gid


def _table(ctx: ActionContext, c, path: str) -> dict[str, list[str]]:
    """The image's /etc/passwd or /etc/group (name -> fields; empty when it has none)."""
    if _stat(ctx, c, path) is None:
        return {}
    _member, data = _read(ctx, c, path)
    rows = [line.split(":") for line in data.decode("utf-8", "replace").splitlines()]
    return {r[0]: r for r in rows if len(r) >= 4 and r[2].isdigit()}


def _tar(entries: list[tuple[str, bytes | None, int]], uid: int, gid: int) -> bytes:
    """A tar of folders (data None) and files, owned by uid:gid, dated now."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, int(time.time())
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _put(c, path: str, archive: bytes) -> None:
    try:
        ok = c.put_archive(path, archive)
    except docker.errors.APIError as exc:
        if exc.status_code == 403:
            raise NeedsHuman(FORBIDDEN) from None
        raise ActionError(f"the Docker engine did not write into {path} in {c.name} ({exc.explanation})") \
            from None
    if not ok:
        raise ActionError(f"the Docker engine did not write into {path} in {c.name}")
