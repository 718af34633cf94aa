"""`kill -9` of the agent while its recorder fixes a deploy before forwarding it (the seed
deploy's missing profile being added): the client's connection dies with the process, and the
deploy must have been forwarded at most once, nothing done twice, never a second bot.

hummingbot-api is reached through a pass-through that holds each request a moment, so the fix
(list the accounts, add-account, list them again) takes long enough for a kill to land inside it:
the kill comes a random moment after the preflight's incident began acting. After the restart
the incident ends warned (its deploy was never forwarded: nothing to retry), and the client,
as a client does, sends the deploy again: it succeeds once, with one account and one bot."""

from __future__ import annotations

import contextlib
import random
import re
import socket
import threading
import time

from faults.bed import Bed
from faults.scenarios.common import log, settle
from tests.stack import free_port

TARGET = "forwarded at most once, no action run twice, never a second bot or account"
RULE = "credentials-profile-missing"


class SlowPass:
    """A TCP pass-through to hummingbot-api that holds every request chunk `delay` seconds."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port, self.delay = target_port, delay
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, upstream, self.delay), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, 0.0), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, delay: float) -> None:
        try:
            while data := src.recv(65536):
                if delay:
                    time.sleep(delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def run(quick: bool) -> dict:
    rounds = 2 if quick else 6
    results: list[dict] = []
    with Bed("preflight-kill", quick=quick) as bed:
        slow = SlowPass(bed.stack.api_port, 0.25)
        agent = bed.agent(MEDIC_HUMMINGBOT_URL=f"http://127.0.0.1:{slow.port}",
                          MEDIC_BOTS_DIR=str(bed.stack.bots), MEDIC_PREFLIGHT="fix",
                          MEDIC_PREFLIGHT_DEADLINE="20").start()
        try:
            for n in range(rounds):
                results.append(_round(bed, agent, n))
                log(f"round {n + 1}: {results[-1]}")
        finally:
            agent.stop()
            slow.close()
        bots = bed.bots()
        adds = _add_account_requests(bed)
        reached = bed.reached()
    names = [r["instance"] for r in results]
    measured = {
        "rounds": rounds,
        "killed_while_acting": sum(r["killed_acting"] for r in results),
        "forwarded_before_the_client_sent_again": sum(r["reached_before_resend"] for r in results),
        "bots_per_name": {name: len(bots.get(name, [])) for name in names},
        "add_account_requests": {r["profile"]: adds.get(r["profile"], 0) for r in results},
        "incident_after_restart": [r["after_restart"] for r in results],
        "actions_run_after_restart": sum(r["actions_after_restart"] for r in results),
        "resend_answers": [r["resend"] for r in results],
    }
    ok = (measured["killed_while_acting"] >= 1
          and all(r["reached_before_resend"] <= 1 for r in results)
          and all(len(bots.get(name, [])) == 1 for name in names)
          and all(n == 1 for n in measured["add_account_requests"].values())
          and measured["actions_run_after_restart"] == 0
          and all(s == "warned" for s in measured["incident_after_restart"])
          and all(a == 200 for a in measured["resend_answers"])
          and all(name in reached for name in names))
    return {"pass": ok, "measured": measured,
            "figure": f"{measured['killed_while_acting']} of {rounds} kills inside the fix: forwarded at most"
                      f" once, {sum(measured['add_account_requests'].values())} add-account requests for"
                      f" {rounds} profiles, {sum(measured['bots_per_name'].values())} bots for"
                      f" {rounds} names"}


def _round(bed: Bed, agent, n: int) -> dict:
    profile, instance = f"pk{n}_{bed.tag}", f"pk{n}-{bed.tag}"
    answer: list = []
    sender = threading.Thread(target=lambda: answer.append(bed.deploy(agent, instance, profile)), daemon=True)
    sender.start()
    acting = settle(lambda: _state(agent, profile) in ("acting", "verifying"), 20, interval=0.005)
    time.sleep(random.uniform(0.0, 0.5))
    agent.kill9()
    sender.join(30)
    killed_acting = acting and _state(agent, profile) in ("acting", "verifying")
    actions_before = _actions(agent, profile)
    reached_before = 1 if instance in bed.reached() else 0
    agent.start()
    settle(lambda: _state(agent, profile) not in ("acting", "verifying", "detected"), 30, interval=0.1)
    after = _state(agent, profile)
    time.sleep(1.0)  # whatever the restart would run, it has run now
    actions_after = _actions(agent, profile) - actions_before
    resend = bed.deploy(agent, instance, profile)  # the client sends again: its connection had died
    return {"instance": instance, "profile": profile, "answer_when_killed": answer[0] if answer else None,
            "killed_acting": bool(killed_acting), "reached_before_resend": reached_before,
            "after_restart": after, "actions_after_restart": actions_after, "resend": resend}


def _add_account_requests(bed: Bed) -> dict[str, int]:
    """add-account requests hummingbot-api handled, by profile, answered or not: its request line
    is printed as its answer starts, uvicorn's access line only once the answer went out, and a
    kill can take the connection the answer was going to."""
    out: dict[str, int] = {}
    for line in bed.stack.lines("stdout"):
        m = re.search(r"POST /accounts/add-account \? account_name='([\w-]+)'", line)
        if m:
            out[m[1]] = out.get(m[1], 0) + 1
    return out


def _state(agent, profile: str) -> str | None:
    rows = agent.query("SELECT state FROM incidents WHERE rule = ? AND key = ? ORDER BY created LIMIT 1",
                       (RULE, profile))
    return rows[0][0] if rows else None


def _actions(agent, profile: str) -> int:
    rows = agent.query("SELECT COUNT(*) FROM audit WHERE kind IN ('action', 'verify', 'retry') AND"
                       " incident IN (SELECT id FROM incidents WHERE rule = ? AND key = ?)", (RULE, profile))
    return rows[0][0]
