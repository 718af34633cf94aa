"""The benchmark harness works (quick mode; the figures themselves are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.stack import REPO

pytestmark = pytest.mark.docker
KEYS = {"lines_per_s", "raw_split_lines_per_s", "detect_p50_ms", "detect_p99_ms", "docker_follow_ratio",
        "rss_mb", "idle_cpu_pct", "recorder_p99_ms", "follow_rss_mb_1", "follow_rss_mb_10",
        "follow_rss_mb_100", "follow_idle_cpu_pct_1", "follow_idle_cpu_pct_10", "follow_idle_cpu_pct_100",
        "follow10_lines_per_s", "preflight_p99_ms", "prevented_deploy_ms"}


def test_bench_quick_prints_the_json_contract(docker_client):
    out = subprocess.run([sys.executable, "-m", "bench", "--quick"], capture_output=True, text=True,
                         cwd=REPO, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    last = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(last) >= KEYS
    assert all(isinstance(last[k], int | float) and last[k] >= 0 for k in KEYS)
    assert last["quick"] is True and last["lines_per_s"] > 0 and last["docker_follow_ratio"] > 0
    assert "ingest+assemble+match" in out.stdout
