"""Exchange keys the operator placed for hb-medic: MEDIC_CREDENTIALS_DIR/<profile>/<connector>.json
(or .yml), sent to hummingbot-api's add-credential.

Read only from regular files inside the folder, that only their owner may change: a symbolic
link could point at any file the agent can read (which would then be sent to hummingbot-api),
and a file or folder others may write could be swapped for keys of their choosing.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from agent.actions.base import ActionError

KEY_SUFFIXES = (".json", ".yml", ".yaml")


def _safe(path: Path, what: str, *, follow: bool = False) -> os.stat_result:
    """The file's status, or ActionError saying why it is refused."""
    st = os.stat(path) if follow else os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise ActionError(f"{what} {path} is a symbolic link: refused (keys are read only from regular"
                          " files inside MEDIC_CREDENTIALS_DIR; put the file itself there)")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ActionError(f"{what} {path} may be changed by its group or by others (mode"
                          f" {stat.S_IMODE(st.st_mode):o}): refused; chmod go-w {path}")
    return st


def placed_keys(root: Path | None, profile: str) -> dict[str, Path]:
    """Connector -> key file placed for this profile; ActionError when one is unsafe."""
    if root is None or not root.is_dir():
        return {}
    _safe(root, "MEDIC_CREDENTIALS_DIR", follow=True)  # the operator's own path may be a link
    folder = root / profile
    try:
        st = _safe(folder, "key folder")
    except FileNotFoundError:
        return {}
    if not stat.S_ISDIR(st.st_mode):
        raise ActionError(f"key folder {folder} is not a folder: refused")
    found = {}
    for entry in sorted(folder.iterdir()):
        if entry.suffix not in KEY_SUFFIXES:
            continue
        if not stat.S_ISREG(_safe(entry, "key file").st_mode):
            raise ActionError(f"key file {entry} is not a regular file: refused")
        found[entry.stem] = entry
    return found


def read_key_file(path: Path) -> str:
    """Its text, opened without following a link and checked again once open (it may have been
    swapped since it was listed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ActionError(f"key file {path}: cannot open it without following links ({exc.strerror})") \
            from None
    with os.fdopen(fd, encoding="utf-8") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ActionError(f"key file {path} changed into something unsafe while being read: refused")
        return f.read()
