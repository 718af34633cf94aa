"""What the Docker engine says about a deploy: the image present, hummingbot-api's CONFIG_PASSWORD,
a container already holding the instance's name (legacy's 409).

The engine is asked at most once per TTL seconds for each thing (one image list, one container
list, one inspect of hummingbot-api), an answer or a failure alike: the recorder runs the checks
on every deploy and an engine that does not answer must not cost each of them its timeout.
The environment's values are never kept: only whether CONFIG_PASSWORD is set, empty or absent.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from agent.actions.deploys import DEFAULT_IMAGE, image_allowed
from agent.match.model import Capture
from agent.preflight.model import NAME, Context, DeployRequest, Finding, refused, skipped

TTL = 3.0
IMAGE = Capture(type="image", max_length=255)


class EngineFailed(Exception):
    """The engine did not answer (the reason, in a line)."""


class EngineView:
    """One engine's answers, each kept for TTL seconds."""

    def __init__(self, engine: Any, ttl: float = TTL) -> None:
        self._engine = engine
        self._ttl = ttl
        self._lock = threading.Lock()
        self._answers: dict[str, tuple[float, Any, str | None]] = {}

    def _get(self, key: str, ask: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._answers.get(key)
            if hit is None or now - hit[0] >= self._ttl:
                try:
                    hit = (now, ask(), None)
                except Exception as exc:  # any failure of the engine is said, not raised
                    hit = (now, None, f"{type(exc).__name__}: {str(exc)[:200]}")
                self._answers[key] = hit
        if hit[2] is not None:
            raise EngineFailed(hit[2])
        return hit[1]

    def images(self) -> frozenset[str]:
        """Every tag and digest of the images on the engine."""
        def ask() -> frozenset[str]:
            refs: set[str] = set()
            for image in self._engine.api.images():
                refs.update(image.get("RepoTags") or [])
                refs.update(image.get("RepoDigests") or [])
            return frozenset(refs)
        return self._get("images", ask)

    def containers(self) -> frozenset[str]:
        """The names of every container, running or not."""
        def ask() -> frozenset[str]:
            return frozenset(n.lstrip("/") for c in self._engine.api.containers(all=True)
                             for n in c.get("Names") or [])
        return self._get("containers", ask)

    def config_password(self, container: str) -> str | None:
        """"set", "empty", None (not in the environment: hummingbot-api's default) or "missing" (no
        such container)."""
        def ask() -> str | None:
            from docker.errors import NotFound

            try:
                env = self._engine.api.inspect_container(container).get("Config", {}).get("Env") or []
            except NotFound:
                return "missing"
            for item in env:
                if isinstance(item, str) and item.partition("=")[0] == "CONFIG_PASSWORD":
                    return "set" if item.partition("=")[2] else "empty"
            return None
        return self._get(f"env:{container}", ask)


_views: weakref.WeakKeyDictionary[Any, EngineView] = weakref.WeakKeyDictionary()
_views_lock = threading.Lock()


def view(engine: Any) -> EngineView:
    """The cached view of this engine client (one per client, gone with it)."""
    with _views_lock:
        found = _views.get(engine)
        if found is None:
            found = _views[engine] = EngineView(engine)
        return found


def _no_engine(ctx: Context) -> str:
    return f"no Docker engine ({ctx.engine_problem})" if ctx.engine_problem else "no Docker engine"


def name_on_engine(image: str) -> str:
    """The reference as the engine lists it: Docker Hub's host and `library/` left out, `:latest`
    when no tag or digest is given."""
    name = image.removeprefix("docker.io/").removeprefix("index.docker.io/").removeprefix("library/")
    return name if ":" in name.rpartition("/")[2] or "@" in name else f"{name}:latest"


def image_present(req: DeployRequest, ctx: Context) -> Finding | None:
    """Docker cannot start a bot whose image it cannot find or pull (rule deploy-image-unavailable:
    hummingbot-api answers success:false). hb-medic never pulls; an image outside
    MEDIC_ALLOWED_IMAGES is not looked up: a deploy of it is neither fixed nor re-sent."""
    image = req.body.get("image")
    image = DEFAULT_IMAGE if image is None else image  # hummingbot-api's default
    bad = refused("image", "image", image, IMAGE)
    if bad is not None:
        return bad
    assert isinstance(image, str)
    if not image_allowed(image, ctx.allowed_images):
        return Finding("image", False, f"image {image} is neither {DEFAULT_IMAGE} nor on"
                                       " MEDIC_ALLOWED_IMAGES: not looked up, and hb-medic will neither fix"
                                       " nor re-send this deploy",
                       fix=f"add {image} to MEDIC_ALLOWED_IMAGES if it is yours")
    if ctx.engine is None:
        return skipped("image", _no_engine(ctx))
    try:
        refs = view(ctx.engine).images()
    except EngineFailed as exc:
        return skipped("image", f"the engine did not answer ({exc})")
    if name_on_engine(image) in refs:
        return Finding("image", True, f"image {image} is on the engine")
    return Finding("image", False, f"image {image} is not on the engine: the deploy will fail unless Docker"
                                   " can pull it", rule="deploy-image-unavailable", captures={"image": image},
                   fix=f"pull or build it on the host (docker pull {image}); hb-medic never pulls")


def config_password(req: DeployRequest, ctx: Context) -> Finding | None:
    """hummingbot-api with an empty CONFIG_PASSWORD refuses to start a bot with a script (legacy: a
    `script`; current: a script config, which the controllers route always has): rule
    config-password-missing. Read through the engine as `doctor` does; the value is never kept."""
    if ctx.engine is None or ctx.api_container is None:
        return skipped("config-password", _no_engine(ctx) if ctx.engine is None
                       else "hummingbot-api's container is not known (MEDIC_CONTAINERS)")
    try:
        state = view(ctx.engine).config_password(ctx.api_container)
    except EngineFailed as exc:
        return skipped("config-password", f"{ctx.api_container}'s environment cannot be read ({exc})")
    if state == "missing":
        return skipped("config-password", f"no container {ctx.api_container} on the engine")
    if state != "empty":
        how = "set" if state == "set" else "not set (hummingbot-api's default)"
        return Finding("config-password", True, f"{ctx.api_container}: CONFIG_PASSWORD {how}")
    needs = req.body.get("script") if req.generation == "legacy" and req.route == "deploy-v2-script" \
        else req.route == "deploy-v2-controllers" or req.body.get("script_config")
    name = ctx.api_container
    fix = (f"set CONFIG_PASSWORD in {name}'s environment (its .env or compose file) to the password the"
           f" connector keys were encrypted with, then recreate it: docker compose up -d {name}")
    if needs:
        return Finding("config-password", False, f"{name} has an empty CONFIG_PASSWORD: it will answer"
                                                 " \"Password not provided\"",
                       rule="config-password-missing", fix=fix)
    return Finding("config-password", False, f"{name} has an empty CONFIG_PASSWORD: the bot will start"
                                             " without a password", rule="config-password-empty", fix=fix)


def name_conflict(req: DeployRequest, ctx: Context) -> Finding | None:
    """The legacy generation's script route names the container exactly as the instance: an
    existing one (running or not) makes Docker answer 409 (rule deploy-name-conflict). The current
    generation and every controllers route add a time stamp: no conflict."""
    if req.generation != "legacy" or req.route != "deploy-v2-script" or req.instance is None:
        return None
    name = req.instance
    if refused("name-conflict", "instance_name", name, NAME) is not None:
        return None  # the instance-name check says so
    if ctx.engine is None:
        return skipped("name-conflict", _no_engine(ctx))
    try:
        names = view(ctx.engine).containers()
    except EngineFailed as exc:
        return skipped("name-conflict", f"the engine did not answer ({exc})")
    if name not in names:
        return Finding("name-conflict", True, f"no container is named {name}")
    return Finding("name-conflict", False, f"a container named {name} already exists: Docker will refuse the"
                                           " name (409)", rule="deploy-name-conflict",
                   captures={"instance": name},
                   fix=f"stop and archive the old bot {name} (or remove its container if you are sure), or"
                       " deploy under another instance name; hb-medic never removes a container")
