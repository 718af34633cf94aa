"""The HTTP answers a receiver gave during one delivery: apprise only says whether a message
went, but a rate limit (429 with `Retry-After`, or Telegram's `retry_after` in its JSON
answer) is in the status, headers and body it got.

Neither apprise nor requests offers a hook for this: the Telegram, Slack and JSON plugins
call `requests.post` / `requests.request`, each with a session of its own made for that
one request. Every such answer passes through requests' transport adapter
(`HTTPAdapter.send`), so that is wrapped once; the wrapper records only inside `observe()`
(a context variable, which apprise copies into the thread it sends from), so the other
requests of the process (Docker, hummingbot-api) are never looked at.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter

BODY_MAX = 4096  # bytes of an answer kept: a rate limit's JSON is well under this
LIMITING = 429  # the status whose Retry-After (or Telegram's retry_after) is honoured

_recording: ContextVar[list[requests.Response] | None] = ContextVar("hb_medic_answers", default=None)
_install_lock = threading.Lock()
_installed = False


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: str | None  # the header, as given
    body: bytes  # only for a rate limit: the start of the body, else empty


def _answer(response: requests.Response) -> Answer:
    body = b""
    if response.status_code == LIMITING:
        try:
            body = (response.content or b"")[:BODY_MAX]
        except Exception:  # a body that cannot be read says nothing
            body = b""
    return Answer(response.status_code, response.headers.get("Retry-After"), body)


def _install() -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        original = HTTPAdapter.send

        def send(self, request, *args, **kwargs):
            response = original(self, request, *args, **kwargs)
            recording = _recording.get()
            if recording is not None:
                recording.append(response)
            return response

        HTTPAdapter.send = send
        _installed = True


@contextmanager
def observe() -> Iterator[list[Answer]]:
    """The answers received inside the block, filled in when it ends (in order)."""
    _install()
    responses: list[requests.Response] = []
    answers: list[Answer] = []
    token = _recording.set(responses)
    try:
        yield answers
    finally:
        _recording.reset(token)
        answers.extend(_answer(r) for r in list(responses))
