"""Golden samples, in the style of fail2ban's sample logs: `<id>.samples.log` beside a
rule, each block headed by `# expect: {json}` and replayed alone through the real
assembler and a rule set. Shared by the library's test and `rules suggest`, which
checks every draft against its own samples before it says it wrote one.

- `"rule": id`: an event matched by that rule, whose other keys (`captures`,
  `refused` (true, false or null), `exception`, `exceptions`, `deploy`, `actions`)
  equal the expectation, as in `rules test --json`;
- `"not": id`: no event of the block matched by that rule (a near miss).

Recorder rules see deploy exchanges, not log lines: their samples are `RECORDED {json}`
lines (route, status, request body, response message). Rules about a bot's death see exit
events: `EXITED {json}` lines (exit_code, lived, oom_killed, terminal, headless, and the bot's last lines:
last_console, last_errors). Both replay as `rules test` replays them (agent.ingest.replay).
A bot's output comes through other channels: a
`# replay: {"role": "bot", "channel": "errors"}` line says where the blocks after it
come from (as `rules test --role bot --channel errors` would replay them); `"gateway":
"present"` or `"absent"` there says whether the stack has a gateway (`rules test --gateway`),
`"role": "gateway"` that the lines are the gateway container's.
"""

from __future__ import annotations

import json

from agent.events import TRACEBACK, Event, Origin
from agent.ingest.replay import replay_lines
from agent.match.matcher import Matcher, Result


def as_json(event: Event, result: Result | None) -> dict:
    """One line of `rules test --json`, exactly the contract."""
    return {
        "rule": result.rule.id if result else None,
        "captures": dict(result.captures) if result else {},
        "refused": result.refused if result else None,
        "exception": event.outermost.type if event.kind == TRACEBACK and event.outermost else None,
        "exceptions": [e.type for e in event.exceptions],
        "fingerprint": event.fingerprint,
        "first_line": event.first_pos,
        "last_line": event.last_pos,
        "deploy": result.deploy if result else None,
        "actions": result.actions if result else [],
    }


Block = tuple[int, dict, list[str]]  # (line of the expect header, expectation, log lines)


def blocks(text: str) -> list[Block]:
    """The blocks of a samples file; a block's expectation carries `_source`, the last
    `# replay:` line before it (empty: hummingbot-api's merged output)."""
    out: list[Block] = []
    source: dict = {}
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("# replay: "):
            source = json.loads(line[len("# replay: "):])
        elif line.startswith("# expect: "):
            out.append((n, {**json.loads(line[len("# expect: "):]), "_source": source}, []))
        elif line.startswith("# ") or line == "#":
            continue
        elif out:
            out[-1][2].append(line)
    return out


EXITED_BOT = "rb_x-20261129-073004"  # the bot whose death a sample's EXITED line tells


def events_of(lines: list[str], source: dict, container: str = "hummingbot-api") -> list[Event]:
    """The block's events, as `rules test` replays them (RECORDED and EXITED lines included)."""
    if source.get("role") == "gateway":
        origin = Origin(source.get("container", "gateway"), source.get("channel", "merged"), "gateway")
        return list(replay_lines(lines, origin.container, origin=origin, exited_as=EXITED_BOT))
    if source.get("role"):
        origin = Origin(source.get("container", "rb_a-20261129-072744"), source["channel"], source["role"])
        return list(replay_lines(lines, origin.container, origin=origin, exited_as=EXITED_BOT))
    return list(replay_lines(lines, container, exited_as=EXITED_BOT))


def check(matcher: Matcher, expect: dict, lines: list[str], container: str = "hummingbot-api") -> str | None:
    """None when the block gives what it expects, else what went wrong."""
    expect = dict(expect)
    source = expect.pop("_source", {})
    events = events_of(lines, source, container)
    known = matcher.gateway
    if "gateway" in source:  # the stack has a gateway (present) or none (absent)
        matcher.gateway = lambda: source["gateway"] == "present"
    try:
        results = [as_json(e, matcher.match(e)) for e in events]
    finally:
        matcher.gateway = known
    if "not" in expect and any(r["rule"] == expect["not"] for r in results):
        return f"matched {expect['not']}, which it must not: {results}"
    if expect.get("rule"):
        hits = [r for r in results if r["rule"] == expect["rule"]]
        if not hits:
            return f"no event matched {expect['rule']}: {results}"
        got = hits[-1]
        for key, want in expect.items():
            if key in ("rule", "not"):
                continue
            if key == "refused" and isinstance(want, bool):
                if (got["refused"] is not None) != want:
                    return f"refused: {got['refused']!r}, expected {'a refusal' if want else 'none'}"
            elif got.get(key) != want:
                return f"{key}: {got.get(key)!r} != {want!r}"
    return None
