"""Build the real programs' images for the real test lane, reusing them while their inputs are unchanged.

Run as ``python -m tests.realstack.images`` by ``scripts/prepare`` after the stand-in images. No image
can be pulled here, so the chain starts from Debian trixie made by debootstrap (as ``scripts/base-image``
makes the stand-ins' bookworm): trixie base -> shared Python (/opt/venv, the pinned lock, hummingbot
compiled from its source distribution) -> the bot image and one hummingbot-api image per generation.
Each image's tag is a hash of its inputs (recipe, vendored files, its parent's tag), so checkouts with
different inputs share an engine; its ``medic.digest`` label adds the parent's image id, so a parent
rebuilt from the same inputs rebuilds its children too.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import docker
from docker.errors import APIError, ImageNotFound

HERE = Path(__file__).resolve().parent
VENDOR = HERE / "vendor"
RECIPES = HERE / "recipes"
GENERATIONS = ("legacy", "current")
ARCHIVES = {"legacy": "legacy-fdf35f5.tar.gz", "current": "current-ee7ce5c.tar.gz"}

# The trixie base: what debootstrap installs and what `docker import` sets (the recipe of its tag).
SUITE = "trixie"
PACKAGES = ("python3", "python3-venv", "python3-dev", "gcc", "g++", "make", "libusb-1.0-0", "ca-certificates")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # the package index is reached through a TLS proxy
IMPORT_CHANGES = (
    f"ENV PIP_CERT={CA_BUNDLE}",
    f"ENV SSL_CERT_FILE={CA_BUNDLE}",
    f"ENV REQUESTS_CA_BUNDLE={CA_BUNDLE}",
    "ENV PIP_DISABLE_PIP_VERSION_CHECK=1",
    "ENV PYTHONDONTWRITEBYTECODE=1",
    "ENV PYTHONUNBUFFERED=1",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)

Log = Callable[[str], None]


def _digest(*parts: str | Path) -> str:
    """Hash of strings and of files (folders: every file in them, names and bytes)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            h.update(part.encode() + b"\0")
            continue
        files = sorted(p for p in part.rglob("*") if p.is_file() and "__pycache__" not in p.parts) \
            if part.is_dir() else [part]
        for path in files:
            h.update(str(path.relative_to(HERE)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


_BASE_D = _digest(SUITE, *PACKAGES, *IMPORT_CHANGES, CA_BUNDLE)
_PYTHON_D = _digest(_BASE_D, RECIPES / "python.Dockerfile", VENDOR / "deps")
_BOT_D = _digest(_PYTHON_D, RECIPES / "bot.Dockerfile", VENDOR / "hummingbot-bin")
_API_D = {g: _digest(_PYTHON_D, RECIPES / "api.Dockerfile", VENDOR / "hummingbot-api" / a)
          for g, a in ARCHIVES.items()}

BASE_IMAGE = f"medic-real/trixie-base:{_BASE_D}"
PYTHON_IMAGE = f"medic-real/python:{_PYTHON_D}"
# Named <owner>/hummingbot:<tag>: hummingbot-api lists only bots whose image matches `.+/hummingbot:`.
BOT_IMAGE = f"medic-real/hummingbot:{_BOT_D}"
API_IMAGES = {g: f"medic-real/hummingbot-api:{g}-{d}" for g, d in _API_D.items()}
# Stable names for people (`docker run medic-real/hummingbot-api:current`); code uses the hashed ones.
ALIASES = {BOT_IMAGE: "medic-real/hummingbot:real", **{API_IMAGES[g]: f"medic-real/hummingbot-api:{g}"
                                                          for g in GENERATIONS}}


def api_image(generation: str) -> str:
    """The hummingbot-api image of a generation ("legacy" or "current")."""
    return API_IMAGES[generation]


def _image_label(client: docker.DockerClient, tag: str, key: str) -> str | None:
    try:
        return client.images.get(tag).labels.get(key)
    except ImageNotFound:
        return None


def _apt_mirror() -> str | None:
    """The Debian mirror this machine's apt already uses, when one is configured."""
    for f in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        if not f.is_file():
            continue
        for line in f.read_text().splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and len(words) > 1:
                return words[1]
            if words[:1] == ["deb"] and len(words) > 1 and words[1].rstrip("/").endswith("/debian"):
                return words[1]
    return None


def _ensure_base(client: docker.DockerClient, log: Log) -> None:
    """Debian trixie by debootstrap (minbase), imported into the engine, with the host's CA bundle."""
    if _image_label(client, BASE_IMAGE, "medic.recipe") == _BASE_D:
        log(f"real-images: reusing {BASE_IMAGE}")
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"{BASE_IMAGE} is missing and building it needs root (debootstrap)")
    if shutil.which("debootstrap") is None:
        log("real-images: installing debootstrap")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="medic-rootfs-", ignore_cleanup_errors=True) as tmp:
        root = Path(tmp) / "root"
        try:
            _debootstrap_and_import(root, log, started)
        finally:
            _unmount_under(root)  # a failed debootstrap leaves /proc and /sys mounted in the root
    log(f"real-images: built {BASE_IMAGE} in {time.monotonic() - started:.0f} s")


def _unmount_under(root: Path) -> None:
    """Unmount what is mounted inside root, so removing root never reaches the host's /proc or /sys."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
              if line.split()[1].startswith(str(root) + "/")]
    for mount in sorted(mounts, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)


def _debootstrap_and_import(root: Path, log: Log, started: float) -> None:
    """The mirror apt already uses here, the CA bundle pip needs inside, no package caches."""
    mirror = _apt_mirror()
    log(f"real-images: debootstrap {SUITE} (minbase) into {root}")
    done = subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root),
         *([mirror] if mirror else [])],
        capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"debootstrap {SUITE} failed:\n{(done.stdout + done.stderr)[-4000:]}")
    log(f"real-images: debootstrap took {time.monotonic() - started:.0f} s")
    shutil.copy(CA_BUNDLE, root / CA_BUNDLE.lstrip("/"))
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (root / junk).glob("*"):
            if path.is_file():
                path.unlink()
    changes = [a for c in (f"LABEL medic.recipe={_BASE_D}", *IMPORT_CHANGES) for a in ("--change", c)]
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(["docker", "import", *changes, "-", BASE_IMAGE], stdin=tar.stdout,
                              capture_output=True, text=True)
    tar.stdout.close()
    if tar.wait() != 0 or imported.returncode != 0:
        raise RuntimeError(f"importing {BASE_IMAGE} failed: {imported.stderr.strip()}")


def _build(client: docker.DockerClient, tag: str, recipe: str, parent: str, log: Log,
           buildargs: dict[str, str]) -> None:
    """Build one image unless its label says it was built from these inputs on this parent;
    log each Dockerfile step with the time it took."""
    digest = _digest(tag, client.images.get(parent).id)
    if _image_label(client, tag, "medic.digest") == digest:
        log(f"real-images: reusing {tag}")
        return
    log(f"real-images: building {tag}")
    started = last = time.monotonic()
    step = ""
    tail: list[str] = []

    def finish_step() -> None:
        if step:
            log(f"real-images:   {time.monotonic() - last:5.0f} s  {step}")

    try:
        for chunk in client.api.build(
            path=str(HERE), dockerfile=f"recipes/{recipe}", tag=tag, buildargs=buildargs,
            labels={"medic.digest": digest}, network_mode="host",  # the engine runs with --bridge=none
            rm=True, forcerm=True, decode=True,
        ):
            if "error" in chunk:
                raise RuntimeError(f"building {tag} failed: {chunk['error']}\n" + "".join(tail[-60:]))
            text = chunk.get("stream", "")
            if text.startswith("Step "):
                finish_step()
                step, last = text.strip()[:100], time.monotonic()
            tail.append(text)
    except APIError as exc:
        raise RuntimeError(f"building {tag} failed: {exc}") from exc
    finish_step()
    log(f"real-images: built {tag} in {time.monotonic() - started:.0f} s")


def ensure_real_images(client: docker.DockerClient, log: Log = print) -> None:
    """Build every image of the real lane whose inputs changed; raise with the build's end on failure."""
    started = time.monotonic()
    _ensure_base(client, log)
    _build(client, PYTHON_IMAGE, "python.Dockerfile", BASE_IMAGE, log, {"BASE": BASE_IMAGE})
    _build(client, BOT_IMAGE, "bot.Dockerfile", PYTHON_IMAGE, log, {"PYTHON": PYTHON_IMAGE})
    for generation in GENERATIONS:
        _build(client, API_IMAGES[generation], "api.Dockerfile", PYTHON_IMAGE, log,
               {"PYTHON": PYTHON_IMAGE, "ARCHIVE": ARCHIVES[generation]})
    for tag, alias in ALIASES.items():
        repository, _, name = alias.rpartition(":")
        client.images.get(tag).tag(repository, name)
    log(f"real-images: ready in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    try:
        ensure_real_images(docker.from_env(), log=lambda m: print(m, file=sys.stderr, flush=True))
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
