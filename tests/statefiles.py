"""State files made bad on purpose, for the state-file tests and the fault suite's scenario:
each kind of damage the agent must refuse with one message, leaving the file untouched."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
from pathlib import Path

from agent.store import Store

KINDS = ("garbage", "half", "directory", "empty", "foreign", "read-only")


def good_state(path: Path, rows: int = 2000) -> None:
    """A real state file with `rows` audit rows (enough pages to cut one in half)."""
    store = Store(path)
    for n in range(rows):
        store.audit(None, "decision", f"filler {n}", {"pad": "x" * 200})
    store.close()


def damage(kind: str, path: Path) -> None:
    """Make `path` a state file of this kind of damage (`read-only` needs `chattr`; undo with
    `chattr -i`)."""
    if kind == "garbage":
        path.write_bytes(os.urandom(4096))
    elif kind == "half":
        good_state(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "foreign":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE notes (x)")
        conn.commit()
        conn.close()
    elif kind == "read-only":
        good_state(path, 10)
        subprocess.run(["chattr", "+i", str(path)], check=True)
    else:
        raise ValueError(f"no such damage: {kind}")


def digest(path: Path) -> str:
    """What must not change: the content and modification time (a folder's entries)."""
    if path.is_dir():
        return "dir:" + ",".join(sorted(os.listdir(path)))
    return hashlib.sha256(path.read_bytes()).hexdigest() + f":{path.stat().st_mtime_ns}"
