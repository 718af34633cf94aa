"""hummingbot-api stand-in: the routes, disk effects, log lines and stream split
of the real program as observed (see the project's notes on hummingbot-api).

Application records go to stderr in the real format; uvicorn's access lines and
a logfire-style request line go to stdout. Application INFO records are off,
as in a real deployment, unless STANDIN_LOG_INFO is set.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from contextlib import asynccontextmanager
from datetime import datetime
from urllib.parse import parse_qsl

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

import config

logging.basicConfig(
    level=logging.INFO if config.LOG_INFO else logging.WARNING,
    format="%(asctime)s - %(name)s - %(levelname)s - %(message)s",
)

from database.connection import AsyncDatabaseManager  # noqa: E402
from routers import accounts, bot_orchestration, connectors, docker, gateway, portfolio, websockets  # noqa: E402
from services import client_config, exchanges, gateway_http_client, noise  # noqa: E402
from services.docker_service import DockerService  # noqa: E402
from utils.mqtt_manager import MQTTManager  # noqa: E402
from utils.security import ensure_password_verification  # noqa: E402


def warn_if_insecure_security_defaults() -> None:
    insecure = [k for k, v in config.DEFAULTS.items() if getattr(config, k) == v]
    if insecure:
        logging.critical(
            f"SECURITY WARNING: insecure default credentials in use for: {', '.join(insecure)}. "
            "Anyone who can reach this API can authenticate with the default basic auth credentials, "
            "and all connector credentials are encrypted with a trivially guessable password. "
            "Set the USERNAME, PASSWORD and CONFIG_PASSWORD environment variables (e.g. in .env) "
            "before deploying to production. Do NOT run a production deployment with these defaults."
        )


@asynccontextmanager
async def lifespan(app: FastAPI):
    tasks: list[asyncio.Task] = []
    if config.LEGACY:
        ensure_password_verification()
        app.state.docker_manager = DockerService()
        await AsyncDatabaseManager().create_tables()
    else:
        warn_if_insecure_security_defaults()
        ensure_password_verification()
        await AsyncDatabaseManager().create_tables()
        app.state.docker_manager = DockerService()
    mqtt = app.state.mqtt = MQTTManager()
    await mqtt.start()
    if config.NOISE_INTERVAL > 0:
        tasks.append(asyncio.create_task(noise.run(config.NOISE_INTERVAL)))
    tasks.append(asyncio.create_task(exchanges.run()))
    if config.CLIENT_CONFIG_INTERVAL > 0:
        tasks.append(asyncio.create_task(client_config.run(config.CLIENT_CONFIG_INTERVAL)))
    if not config.LEGACY and config.GATEWAY_PING > 0:
        tasks.append(asyncio.create_task(gateway_http_client.run(config.GATEWAY_PING)))
    logging.info("All services started successfully")
    yield
    await mqtt.stop()
    for task in tasks:
        task.cancel()


app = FastAPI(title="Hummingbot API", lifespan=lifespan)
app.include_router(bot_orchestration.router)
app.include_router(accounts.router)
app.include_router(docker.router)
app.include_router(connectors.router)
app.include_router(portfolio.router)
if not config.LEGACY:
    app.include_router(websockets.router)
    app.include_router(gateway.router)
    app.include_router(gateway.accounts_router)


@app.get("/")
async def root():
    return {"name": "Hummingbot API", "version": "1.0.0", "status": "running"}


if not config.LEGACY:

    @app.exception_handler(RequestValidationError)
    async def validation_exception_handler(request: Request, exc: RequestValidationError):
        msgs = "; ".join(
            f"{' -> '.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'Validation error')}"
            for err in exc.errors()
        )
        logging.warning(f"Validation error on {request.method} {request.url.path}: {msgs}")
        # As the real one: the errors as they are. A name validator's error carries its ValueError,
        # which JSON cannot encode, so that answer fails (500 text/plain, with a chained traceback).
        return JSONResponse(status_code=422, content={"detail": exc.errors()})


class RequestLine:
    """logfire's console line, `HH:MM:SS.mmm METHOD /path`, printed on stdout
    when the response starts, just before uvicorn's access line."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = datetime.now()
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        params = " ".join(f"{k}={v!r}" for k, v in query)
        line = f"{started:%H:%M:%S}.{started.microsecond // 1000:03d} {scope['method']} {scope['path']}"
        if params:
            line += f" ? {params}"

        async def send_and_print(message):
            if message["type"] == "http.response.start":
                print(line, file=sys.stdout, flush=True)
            await send(message)

        await self.app(scope, receive, send_and_print)


if __name__ == "__main__":
    # stdout is a pipe under Docker; keep each line whole and prompt.
    sys.stdout.reconfigure(line_buffering=True)
    uvicorn.run(RequestLine(app), host=config.HOST, port=config.PORT)
