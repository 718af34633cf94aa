"""Bots that turn their own log files into ways out: a link to a key file outside the bots folder
(a private key block and a secret phrase, the canary), a link to another bot's log file, and a FIFO
renamed over the log file the agent follows; each dies after. A bot started after them dies too.
Nothing of the canary leaves (messages, the agent's log, the state file), no other bot's line is in
their incidents, the reading never stalls (`/healthz` sampled throughout never says a source is
stuck), and every death, the later one too, is told."""

from __future__ import annotations

import time

from agent.ingest.bots import CONF_MOUNT, LOGS_MOUNT
from faults.bed import Bed
from faults.scenarios.common import log, settle
from tests.images import BOT_IMAGE
from tests.receiver import Receiver
from tests.stack import labels

TARGET = ("0 canary bytes in messages, the agent's log or the state file; 0 lines of another bot in an"
          " incident; 0 stalls (/healthz never says stuck, no death untold); every death told, the"
          " later bot's too")
CANARY = b"MIIEvQ-canary-9052"
SECRET = (b"-----BEGIN PRIVATE KEY-----\n" + CANARY + b"\n-----END PRIVATE KEY-----\n"
          b"secret phrase: abandon ability able about above absent " + CANARY + b"\n")
MARKER = "victim-own-line-3318"
# The victim writes its own lines; each trickster writes one, waits until it is followed (new
# files are looked for every 5 s), then plays its tricks and dies.
VICTIM = (f"while :; do echo \"$(date '+%F %T'),000 - 1 - victim - INFO - {MARKER}\" >> logs/logs_v.log;"
          " sleep 1; done")
TRICKS = ("echo \"$(date '+%F %T'),000 - 1 - trick - INFO - started\" >> logs/logs_t.log; sleep 8;"
          " ln -s {secret} logs/logs_zz.log; ln -s ../../{victim}/logs/logs_v.log logs/logs_zy.log;"
          " mkfifo logs/f && mv -f logs/f logs/logs_t.log; sleep 2; echo trick: leaving; exit 3")
LATER = "sleep 2; echo later: leaving; exit 3"


def run(quick: bool) -> dict:
    n = 2 if quick else 6
    with Receiver() as rx, Bed("bot-log-tricks", quick=quick) as bed:
        secret = bed.work / "wallet.txt"
        secret.write_bytes(SECRET)
        agent = bed.agent(MEDIC_BOTS_DIR=str(bed.stack.bots), MEDIC_NOTIFY_URLS=rx.url).start()
        victim = _bot(bed, "victim", VICTIM)
        tricksters = [_bot(bed, f"trick{i}", TRICKS.format(secret=secret, victim=victim)) for i in range(n)]
        log(f"{n} bots linking their log files out and a FIFO over the followed one, then dying")
        samples: list[tuple[int, list]] = []

        def sampled(done) -> bool:
            samples.append(agent.health())
            return done()

        told = settle(lambda: sampled(lambda: all(_incident(agent, t) for t in tricksters)), 90, 0.5)
        later = _bot(bed, "later", LATER)
        started = time.monotonic()
        later_told = settle(lambda: sampled(lambda: _incident(agent, later)), 60, 0.5)
        later_s = time.monotonic() - started
        settle(lambda: sum(1 for t in [*tricksters, later] if _said(rx, t)) == n + 1, 30)
        messages = [m for m in rx.accepted if any(t in str(m) for t in [*tricksters, later])]
        untold = [t for t in [*tricksters, later] if not _incident(agent, t)]
        agent.stop()
        text = agent.text()
        state = b"".join(p.read_bytes() for p in agent.workdir.glob("state.db*"))
        rows = agent.query("SELECT detail || ' ' || captures FROM incidents WHERE container != ?", (victim,))
    out = str(rx.accepted).encode()
    canary = {"messages": out.count(CANARY), "agent_log": text.encode().count(CANARY),
              "state_file": state.count(CANARY)}
    foreign = sum(str(r[0]).count(MARKER) for r in rows) + sum(str(m).count(MARKER) for m in messages)
    stuck = [p for _code, body in samples for p in body.get("problems", []) if "stuck" in p]
    stalls = len(stuck) + len(untold)  # said by /healthz, or seen: a death never told (a frozen reading)
    refused = text.count("is refused")
    ok = (sum(canary.values()) == 0 and foreign == 0 and not stalls and told and bool(later_told)
          and len(messages) >= n + 1 and refused >= 3 * n)
    measured = {"bots": n, "canary_bytes_out": canary, "foreign_lines_in_incidents": foreign,
                "healthz_samples": len(samples), "healthz_stuck": len(stuck), "deaths_untold": len(untold),
                "stalls": stalls, "deaths_told": told,
                "later_death_told_after_s": round(later_s, 1) if later_told else None,
                "messages": len(messages), "refusals_logged": refused}
    figure = (f"{n} bots: canary bytes out {sum(canary.values())} (messages/log/state {canary['messages']}/"
              f"{canary['agent_log']}/{canary['state_file']}), another bot's lines in incidents {foreign},"
              f" stalls {stalls} ({len(stuck)} of {len(samples)} /healthz samples stuck, {len(untold)} deaths"
              " untold),"
              f" the later bot's death told after {later_s:.1f} s, {refused} refusals logged")
    return {"pass": ok, "measured": measured, "details": {"stuck": stuck[:3]}, "figure": figure}


def _bot(bed: Bed, base: str, script: str) -> str:
    """A bot container as hummingbot-api lays one out (its instance folder's conf/ and logs/),
    running `script` in its home folder."""
    name = f"{base}_{bed.tag}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder = bed.stack.bots / "instances" / name
    for sub in ("conf", "logs"):
        (folder / sub).mkdir(parents=True)
    bed.client.containers.run(
        BOT_IMAGE, ["/bin/bash", "-c", script], name=name, detach=True, network_mode="host",
        labels=labels(bed.stack.run_id), working_dir="/home/hummingbot",
        volumes={str(folder / "conf"): {"bind": CONF_MOUNT, "mode": "rw"},
                 str(folder / "logs"): {"bind": LOGS_MOUNT, "mode": "rw"}})
    return name


def _incident(agent, name: str) -> bool:
    return bool(agent.query("SELECT id FROM incidents WHERE container = ?", (name,)))


def _said(rx: Receiver, name: str) -> bool:
    return any(name in str(m) for m in rx.accepted)
