"""The Docker engine restarted under a running agent (the suite's own dockerd, never the
shared one): a counter container writes numbered error records, stops with the engine and
is started again by its restart policy. The agent reattaches at once, loses no line, and
says "unreachable" and "reachable again" once each per restart."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import docker

from faults.agent import Agent
from faults.scenarios.common import log, settle
from tests.engines import SecondEngine
from tests.images import TOOLS_IMAGE, ensure_images
from tests.stack import labels

TARGET = "reattached within 10 s of each restart, 0 lines lost, engine down/back logged once each way"
COUNTER = """
import logging, signal, sys, time, uuid
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
boot = uuid.uuid4().hex[:8]
logging.basicConfig(stream=sys.stderr, format='%(asctime)s - %(name)s - %(levelname)s - %(message)s')
log = logging.getLogger('faults.counter')
n = 0
while True:
    log.error('seq %d boot %s', n, boot)
    n += 1
    time.sleep(0.02)
"""
RULE = """\
id: faults-counter
description: The fault suite's counter, one numbered error record at a time.
severity: info
where: {{containers: [{name}], stream: stderr}}
match:
  - kind: line
    logger: faults.counter
    level: ERROR
    message: '^seq (?P<seq>\\d+) boot (?P<boot>[0-9a-f]+)$'
captures:
  seq: {{type: name, max_length: 12}}
  boot: {{type: name, max_length: 12}}
incident: {{key: counter, cooldown: 86400}}
notify: {{title: counter, text: a counter line}}
"""
SEEN = re.compile(r"rule faults-counter matched in \S+: seq='(\d+)' boot='([0-9a-f]+)'")
TRUTH = re.compile(r"^(\S+) .* - faults\.counter - ERROR - seq (\d+) boot ([0-9a-f]+)$")


def run(quick: bool) -> dict:
    restarts = 1 if quick else 3
    shared = docker.from_env()
    ensure_images(shared, log=lambda _msg: None)
    work = Path(tempfile.mkdtemp(prefix="medic-faults-engine-"))
    engine = SecondEngine()
    name = f"medic-faults-counter-{uuid.uuid4().hex[:6]}"
    try:
        engine.start()
        engine.load_images(shared, [TOOLS_IMAGE])
        with engine.using() as mine:
            mine.containers.run(TOOLS_IMAGE, entrypoint=["python3", "-u", "-c", COUNTER], name=name,
                                detach=True, network_mode="none", labels=labels("faults"),
                                restart_policy={"Name": "always"})
        (work / "rules").mkdir()
        (work / "rules" / "faults-counter.yml").write_text(RULE.format(name=name))
        agent = Agent(work, {"DOCKER_HOST": engine.url, "MEDIC_CONTAINERS": name,
                             "MEDIC_RULES_DIR": str(work / "rules")})
        agent.start()
        settle(lambda: len(SEEN.findall(agent.text())) > 20, 60)
        reconnects, first_lines = [], []
        for n in range(restarts):
            time.sleep(2 if n == 0 else 7)  # apart: an engine that drops within 5 s of return is one outage
            boots = {b for _, b in SEEN.findall(agent.text())}
            back = engine.restart()
            attached = settle(lambda: agent.health()[1].get("streams", {}).get(name) == "attached", 60, 0.05)
            reconnects.append(round(time.monotonic() - back, 2) if attached else None)
            # The counter was stopped with the engine and started again: its new boot's first line.
            flowing = settle(lambda old=boots: {b for _, b in SEEN.findall(agent.text())} - old, 60, 0.05)
            first_lines.append(round(time.monotonic() - back, 2) if flowing else None)
            log(f"restart {n + 1}/{restarts}: reattached {reconnects[-1]} s, first new line"
                f" {first_lines[-1]} s after the engine answered")
        # After the last restart "reachable again" is logged once the engine stayed up 5 s: waited
        # for, not slept for, so a loaded machine only takes longer.
        settle(lambda: agent.text().count("Docker engine reachable again") >= restarts, 60, 0.2)
        until = datetime.now(UTC).timestamp() - 3
        with engine.using() as mine:
            raw = mine.containers.get(name).logs(stdout=False, stderr=True, timestamps=True,
                                                 until=int(until)).decode(errors="replace")
        written = {(int(m[2]), m[3]) for line in raw.splitlines() if (m := TRUTH.match(line))}
        # The agent may lag behind the counter on a loaded machine: a line is lost only if it
        # is still unseen once the agent has had time to catch up.
        settle(lambda: not written - {(int(s), b) for s, b in SEEN.findall(agent.text())}, 60, 0.5)
        time.sleep(1)  # a line read twice would show now
        text = agent.text()
        healthy = agent.health()[0]
        agent.stop()
    finally:
        engine.close()
        shutil.rmtree(work, ignore_errors=True)
    truth = {(int(m[2]), m[3]) for line in raw.splitlines() if (m := TRUTH.match(line))}
    seen_list = [(int(s), b) for s, b in SEEN.findall(text)]
    seen = set(seen_list)
    lost = truth - seen
    doubled = len(seen_list) - len(seen)
    down = text.count("Docker engine unreachable")
    back_again = text.count("Docker engine reachable again")
    measured = {"restarts": restarts, "reattach_s": reconnects, "first_new_line_s": first_lines,
                "lines_written": len(truth),
                "lines_lost": len(lost), "lines_read_twice": doubled, "unreachable_logged": down,
                "reachable_again_logged": back_again, "healthz_after": healthy,
                "boots": len({b for _, b in truth})}
    ok = (all(r is not None and r <= 10 for r in reconnects + first_lines) and not lost and down == restarts
          and back_again == restarts and healthy == 200 and len(truth) > 0)
    worst = max((r for r in reconnects + first_lines if r is not None), default=None)
    return {"pass": ok, "measured": measured, "details": {"lost": sorted(lost)[:20]},
            "figure": f"{restarts} restarts: lines again at most {worst} s after, {len(lost)} of {len(truth)}"
                      f" lines lost, unreachable/back logged {down}/{back_again} times"}
