"""The bots folder (MEDIC_BOTS_DIR) removed under a running agent, then replaced by an empty
folder, and a bot failing after: its failure is only in its log file (logs/errors.log, written
before its logging is set up). The agent says once that the folder is gone and once that it is
back, `/healthz` answers 503 while it is gone, and the later failure is caught from the file."""

from __future__ import annotations

import os
import time

from agent.ingest.bots import CONF_MOUNT, LOGS_MOUNT
from faults.bed import Bed
from faults.scenarios.common import log, settle
from tests.images import BOT_IMAGE
from tests.stack import labels

TARGET = ("gone/back logged once each way, /healthz 503 while gone (200 after), the failure of a bot"
          " started after it came back caught from its log file")
# Only its errors.log tells it (the traceback before its logging is set up): the console says nothing.
RULE = "bot-client-config-invalid"


def run(quick: bool) -> dict:
    gone_for = 5.0 if quick else 45.0
    with Bed("bots-folder", quick=quick) as bed:
        bots = bed.stack.bots
        agent = bed.agent(MEDIC_BOTS_DIR=str(bots)).start()
        before = agent.health()[0]
        os.rename(bots, bots.with_name("bots.gone"))  # hummingbot-api's own mount keeps the old one
        removed = time.monotonic()
        said_503 = settle(lambda: agent.health()[0] == 503, 15, 0.2)
        to_503 = time.monotonic() - removed
        problems = agent.health()[1].get("problems", [])
        samples: list[int] = []
        while time.monotonic() - removed < gone_for:
            samples.append(agent.health()[0])
            time.sleep(1)
        bots.mkdir()  # replaced by an empty folder
        back_at = time.monotonic()
        healthy = settle(lambda: agent.health()[0] == 200, 15, 0.2)
        to_200 = time.monotonic() - back_at
        log(f"bots folder gone for {back_at - removed:.0f} s, then an empty one in its place")
        # A bot of this scenario, started after: its conf folder is empty (no conf_client.yml), so
        # it writes the FileNotFoundError traceback to logs/errors.log and exits 1.
        name = f"rb_{bed.tag}-{time.strftime('%Y%m%d-%H%M%S')}"
        folder = bots / "instances" / name
        for sub in ("conf", "logs"):
            (folder / sub).mkdir(parents=True)
        bed.client.containers.run(
            BOT_IMAGE, name=name, detach=True, network_mode="host", labels=labels(bed.stack.run_id),
            volumes={str(folder / "conf"): {"bind": CONF_MOUNT, "mode": "rw"},
                     str(folder / "logs"): {"bind": LOGS_MOUNT, "mode": "rw"}})
        caught = settle(lambda: _incident(agent, name), 60 if quick else 120, 0.5)
        text = agent.text()
        agent.stop()
    said_gone = text.count(f"bots folder {bots} is gone")
    said_back = text.count(f"bots folder {bots} is back")
    while_gone = [s for s in samples if s != 503]
    ok = (before == 200 and said_503 and not while_gone and healthy and said_gone == 1 and said_back == 1
          and bool(caught))
    measured = {"gone_s": round(back_at - removed, 1), "healthz_before": before,
                "healthz_503_after_s": round(to_503, 1), "healthz_samples_while_gone": len(samples),
                "healthz_not_503_while_gone": len(while_gone),
                "healthz_200_again_after_s": round(to_200, 1), "logged_gone": said_gone,
                "logged_back": said_back, "later_failure_caught": bool(caught)}
    figure = (f"gone {back_at - removed:.0f} s: logged {said_gone}/{said_back} times (gone/back), /healthz"
              f" 503 after {to_503:.1f} s and throughout ({len(samples)} samples), 200 again"
              f" {to_200:.1f} s after the new folder; the later bot's failure caught: {bool(caught)}")
    return {"pass": ok, "measured": measured, "details": {"problems": problems, "incident": caught},
            "figure": figure}


def _incident(agent, name: str) -> list | None:
    rows = agent.query("SELECT id, state FROM incidents WHERE rule = ? AND container = ?", (RULE, name))
    return rows or None
