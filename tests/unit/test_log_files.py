"""A bot's log files followed like `tail -F`: new files, appends, a line still being written,
truncation, rotation by rename, and the checkpoint a restart resumes from."""

from __future__ import annotations

import os
import time
from pathlib import Path

from agent.events import ERRORS, LOG
from agent.ingest.files import LogFiles
from agent.ingest.source import Close, Lines


class Sink:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, int, str]] = []  # (file, channel, offset, text)
        self.resets: list[str] = []
        self.next: dict[str, int] = {}

    def put(self, batch):
        if isinstance(batch, Lines):
            self.lines += [(batch.origin.file, batch.channel, pos, text) for pos, _ts, text in batch.items]
            self.next[str(batch.origin.file)] = batch.next
        elif isinstance(batch, Close):
            self.resets.append(batch.origin.file)

    def texts(self, name: str) -> list[str]:
        return [t for f, _c, _p, t in self.lines if f == name]


class Checkpoints:
    """The state's checkpoints, in memory."""

    def __init__(self, files: dict | None = None) -> None:
        self.files = files or {}

    def get(self, source, key):
        return self.files.get(key) if source == "file" else None

    def put(self, source, key, position):
        self.files[key] = position

    def put_many(self, items):
        for item in items:
            self.put(*item)


def follow(folder: Path, sink: Sink, checkpoints=None, **kw) -> LogFiles:
    files = LogFiles(sink, checkpoints=Checkpoints(checkpoints), interval=3600, scan_every=0, **kw)
    files.watch("rb_a", folder, fresh=False, stack="default")
    return files


def test_new_files_appends_and_an_unfinished_line(tmp_path):
    sink = Sink()
    files = follow(tmp_path, sink)
    (tmp_path / "errors.log").write_text("2026-11-29 07:29:05,198 - root - ERROR - Invalid password.\n")
    (tmp_path / "logs_rb_cfg.log").write_text("a line\r\nhalf a li")
    (tmp_path / "other.txt").write_text("not a log\n")
    files.poll_once()
    assert sink.texts("errors.log") == ["2026-11-29 07:29:05,198 - root - ERROR - Invalid password."]
    assert sink.texts("logs_rb_cfg.log") == ["a line"]
    assert {c for _f, c, _p, _t in sink.lines} == {ERRORS, LOG}
    with open(tmp_path / "logs_rb_cfg.log", "a") as f:
        f.write("ne\nthird\n")
    files.poll_once()
    assert sink.texts("logs_rb_cfg.log") == ["a line", "half a line", "third"]
    assert [p for f, _c, p, _t in sink.lines if f == "logs_rb_cfg.log"] == [0, 8, 20]
    assert sink.next["logs_rb_cfg.log"] == 26


def test_drain_reads_the_last_words_of_a_bot_that_stopped(tmp_path):
    sink = Sink()
    files = follow(tmp_path, sink)
    (tmp_path / "errors.log").write_text("")
    files.poll_once()
    (tmp_path / "errors.log").write_text("Traceback (most recent call last):\nFileNotFoundError: x")
    files.drain("rb_a")  # no newline at the end: it stopped mid-line, and it is still a line
    assert sink.texts("errors.log") == ["Traceback (most recent call last):", "FileNotFoundError: x"]


def test_truncation_and_rotation(tmp_path):
    sink = Sink()
    files = follow(tmp_path, sink)
    log = tmp_path / "logs_rb_cfg.log"
    log.write_text("one\ntwo\n")
    files.poll_once()
    log.write_text("x\n")  # truncated (copytruncate) and written again
    files.poll_once()
    assert sink.texts("logs_rb_cfg.log") == ["one", "two", "x"] and sink.resets == ["logs_rb_cfg.log"]
    with open(log, "a") as f:
        f.write("last of the old file\n")
    os.rename(log, tmp_path / "logs_rb_cfg.log.2026-11-29")  # rotated: a new file under the name
    log.write_text("first of the new file\n")
    files.poll_once()
    assert sink.texts("logs_rb_cfg.log")[-2:] == ["last of the old file", "first of the new file"]
    assert sink.resets == ["logs_rb_cfg.log", "logs_rb_cfg.log"]


def test_a_restart_resumes_at_the_checkpoint_of_the_same_file(tmp_path):
    log = tmp_path / "logs_rb_cfg.log"
    log.write_text("handled\nnot yet\n")
    st = os.stat(log)
    cp = {"container": "rb_a", "dev": st.st_dev, "ino": st.st_ino, "offset": len("handled\n")}
    sink = Sink()
    follow(tmp_path, sink, {str(log): cp})
    assert sink.texts("logs_rb_cfg.log") == ["not yet"]
    # Another file under that name (rotated while the agent was away): from its start.
    log.unlink()
    log.write_text("new\n")
    sink = Sink()
    follow(tmp_path, sink, {str(log): cp})
    assert sink.texts("logs_rb_cfg.log") == ["new"]


def test_an_old_file_met_the_first_time_is_not_replayed(tmp_path):
    log = tmp_path / "logs_rb_cfg.log"
    log.write_text("long ago\n")
    past = time.time() - 7200
    os.utime(log, (past, past))
    sink = Sink()
    files = follow(tmp_path, sink, catchup_window=600)
    assert sink.lines == []
    with open(log, "a") as f:
        f.write("now\n")
    files.poll_once()
    assert sink.texts("logs_rb_cfg.log") == ["now"]
