"""`python -m bench [--quick] [--only NAME[,NAME]]`: speed, latency and footprint of hb-medic.

Prints readable results, then one JSON object as the last line. Each figure is
the median of several runs (the machines are shared and noisy). `--quick` runs
every part at a small scale in well under 30 s, to check that the harness works;
its figures mean little, and it leaves out the groups of the real programs
(`real_bots`) unless `--only` names them. `--only` runs the named groups alone.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import docker

from bench import bots, chat, engine, preflight, realbots, stacks


@dataclass
class Run:
    """What every group gets: the scale, the runs per figure, the engine, and the results so far."""

    quick: bool
    r: dict = field(default_factory=dict)

    @property
    def runs(self) -> int:
        return 1 if self.quick else 3

    @cached_property
    def client(self) -> docker.DockerClient:
        return docker.from_env()


def inproc(lines: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.inproc", "--lines", str(lines)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def g_inproc(run: Run) -> None:
    q, r = run.quick, run.r
    results = [inproc(20_000 if q else 1_000_000) for _ in range(run.runs)]
    r["lines_per_s"] = statistics.median(x["lines_per_s"] for x in results)
    r["raw_split_lines_per_s"] = statistics.median(x["raw_split_lines_per_s"] for x in results)
    r["rss_mb"] = statistics.median(x["rss_mb"] for x in results)
    print(f"  ingest+assemble+match: {r['lines_per_s']:,.0f} lines/s (bytes to lines alone: "
          f"{r['raw_split_lines_per_s']:,.0f}); {results[0]['lines']:,} lines, "
          f"{results[0]['tracebacks']} tracebacks; RSS after the run {r['rss_mb']:.1f} MB")


def g_detect(run: Run) -> None:
    r = run.r
    latencies = []
    for _ in range(run.runs):
        latencies += engine.detect_latency(run.client, 5 if run.quick else 40)
    r["detect_p50_ms"] = engine._pct(latencies, 50)
    r["detect_p99_ms"] = engine._pct(latencies, 99)
    print(f"  detection (last traceback line written -> match decision): p50 {r['detect_p50_ms']:.1f} ms,"
          f" p99 {r['detect_p99_ms']:.1f} ms over {len(latencies)} tracebacks")


def g_follow(run: Run) -> None:
    r = run.r
    ratios = [engine.follow_ratio(run.client, 20_000 if run.quick else 300_000) for _ in range(run.runs)]
    r["agent_follow_lines_per_s"] = statistics.median(x[0] for x in ratios)
    r["docker_logs_lines_per_s"] = statistics.median(x[1] for x in ratios)
    r["docker_follow_ratio"] = statistics.median(x[2] for x in ratios)
    print(f"  following a noisy container: agent {r['agent_follow_lines_per_s']:,.0f} lines/s, "
          f"docker logs -f "
          f"{r['docker_logs_lines_per_s']:,.0f} lines/s, ratio {r['docker_follow_ratio']:.2f}")


def g_idle(run: Run) -> None:
    r = run.r
    r["idle_cpu_pct"] = statistics.median(engine.idle_cpu(2 if run.quick else 10) for _ in range(run.runs))
    print(f"  idle CPU following a quiet container: {r['idle_cpu_pct']:.2f} %")


def g_recorder(run: Run) -> None:
    r = run.r
    added = [engine.recorder_added(run.client, 50 if run.quick else 1000) for _ in range(run.runs)]
    r["recorder_p50_ms"] = statistics.median(a[0] for a in added)
    r["recorder_p99_ms"] = statistics.median(a[1] for a in added)
    print(f"  recorder added latency: p50 {r['recorder_p50_ms']:.2f} ms, p99 {r['recorder_p99_ms']:.2f} ms")


def g_bots(run: Run) -> None:
    q, r = run.quick, run.r
    count = 2 if q else 50
    many = [bots.measure(run.client, count=count, seconds=1 if q else 20, deaths=1 if q else 3)
            for _ in range(run.runs)]
    deaths = [d for m in many for d in m["deaths"]]
    r["bots50_rss_mb"] = statistics.median(m["rss_mb"] for m in many)
    r["bots50_idle_cpu_pct"] = statistics.median(m["idle_cpu_pct"] for m in many)
    r["bot_death_to_message_s"] = statistics.median(deaths)
    print(f"  following {count} quiet bots (consoles and log files): RSS {r['bots50_rss_mb']:.1f} MB, "
          f"idle CPU {r['bots50_idle_cpu_pct']:.2f} %")
    print(f"  a bot's death (the engine's FinishedAt) -> its message at a receiver, {count} bots followed:"
          f" median {r['bot_death_to_message_s']:.2f} s over {len(deaths)} deaths (max {max(deaths):.2f} s)")


def g_stacks(run: Run) -> None:
    q, r = run.quick, run.r
    counts = (1, 2, 4) if q else (1, 10, 100)  # across two engines (the second over TLS)
    with stacks.Bed(run.client) as bed:
        quiet = bed.containers("quiet", counts[-1])
        for n, key in zip(counts, (1, 10, 100), strict=True):
            cost = [stacks.quiet_cost(bed, quiet[:n], 1 if q else 10, settle=1 if q else 3)
                    for _ in range(run.runs)]
            r[f"follow_rss_mb_{key}"] = statistics.median(c[0] for c in cost)
            r[f"follow_idle_cpu_pct_{key}"] = statistics.median(c[1] for c in cost)
            print(f"  following {n} quiet containers on two engines: RSS {r[f'follow_rss_mb_{key}']:.1f} MB,"
                  f" idle CPU {r[f'follow_idle_cpu_pct_{key}']:.2f} %")
        noisy = [stacks.noisy_throughput(bed, 10, 500 if q else 100_000) for _ in range(run.runs)]
        r["follow10_lines_per_s"] = statistics.median(n[0] for n in noisy)
        r["follow10_written_lines_per_s"] = statistics.median(n[1] for n in noisy)
        print(f"  following 10 noisy containers on two engines: {r['follow10_lines_per_s']:,.0f} lines/s"
              f" (they wrote {r['follow10_written_lines_per_s']:,.0f} lines/s)")


def g_real_bots(run: Run) -> None:
    r, started = run.r, time.monotonic()
    m = realbots.measure(run.client, count=3, minutes=1 if run.quick else 3)
    r["real_bots_count"] = m["bots"]
    r["real_bots_rss_mb"] = m["rss_mb"]
    r["real_bots_rss_peak_mb"] = m["rss_peak_mb"]
    r["real_bots_rss_before_bots_mb"] = m["rss_before_bots_mb"]
    r["real_bots_idle_cpu_pct"] = m["idle_cpu_pct"]
    r["real_bots_written_kb_per_bot_min"] = m["written_kb_per_bot_min"]
    print(f"  following {m['bots']} real bots beside the real hummingbot-api (recorder, notifications):"
          f" RSS {m['rss_mb']:.1f} MB (median of {m['rss_samples']} samples; {m['rss_before_bots_mb']:.1f}"
          f" before the bots, peak {m['rss_peak_mb']:.1f}), CPU {m['idle_cpu_pct']:.2f} % (median of"
          f" {m['cpu_samples']} minutes); the bots wrote {m['written_kb_per_bot_min']:.1f} KB a minute each;"
          f" ready after {m['ready_s']:.0f} s, {time.monotonic() - started:.0f} s in all")


def g_chat(run: Run) -> None:
    r = run.r
    story = [chat.messages_per_incident() for _ in range(run.runs)]
    r["chat_messages_per_incident"] = statistics.median(s["messages"] for s in story)
    r["chat_edits_per_incident"] = statistics.median(s["edits"] for s in story)
    # A press at the Bot API server -> the operator's press called (the transport's part alone).
    calls = chat.operator_latencies(20 if run.quick else 100)
    r["approval_to_operator_ms"] = engine._pct(calls, 99)
    # A Fix now press at the Bot API server -> the fix's first action started (the whole agent in
    # ask mode, its real operator; chat.approval_to_action says which mark).
    m = chat.approval_to_action(run.client, 3 if run.quick else 40)
    r["approval_to_action_p50_ms"] = engine._pct(m["action"], 50)
    r["approval_to_action_ms"] = engine._pct(m["action"], 99)
    r["approval_to_attempt_ms"] = engine._pct(m["attempt"], 99)
    print(f"  chat (Telegram, local Bot API server): a fix that cannot work (3 attempts, gave up) is"
          f" {r['chat_messages_per_incident']:.0f} messages ({r['chat_edits_per_incident']:.0f} edits;"
          f" goal 1, at most 2 when a person is needed); Fix now pressed -> first action started: p50"
          f" {r['approval_to_action_p50_ms']:.1f} ms, p99 {r['approval_to_action_ms']:.1f} ms over"
          f" {len(m['action'])} presses (goal p99 <= 1000 ms; attempt begun p99"
          f" {r['approval_to_attempt_ms']:.1f} ms); press -> operator called p99"
          f" {r['approval_to_operator_ms']:.1f} ms over {len(calls)}")

def g_preflight(run: Run) -> None:
    r = run.r
    m = [preflight.measure(run.client, 50 if run.quick else 1000, 1 if run.quick else 5)
         for _ in range(run.runs)]
    r["preflight_p50_ms"] = statistics.median(x["preflight_p50_ms"] for x in m)
    r["preflight_p99_ms"] = statistics.median(x["preflight_p99_ms"] for x in m)
    r["prevented_deploy_ms"] = statistics.median(x["prevented_deploy_ms"] for x in m)
    r["deploy_direct_ms"] = statistics.median(x["deploy_direct_ms"] for x in m)
    print(f"  preflight added to a deploy with nothing wrong: p50 {r['preflight_p50_ms']:.2f} ms, p99"
          f" {r['preflight_p99_ms']:.2f} ms; a seed deploy prevented (profile added first), request in ->"
          f" success out: median {r['prevented_deploy_ms']:.0f} ms (the same deploy with its profile there,"
          f" straight to hummingbot-api: {r['deploy_direct_ms']:.0f} ms)")


GROUPS: dict[str, Callable[[Run], None]] = {
    "inproc": g_inproc, "detect": g_detect, "follow": g_follow, "idle": g_idle, "recorder": g_recorder,
    "preflight": g_preflight, "bots": g_bots, "stacks": g_stacks, "real_bots": g_real_bots, "chat": g_chat,
}
NOT_QUICK = {"real_bots"}  # the real programs: minutes, not seconds; --quick runs them only by name


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("--quick", action="store_true", help="small scale: checks the harness, not the targets")
    ap.add_argument("--only", metavar="NAME[,NAME]", help=f"run only these groups: {', '.join(GROUPS)}")
    args = ap.parse_args()
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in GROUPS]
        if unknown or not names:
            ap.error(f"unknown group {', '.join(unknown) or '(none)'}: choose from {', '.join(GROUPS)}")
    else:
        names = [n for n in GROUPS if not (args.quick and n in NOT_QUICK)]
    run = Run(quick=args.quick)
    started = time.monotonic()
    print(f"hb-medic benchmark{' (quick)' if run.quick else ''} on {platform.machine()}, "
          f"{platform.python_version()}")
    for name in names:
        GROUPS[name](run)
    r = run.r
    r["quick"] = run.quick
    r["seconds"] = round(time.monotonic() - started, 1)
    print(f"  ({r['seconds']} s)")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
