"""A failure line followed, on the same stream, by bytes without a log header: plain text, a long
run of NUL bytes, a run of 0xFF bytes. Each failure (hummingbot-api's record line, or the legacy
generation's traceback) is matched and fixed all the same: the header-less bytes are no part of
it."""

from __future__ import annotations

import time
import uuid

from faults.bed import Bed
from faults.scenarios.common import log, settle

TARGET = ("every failure line followed by header-less bytes (plain text, NULs, 0xFF) matched and fixed:"
          " all of N")
RULE = "credentials-profile-missing"
RECORD = ("{now} - root - ERROR - Error deploying V2 script: [Errno 2] No such file or directory:"
          " 'bots/credentials/{p}'\n")
TRACEBACK = ("ERROR:    Exception in ASGI application\nTraceback (most recent call last):\n"
             '  File "/hummingbot-api/services/docker_service.py", line 182, in create_hummingbot_instance\n'
             "    shutil.copytree(source_credentials_dir, destination_credentials_dir)\n"
             "FileNotFoundError: [Errno 2] No such file or directory: 'bots/credentials/{p}'\n")


def afters(quick: bool) -> dict[str, bytes]:
    run = 20_000 if quick else 200_000  # beyond Docker's 16 KiB entries and the 64 KiB line cap
    return {"plain text": b"plain text written by something else, no header\n",
            "NUL run": b"\x00" * run + b"\n",
            "0xFF run": b"\xff" * run + b"\n",
            "mixed": b"\x00\xff plain \x00\n  \x00indented NULs\n"}


def payload(profiles: list[str], quick: bool) -> bytes:
    now = time.strftime("%Y-%m-%d %H:%M:%S,000", time.gmtime())
    kinds = list(afters(quick).values())
    parts = []
    for i, p in enumerate(profiles):
        failure = (TRACEBACK if i % 2 else RECORD).format(now=now, p=p).encode()
        parts += [failure, kinds[i % len(kinds)]]
    return b"".join(parts)


def run(quick: bool) -> dict:
    tag = uuid.uuid4().hex[:4]
    n = 8 if quick else 40
    profiles = [f"hl{i:02d}_{tag}" for i in range(n)]
    with Bed("headerless-after-failure", quick=quick) as bed:
        agent = bed.agent().start()
        (bed.stack.bots / "headerless.bin").write_bytes(payload(profiles, quick))
        started = time.monotonic()
        code, out = bed.stack.api.exec_run(["cp", "/hummingbot-api/bots/headerless.bin", "/proc/1/fd/2"])
        assert code == 0, out
        log(f"{n} failure lines, each followed by header-less bytes, written into hummingbot-api's stderr")
        settle(lambda: len(_matched(agent, profiles)) == n, 60 if quick else 180)
        took = time.monotonic() - started
        credentials = bed.stack.bots / "credentials"
        settle(lambda: all((credentials / p).is_dir() for p in profiles), 60)
        matched = _matched(agent, profiles)
        fixed = [p for p in profiles if (credentials / p).is_dir()]
        unknown = (agent.query("SELECT COUNT(*) FROM unknown") or [(0,)])[0][0]
        agent.stop()
    missed = sorted(set(profiles) - set(matched))
    ok = len(matched) == n and len(fixed) == n
    return {"pass": ok,
            "measured": {"failures": n, "matched": len(matched), "fixed": len(fixed),
                         "kinds_after": list(afters(quick)), "matched_in_s": round(took, 1),
                         "unknown_fingerprints": unknown},
            "details": {"missed": missed},
            "figure": f"{len(matched)} of {n} matched, {len(fixed)} of {n} fixed (each followed by plain"
                      f" text, a NUL run, a 0xFF run or a mix; half record lines, half tracebacks)"}


def _matched(agent, profiles: list[str]) -> list[str]:
    keys = {k for (k,) in agent.query("SELECT key FROM incidents WHERE rule = ?", (RULE,))}
    return [p for p in profiles if p in keys]
