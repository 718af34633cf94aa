"""The demo behind scripts/demo: the seed incident, fixed in front of you."""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import docker
import httpx

from agent import logs
from agent.service import Service
from agent.settings import Settings
from tests.receiver import Receiver
from tests.stack import ADMIN, LABEL, REPO, Stack, free_port, wait_until

BOLD, DIM, END = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def say(text: str) -> None:
    print(f"\n{BOLD}== {text}{END}", flush=True)


def main() -> int:
    client = docker.from_env()
    # A test bed's containers (labelled) are another run's: the stack waits for its lock.
    taken = [n for n in ("hummingbot-api", "hummingbot-broker", "hummingbot-postgres")
             if any(LABEL not in c.labels
                    for c in client.containers.list(all=True, filters={"name": f"^{n}$"}))]
    if taken:
        print(f"containers named {', '.join(taken)} exist on this engine: the demo will not touch a real "
              "deployment. Run it where hummingbot-api is not deployed.", file=sys.stderr)
        return 1
    state = Path(tempfile.mkdtemp(prefix="hb-medic-demo-")) / "state.db"
    say("Starting a stand-in hummingbot-api (current generation), its broker and postgres")
    with Stack(client, real_names=True) as stack, Receiver() as inbox:
        recorder = f"127.0.0.1:{free_port()}"
        settings = Settings(
            containers=["hummingbot-api"], state_db=state, rules_dir=REPO / "rules",
            hummingbot_url=stack.url, hummingbot_password="admin", recorder_addr=recorder,
            http_addr=f"127.0.0.1:{free_port()}", notify_urls=inbox.url,
            # The retried bot must live before it counts as fixed (30 s by default; shorter here).
            bots="sharp-bot*", bot_settle=10)
        service = Service(settings)
        logs.setup("text", service.redactor, level=logging.WARNING)
        say("Starting hb-medic, with its deploy recorder in front of hummingbot-api")
        service.start()
        try:
            say("A client deploys bot 'sharp-bot' with credentials profile 'client_sharp',"
                " which does not exist")
            resp = httpx.post(f"http://{recorder}/bot-orchestration/deploy-v2-script", auth=ADMIN, timeout=30,
                              json={"instance_name": "sharp-bot", "credentials_profile": "client_sharp"})
            print(f"hummingbot-api answered {resp.status_code}: {resp.text}")
            print(f"{DIM}hummingbot-api's log (stderr):{END}")
            for line in stack.lines("stderr")[-1:]:
                print(f"  {line}")
            say("hb-medic recognises it, adds the profile through the API, re-sends the recorded deploy,"
                " and waits for the bot to live (10 s here, MEDIC_BOT_SETTLE)")
            wait_until(lambda: any(m["title"].startswith("[CRITICAL] Fixed") for m in inbox.accepted), 60,
                       "the agent to report the fix")
            bots = [c.name for c in client.containers.list() if c.name.startswith("sharp-bot")]
            print(f"bot containers running now: {', '.join(bots) or 'none'}")
            say("The incident and its audit trail (hb-medic incidents)")
            out = subprocess.run([sys.executable, "-m", "agent", "incidents", "--limit", "1"],
                                 capture_output=True, text=True, env={"MEDIC_STATE_DB": str(state)})
            print(out.stdout)
            say("What it would send to Telegram or Slack (as plain text)")
            for m in inbox.accepted:
                print(f"{BOLD}{m['title']}{END}")
                print(textwrap.indent(m["message"], "  "))
                print()
        finally:
            service.stop()
            for c in client.containers.list(all=True, filters={"label": f"medic-test={stack.run_id}"}):
                c.remove(force=True)
    say("Done: everything the demo started has been removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
