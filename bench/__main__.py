"""`python -m bench [--quick]`: speed, latency and footprint of hb-medic.

Prints readable results, then one JSON object as the last line. Each figure is
the median of several runs (the machines are shared and noisy). `--quick` runs
every part at a small scale in well under 30 s, to check that the harness works;
its figures mean little.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time

import docker

from bench import bots, engine, stacks


def inproc(lines: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.inproc", "--lines", str(lines)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("--quick", action="store_true", help="small scale: checks the harness, not the targets")
    args = ap.parse_args()
    q = args.quick
    started = time.monotonic()
    runs = 1 if q else 3
    print(f"hb-medic benchmark{' (quick)' if q else ''} on {platform.machine()}, {platform.python_version()}")

    results = [inproc(20_000 if q else 1_000_000) for _ in range(runs)]
    r = {
        "lines_per_s": statistics.median(x["lines_per_s"] for x in results),
        "raw_split_lines_per_s": statistics.median(x["raw_split_lines_per_s"] for x in results),
        "rss_mb": statistics.median(x["rss_mb"] for x in results),
    }
    print(f"  ingest+assemble+match: {r['lines_per_s']:,.0f} lines/s (bytes to lines alone: "
          f"{r['raw_split_lines_per_s']:,.0f}); {results[0]['lines']:,} lines, "
          f"{results[0]['tracebacks']} tracebacks; RSS after the run {r['rss_mb']:.1f} MB")

    client = docker.from_env()
    latencies = []
    for _ in range(runs):
        latencies += engine.detect_latency(client, 5 if q else 40)
    r["detect_p50_ms"] = engine._pct(latencies, 50)
    r["detect_p99_ms"] = engine._pct(latencies, 99)
    print(f"  detection (last traceback line written -> match decision): p50 {r['detect_p50_ms']:.1f} ms,"
          f" p99 {r['detect_p99_ms']:.1f} ms over {len(latencies)} tracebacks")

    ratios = [engine.follow_ratio(client, 20_000 if q else 300_000) for _ in range(runs)]
    r["agent_follow_lines_per_s"] = statistics.median(x[0] for x in ratios)
    r["docker_logs_lines_per_s"] = statistics.median(x[1] for x in ratios)
    r["docker_follow_ratio"] = statistics.median(x[2] for x in ratios)
    print(f"  following a noisy container: agent {r['agent_follow_lines_per_s']:,.0f} lines/s, "
          f"docker logs -f "
          f"{r['docker_logs_lines_per_s']:,.0f} lines/s, ratio {r['docker_follow_ratio']:.2f}")

    r["idle_cpu_pct"] = statistics.median(engine.idle_cpu(2 if q else 10) for _ in range(runs))
    print(f"  idle CPU following a quiet container: {r['idle_cpu_pct']:.2f} %")

    added = [engine.recorder_added(client, 50 if q else 1000) for _ in range(runs)]
    r["recorder_p50_ms"] = statistics.median(a[0] for a in added)
    r["recorder_p99_ms"] = statistics.median(a[1] for a in added)
    print(f"  recorder added latency: p50 {r['recorder_p50_ms']:.2f} ms, p99 {r['recorder_p99_ms']:.2f} ms")
    count = 2 if q else 50
    many = [bots.measure(client, count=count, seconds=1 if q else 20, deaths=1 if q else 3)
            for _ in range(runs)]
    deaths = [d for m in many for d in m["deaths"]]
    r["bots50_rss_mb"] = statistics.median(m["rss_mb"] for m in many)
    r["bots50_idle_cpu_pct"] = statistics.median(m["idle_cpu_pct"] for m in many)
    r["bot_death_to_message_s"] = statistics.median(deaths)
    print(f"  following {count} quiet bots (consoles and log files): RSS {r['bots50_rss_mb']:.1f} MB, "
          f"idle CPU {r['bots50_idle_cpu_pct']:.2f} %")
    print(f"  a bot's death (the engine's FinishedAt) -> its message at a receiver, {count} bots followed:"
          f" median {r['bot_death_to_message_s']:.2f} s over {len(deaths)} deaths (max {max(deaths):.2f} s)")
    counts = (1, 2, 4) if q else (1, 10, 100)  # across two engines (the second over TLS)
    with stacks.Bed(client) as bed:
        quiet = bed.containers("quiet", counts[-1])
        for n, key in zip(counts, (1, 10, 100), strict=True):
            cost = [stacks.quiet_cost(bed, quiet[:n], 1 if q else 10, settle=1 if q else 3)
                    for _ in range(runs)]
            r[f"follow_rss_mb_{key}"] = statistics.median(c[0] for c in cost)
            r[f"follow_idle_cpu_pct_{key}"] = statistics.median(c[1] for c in cost)
            print(f"  following {n} quiet containers on two engines: RSS {r[f'follow_rss_mb_{key}']:.1f} MB,"
                  f" idle CPU {r[f'follow_idle_cpu_pct_{key}']:.2f} %")
        noisy = [stacks.noisy_throughput(bed, 10, 500 if q else 100_000) for _ in range(runs)]
        r["follow10_lines_per_s"] = statistics.median(n[0] for n in noisy)
        r["follow10_written_lines_per_s"] = statistics.median(n[1] for n in noisy)
        print(f"  following 10 noisy containers on two engines: {r['follow10_lines_per_s']:,.0f} lines/s"
              f" (they wrote {r['follow10_written_lines_per_s']:,.0f} lines/s)")
    r["quick"] = q
    r["seconds"] = round(time.monotonic() - started, 1)
    print(f"  ({r['seconds']} s)")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
