"""Reload the rules when a folder changes; a broken file keeps the old set in force."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from agent.component import Loop, OneLoop
from agent.match.library import Library, load_library, shipped_dir

log = logging.getLogger(__name__)


def _signature(folders: list[Path]) -> tuple:
    out = []
    for p in sorted(p for folder in folders for p in folder.glob("*.yml")):
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        out.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(out)


class RulesWatcher(OneLoop):
    """Polls the shipped and the user's folder (inotify does not reach into every bind mount)
    and swaps matchers."""

    name = "rules-watch"

    def __init__(self, user: Path | None, on_load: Callable[[Library], None], interval: float = 2.0) -> None:
        """`on_load` gets each new library that loaded without errors (each stack makes its
        matcher from it)."""
        self.user = user
        self.folders = [shipped_dir()] + ([Path(user)] if user is not None else [])
        self.on_load = on_load
        self.interval = interval
        self.errors: list[str] = []
        self._sig = _signature(self.folders)
        self.loop = Loop(self.name, self._run)

    def _run(self) -> None:
        while not self.loop.wait(self.interval):
            sig = _signature(self.folders)
            if sig != self._sig:
                self._sig = sig
                self.reload()

    def reload(self) -> bool:
        result = load_library(self.user)
        if result.errors:
            self.errors = [str(e) for e in result.errors]
            for e in result.errors:
                log.error("rule error: %s", e)
            log.error("rules not reloaded (%d error(s)); the previous set stays in force",
                      len(result.errors))
            return False
        self.errors = []
        self.on_load(result)
        log.info("rules reloaded: %s", result.describe())
        return True
