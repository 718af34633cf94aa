"""Open a bot's log files without ever leaving its logs/ folder, and without blocking.

A bot runs user scripts and owns its logs/ folder: a name there may be a link to any file the
agent can read (a key file, another bot's log), a FIFO or a device that blocks or acts when
opened, or a hard link to a file elsewhere. So every folder from the bots folder down to logs/
is opened without following links, a log file only once `lstat` shows a regular file, then
opened without following links and non-blocking; what was opened must be that very file
(device and inode), have one link, and its real path must be in that logs/ folder.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_PROC = Path("/proc/self/fd")


class Refused(Exception):
    """Not a file (or folder) of the bot's own: never read. The text says why, without content."""


def open_folder(root: Path | None, folder: Path) -> int:
    """The descriptor of a bot's logs/ folder, every part below the bots folder (`root`) opened
    without following a link (the bots folder itself is the operator's). OSError: not there."""
    base, parts = folder.parent, (folder.name,)
    if root is not None and folder.is_relative_to(root) and folder != root:
        base, parts = root, folder.relative_to(root).parts
    if ".." in parts:
        raise Refused("a path that climbs out")
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            try:
                nxt = os.open(part, _DIR, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise Refused(f"{part!r} is a link or not a folder") from None
                raise
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(folder_fd: int, name: str) -> tuple[BinaryIO, os.stat_result]:
    """A log file in the folder, open for reading (blocking reads: it is a regular file).
    Refused: a link, not a regular file, more than one link, or its real path elsewhere.
    OSError: not there, or replaced while it was opened (try again later)."""
    named = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
    _check(named)
    try:
        fd = os.open(name, _FILE, dir_fd=folder_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Refused("a link") from None
        raise
    try:
        st = os.fstat(fd)
        _check(st)
        if (st.st_dev, st.st_ino) != (named.st_dev, named.st_ino):
            raise FileNotFoundError(errno.ENOENT, "replaced while it was opened", name)
        if _PROC.is_dir():
            real, inside = os.readlink(_PROC / str(fd)), os.readlink(_PROC / str(folder_fd))
            if os.path.dirname(real) != inside or os.path.basename(real) != name:
                raise Refused("its real path is not in the folder")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), st
    except BaseException:
        os.close(fd)
        raise


def _check(st: os.stat_result) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise Refused("a link")
    if not stat.S_ISREG(st.st_mode):
        raise Refused(f"not a regular file ({_kind(st.st_mode)})")
    if st.st_nlink > 1:
        raise Refused(f"a file with {st.st_nlink} hard links (one may be elsewhere)")


def _kind(mode: int) -> str:
    for test, word in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a folder"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return word
    return "of an unknown kind"
