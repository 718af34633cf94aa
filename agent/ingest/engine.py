"""Talking to a Docker engine that may not answer: which errors mean it is away, retrying a
source's work with backoff while it is, and saying so once when it goes and once when it is
back. Every source of an engine (its followers, its life events, the connection itself)
shares these, and nothing else of the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import requests
from docker.errors import APIError, DockerException
from tenacity import Retrying, retry_if_exception, wait_exponential_jitter

from agent import sshengine
from agent.names import DEFAULT_STACK
from agent.stackconf import engine_problem
from agent.state import StateUnwritable

log = logging.getLogger(__name__)
# The longest wait between two tries of an engine that does not answer: following goes on
# within seconds of its return (a failed try is one refused connection: cheap).
BACKOFF_MAX = 5.0
_ENGINE_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                  DockerException, OSError)


def answered(exc: BaseException | None) -> bool:
    """An error the engine itself answered with (4xx: the request was wrong for the moment, such
    as the logs of a container being removed): no sign of an outage."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return isinstance(exc, APIError) and isinstance(status, int) and 400 <= status < 500


def engine_errors() -> tuple[type[Exception], ...]:
    """What an engine that does not answer raises: paramiko's too once an ssh:// engine is used."""
    return _ENGINE_ERRORS + sshengine.errors()

def keep_running(call: Callable[[], None], stopping: threading.Event, *,
                 on_engine_failure: Callable, what: str, backoff_max: float = BACKOFF_MAX) -> None:
    """Call again and again until `stopping` is set. Engine errors are retried with
    exponential backoff and jitter (tenacity); a state file that cannot be written is waited
    for quietly (the store logs it once); anything else (a bug, a stream cut in the middle of a
    JSON event) is logged and tried again after 1 s, never a silent death."""
    retry = Retrying(
        retry=retry_if_exception(lambda exc: isinstance(exc, engine_errors())),
        wait=wait_exponential_jitter(multiplier=0.2, max=backoff_max, jitter=0.2),
        sleep=stopping.wait,
        before_sleep=on_engine_failure,
        stop=lambda _state: stopping.is_set(),
        reraise=True,
    )
    while not stopping.is_set():
        try:
            retry(call)
        except engine_errors():
            pass
        except StateUnwritable:
            stopping.wait(1.0)  # the store said so once, and /healthz says so until it heals
        except Exception:
            log.exception("%s failed; trying again in 1 s", what)
            stopping.wait(1.0)


class EngineHealth:
    """Says once that the engine is unreachable, and once that it is back.

    A restarting engine answers, drops and answers again; that is one outage. So a
    success counts as "back" only when no failure follows within `settle` seconds, and
    the outage is then reported as lasting from its first failure to that success.
    """

    def __init__(self, stack: str = DEFAULT_STACK, settle: float = 5.0) -> None:
        self.settle = settle
        # Where the log lines say it: the stack's name when the agent may look after several.
        self.where = "Docker engine" if stack == DEFAULT_STACK else f"stack {stack}: Docker engine"
        self.error: str | None = None  # the last failure while it is down (for /healthz)
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self._back_at: float | None = None
        self._timer: threading.Timer | None = None

    def failed(self, exc: BaseException | None) -> None:
        if answered(exc):  # a 4xx (the logs of a container being removed): the engine is there
            log.debug("the Docker engine answered %s", exc)
            return
        with self._lock:
            self._back_at = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self.error = engine_problem(exc) if exc is not None else "no answer"
            if self.down_since is None:
                self.down_since = time.monotonic()
                # A certificate problem needs a person; a network one may pass by itself.
                log.log(logging.ERROR if self.error.startswith(("TLS:", "SSH:")) else logging.WARNING,
                        "%s unreachable (%s); retrying with backoff", self.where, self.error)

    def ok(self) -> None:
        with self._lock:
            if self.down_since is None or self._back_at is not None:
                return
            back_at = self._back_at = time.monotonic()
            self._timer = threading.Timer(self.settle, self._settled, args=(back_at,))
            self._timer.daemon = True
            self._timer.start()

    def _settled(self, back_at: float) -> None:
        with self._lock:
            if self._back_at != back_at or self.down_since is None:
                return  # it failed again meanwhile: the same outage goes on
            log.warning("%s reachable again after %.1f s", self.where, back_at - self.down_since)
            self.down_since = self._back_at = self._timer = None
            self.error = None
