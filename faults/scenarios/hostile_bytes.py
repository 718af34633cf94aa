"""Hostile bytes in hummingbot-api's log: a 10 MB line, NUL bytes, terminal escapes, invalid
UTF-8, a carriage return inside a line, a 1M-line burst and 30 failure lines naming evil
profiles, then CRLF-terminated genuine failures. The agent stays healthy with bounded
memory, acts on none of the evil values, keeps its own log safe to read, and still matches
(and fixes) the genuine failures."""

from __future__ import annotations

import re
import threading
import time
import uuid

from faults.bed import Bed
from faults.scenarios.common import log, settle

TARGET = ("healthy throughout, RSS at most 150 MB, 0 evil values acted on, no raw control bytes in the"
          " agent's log, the CRLF failure lines matched and fixed")
RULE = "credentials-profile-missing"
RSS_LIMIT_MB = 150.0
HEALTHCHECK_TOLERANCE_S = 45.0
EVIL = ["../etc", "../../root/.ssh", "a;reboot", "$(reboot)", "`id`", "a b", "-rf", "--help",
        "master_account", "MASTER_ACCOUNT", "Master_Account", "a|b", "a&b", "a>b", "a\\b", "a/b", "..", ".",
        "x" * 300, "${IFS}", "%2e%2e%2f", "a\tb", "\u202eevil", "名前", "a\x00b", "~root", "a*", "a?b",
        "{a,b}", "\x1b[31mred"]
FAILURE = ("{now} - root - ERROR - Error deploying V2 script: [Errno 2] No such file or directory:"
           " 'bots/credentials/{p}'")
LOG_LINE = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")
CONTROL = {"NUL": b"\x00", "ESC": b"\x1b", "CSI": b"\xc2\x9b", "BEL": b"\x07"}


def payload(quick: bool, genuine: dict[str, bytes], after: str) -> tuple[bytes, int]:
    """The bytes written into hummingbot-api's stderr; `genuine`: profile -> line ending."""
    now = time.strftime("%Y-%m-%d %H:%M:%S,000", time.gmtime())

    def record(level: str, message: str) -> bytes:
        return f"{now} - services.hostile - {level} - {message}".encode()

    def failure(profile: str) -> bytes:
        return FAILURE.format(now=now, p=profile).encode("utf-8", "surrogateescape")

    burst = 50_000 if quick else 1_000_000
    parts = [
        record("ERROR", "a long line ") + b"A" * (1_000_000 if quick else 10_000_000) + b"\n",
        record("ERROR", "nul ") + b"\x00\x00 in the middle\x00\n",
        record("ERROR", "ansi \x1b[31mred\x1b[0m \x1b]0;pwned\x07 \x1b[2J \x1b[6n") + b" \x9b6n\n",
        record("ERROR", "invalid utf-8 ") + b"\xff\xfe \xc3\x28 \xed\xa0\x80 \xf8\x88\x80\x80\x80\n",
        record("ERROR", "a carriage") + b" return\roverwrites the line\n",
        *(failure(p) + b"\n" for p in EVIL),
        *(failure(p) + ending for p, ending in genuine.items()),
        b"".join(record("INFO", f"burst {i:07d} " + "x" * 40) + b"\n" for i in range(burst)),
        failure(after) + b"\n",
    ]
    return b"".join(parts), burst


def run(quick: bool) -> dict:
    tag = uuid.uuid4().hex[:4]
    # "\r\n" as a program writes it; "\r\r\n" when a text layer adds one more to each "\n"
    genuine = {f"crlf_{tag}": b"\r\n", f"crlf2_{tag}": b"\r\r\n"}
    after = f"after_{tag}"
    with Bed("hostile-bytes", quick=quick) as bed:
        agent = bed.agent().start()
        data, burst = payload(quick, genuine, after)
        (bed.stack.bots / "hostile.bin").write_bytes(data)
        unhealthy: list[tuple[int, list]] = []
        unanswered = {"samples": 0, "longest_s": 0.0}
        stop = threading.Event()

        def watch() -> None:
            # Unhealthy is what the agent says (a 503). A probe that got no answer in its 5 s
            # is timing (the machine is loaded, the burst is being read): it counts only when
            # the silence lasts as long as the image's HEALTHCHECK tolerates (3 tries, 15 s apart).
            silent_since = None
            while not stop.wait(0.5):
                status, body = agent.health()
                if status == 0:
                    unanswered["samples"] += 1
                    silent_since = silent_since or time.monotonic()
                    silent = time.monotonic() - silent_since
                    unanswered["longest_s"] = round(max(unanswered["longest_s"], silent), 1)
                    if silent > HEALTHCHECK_TOLERANCE_S:
                        unhealthy.append((0, [f"no answer for {silent:.0f} s"]))
                    continue
                silent_since = None
                if status != 200:
                    unhealthy.append((status, body.get("problems", [])))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.monotonic()
        code, out = bed.stack.api.exec_run(["cp", "/hummingbot-api/bots/hostile.bin", "/proc/1/fd/2"])
        assert code == 0, out
        log(f"{len(data) / 1e6:.0f} MB written into hummingbot-api's stderr")
        matched = settle(lambda: _incident(agent, after) is not None, 90 if quick else 300, 0.5)
        took = time.monotonic() - started
        credentials = bed.stack.bots / "credentials"
        fixed = settle(lambda: all((credentials / p).is_dir() for p in genuine), 60)
        time.sleep(2)
        stop.set()
        watcher.join(5)
        rss = agent.rss_peak_mb()
        adds = bed.add_account_calls()
        raw_log = agent.log.read_bytes()
        crlf_matched = all(_incident(agent, p) for p in genuine)
        ours = [*genuine, after]
        evil_states = [s for k, s in agent.query("SELECT key, state FROM incidents WHERE rule = ?", (RULE,))
                       if k not in ours]
        made = sorted({p.name for p in credentials.iterdir()} - {"master_account", *ours})
        agent.stop()
    acted = sorted(set(adds) - set(ours))
    control = {name: raw_log.count(b) for name, b in CONTROL.items()}
    not_one_line = sum(1 for line in raw_log.splitlines() if line and not LOG_LINE.match(line))
    evil = len(set(acted) | set(made))
    measured = {"bytes": len(data), "burst_lines": burst, "processed_in_s": round(took, 1),
                "healthz_not_200_samples": len(unhealthy),
                "healthz_unanswered": unanswered, "rss_peak_mb": round(rss, 1),
                "evil_lines": len(EVIL), "evil_acted_on": evil,
                "evil_incidents_by_state": {s: evil_states.count(s) for s in sorted(set(evil_states))},
                "raw_control_bytes_in_log": control, "log_lines_not_an_entry": not_one_line,
                "crlf_lines_matched": crlf_matched, "crlf_profiles_fixed": fixed,
                "matched_after_the_burst": matched}
    ok = (not unhealthy and 0 < rss <= RSS_LIMIT_MB and evil == 0 and not any(control.values())
          and not_one_line == 0 and crlf_matched and fixed and matched)
    return {"pass": ok, "measured": measured,
            "details": {"acted": acted, "made": made, "unhealthy": unhealthy},
            "figure": f"healthy throughout: {not unhealthy}, RSS peak {rss:.0f} MB, {evil} of {len(EVIL)}"
                      f" evil values acted on, {sum(control.values())} raw control bytes in its log, CRLF"
                      f" failures matched: {crlf_matched}"}


def _incident(agent, key: str) -> tuple | None:
    rows = agent.query("SELECT id, state FROM incidents WHERE rule = ? AND key = ?", (RULE, key))
    return rows[0] if rows else None
