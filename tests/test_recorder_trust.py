"""The recorder as something to trust: a deploy is written ahead (visible in flight,
never lost to a kill), only what hummingbot-api answered for an authenticated
request is kept and retried, bodies are bounded, records expire, and slow or many
clients cannot hold the recorder or the health server."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx

from agent.http import HealthServer
from agent.recorder.proxy import Recorder, RecorderServer
from agent.remedy.intent import from_recorder
from agent.state import State
from tests.stack import ADMIN, REPO, free_port, wait_until
from tests.upstream import HeldUpstream

DEPLOY = "/bot-orchestration/deploy-v2-script"


@contextlib.contextmanager
def running_recorder(upstream: str, store: State, **kw):
    port = free_port()
    thread = RecorderServer(Recorder(upstream, store, **kw), "127.0.0.1", port)
    thread.start()
    assert thread.ready.wait(10) and thread.error is None, thread.error
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        thread.stop()


def post(base: str, content: str, auth=ADMIN, timeout: float = 60) -> httpx.Response:
    with httpx.Client(base_url=base, timeout=timeout) as c:
        return c.post(DEPLOY, content=content, auth=auth, headers={"content-type": "application/json"})


def body(instance: str, profile: str, **extra) -> str:
    return json.dumps({"instance_name": instance, "credentials_profile": profile, **extra},
                      separators=(",", ":"))


def test_deploy_is_written_ahead_and_visible_while_in_flight(tmp_path):
    store = State(tmp_path / "state.db")
    with HeldUpstream() as up, running_recorder(up.url, store, login=ADMIN) as via:
        up.hold.set()
        sent = body("wa-bot", "wa_prof", headless=True)
        answers: list[httpx.Response] = []
        client = threading.Thread(target=lambda: answers.append(post(via, sent)))
        client.start()
        wait_until(lambda: up.received, 20, "the deploy to reach hummingbot-api")
        # Stored before hummingbot-api saw it, exact bytes, pending, not yet something to retry.
        flight = store.deploys.in_flight("wa-bot")
        assert len(flight) == 1
        pending = flight[0]
        assert (pending.state, pending.authenticated, pending.request_body) == ("pending", True, sent)
        assert not pending.retryable and store.deploys.find(profile="wa_prof") is None
        # The same name without the login, at the same time: refused, and never written.
        refused = post(via, body("wa-bot", "wa_prof", image="evil/x:1"), auth=("admin", "nope"))
        assert refused.status_code == 401
        assert [d.id for d in store.deploys.in_flight("wa-bot")] == [pending.id]
        up.release()
        client.join(30)
        assert answers[0].status_code == 500
        done = wait_until(lambda: (d := store.deploys.get(pending.id)) is not None and d.state == "answered"
                          and d, 10, "the answer to complete the record")
        assert done.failed and done.retryable and done.status == 500
        assert store.deploys.in_flight("wa-bot") == []
        assert [d.id for _, d in store.deploys.after(0)] == [pending.id]  # the 401 left nothing


def test_a_kill_between_forward_and_answer_loses_nothing(tmp_path):
    db = tmp_path / "state.db"
    port = free_port()
    with HeldUpstream() as up:
        env = {**os.environ, "MEDIC_RECORDER_ADDR": f"127.0.0.1:{port}", "MEDIC_HUMMINGBOT_URL": up.url,
               "MEDIC_STATE_DB": str(db), "MEDIC_HUMMINGBOT_PASSWORD": "admin"}
        with open(tmp_path / "recorder.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "agent", "recorder"], env=env, cwd=REPO,
                                    stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: _listening(port), 30, "the recorder to listen")
            up.hold.set()
            sent = body("kill-bot", "kill_prof")
            threading.Thread(target=lambda: _ignore(post, f"http://127.0.0.1:{port}", sent),
                             daemon=True).start()
            wait_until(lambda: up.received, 20, "the deploy to reach hummingbot-api")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    store = State(db)
    [pending] = store.deploys.in_flight("kill-bot")
    assert pending.request_body == sent and pending.authenticated
    # The next recorder knows the answer will never come; hummingbot-api's log tells a
    # failure, and the retry finds the exact request it was sent.
    with running_recorder(f"http://127.0.0.1:{free_port()}", store, login=ADMIN):
        pass
    assert store.deploys.get(pending.id).state == "lost" and store.deploys.in_flight("kill-bot") == []
    found = from_recorder(store, profile="kill_prof", instance=None, at=time.time())
    assert found is not None and found["raw"] == sent and found["deploy_id"] == pending.id


def test_without_a_known_login_only_authenticated_answers_are_kept(tmp_path):
    store = State(tmp_path / "state.db")
    with HeldUpstream() as up, running_recorder(up.url, store) as via:  # `hb-medic recorder` without it
        assert post(via, body("anon-bot", "anon_prof"), auth=("admin", "nope")).status_code == 401
        assert post(via, body("auth-bot", "auth_prof")).status_code == 500
        wait_until(lambda: store.deploys.after(0), 10, "the authenticated record")
        rows = [d for _, d in store.deploys.after(0)]
        assert [(d.instance, d.authenticated, d.retryable) for d in rows] == [("auth-bot", True, True)]
        wait_until(lambda: store.deploys.find(profile="anon_prof") is None
                   and not store.deploys.in_flight("anon-bot"), 10, "the refused request to be dropped")
        # Not even a trace of the refused one on disk.
        assert store.deploys.get(1) is None


def test_a_gateway_503_is_kept_only_for_a_request_carrying_the_login(tmp_path):
    """hummingbot-api checks the login before its gateway handlers run; something in front of it that
    answers 503 for it does not: a 503 of a request without the login is nobody's evidence."""
    store = State(tmp_path / "state.db")
    for login_checked in (False, True):
        with HeldUpstream(login_checked=login_checked) as up, \
                running_recorder(up.url, store, login=("admin", "admin")) as via, \
                httpx.Client(base_url=via, timeout=30) as c:
            for auth in (None, ("admin", "nope")):
                assert c.get("/gateway/connectors", auth=auth).status_code == (401 if login_checked else 503)
            assert c.get("/gateway/chains", auth=ADMIN).status_code == 503
            wait_until(lambda n=1 + login_checked: len(store.deploys.after(0)) == n, 10, "the record")
            time.sleep(0.5)  # nothing more comes
    assert [(d.route, d.path) for _, d in store.deploys.after(0)] == [("gateway", "/gateway/chains")] * 2
    # Without a known login, a request that carries none is not kept either.
    other = State(tmp_path / "other.db")
    with HeldUpstream(login_checked=False) as up, running_recorder(up.url, other) as via, \
            httpx.Client(base_url=via, timeout=30) as c:
        assert c.get("/gateway/connectors").status_code == 503
        assert c.get("/gateway/chains", auth=ADMIN).status_code == 503
        wait_until(lambda: other.deploys.after(0), 10, "the record")
        time.sleep(0.5)
    assert [d.path for _, d in other.deploys.after(0)] == ["/gateway/chains"]


def test_deploy_bodies_are_bounded(tmp_path):
    store = State(tmp_path / "state.db")
    with HeldUpstream() as up, running_recorder(up.url, store, login=ADMIN, body_timeout=2) as via:
        port = int(via.rsplit(":", 1)[1])
        # A declared 1 GiB body: refused at once, nothing forwarded.
        head = (f"POST {DEPLOY} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {1 << 30}\r\n\r\n").encode()
        status, _ = _raw_exchange(port, head, b"{" * 65536)
        assert status == 413
        # A chunked body that never ends: refused after 1 MiB, the rest never read.
        head = (f"POST {DEPLOY} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n").encode()
        chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
        status, sent = _raw_exchange(port, head, chunk, total=1 << 30)
        assert status == 413 and sent < 32 << 20, sent
        # A body that trickles: refused after the body timeout.
        status, _ = _raw_exchange(port, head, b"1\r\n \r\n", total=64, pause=0.5)
        assert status == 408
        # Exactly 1 MiB is still a deploy hummingbot-api gets to answer.
        big = body("big-bot", "big_prof", script_config="x" * 100)
        big = big[:-1] + " " * ((1 << 20) - len(big)) + "}"
        assert post(via, big).status_code == 500
        assert [p for p, _ in up.received] == [DEPLOY]
        # The refused ones were never written; the big one is kept without its body (too large
        # to keep, so never re-sent).
        rows = wait_until(lambda: store.deploys.after(0), 10, "the record")
        assert [(d.instance, d.request_body) for _, d in rows] == [("big-bot", "")]


def test_records_are_kept_within_their_retention(tmp_path):
    store = State(tmp_path / "state.db")
    old = time.time() - 40 * 86400
    for i in range(5):
        store.deploys.record(route="deploy-v2-script", path=DEPLOY, request_body=body(f"b{i}", "p"),
                             status=500, response_body="", failed=True, message="", profile="p",
                             instance=f"b{i}", at=old if i == 0 else None)
    pending = store.deploys.requested(route="deploy-v2-script", path=DEPLOY, request_body=body("p", "p"),
                                      profile="p", instance="p", authenticated=True, at=old)
    assert store.deploys.prune(max_age=30 * 86400, max_count=2) == 3  # one by age, two by count
    assert [d.instance for _, d in store.deploys.after(0)] == ["b3", "b4"]
    assert store.deploys.get(pending) is not None  # a request still in flight is never pruned
    # The recorder applies it when it starts (and every hundred records).
    for _ in range(1200):
        store.deploys.record(route="deploy-v2-script", path=DEPLOY, request_body="{}", status=200,
                             response_body="", failed=False, message="", profile=None, instance=None)
    with running_recorder(f"http://127.0.0.1:{free_port()}", store):
        pass
    assert len(store.deploys.after(0, limit=5000)) == 1000


def test_slow_and_many_clients_cannot_hold_the_recorder(tmp_path):
    store = State(tmp_path / "state.db")
    with HeldUpstream() as up, running_recorder(up.url, store, header_timeout=1.0) as via:
        port = int(via.rsplit(":", 1)[1])
        # Headers sent a little at a time, never finished: closed after the header timeout.
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"POST /accounts/ HTTP/1.1\r\nHost: x\r\n")
        slow.settimeout(20)
        started = time.monotonic()
        assert slow.recv(1024) == b""
        assert time.monotonic() - started < 15
        slow.close()
    with HeldUpstream() as up, running_recorder(up.url, store, max_connections=4) as via:
        port = int(via.rsplit(":", 1)[1])
        # Four idle connections take every place: the fifth gets a 503 and is closed.
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
        wait_until(lambda: _status_of_new_connection(port) == 503, 10, "a 503 for one connection too many")
        for s in idle:
            s.close()
        # Places come back as connections close.
        wait_until(lambda: _get(via, "/accounts/") == 200, 10, "the recorder to serve again")


def test_slow_and_many_clients_cannot_hold_the_health_server():
    port = free_port()
    server = HealthServer(lambda: (True, {"ok": True}), lambda: [], "127.0.0.1", port, max_connections=3,
                          deadline=1.0)
    server.start()
    try:
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        slow.settimeout(20)
        started = time.monotonic()
        assert slow.recv(1024) == b""
        assert time.monotonic() - started < 15
        slow.close()
        # A client trickling one byte at a time still gets no more than the deadline.
        trickle = socket.create_connection(("127.0.0.1", port))
        trickle.settimeout(20)
        started = time.monotonic()
        with contextlib.suppress(OSError):
            for _ in range(100):
                trickle.sendall(b"X")
                time.sleep(0.2)
        assert time.monotonic() - started < 15
        trickle.close()
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        wait_until(lambda: _status_of_new_connection(port) == 503, 10, "a 503 for one connection too many")
        for s in idle:
            s.close()
        wait_until(lambda: _get(f"http://127.0.0.1:{port}", "/nowhere") == 404, 10,
                   "the server to serve again")
        assert _get(f"http://127.0.0.1:{port}", "/healthz") == 200
    finally:
        server.stop(time.monotonic() + 5)


def test_slow_bodies_on_any_route_cannot_hold_the_recorder(tmp_path):
    """260 connections sending a credential-free route's body a byte every 25 s once held 256
    of the recorder's places for minutes, and a normal request got a 503. Scaled: 10 trickling
    clients against 8 places, a 4 s body deadline, a byte a second."""
    store = State(tmp_path / "state.db")
    with HeldUpstream() as up, running_recorder(up.url, store, max_connections=8, body_timeout=4.0) as via:
        port = int(via.rsplit(":", 1)[1])
        head = (b"POST /accounts/add-account HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46YWRtaW4=\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
        started = time.monotonic()
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]
        for s in slow:
            s.sendall(head)
        ended: dict[int, tuple[float, bytes]] = {}
        trickling = threading.Thread(target=_trickle, args=(slow, ended, 30.0), daemon=True)
        trickling.start()
        time.sleep(1.5)  # every place taken by a client still sending its body
        asked = time.monotonic()
        assert _get(via, "/accounts/") == 200  # a normal request is served all the same
        assert time.monotonic() - asked < 3
        trickling.join(30)
        assert len(ended) == 10, ended
        for at, answer in ended.values():
            assert at - started < 4.0 + 5, at - started  # none held past the body deadline
            # closed, refused late (408), or, for the two beyond the places that came at the same
            # moment as the others, refused at once (503)
            assert answer == b"" or answer.startswith((b"HTTP/1.1 408", b"HTTP/1.1 503")), answer
        assert sum(a.startswith(b"HTTP/1.1 503") for _, a in ended.values()) <= 2
        assert any(a.startswith(b"HTTP/1.1 408") for _, a in ended.values())
        assert not any(p == "/accounts/add-account" for p, _ in up.received)  # no half body went on
        for s in slow:
            s.close()


def test_slow_clients_reconnecting_cannot_keep_health_checks_out():
    """20 slow clients reopening every 4.5 s (the deadline: 5 s) kept /healthz answering 503 to
    17 of 20 normal requests. Scaled: 6 clients against 4 places, a 2 s deadline, reopening
    every 1.8 s; every normal request is answered 200."""
    port = free_port()
    server = HealthServer(lambda: (True, {"ok": True}), lambda: [], "127.0.0.1", port, max_connections=4,
                          deadline=2.0)
    server.start()
    stop = threading.Event()

    def slow_client(delay: float) -> None:
        time.sleep(delay)
        while not stop.is_set():
            opened = time.monotonic()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\n")
                while not stop.is_set() and time.monotonic() - opened < 1.8:
                    s.sendall(b"X")
                    time.sleep(0.3)
            stop.wait(max(0.0, 1.8 - (time.monotonic() - opened)))

    clients = [threading.Thread(target=slow_client, args=(i * 0.3,), daemon=True) for i in range(6)]
    for c in clients:
        c.start()
    try:
        time.sleep(3)  # every place taken, again and again
        answers = []
        for _ in range(10):
            answers.append(_get(f"http://127.0.0.1:{port}", "/healthz"))
            time.sleep(0.45)
        assert answers == [200] * 10, answers
    finally:
        stop.set()
        for c in clients:
            c.join(10)
        server.stop(time.monotonic() + 5)


def test_a_health_client_that_leaves_early_is_no_traceback(capfd):
    """A client that hung up before its answer (a health check's timeout on a busy host) put a
    BrokenPipeError traceback in the agent's log."""
    port = free_port()

    def slow_report():
        time.sleep(0.5)
        return True, {"ok": True, "pad": "x" * 300_000}

    server = HealthServer(slow_report, lambda: [], "127.0.0.1", port)
    server.start()
    try:
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            s.close()  # a reset, before the answer
        time.sleep(1.5)
        assert _get(f"http://127.0.0.1:{port}", "/healthz") == 200
    finally:
        server.stop(time.monotonic() + 5)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err, err


def test_a_malformed_request_is_one_line_in_the_log(tmp_path, caplog):
    """Each request aiohttp cannot parse (a bad target) used to put a whole traceback in the
    agent's log: now one line, and a flood of them one line every few seconds."""
    store = State(tmp_path / "state.db")
    caplog.set_level(logging.INFO)
    with HeldUpstream() as up, running_recorder(up.url, store) as via:
        port = int(via.rsplit(":", 1)[1])
        for _ in range(5):
            for bad in (b"GET http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n", b"GET \x00 HTTP/1.1\r\n\r\n"):
                with socket.create_connection(("127.0.0.1", port)) as s:
                    s.sendall(bad)
                    s.settimeout(5)
                    assert s.recv(64).startswith(b"HTTP/1.0 400")
        assert _get(via, "/accounts/") == 200
    told = [r for r in caplog.records if r.name.startswith("aiohttp")]
    assert len(told) == 1, [r.getMessage() for r in told]
    assert told[0].exc_info is None and "\n" not in told[0].getMessage()
    assert "malformed request" in told[0].getMessage()


# -- helpers -------------------------------------------------------------------------------------
def _ignore(func, *args) -> None:
    with contextlib.suppress(httpx.HTTPError):
        func(*args)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _get(base: str, path: str) -> int | None:
    try:
        with httpx.Client(base_url=base, timeout=5, auth=ADMIN) as c:
            return c.get(path).status_code
    except httpx.HTTPError:
        return None


def _status_of_new_connection(port: int) -> int | None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(5)
        try:
            head = s.recv(64)
        except TimeoutError:
            return None
    return int(head.split()[1]) if head.startswith(b"HTTP/") else None


def _raw_exchange(port: int, head: bytes, piece: bytes, *, total: int = 0,
                  pause: float = 0.0) -> tuple[int | None, int]:
    """Send headers, then `piece` again and again (up to `total` bytes) until the server answers;
    return the answer's status and how many body bytes went out."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(head)
        s.setblocking(False)
        answer = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                answer += s.recv(4096)
                if answer:
                    break
            except BlockingIOError:
                pass
            except OSError:
                break
            if sent < max(total, len(piece)):
                try:
                    sent += s.send(piece)
                except BlockingIOError:
                    time.sleep(0.01)
                except OSError:
                    pass
            if pause:
                time.sleep(pause)
    return (int(answer.split()[1]) if answer.startswith(b"HTTP/") else None), sent



def _trickle(socks: list[socket.socket], ended: dict[int, tuple[float, bytes]], limit: float) -> None:
    """A byte a second on each socket until the server answers or closes it: (when, what came)."""
    for s in socks:
        s.setblocking(False)
    deadline = time.monotonic() + limit
    while len(ended) < len(socks) and time.monotonic() < deadline:
        for i, s in enumerate(socks):
            if i in ended:
                continue
            try:
                answer = s.recv(4096)
            except BlockingIOError:
                with contextlib.suppress(OSError):
                    s.send(b" ")
                continue
            except OSError:
                answer = b""
            ended[i] = (time.monotonic(), answer)
        time.sleep(0.2 if len(ended) else 1.0)
