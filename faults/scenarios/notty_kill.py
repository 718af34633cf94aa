"""`kill -9` of the agent while it re-creates a bot with a terminal (bot-no-tty, after a person's Fix
now): the old container is put aside, a new one made under its name and checked for 5 s, then the
old one removed; the kill lands anywhere in that (0-6.5 s after the press). After the restart the
resumed attempt finishes what was cut off: the bot has its name, a terminal and runs; no container
is left aside and none is made twice.

The bot is a container of the stand-in bot image that, like the Hummingbot client at its prompt,
waits with a terminal and without one prints the client's traceback (the rule's golden sample) and
exits 1."""

from __future__ import annotations

import random
import time
from pathlib import Path

from agent.match.library import load_library
from agent.match.samples import blocks
from agent.state import State
from faults.bed import Bed
from faults.scenarios.common import ALICE, approver, fix_button, log, settle
from tests.images import BOT_IMAGE
from tests.stack import labels

TARGET = "after a kill anywhere in the re-creation: the bot has its name and a terminal, runs, nothing aside"
RULE = "bot-no-tty"
ENDED = ("resolved", "gave-up", "observed", "expired")  # closed: nothing more will happen
SAMPLES = Path(__file__).resolve().parents[2] / "rules" / "bot-no-tty.samples.log"


def _client_output() -> str:
    """The client's words without a terminal: the rule's first golden sample."""
    return "\n".join(next(lines for _n, expect, lines in blocks(SAMPLES.read_text())
                          if expect.get("rule") == RULE)) + "\n"


def run(quick: bool) -> dict:
    rounds = 1 if quick else 4
    output = _client_output()
    assert "\nEOF\n" not in output
    prompt = ["sh", "-c", f"test -t 0 && exec sleep 3600; cat >&2 <<'EOF'\n{output}EOF\nexit 1"]
    with Bed("notty-kill", quick=quick) as bed:
        agent = bed.agent(recorder=False, MEDIC_CHAT_TELEGRAM_USERS="1001").start()
        library = load_library(bed.rules)
        rows: list[dict] = []
        for n in range(1, rounds + 1):
            name = f"ntk{n}-{bed.tag}"
            bot = bed.client.containers.run(BOT_IMAGE, entrypoint=prompt, name=name, detach=True,
                                            network_mode="none", labels=labels(bed.stack.run_id))
            asked = settle(lambda nm=name: _state(agent, nm) == "awaiting-approval", 90, 0.2)
            inc = _id(agent, name)
            store = State(agent.state_db)
            op = approver(store, library)
            press = fix_button(op, inc)
            answer = op.press(ALICE, press) if press else "no button"
            # Spread over the re-creation: before it starts, while the old one is aside, during the
            # new one's 5 s check, after it.
            delay = random.uniform(0.0, 6.5) if rounds == 1 else (n - 1) * 6.5 / (rounds - 1)
            time.sleep(delay)
            agent.kill9()
            at_kill = _containers(bed, name)
            agent.start()
            fixed = settle(lambda nm=name: _state(agent, nm) in ENDED, 150)
            store.close()
            left = _containers(bed, name)
            now = bed.client.api.inspect_container(name) if name in left else {}
            rows.append({"asked": asked, "approved": answer.startswith("Fixing"),
                         "kill_ms": round(delay * 1000), "at_kill": at_kill, "state": _state(agent, name),
                         "fixed": fixed, "left": left,
                         "tty": bool((now.get("Config") or {}).get("Tty")),
                         "running": bool((now.get("State") or {}).get("Running")),
                         "new": now.get("Id") not in (None, bot.id)})
            log(f"round {n}: killed {delay * 1000:.0f} ms after the press ({at_kill}): {rows[-1]['state']}")
            if rows[-1]["state"] != "resolved":
                log(agent.tail(40))
        agent.stop()
    ok = bool(rows) and all(r["asked"] and r["approved"] and r["state"] == "resolved" and r["tty"]
                            and r["running"] and r["new"] and len(r["left"]) == 1 for r in rows)
    kills = ", ".join(f"{r['kill_ms']} ms ({'+'.join(r['at_kill']) or 'none'})" for r in rows)
    return {"pass": ok, "measured": {"rounds": rows},
            "figure": f"{len(rows)} re-creations each cut by kill -9 at {kills}: "
                      f"{sum(r['state'] == 'resolved' for r in rows)} resolved, "
                      f"{sum(r['tty'] and r['running'] for r in rows)} running with a terminal, "
                      f"{sum(len(r['left']) - 1 for r in rows)} containers left over"}


def _state(agent, name: str) -> str | None:
    rows = agent.query("SELECT state FROM incidents WHERE rule = ? AND key = ? ORDER BY created DESC",
                       (RULE, name))
    return rows[0][0] if rows else None


def _id(agent, name: str) -> str | None:
    rows = agent.query("SELECT id FROM incidents WHERE rule = ? AND key = ? ORDER BY created DESC",
                       (RULE, name))
    return rows[0][0] if rows else None


def _containers(bed: Bed, name: str) -> list[str]:
    """The names of the containers of this bot: its own, and any put aside (`<name>-notty-<time>`)."""
    names = [(c.get("Names") or ["/"])[0].lstrip("/")
             for c in bed.client.api.containers(all=True, filters={"name": name})]
    return sorted(n for n in names if n == name or n.startswith(f"{name}-notty-"))
