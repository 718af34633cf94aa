"""Slack as a chat transport: messages through the Web API (`chat.postMessage`, `chat.update`),
buttons as Block Kit actions, presses and commands through Socket Mode (no public address).

The text given to `post` and `edit` is Slack mrkdwn made by agent.notify.render (plain text with
`&`, `<` and `>` as entities, so nothing a log line says becomes a mention, a link or a channel
reference); it is shown `verbatim` (no automatic links or mentions either). The operator's
answers are plain text, escaped here the same way. The tokens live only inside the slack_sdk
clients: no message, log line or exception here holds them (an error says the method and Slack's
error code, nothing else of the answer).

Socket Mode runs slack_sdk's aiohttp client (aiohttp is already the recorder's library): its
connection, pings and reconnects run in one event loop on the thread that calls `listen`, so the
transport starts no threads of its own (the builtin and websocket-client ones start several) and
speaks through a maintained websocket implementation rather than a hand-written one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import threading
import time
import urllib.error
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from agent.chat.transport import Button, ChatError, EditGone, Posted, RateLimited, Who
from agent.notify.render import mrkdwn_escape as escape
from agent.notify.targets import Target

DEFAULT_API_URL = "https://slack.com/api/"
SECTION_LIMIT = 3000  # characters of one section block's text
TEXT_LIMIT = 12000  # of a whole message (Slack truncates a message's blocks past about 13k)
LABEL_LIMIT = 75  # a button's text
# chat.update errors that mean: this message will never be edited again, post a new one.
GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed", "channel_not_found",
                  "is_archived", "msg_too_long_to_edit"})
_CODE = re.compile(r"[a-z0-9_]{1,80}")
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")

log = logging.getLogger(__name__)


def blocks(text: str, buttons: list[Button]) -> list[dict]:
    """A message as Block Kit: its mrkdwn in sections (each within Slack's limit), then one actions
    block whose buttons carry the Button's data as action_id and value."""
    shown = text[:TEXT_LIMIT]
    out: list[dict] = []
    while shown:
        cut = len(shown) if len(shown) <= SECTION_LIMIT else _cut(shown, SECTION_LIMIT)
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": shown[:cut], "verbatim": True}})
        shown = shown[cut:]
    if buttons:
        out.append({"type": "actions", "block_id": "medic",
                    "elements": [{"type": "button", "action_id": b.data, "value": b.data,
                                  "text": {"type": "plain_text", "text": b.label[:LABEL_LIMIT],
                                           "emoji": False}} for b in buttons]})
    return out


def _cut(text: str, limit: int) -> int:
    """Where to split: the last line break within the limit, never inside an entity."""
    at = text.rfind("\n", 0, limit)
    if at > limit // 2:
        return at + 1
    amp = text.rfind("&", limit - 6, limit)
    return amp if amp > 0 and ";" not in text[amp:limit] else limit


def _code(exc: SlackApiError) -> str:
    """Slack's error code (`channel_not_found`), and never anything else of the answer."""
    error = exc.response.get("error") if exc.response is not None else None
    return error if isinstance(error, str) and _CODE.fullmatch(error) else "unknown_error"


def _retry_after(exc: SlackApiError) -> float | None:
    headers = getattr(exc.response, "headers", None) or {}
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


def refused(method: str, exc: Exception) -> ChatError:
    """A failed Web API call as the transport's error: 429 as RateLimited, a message that cannot
    be edited as EditGone, the rest as ChatError, each naming only the method and Slack's code."""
    if isinstance(exc, SlackApiError):
        status = getattr(exc.response, "status_code", None)
        code = _code(exc)
        if status == 429 or code == "ratelimited":
            return RateLimited(_retry_after(exc))
        if method == "chat.update" and code in GONE:
            return EditGone(f"slack {method}: {code}")
        return ChatError(f"slack {method}: {code}")
    if isinstance(exc, urllib.error.HTTPError):
        return ChatError(f"slack {method}: HTTP {exc.code}")
    return ChatError(f"slack {method}: the Web API cannot be reached ({type(exc).__name__})")


class SlackTransport:
    """One Slack workspace and channel: the bot token posts and edits, the app-level token opens
    the Socket Mode connection that brings presses, slash commands and mentions."""

    service = "slack"

    def __init__(self, bot_token: str, app_token: str, channel: str, api_url: str = DEFAULT_API_URL,
                 timeout: float = 10.0, ping_interval: float = 5.0) -> None:
        self._bot_token = bot_token
        self._app_token = app_token
        self.channel = channel
        self.api_url = api_url if api_url.endswith("/") else api_url + "/"
        self._timeout = timeout
        self._ping = ping_interval
        # Connection errors are retried once by slack_sdk's default handler; a 429 is not retried
        # here but handed up as RateLimited, so the outbox waits what Slack asked for.
        self._web = WebClient(token=bot_token, base_url=self.api_url, timeout=int(max(1, timeout)))
        self._closed = threading.Event()
        self.problem = ""  # why Socket Mode is not connected, until it is (health)
        self.problem_since = 0.0
        self._up = False  # connected when last looked

    def __repr__(self) -> str:  # never a token
        return f"SlackTransport(channel={self.channel!r})"

    def close(self) -> None:
        """Ends `listen` (a stop); posting and editing still work."""
        self._closed.set()

    # -- messages ------------------------------------------------------------------------------

    def _call(self, method: str, **args) -> dict:
        try:
            return self._web.api_call(method, json=args).data  # type: ignore[return-value]
        except (SlackApiError, SlackClientError, OSError) as exc:
            raise refused(method, exc) from None

    def post(self, text: str, buttons: list[Button]) -> Posted:
        answer = self._call("chat.postMessage", channel=self.channel, text=text[:TEXT_LIMIT],
                            blocks=blocks(text, buttons), unfurl_links=False, unfurl_media=False,
                            link_names=False)
        return Posted(str(answer.get("channel") or self.channel), str(answer["ts"]))

    def edit(self, where: Posted, text: str, buttons: list[Button]) -> None:
        self._call("chat.update", channel=where.chat, ts=where.message, text=text[:TEXT_LIMIT],
                   blocks=blocks(text, buttons), link_names=False)

    # -- presses and commands ------------------------------------------------------------------

    def listen(self, on_press: Callable[[Who, str], str], on_command: Callable[[Who, str], str],
               stopping: Callable[[], bool]) -> None:
        """Until `stopping()`: the Socket Mode connection (reconnected by slack_sdk when it drops);
        each envelope acknowledged first, then handed to its callback, whose answer is shown to the
        person alone. The callbacks run on this thread's event loop: they decide and return (the
        operator's fixes run elsewhere), so the connection's pings wait for nothing long."""
        asyncio.run(self._listen(on_press, on_command, stopping))

    async def _listen(self, on_press, on_command, stopping) -> None:
        import aiohttp
        from slack_sdk.socket_mode.aiohttp import SocketModeClient
        from slack_sdk.socket_mode.response import SocketModeResponse
        from slack_sdk.web.async_client import AsyncWebClient

        web = AsyncWebClient(token=self._bot_token, base_url=self.api_url, timeout=int(max(1, self._timeout)))
        client = SocketModeClient(app_token=self._app_token, web_client=web, ping_interval=self._ping,
                                  logger=_Quiet(logging.getLogger(f"{__name__}.socket")))

        async def handle(client, request) -> None:
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
            got = incoming(request.type, request.payload)
            if got is None:
                return
            kind, who, text = got
            try:
                reply = (on_press if kind == "press" else on_command)(who, text)
            except Exception:  # the operator's failure is logged there; the person is told briefly
                log.exception("slack: answering a %s failed", kind)
                reply = "Something went wrong: see the agent's log."
            if reply:
                try:
                    await web.api_call("chat.postEphemeral", json={
                        "channel": who.chat, "user": who.user, "text": escape(reply[:TEXT_LIMIT]),
                        "link_names": False})
                except (SlackApiError, SlackClientError, OSError, aiohttp.ClientError, TimeoutError) as exc:
                    log.warning("slack: the answer could not be shown: %s",
                                refused("chat.postEphemeral", exc))

        client.socket_mode_request_listeners.append(handle)
        connecting = asyncio.ensure_future(client.connect())
        self._closed.clear()
        self._up = False
        try:
            while not stopping() and not self._closed.is_set():
                await asyncio.sleep(0.1)
                self._connected(await client.is_connected())
        finally:
            await client.close()
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)


    def _connected(self, connected: bool) -> None:
        """Health, and a log line at each change: connected, or lost (then slack_sdk reconnects)."""
        if connected:
            if not self._up:
                log.info("slack: Socket Mode connected: presses and commands come in")
            self.problem, self.problem_since, self._up = "", 0.0, True
        elif not self.problem:
            if self._up:
                log.warning("slack: the Socket Mode connection was lost; connecting again")
            self.problem, self.problem_since, self._up = "Socket Mode is not connected", time.time(), False


def from_settings(settings: Any) -> SlackTransport:
    """The transport the settings describe; ValueError naming what is missing (never a value)."""
    missing = [name for name, value in (("MEDIC_SLACK_BOT_TOKEN", settings.slack_bot_token),
                                        ("MEDIC_SLACK_APP_TOKEN", settings.slack_app_token),
                                        ("MEDIC_SLACK_CHANNEL", settings.slack_channel)) if not value]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ValueError(f"MEDIC_CHAT names slack, but {' and '.join(missing)} {verb} not set"
                         " (the tokens: environment or the secret files medic_slack_bot_token,"
                         " medic_slack_app_token)")
    return SlackTransport(settings.slack_bot_token.get_secret_value(),
                          settings.slack_app_token.get_secret_value(), settings.slack_channel,
                          api_url=settings.slack_api_url)


def target(transport: SlackTransport) -> Target:
    """The Slack chat as a notify target of its own (its outbox rows, its rate limit): not an
    apprise URL, so it has no plugin; the notifier hands its messages to the living messages."""
    ident = hashlib.sha256(f"slack-chat:{transport.api_url}:{transport.channel}".encode()).hexdigest()[:16]
    return Target(ident, f"slack chat {transport.channel}", "slack")


def incoming(kind: str, payload: dict) -> tuple[str, Who, str] | None:
    """A Socket Mode envelope as ("press", who, button data) or ("command", who, text); None for
    anything else (other events, other interactions)."""
    if not isinstance(payload, dict):
        return None
    if kind == "interactive" and payload.get("type") == "block_actions":
        user, channel = payload.get("user") or {}, payload.get("channel") or {}
        actions = payload.get("actions") or []
        chat = channel.get("id") or (payload.get("container") or {}).get("channel_id") or ""
        if not actions or not user.get("id") or not chat:
            return None
        value = actions[0].get("value") or actions[0].get("action_id") or ""
        return "press", Who("slack", str(user["id"]), str(chat), str(user.get("username") or "")), str(value)
    if kind == "slash_commands":
        if not payload.get("user_id") or not payload.get("channel_id"):
            return None
        who = Who("slack", str(payload["user_id"]), str(payload["channel_id"]),
                  str(payload.get("user_name") or ""))
        return "command", who, str(payload.get("text") or "").strip() or "help"
    if kind == "events_api":
        event = payload.get("event") or {}
        if event.get("type") != "app_mention" or not event.get("user") or not event.get("channel"):
            return None
        text = _MENTION.sub("", str(event.get("text") or "")).strip() or "help"
        return "command", Who("slack", str(event["user"]), str(event["channel"])), text
    return None


class _Quiet(logging.LoggerAdapter):
    """slack_sdk's Socket Mode log without the traceback it writes at every failed reconnect, and
    the same failure said once a minute at most: an outage of minutes is a few lines, not one
    traceback every ping interval."""

    def __init__(self, logger: logging.Logger, every: float = 60.0) -> None:
        super().__init__(logger, {})
        self.every = every
        self._said: dict[str, float] = {}

    def log(self, level, msg, *args, exc_info=None, **kwargs):  # type: ignore[override]
        if level >= logging.ERROR:
            key, now = str(msg)[:40], time.monotonic()
            if now - self._said.get(key, -self.every) < self.every:
                return
            self._said[key] = now
        super().log(level, msg, *args, **kwargs)

    def exception(self, msg, *args, exc_info=True, **kwargs):  # type: ignore[override]
        self.log(logging.ERROR, msg, *args, **kwargs)
