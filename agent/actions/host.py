"""Actions that look at the host a stack runs on and tell a person what only they can change: a
bot's folder owned by the wrong user, a full disk, a clock that drifted. They read (the Docker
API, the read-only bots folder, numbers a log gave) and never change anything: each is a telling
action (`@action(tells=True)`) whose result is the advice, the exact step to take with the facts
it found; its incident ends told ("Needs you"), not given up."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import docker.errors
from pydantic import BaseModel, ConfigDict, Field

from agent.actions.base import ActionContext
from agent.actions.registry import action
from agent.actions.types import ContainerName
from agent.ingest.bots import maybe_bot
from agent.names import CONTAINER_NAME_PATTERN

ROOT = "0:0"  # the official image runs as root (no USER in its Dockerfile)
TOP = 5       # the largest folders told
SCAN_LIMIT = 200_000  # files looked at under the bots folder, at most
STOPPED = ("exited", "created", "dead")  # a container in these states runs nothing; restarting does
CONTAINER_NAME = re.compile(CONTAINER_NAME_PATTERN)
ROTATED = re.compile(r"\.log\.\d{4}-\d{2}-\d{2}$")  # the client's daily rotation (TimedRotatingFileHandler)


class OwnerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: ContainerName = Field(description="the bot's container (its instance folder has its name)")


def _user(ctx: ActionContext, name: str) -> tuple[str, str]:
    """The user the bot's container runs as, as `uid:gid` for chown (the image's USER, which
    hummingbot-api never overrides; a user given by name is resolved by the image itself), and
    what that rests on."""
    try:
        attrs = ctx.docker.api.inspect_container(name)
    except docker.errors.NotFound:  # removed since: the official image's user, and how to check
        return ROOT, ("its container is gone: root for the official image (docker image inspect -f"
                      " '{{.Config.User}}' IMAGE shows another image's user)")
    user = ((attrs.get("Config") or {}).get("User") or "").strip()
    if not user:
        return ROOT, "uid:gid"
    uid, _, gid = user.partition(":")
    if uid.isdigit() and (not gid or gid.isdigit()):
        return f"{uid}:{gid or uid}", "uid:gid"
    image = (attrs.get("Config") or {}).get("Image") or "<image>"
    run = f"docker run --rm --entrypoint id {image}"
    return f"$({run} -u {uid}):$({run} -g {uid})", f"user {uid} of its image"


@action(tells=True)
def instance_owner(params: OwnerParams, ctx: ActionContext) -> str:
    """A bot could not write a file of its own instance folder: say the one chown that gives that
    folder (and nothing else) to the user the image runs as. hb-medic's view of the bots folder
    is read-only, and owners on the host are a person's to change."""
    owner, basis = _user(ctx, params.name)
    folder = f"bots/instances/{params.name}"
    return (f"the bot runs as {owner} ({basis}). On the host, in hummingbot-api's folder, run: "
            f"sudo chown -R {owner} {folder} (only this bot's folder; lsattr -d {folder}/* shows an"
            " immutable flag, which chattr -i removes), then deploy the bot again")


class DiskParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


@dataclass
class Usage:
    """What uses the disk, as lines to tell, and what of it one command may remove safely."""

    lines: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)  # parts of the one command, joined with &&
    frees: int = 0  # bytes those steps free, at least (a container's log is not counted)


def engine_usage(ctx: ActionContext, usage: Usage) -> None:
    """What the Docker engine keeps (its `system df`), and what of it is safe to remove: bots'
    containers that are not running (their files stay in bots/instances; only `docker logs` of
    them goes), untagged images no container uses, unused build cache. Tagged images stay: the
    next deploy would have to pull them again."""
    df = ctx.docker.df()
    images = df.get("Images") or []
    containers = df.get("Containers") or []
    volumes = df.get("Volumes") or []
    cache = df.get("BuildCache") or []
    unused = [i for i in images if not i.get("Containers")]
    exited = [c for c in containers if c.get("State") != "running"]
    vol_size = sum(max(0, (v.get("UsageData") or {}).get("Size", 0) or 0) for v in volumes)
    cache_size = sum(b.get("Size", 0) or 0 for b in cache if not b.get("InUse") and not b.get("Shared"))
    usage.lines += [
        f"images {_size(df.get('LayersSize') or 0)} ({len(images)}; {len(unused)} used by no container: "
        f"{_size(sum(i.get('Size', 0) for i in unused))} at most)",
        f"containers' own files {_size(sum(c.get('SizeRw', 0) or 0 for c in containers))} "
        f"({len(exited)} not running: {_size(sum(c.get('SizeRw', 0) or 0 for c in exited))})",
        f"volumes {_size(vol_size)} ({len(volumes)})",
        f"build cache {_size(cache_size)} unused",
    ]
    stopped = [c for c in containers if c.get("State") in STOPPED and maybe_bot(c)]
    names = sorted({n for c in stopped if (n := ((c.get("Names") or ["/"])[0]).lstrip("/"))
                    and CONTAINER_NAME.fullmatch(n)})
    if names:
        usage.steps.append("docker rm " + " ".join(names))
        usage.frees += sum(c.get("SizeRw", 0) or 0 for c in stopped)
    dangling = [i for i in unused if all(t == "<none>:<none>" for t in i.get("RepoTags") or [])]
    if dangling:
        usage.steps.append("docker image prune -f")
        usage.frees += sum(i.get("Size", 0) or 0 for i in dangling)
    if cache_size:
        usage.steps.append("docker builder prune -f")
        usage.frees += cache_size


def _tree(root: Path, budget: list[int], rotated: list[int]) -> int:
    """Bytes under root (files only, links not followed), within the budget of files looked at;
    rotated[0] grows by the bytes of rotated bot logs (logs_*.log.YYYY-MM-DD) among them."""
    total = 0
    for base, _dirs, files in os.walk(root, followlinks=False):
        for f in files:
            if budget[0] <= 0:
                return total
            budget[0] -= 1
            try:
                st = os.lstat(os.path.join(base, f))
            except OSError:
                continue
            total += st.st_size
            if ROTATED.search(f):
                rotated[0] += st.st_size
    return total


def bots_usage(bots: Path, usage: Usage) -> None:
    """The bots' log and data folders, largest first (bots/instances/<bot>/logs, data); rotated
    logs (a day's log, kept by the client's daily rotation) are safe to remove."""
    budget, rotated = [SCAN_LIMIT], [0]
    sizes: list[tuple[int, str]] = []
    instances = bots / "instances"
    for inst in sorted(instances.iterdir()) if instances.is_dir() else []:
        if inst.is_symlink() or not inst.is_dir():
            continue
        for sub in ("logs", "data"):
            folder = inst / sub
            if folder.is_dir() and not folder.is_symlink():
                sizes.append((_tree(folder, budget, rotated if sub == "logs" else [0]),
                              f"bots/instances/{inst.name}/{sub}"))
    sizes.sort(reverse=True)
    logs = sum(n for n, p in sizes if p.endswith("/logs"))
    data = sum(n for n, p in sizes if p.endswith("/data"))
    top = ", ".join(f"{p} {_size(n)}" for n, p in sizes[:TOP] if n)
    largest = f" (largest: {top})" if top else ""
    usage.lines.append(f"bots' logs {_size(logs)}, data {_size(data)}{largest}")
    if rotated[0]:
        usage.steps.append("rm bots/instances/*/logs/*.log.20??-??-??")
        usage.frees += rotated[0]


@action(tells=True)
def disk_usage(params: DiskParams, ctx: ActionContext) -> str:
    """A disk is full: say what uses it (the engine's images, containers, volumes and build cache;
    the bots' log and data folders) and the one command that frees what is safe to remove, with
    what it frees. Proposed, never done: removing is a person's choice."""
    usage = Usage()
    try:
        engine_usage(ctx, usage)
    except docker.errors.DockerException as exc:
        usage.lines.append(f"the engine's disk usage could not be read ({type(exc).__name__})")
    if ctx.bots_dir is not None and ctx.bots_dir.is_dir():
        bots_usage(ctx.bots_dir, usage)
    told = "the disk is full. Using it: " + "; ".join(usage.lines) + ". "
    if usage.steps:
        told += (f"One step frees {_size(usage.frees)} at least, all safe to remove (bots that are not"
                 " running, whose files stay in bots/instances; untagged images; unused build cache; rotated"
                 " bot logs), run on the host in hummingbot-api's folder: " + " && ".join(usage.steps) + ". ")
    else:
        told += ("Nothing here is known to be safe to remove. Images no container uses go with docker image"
                 " prune -a (the next deploy pulls them again). ")
    return told + ("Never remove a running bot's data/ (its trades) or postgres' volume; df -h shows which"
                   " filesystem is full")


class ClockParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_ms: int = Field(ge=0, description="the request's timestamp, as the exchange's answer quotes it")
    server_ms: int = Field(ge=0, description="the exchange's time when it answered, as it quotes it")


def offset_text(request_ms: int, server_ms: int) -> str:
    """This host's clock against the exchange's, from the two times the exchange's answer quotes."""
    delta = (request_ms - server_ms) / 1000
    return f"{abs(delta):.1f} s {'ahead of' if delta >= 0 else 'behind'}"


@action(tells=True)
def clock_offset(params: ClockParams, ctx: ActionContext) -> str:
    """The exchange refused a signed request for its time: say by how much this host's clock is off
    (from the times the exchange's answer quotes) and the fix, which needs the host's root."""
    return (f"this host's clock is {offset_text(params.request_ms, params.server_ms)} the"
            " exchange's server time. Sync it with NTP on the host (timedatectl set-ntp true, or"
            " chronyc makestep; check with timedatectl status), then the bot's next requests pass")


# hummingbot-api's bots/ folder as its repository ships it: the folders its routes list or write
# into (credentials/master_account is the template account, of files: account-template-missing's).
SKELETON = ("archived", "conf/controllers", "conf/scripts", "controllers", "credentials", "instances",
            "scripts")


class SkeletonParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


def missing_skeleton(bots: Path) -> list[str]:
    """The folders of the skeleton that bots/ lacks (a link or a file in a folder's place counts)."""
    return [f for f in SKELETON if (bots / f).is_symlink() or not (bots / f).is_dir()]


@action(tells=True)
def bots_skeleton(params: SkeletonParams, ctx: ActionContext) -> str:
    """hummingbot-api's bots/ folder lacks a folder of its skeleton: say the one mkdir that makes
    the missing ones (empty folders: safe), read from the bots folder when it is mounted, else every
    folder of the skeleton (mkdir -p leaves those that exist alone). hb-medic mounts the bots folder
    read-only and hummingbot-api's API has no route that makes an empty folder, so a person runs it."""
    if ctx.bots_dir is not None and ctx.bots_dir.is_dir():
        missing = missing_skeleton(ctx.bots_dir)
        if not missing:
            return ("every folder of the skeleton is in bots/ now (made since?): send the request again; if"
                    " it fails the same way, hummingbot-api's BOTS_PATH or its bots mount is not that folder")
        basis = "missing from bots/"
    else:
        missing = list(SKELETON)
        basis = "the skeleton of bots/ (MEDIC_BOTS_DIR lets hb-medic name only the missing ones)"
    folders = " ".join(f"bots/{f}" for f in missing)
    template = (" bots/credentials was missing, and with it the template account: copy"
                " bots/credentials/master_account from a fresh checkout of hummingbot-api (same release)"
                " before adding accounts." if "credentials" in missing and ctx.bots_dir is not None else "")
    return (f"{basis}: {folders}. On the host, in hummingbot-api's folder, run: mkdir -p {folders}"
            f" (empty folders; hummingbot-api fills them), then send the request again.{template}")
