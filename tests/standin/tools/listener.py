"""TCP listener that stands in for the broker or postgres on 127.0.0.1.

broker mode holds every connection open (the stand-in notices when the
container stops because its connection drops) and passes each line one client
sends to all the others (a bot's heartbeat reaches hummingbot-api). postgres mode answers a
one-line login `AUTH <user> <password>` with OK or FAIL, comparing to
POSTGRES_USER / POSTGRES_PASSWORD, so the wrong-password failure is real.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

CLIENTS: set[asyncio.StreamWriter] = set()


async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    CLIENTS.add(writer)
    try:
        while line := await reader.readline():
            for other in list(CLIENTS):
                if other is not writer:
                    try:
                        other.write(line)
                    except Exception:
                        CLIENTS.discard(other)
    except OSError:
        pass
    finally:
        CLIENTS.discard(writer)
        writer.close()


async def postgres(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    user = os.environ.get("POSTGRES_USER", "hbot")
    password = os.environ.get("POSTGRES_PASSWORD", "hummingbot-api")
    try:
        line = (await reader.readline()).decode(errors="replace").strip()
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == "AUTH":
            if parts[1] != user:
                writer.write(f'FAIL role "{parts[1]}" does not exist\n'.encode())
            elif parts[2] != password:
                writer.write(f'FAIL password authentication failed for user "{user}"\n'.encode())
            else:
                writer.write(b"OK\n")
        await writer.drain()
        while await reader.read(4096):
            pass
    finally:
        writer.close()


async def serve(mode: str, port: int) -> None:
    handler = postgres if mode == "postgres" else broker
    server = await asyncio.start_server(handler, "127.0.0.1", port)
    print(f"{mode} listener on 127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2])))
