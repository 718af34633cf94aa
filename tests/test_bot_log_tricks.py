"""A bot's own logs/ folder as a way out, end to end: the stand-in bots run scripts that turn
their log files into links (to a key file outside, to another bot's log) or a FIFO, and die;
the real agent (in this process) follows them and sends its messages to a local receiver."""

from __future__ import annotations

import errno
import json
import logging
import os
import time

import httpx
import pytest

from tests.stack import free_port, wait_until
from tests.test_bots import agent, deploy, name, one, profile  # noqa: F401 (the agent fixture)

pytestmark = pytest.mark.docker
LOGS = "/home/hummingbot/logs"
CANARY = "MIIEvQ-canary-7731"
PHRASE = "abandon-canary ability able about above absent"
SECRET = (f"2026-11-29 07:29:05,198 - 1 - root - ERROR - wallet\nTraceback (most recent call last):\n"
          f"-----BEGIN PRIVATE KEY-----\n{CANARY}\n-----END PRIVATE KEY-----\n"
          f"ValueError: secret phrase: {PHRASE}\n")
MARKER = "rb-b-own-line-4417"


def test_links_out_of_a_bots_logs_folder_leak_nothing_through_a_whole_incident(
        make_stack, agent, receiver, tmp_path, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    stack = make_stack()
    service = agent(stack)
    wallet = tmp_path / "wallet.txt"
    wallet.write_text(SECRET)
    # Bot B runs and writes its own lines.
    profile(stack, "acct_b", script="rb_marker", config="cfg_b.yml")
    (stack.bots / "scripts" / "rb_marker.py").write_text(
        "import logging\n\ndef on_tick():\n"
        f"    logging.getLogger('rb_marker').error('{MARKER}')\n")
    b = deploy(service, instance_name=name(stack, "rb_b"), credentials_profile="acct_b",
               script_config="cfg_b.yml")["unique_instance_name"]
    b_log = stack.bots / "instances" / b / "logs" / "logs_cfg_b.log"
    wait_until(lambda: b_log.is_file() and MARKER in b_log.read_text(), 60, "bot B's own lines")
    # Bot A links two of its log files out of its folder, then dies.
    profile(stack, "acct_a", script="rb_links", config="cfg_a.yml")
    (stack.bots / "scripts" / "rb_links.py").write_text(
        "import os\n\ndef on_tick():\n"
        f"    os.symlink({str(wallet)!r}, '{LOGS}/logs_zz.log')\n"
        f"    os.symlink('../../{b}/logs/logs_cfg_b.log', '{LOGS}/logs_zy.log')\n"
        "    print('rb_links: leaving', flush=True)\n    os._exit(3)\n")
    a = deploy(service, instance_name=name(stack, "rb_a"), credentials_profile="acct_a",
               script_config="cfg_a.yml")["unique_instance_name"]
    inc = one(service, "bot-died", bot=a)
    wait_until(lambda: any(a in m.get("message", "") for m in receiver.accepted), 30, "bot A's message")
    time.sleep(2)  # anything more would come now
    about_a = [m for m in receiver.accepted if a in json.dumps(m)]
    assert about_a and "exited by itself with code 3" in about_a[0]["message"]
    assert "rb_links: leaving" in about_a[0]["message"]
    agent.stop(service)  # its last words are in the log and the state file too
    state = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*")).decode("latin-1")
    sent = json.dumps(receiver.accepted)
    for where, text in (("messages", sent), ("agent log", caplog.text), ("state file", state),
                        ("incident", json.dumps([inc.detail, inc.captures], default=str))):
        for secret in (CANARY, "canary", "BEGIN PRIVATE KEY"):
            assert secret not in text, (where, secret)
    assert MARKER not in json.dumps(about_a) and MARKER not in json.dumps([inc.detail, inc.captures])
    refused = [r.getMessage() for r in caplog.records if "is refused" in r.getMessage()]
    assert any(f"bot {a}: the file 'logs_zz.log'" in r and "a link" in r for r in refused), refused
    assert any(f"bot {a}: the file 'logs_zy.log'" in r and "a link" in r for r in refused), refused


def test_a_fifo_renamed_over_a_followed_log_file_freezes_nothing(make_stack, agent, receiver):  # noqa: F811
    stack = make_stack()
    health = f"127.0.0.1:{free_port()}"
    service = agent(stack, http_addr=health)
    profile(stack, "acct_c", script="rb_fifo", config="cfg_c.yml")
    (stack.bots / "scripts" / "rb_fifo.py").write_text(
        "import logging, os\n\nticks = 0\n\ndef on_tick():\n    global ticks\n    ticks += 1\n"
        "    logging.getLogger('rb_fifo').info('tick %d', ticks)\n"
        "    if ticks == 12:  # the agent follows the file by now (it looks for new ones every 5 s)\n"
        f"        os.mkfifo('{LOGS}/f')\n        os.rename('{LOGS}/f', '{LOGS}/logs_cfg_c.log')\n"
        "    if ticks == 18:\n        print('rb_fifo: leaving', flush=True)\n        os._exit(3)\n")
    c = deploy(service, instance_name=name(stack, "rb_c"), credentials_profile="acct_c",
               script_config="cfg_c.yml")["unique_instance_name"]
    fifo = stack.bots / "instances" / c / "logs" / "logs_cfg_c.log"
    samples: list[tuple[int, list]] = []
    try:
        wait_until(lambda: fifo.exists() and not fifo.is_file(), 60, "the FIFO over the followed file")
        with httpx.Client(timeout=10) as http:
            def healthz() -> tuple[int, list]:
                resp = http.get(f"http://{health}/healthz")
                samples.append((resp.status_code, resp.json().get("problems", [])))
                return samples[-1]

            one(service, "bot-died", bot=c)
            wait_until(lambda: any(c in m.get("message", "") and "rb_fifo: leaving" in m["message"]
                                   for m in receiver.accepted), 30, "bot C's death told with its last words")
            # A bot that dies afterwards is still told.
            profile(stack, "acct_d", script="rb_exit_three", config="cfg_d.yml")
            (stack.bots / "scripts" / "rb_exit_three.py").write_text(
                "import os\n\ndef on_tick():\n    print('rb_exit_three: leaving', flush=True)\n"
                "    os._exit(3)\n")
            d = deploy(service, instance_name=name(stack, "rb_d"), credentials_profile="acct_d",
                       script_config="cfg_d.yml")["unique_instance_name"]
            one(service, "bot-died", bot=d)
            wait_until(lambda: all(any(x in m.get("message", "") for m in receiver.accepted) for x in (c, d)),
                       30, "both deaths told")
            for _ in range(3):
                healthz()
                time.sleep(0.5)
        assert all(code == 200 for code, _ in samples), samples
        assert not any("stuck" in p for _, problems in samples for p in problems)
    finally:
        _release(fifo)


def _release(fifo) -> None:
    """A reader waiting in open() on the FIFO (a follower that blocks) gets a writer, so the test
    ends either way."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError as exc:
        if exc.errno not in (errno.ENXIO, errno.ENOENT, errno.ENOTDIR):
            raise
