"""A synthetic corpus in hummingbot-api's real formats, as Docker delivers it.

Lines are the real shapes: app records on stderr (`asctime - logger - LEVEL -
message`), uvicorn access lines and logfire request lines on stdout, and
genuine Python tracebacks (several shapes, raised in this interpreter) after
their record line, so that about 1 % of the lines belong to tracebacks. The
bytes are Docker's multiplexed stream with RFC 3339 timestamps, exactly what
the follower reads. Blocks are built once and cycled, so memory stays small.
"""

from __future__ import annotations

import random
import struct
import time
import traceback

HEADER = struct.Struct(">BxxxL")
BLOCK_LINES = 20_000


def _tracebacks() -> list[list[str]]:
    from tests.tracebacks import RAISERS, exception

    out = []
    for name in sorted(RAISERS):
        text = "".join(traceback.format_exception(exception(name)))
        out.append(text.rstrip("\n").split("\n"))
    return out


NOISE_OUT = [
    'INFO:     127.0.0.1:{port} - "GET /bot-orchestration/status HTTP/1.1" 200 OK',
    "{clock} GET /bot-orchestration/status",
    'INFO:     127.0.0.1:{port} - "GET /accounts/ HTTP/1.1" 200 OK',
    "{clock} GET /accounts/",
]
NOISE_ERR = [
    "{ts} - hummingbot.connector.time_synchronizer - WARNING - Could not refresh server time."
    " Check network connection.",
    "{ts} - services.bots_orchestrator - INFO - bot sharp-bot-20261129-014932 is running",
    '{ts} - utils.mqtt_manager - ERROR - MQTT disconnected during message iteration:'
    ' "[Errno 111] Connection refused". Reconnecting...',
]
HEADERS = [
    "{ts} - hummingbot.core.rate_oracle.sources.rate_source_base - ERROR - Unexpected error while"
    " retrieving rates from Binance. Check the log file for more info.",
    "{ts} - root - ERROR - Error deploying V2 script: something went wrong",
]


def block(seed: int, lines: int = BLOCK_LINES, traceback_share: float = 0.01) -> tuple[bytes, int, int]:
    """(multiplexed bytes, line count, traceback count) for one block."""
    rnd = random.Random(seed)
    tbs = _TB_CACHE or _TB_CACHE.extend(_tracebacks()) or _TB_CACHE
    avg_tb = sum(len(t) + 1 for t in tbs) / len(tbs)
    p_tb = traceback_share / avg_tb  # chance an event is a traceback, so ~1 % of lines are
    base = time.time()
    out = bytearray()
    n = tb_count = i = 0
    while n < lines:
        now = base + i * 0.0005
        i += 1
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z "
        ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + f",{int(now % 1 * 1000):03d}"
        clock = time.strftime("%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}"
        if rnd.random() < p_tb:
            tb_count += 1
            entries = [rnd.choice(HEADERS).format(ts=ts), *rnd.choice(tbs)]
            stream = 2
        elif rnd.random() < 0.9:  # a real deployment's output is mostly request lines
            entries = [rnd.choice(NOISE_OUT).format(port=rnd.randint(30000, 60000), clock=clock)]
            stream = 1
        else:
            entries = [rnd.choices(NOISE_ERR, weights=(6, 3, 1))[0].format(ts=ts)]
            stream = 2
        for text in entries:
            payload = stamp.encode() + text.encode() + b"\n"
            out += HEADER.pack(stream, len(payload)) + payload
            n += 1
    return bytes(out), n, tb_count


_TB_CACHE: list[list[str]] = []


def chunks(data: bytes, size: int = 256 * 1024):
    for i in range(0, len(data), size):
        yield data[i:i + size]
