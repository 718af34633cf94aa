"""Re-create a stopped container with the same definition plus a terminal, through the Docker API.

A Hummingbot client run without a TTY dies at its prompt (rule bot-no-tty); a restart dies the
same way, only a new definition helps. The clone is taken from the engine's own inspect of the
container (never from anything it printed): its Config, HostConfig, networks with their aliases,
and name, with `Tty` and `OpenStdin` set. Labels stay as they were, compose's config hash among
them, so `docker compose up` sees no drift; the compose file still needs `tty: true` and
`stdin_open: true` for a `--force-recreate`.

Nothing is lost on the way: the old container is renamed aside, the new one created and started
under its name, and only once the new one runs is the old one removed. Should the create, the
start or the first seconds fail, the new one is removed and the old one gets its name back.
"""

from __future__ import annotations

import contextlib
import re
import time

from docker.errors import APIError, NotFound
from pydantic import BaseModel, ConfigDict, Field

from agent.actions.base import ActionContext, ActionError, NeedsHuman
from agent.actions.registry import action
from agent.actions.types import ContainerName
from agent.ingest.bots import CONF_MOUNT

COMPOSE_PROJECT = "com.docker.compose.project"
# The fields of a container's inspected Config that its create body takes back as they are.
CONFIG_KEYS = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
               "ExposedPorts", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Image",
               "Volumes", "WorkingDir", "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild",
               "Labels", "StopSignal", "StopTimeout", "Shell")
ENDPOINT_KEYS = ("IPAMConfig", "Links", "Aliases", "DriverOpts")
_ANONYMOUS = re.compile(r"^[0-9a-f]{64}$")
ASIDE = "-notty-"  # the old container's name while the new one is made: <name>-notty-<unix time>


class RecreateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: ContainerName
    check: float = Field(5, ge=0, le=120, description="seconds the new container must keep running"
                                                       " before the old one is removed")


@action
def recreate_with_terminal(params: RecreateParams, ctx: ActionContext) -> str:
    """Re-create a stopped container with the same definition plus a terminal (Tty, OpenStdin)."""
    api = ctx.docker.api
    name = params.name
    finished = _resume(ctx, name, params.check)
    if finished is not None:
        return finished
    try:
        info = api.inspect_container(name)
    except NotFound:
        raise ActionError(f"container {name} does not exist") from None
    state = info.get("State") or {}
    if (info.get("Config") or {}).get("Tty") and state.get("Running") and not state.get("Restarting"):
        # What the fix is for is so already (an attempt a kill cut off after it re-created it, or a
        # person's own re-creation): nothing to do, and the check that follows judges it.
        return f"{name} already has a terminal and runs: nothing re-created"
    _refuse(ctx, name, info)
    started = time.monotonic()
    try:
        if (info.get("State") or {}).get("Restarting"):  # its restart policy starts it again and again
            api.stop(info["Id"], timeout=1)  # each start dies at the prompt: stop the loop first
        api.rename(info["Id"], f"{name}{ASIDE}{int(time.time())}")
    except APIError as exc:
        if exc.status_code == 403:  # a socket proxy in front of the engine (compose.hardened.yaml)
            raise NeedsHuman(f"the Docker API hb-medic reaches refuses to stop, rename or create"
                             f" containers ({_why(exc)}): re-create {name} with a terminal yourself"
                             " (tty: true and stdin_open: true), nothing was changed") from None
        raise ActionError(f"{name} could not be renamed aside, nothing changed: {_why(exc)}") from None
    body, extra = clone_body(info)
    new_id = None
    try:
        new_id = api.create_container_from_config(body, name=name)["Id"]
        for network, endpoint in extra.items():
            api.connect_container_to_network(new_id, network, **endpoint)
        api.start(new_id)
        _keeps_running(ctx, new_id, params.check)
    except BaseException as exc:  # the agent stopping too: never leave the old one aside
        _roll_back(ctx, new_id, info["Id"], name)
        if not isinstance(exc, APIError | ActionError):
            raise
        raise ActionError(f"recreating {name} with a terminal failed, it is left as it was: {_why(exc)}") \
            from None
    api.remove_container(info["Id"])  # its volumes stay: the new one uses them
    return (f"recreated {name} with a terminal (Tty, OpenStdin) in {time.monotonic() - started:.1f} s;"
            f" it runs as {new_id[:12]}")


def _resume(ctx: ActionContext, name: str, check: float) -> str | None:
    """An earlier run cut off (the agent killed) may have left the old container aside: finish it.
    The new one, if it was made and runs with a terminal, is kept (the old one removed once it
    passes the check); otherwise the old one gets its name back and the action starts over."""
    api = ctx.docker.api
    aside = re.compile(re.escape(name) + re.escape(ASIDE) + r"\d+$")
    found = [c for c in api.containers(all=True, filters={"name": name + ASIDE})
             if aside.fullmatch((c.get("Names") or ["/"])[0].lstrip("/"))]
    if not found:
        return None
    old = found[0]["Id"]
    try:
        new = api.inspect_container(name)
    except NotFound:
        new = None
    if new is not None and new["Id"] != old and (new.get("Config") or {}).get("Tty"):
        try:
            _keeps_running(ctx, new["Id"], check)
        except ActionError:
            pass
        else:
            api.remove_container(old)
            return (f"recreated {name} with a terminal (finished after an interruption); it runs as"
                    f" {new['Id'][:12]}")
    _roll_back(ctx, new["Id"] if new is not None and new["Id"] != old else None, old, name)
    return None


def _why(exc: Exception) -> str:
    """The engine's own words (its explanation), short."""
    return str(getattr(exc, "explanation", None) or exc)[:300]


def _refuse(ctx: ActionContext, name: str, info: dict) -> None:
    """Raise NeedsHuman (nothing changed) for a container this must not re-create."""
    config, state = info.get("Config") or {}, info.get("State") or {}
    if config.get("Tty"):
        raise NeedsHuman(f"{name} already has a terminal (Tty): re-creating it would not help")
    if state.get("Running") and not state.get("Restarting"):
        raise NeedsHuman(f"{name} is running: stop it first if it is to be re-created with a terminal")
    if deployed_by_api(info):
        raise NeedsHuman(f"{name} is a bot hummingbot-api deployed: deploy it again through hummingbot-api"
                         " (its bots always get a terminal)")
    image = config.get("Image") or ""
    try:
        current = ctx.docker.api.inspect_image(image)["Id"]
    except NotFound:
        current = None
    if current != info.get("Image"):
        raise NeedsHuman(f"{name}'s image {image} now names another image (or none): re-creating it would"
                         " change what it runs; re-create it yourself with a terminal")


def deployed_by_api(info: dict) -> bool:
    """hummingbot-api's deploy: its conf folder bound from bots/instances/<its name>/conf, and no
    compose project (hummingbot-api makes its bots with docker-py, always with a TTY)."""
    if COMPOSE_PROJECT in ((info.get("Config") or {}).get("Labels") or {}):
        return False
    name = (info.get("Name") or "").lstrip("/")
    return any(m.get("Destination") == CONF_MOUNT
               and (m.get("Source") or "").rstrip("/").endswith(f"/instances/{name}/conf")
               for m in info.get("Mounts") or [])


def clone_body(info: dict) -> tuple[dict, dict[str, dict]]:
    """The Engine API create body of the inspected container, with a terminal; and the networks
    beyond the first (the create takes one endpoint, the others are connected before the start)."""
    config = info.get("Config") or {}
    host = dict(info.get("HostConfig") or {})
    body = {k: config[k] for k in CONFIG_KEYS if config.get(k) is not None}
    body.update(Tty=True, OpenStdin=True)
    mode = host.get("NetworkMode") or "default"
    if body.get("Hostname") == info.get("Id", "")[:12] or mode == "host" or mode.startswith("container:"):
        body.pop("Hostname", None)  # the engine's own choice, not part of the definition
        body.pop("Domainname", None)
    host["Binds"] = list(host.get("Binds") or []) + _anonymous_volumes(info, host)
    if host.get("Links"):  # inspect shows "/other:/this/alias"; a create takes "other:alias"
        host["Links"] = [f"{src.lstrip('/')}:{dst.rsplit('/', 1)[-1]}"
                         for src, _, dst in (link.partition(":") for link in host["Links"])]
    body["HostConfig"] = host
    own = {info.get("Id", "")[:12]}
    endpoints: dict[str, dict] = {}
    for network, ep in ((info.get("NetworkSettings") or {}).get("Networks") or {}).items():
        endpoints[network] = {k: ep[k] for k in ENDPOINT_KEYS if ep.get(k)}
        if "Aliases" in endpoints[network]:
            endpoints[network]["Aliases"] = [a for a in ep["Aliases"] if a not in own] or None
    first = mode if mode in endpoints else next(iter(endpoints), None)
    if first is not None:
        body["NetworkingConfig"] = {"EndpointsConfig": {first: endpoints.pop(first)}}
    extra = {net: _connect_args(ep) for net, ep in endpoints.items()}
    return body, extra


def _anonymous_volumes(info: dict, host: dict) -> list[str]:
    """The image's volumes the old container got (anonymous ones): kept by name, not made anew."""
    taken = {b.split(":")[1] for b in host.get("Binds") or [] if b.count(":") >= 1}
    taken |= {m.get("Target") for m in host.get("Mounts") or []}
    out = []
    for m in info.get("Mounts") or []:
        if m.get("Type") == "volume" and _ANONYMOUS.match(m.get("Name") or "") \
                and m["Destination"] not in taken:
            out.append(f"{m['Name']}:{m['Destination']}{'' if m.get('RW', True) else ':ro'}")
    return out


def _connect_args(ep: dict) -> dict:
    ipam = ep.get("IPAMConfig") or {}
    links = dict(link.split(":", 1) for link in ep.get("Links") or [])
    return {"aliases": ep.get("Aliases"), "links": links or None,
            "ipv4_address": ipam.get("IPv4Address"), "ipv6_address": ipam.get("IPv6Address"),
            "link_local_ips": ipam.get("LinkLocalIPs"), "driver_opt": ep.get("DriverOpts")}


def _keeps_running(ctx: ActionContext, cid: str, seconds: float) -> None:
    """The new container runs, and still does `seconds` later (a client without its prompt dies
    within them)."""
    deadline = time.monotonic() + seconds
    while True:
        state = ctx.docker.api.inspect_container(cid).get("State") or {}
        if not state.get("Running") or state.get("Restarting"):
            raise ActionError(f"the new container stopped at once (exit code {state.get('ExitCode')})")
        if time.monotonic() >= deadline:
            return
        ctx.pause(min(0.5, deadline - time.monotonic()))


def _roll_back(ctx: ActionContext, new_id: str | None, old_id: str, name: str) -> None:
    """Remove the new container, give the old one its name back."""
    api = ctx.docker.api
    if new_id is not None:
        with contextlib.suppress(NotFound):
            api.remove_container(new_id, force=True)
    api.rename(old_id, name)
