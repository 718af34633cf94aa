"""Build the test bed's images, reusing them while their sources are unchanged.

Run as ``python -m tests.images`` by ``scripts/test``; the docker fixtures call
:func:`ensure_images` too, so a bare ``pytest`` works on a prepared engine.
The base image is made by ``scripts/base-image`` (debootstrap needs root and
the host's apt), never pulled.
"""

from __future__ import annotations

import hashlib
import pathlib
import sys

import docker
from docker.errors import BuildError, ImageNotFound

HERE = pathlib.Path(__file__).resolve().parent
BASE_IMAGE = "medic-test/python-base"


def _digest(context: pathlib.Path, base_id: str = "") -> str:
    """Hash of every file in the context (names and bytes), and of the base image when given."""
    h = hashlib.sha256(base_id.encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts:
            continue
        h.update(str(path.relative_to(context)).encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _tagged(repository: str, context: pathlib.Path) -> str:
    """The tag names the sources, so checkouts with different stand-ins share one engine
    without rebuilding each other's images under a running test."""
    return f"{repository}:{_digest(context)}"


STANDIN_IMAGE = _tagged("medic-test/hummingbot-api-standin", HERE / "standin" / "app")
TOOLS_IMAGE = _tagged("medic-test/standin-tools", HERE / "standin" / "tools")
# Named <owner>/hummingbot:<tag>, as hummingbot-api's status route wants a bot's image.
BOT_IMAGE = _tagged("medic-test/hummingbot", HERE / "standin" / "bot")
# The hardened compose's Docker socket proxy, as shipped (Debian's haproxy on the local base).
PROXY_IMAGE = _tagged("medic-test/docker-proxy", HERE.parent / "docker-proxy")

# image tag -> build context
IMAGES: dict[str, pathlib.Path] = {
    STANDIN_IMAGE: HERE / "standin" / "app",
    TOOLS_IMAGE: HERE / "standin" / "tools",
    BOT_IMAGE: HERE / "standin" / "bot",
    PROXY_IMAGE: HERE.parent / "docker-proxy",
}


def ensure_images(client: docker.DockerClient, log=print) -> None:
    """Build each image whose sources changed; raise with the build log on failure."""
    try:
        base = client.images.get(BASE_IMAGE)
    except ImageNotFound as exc:
        raise RuntimeError(f"{BASE_IMAGE} is missing: run scripts/base-image") from exc
    for tag, context in IMAGES.items():
        digest = _digest(context, base.id)
        try:
            if client.images.get(tag).labels.get("medic.digest") == digest:
                log(f"images: reusing {tag}")
                continue
        except ImageNotFound:
            pass
        log(f"images: building {tag}")
        try:
            client.images.build(
                path=str(context),
                tag=tag,
                buildargs={"BASE": BASE_IMAGE},
                labels={"medic.digest": digest},
                network_mode="host",  # the engine runs with --bridge=none
                rm=True,
                forcerm=True,
            )
        except BuildError as exc:
            lines = "".join(str(c.get("stream", c.get("error", ""))) for c in exc.build_log)
            raise RuntimeError(f"building {tag} failed:\n{lines[-4000:]}") from exc


if __name__ == "__main__":
    try:
        ensure_images(docker.from_env(), log=lambda m: print(m, file=sys.stderr))
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
