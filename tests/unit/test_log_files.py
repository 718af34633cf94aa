"""A bot's log files followed like `tail -F`: new files, appends, a line still being written,
truncation, rotation by rename, and the checkpoint a restart resumes from."""

from __future__ import annotations

import os
import threading
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
        self.acks: list = []  # (ack, position) of each batch of lines

    def put(self, batch):
        if isinstance(batch, Lines):
            self.lines += [(batch.origin.file, batch.channel, pos, text) for pos, _ts, text in batch.items]
            self.next[str(batch.origin.file)] = batch.next
            self.acks.append((batch.ack, batch.next))
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


def bots_folder(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "bots"
    logs = root / "instances" / "rb_a" / "logs"
    logs.mkdir(parents=True)
    return root, logs


def test_a_vanished_bots_folder_is_said_once_each_way_and_in_health(tmp_path, caplog):
    root, logs = bots_folder(tmp_path)
    sink = Sink()
    files = follow(logs, sink, root=root)
    files.poll_once()
    assert files.health() == []
    os.rename(root, tmp_path / "bots.gone")
    for _ in range(3):
        files.poll_once()
    (problem,) = files.health()
    assert problem.startswith(f"bots folder {root} is gone for ") and "log files cannot be read" in problem
    root.mkdir()  # replaced by an empty folder
    for _ in range(3):
        files.poll_once()
    assert files.health() == []
    said = [r.getMessage() for r in caplog.records if "bots folder" in r.getMessage()]
    assert len(said) == 2, said
    assert "is gone (No such file or directory)" in said[0]
    assert "failures they write there go unseen" in said[0]
    assert "is back after" in said[1] and "another folder" in said[1]
    # The bot's folder comes back in it: its new file is read from its start.
    logs.mkdir(parents=True)
    (logs / "errors.log").write_text("first words\n")
    files.poll_once()
    assert sink.texts("errors.log") == ["first words"]


def test_a_bots_folder_replaced_by_a_copy_reads_nothing_old_again(tmp_path):
    root, logs = bots_folder(tmp_path)
    (logs / "errors.log").write_text("2026-11-29 07:29:05,198 - root - ERROR - old failure\nhalf")
    sink = Sink()
    files = follow(logs, sink, root=root)
    files.poll_once()
    assert sink.texts("errors.log") == ["2026-11-29 07:29:05,198 - root - ERROR - old failure"]
    os.rename(root, tmp_path / "bots.old")
    files.poll_once()
    (logs / "errors.log").parent.mkdir(parents=True)
    (logs / "errors.log").write_bytes((tmp_path / "bots.old/instances/rb_a/logs/errors.log").read_bytes()
                                      + b" a line\nnew failure\n")  # a copy, written on
    files.poll_once()
    assert sink.texts("errors.log") == ["2026-11-29 07:29:05,198 - root - ERROR - old failure",
                                        "half a line", "new failure"]
    assert sink.resets == []
    ack, position = sink.acks[-1]  # the checkpoint names the copy
    ack(position)
    assert files.checkpoints.files[str(logs / "errors.log")]["ino"] == os.stat(logs / "errors.log").st_ino


def test_a_file_of_another_content_under_the_name_is_read_from_its_start(tmp_path):
    root, logs = bots_folder(tmp_path)
    (logs / "errors.log").write_text("one\ntwo\n")
    sink = Sink()
    files = follow(logs, sink, root=root)
    files.poll_once()
    os.rename(logs / "errors.log", logs / "errors.log.1")
    (logs / "errors.log").write_text("one\nTWO and more\n")  # as long, another content: rotation
    files.poll_once()
    assert sink.texts("errors.log") == ["one", "two", "one", "TWO and more"]
    assert sink.resets == ["errors.log"]


SECRET = "-----BEGIN PRIVATE KEY-----\nMIIEvQ-canary-7731\n-----END PRIVATE KEY-----\nseed: canary words\n"


def test_links_fifos_and_hard_links_in_a_bots_logs_are_refused_once_and_never_read(tmp_path, caplog):
    root, logs = bots_folder(tmp_path)
    other = root / "instances" / "rb_b" / "logs"
    other.mkdir(parents=True)
    (other / "logs_b.log").write_text("the other bot's line\n")
    outside = tmp_path / "wallet.txt"
    outside.write_text(SECRET)
    (logs / "logs_zz.log").symlink_to(outside)
    (logs / "logs_zy.log").symlink_to("../../rb_b/logs/logs_b.log")
    os.mkfifo(logs / "logs_fifo.log")
    os.link(outside, logs / "logs_hard.log")
    (logs / "errors.log").write_text("own line\n")
    sink = Sink()
    files = follow(logs, sink, root=root)
    for _ in range(3):
        files.poll_once()
    assert [t for _f, _c, _p, t in sink.lines] == ["own line"]
    said = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(said) == 4, said
    assert any("'logs_zz.log'" in s and "a link" in s for s in said)
    assert any("'logs_fifo.log'" in s and "a FIFO" in s for s in said)
    assert any("'logs_hard.log'" in s and "2 hard links" in s for s in said)
    assert "canary" not in caplog.text and "other bot" not in caplog.text
    # Made a file of its own: read.
    (logs / "logs_zz.log").unlink()
    (logs / "logs_zz.log").write_text("now its own\n")
    files.poll_once()
    assert sink.texts("logs_zz.log") == ["now its own"]


def test_a_fifo_or_a_link_renamed_over_a_followed_file_blocks_nothing_and_is_not_read(tmp_path, caplog):
    root, logs = bots_folder(tmp_path)
    log = logs / "logs_cfg.log"
    log.write_text("first\n")
    sink = Sink()
    files = LogFiles(sink, interval=0.05, scan_every=0, root=root, stuck_after=2)
    files.start()
    try:
        files.watch("rb_a", logs, fresh=False, stack="default")
        assert _until(lambda: sink.texts("logs_cfg.log") == ["first"])
        with open(log, "a") as f:
            f.write("last of it\n")
        os.mkfifo(logs / "fifo")
        os.rename(logs / "fifo", log)  # rotation to a FIFO: an open would wait for a writer forever
        assert _until(lambda: any("a FIFO" in r.getMessage() for r in caplog.records))
        time.sleep(0.5)
        assert files.health() == []
        assert sink.texts("logs_cfg.log") == ["first", "last of it"]
        (tmp_path / "secret").write_text(SECRET)
        os.unlink(log)
        (logs / "link").symlink_to(tmp_path / "secret")
        os.rename(logs / "link", log)  # and then to a link out of the folder
        (logs / "errors.log").write_text("Traceback (most recent call last):\nFileNotFoundError: x")
        assert files.drain("rb_a", timeout=5)  # the loop runs: it drains, nothing waits on a lock
        assert sink.texts("errors.log") == ["Traceback (most recent call last):", "FileNotFoundError: x"]
        assert "canary" not in str(sink.lines) and "canary" not in caplog.text
        assert any("'logs_cfg.log'" in r.getMessage() and "a link" in r.getMessage() for r in caplog.records)
    finally:
        files.stop(time.monotonic() + 2)


def test_a_bots_logs_or_instance_folder_that_is_a_link_is_refused(tmp_path, caplog):
    root = tmp_path / "bots"
    (root / "instances").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "errors.log").write_text("not the bot's\n")
    (root / "instances" / "rb_a").symlink_to(tmp_path)  # the instance folder
    (root / "instances" / "rb_b").mkdir()
    (root / "instances" / "rb_b" / "logs").symlink_to(elsewhere)  # the logs folder
    sink = Sink()
    files = LogFiles(sink, interval=3600, scan_every=0, root=root)
    files.watch("rb_a", root / "instances" / "rb_a" / "logs", fresh=False, stack="default")
    files.watch("rb_b", root / "instances" / "rb_b" / "logs", fresh=False, stack="default")
    files.poll_once()
    assert sink.lines == []
    said = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(said) == 2 and all("the folder its logs/ is refused" in s for s in said), said


def test_a_pass_that_does_not_complete_is_said_in_health_naming_the_source(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "errors.log").write_text("one\n")
    release = threading.Event()

    class Stuck(Sink):
        def put(self, batch):
            release.wait(30)  # a consumer that does not take the lines
            super().put(batch)

    files = LogFiles(Stuck(), interval=0.05, scan_every=0, stuck_after=0.5)
    files.start()
    try:
        files.watch("rb_a", logs, fresh=False, stack="default")
        assert _until(lambda: files.health() != [])
        (problem,) = files.health()
        assert problem.startswith("source bot-log-files is stuck") and "rb_a logs/errors.log" in problem
        assert not files.drain("rb_a", timeout=0.2)  # its caller is not held up
        release.set()
        assert _until(lambda: files.health() == [])
    finally:
        release.set()
        files.stop(time.monotonic() + 2)


def _until(done, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.05)
    return bool(done())
