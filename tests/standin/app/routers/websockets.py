"""The current generation's websockets (authenticated); the stand-in echoes."""

from __future__ import annotations

import base64
import secrets

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status

import config

router = APIRouter()


def _authorised(ws: WebSocket) -> bool:
    header = ws.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return False
    return secrets.compare_digest(user, config.USERNAME) and secrets.compare_digest(password, config.PASSWORD)


@router.websocket("/ws/market-data")
async def market_data(ws: WebSocket):
    if not _authorised(ws):
        await ws.close(code=status.WS_1008_POLICY_VIOLATION)
        return
    await ws.accept()
    try:
        while True:
            message = await ws.receive_text()
            await ws.send_text(f"echo: {message}")
    except WebSocketDisconnect:
        return
