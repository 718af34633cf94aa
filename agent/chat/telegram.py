"""Telegram through its Bot API (https://core.telegram.org/bots/api) with httpx: messages in
HTML (as agent.notify.render escapes for Telegram), inline keyboards whose presses come back as
`callback_query` updates, and commands, read by long polling (`getUpdates`: no public address
needed).

The bot token is in every request's path (`/bot<TOKEN>/<method>`), so no URL is ever put in
an exception, a log line or a message: errors name the method and what the service said,
nothing httpx would print (its own request log is silenced in agent.logs). The base URL is a
setting (MEDIC_TELEGRAM_API_URL) for self-hosted Bot API servers.

How far the updates were read (getUpdates' offset) is kept in the state file after each one is
handled, so a restart does not hand the same press to the operator again (and a press handed
twice does nothing anyway: its token is single-use).
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import httpx

from agent.chat.transport import Button, ChatError, EditGone, Posted, RateLimited, Who

log = logging.getLogger(__name__)
DEFAULT_API_URL = "https://api.telegram.org"
POLL_SECONDS = 10  # getUpdates' long-poll wait: a stop closes the connection sooner
BACKOFF_MAX = 30.0  # longest wait between two polls while the service is unreachable
# What Telegram answers (400) when a message cannot be edited any more.
GONE = ("message to edit not found", "message can't be edited", "message_id_invalid", "chat not found")
ANSWER_LIMIT = 200  # answerCallbackQuery's text: 0-200 characters
ANSWER_MAX = 3000  # a command's answer, in characters before escaping


class BadURL(ValueError):
    """A tgram:// URL that names no bot token and chat."""


def from_url(url: str) -> tuple[str, str]:
    """(token, chat id) of apprise's `tgram://TOKEN/CHAT_ID` (the first chat, if it names several)."""
    if not url.lower().startswith("tgram://"):
        raise BadURL("not a tgram:// URL")
    rest = url.split("://", 1)[1].split("?", 1)[0]
    parts = [unquote(p) for p in rest.split("/") if p]
    if len(parts) < 2:
        raise BadURL("a tgram:// URL needs the bot token and a chat id: tgram://TOKEN/CHAT_ID")
    token, chat = parts[0], parts[1].split(",")[0]
    if token.lower().startswith("bot") and token[3:4].isdigit():  # apprise takes "bot123:ABC" too
        token = token[3:]
    if ":" not in token or not token.split(":")[0].isdigit():
        raise BadURL("the bot token of a tgram:// URL looks like 123456:ABC-... (BotFather's)")
    return token, chat


def keyboard(buttons: list[Button], per_row: int = 2) -> dict:
    rows = [buttons[i:i + per_row] for i in range(0, len(buttons), per_row)]
    return {"inline_keyboard": [[{"text": b.label, "callback_data": b.data} for b in row] for row in rows]}


class Telegram:
    """One bot and one chat: where the messages go. Commands and presses are taken from any
    chat the bot is in; the operator decides who may act."""

    service = "telegram"

    def __init__(self, token: str, chat: str, *, api_url: str = DEFAULT_API_URL, timeout: float = 15.0,
                 poll_seconds: int = POLL_SECONDS, offsets: Offsets | None = None) -> None:
        self._token = token
        self.chat = chat
        self._base = api_url.rstrip("/")
        self.timeout = timeout
        self.poll_seconds = poll_seconds
        self.offsets = offsets
        self._http = httpx.Client(timeout=timeout)
        self._closed = threading.Event()
        self.bot_name = ""  # the bot's @username, known after getMe
        self.problem = ""  # why the last poll failed, until one works (health)
        self.problem_since = 0.0

    def __repr__(self) -> str:  # never the token
        return f"Telegram(chat={self.chat!r})"

    # -- the Bot API ------------------------------------------------------------------------------
    def call(self, method: str, params: dict[str, Any] | None = None, *, wait: float | None = None) -> Any:
        """One method; its `result`. Raises ChatError naming the method and Telegram's answer
        (RateLimited on 429, EditGone when a message cannot be edited), never the URL."""
        url = f"{self._base}/bot{self._token}/{method}"
        timeout = self.timeout if wait is None else wait
        try:
            resp = self._http.post(url, json=params or {}, timeout=timeout)
        except httpx.HTTPError as exc:
            raise ChatError(f"telegram {method}: the Bot API did not answer ({type(exc).__name__})") from None
        except RuntimeError:  # the client was closed by a stop
            raise ChatError(f"telegram {method}: stopped") from None
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ChatError(f"telegram {method}: HTTP {resp.status_code}, not a Bot API answer")
        if data.get("ok") is True:
            return data.get("result")
        code = data.get("error_code", resp.status_code)
        said = self._clean(str(data.get("description", "")))
        params_ = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
        if code == 429:
            after = params_.get("retry_after")
            raise RateLimited(float(after) if isinstance(after, int | float) and not isinstance(after, bool)
                              else None)
        if code == 401:
            raise ChatError(f"telegram {method}: the bot token was refused (401 {said})")
        if code == 400 and any(g in said.lower() for g in GONE) and method == "editMessageText":
            raise EditGone(f"telegram {method}: {said}")
        raise ChatError(f"telegram {method}: {code} {said}")

    def _clean(self, text: str) -> str:
        return text.replace(self._token, "***")[:300]

    def post(self, text: str, buttons: list[Button]) -> Posted:
        params: dict[str, Any] = {"chat_id": self.chat, "text": text, "parse_mode": "HTML",
                                  "disable_web_page_preview": True}
        if buttons:
            params["reply_markup"] = keyboard(buttons)
        result = self.call("sendMessage", params)
        try:
            return Posted(str(result["chat"]["id"]), str(result["message_id"]))
        except (TypeError, KeyError):
            raise ChatError("telegram sendMessage: the answer names no message") from None

    def edit(self, where: Posted, text: str, buttons: list[Button]) -> None:
        params = {"chat_id": where.chat, "message_id": int(where.message), "text": text, "parse_mode": "HTML",
                  "disable_web_page_preview": True, "reply_markup": keyboard(buttons)}
        try:
            self.call("editMessageText", params)
        except ChatError as exc:
            if "message is not modified" not in str(exc):  # the same text again: nothing to do
                raise

    def me(self) -> dict:
        """getMe: the bot (its token is valid)."""
        result = self.call("getMe")
        if isinstance(result, dict):
            self.bot_name = str(result.get("username") or "")
            return result
        raise ChatError("telegram getMe: the answer names no bot")

    # -- reading presses and commands ----------------------------------------------------------------
    def listen(self, on_press: Callable[[Who, str], str], on_command: Callable[[Who, str], str],
               stopping: Callable[[], bool]) -> None:
        failures = 0
        while not stopping() and not self._closed.is_set():
            try:
                if not self.bot_name:
                    self.me()
                offset = self.offsets.get() if self.offsets else 0
                updates = self.call("getUpdates", {"offset": offset, "timeout": self.poll_seconds,
                                                   "allowed_updates": ["message", "callback_query"]},
                                    wait=self.poll_seconds + self.timeout)
            except RateLimited as exc:
                self._failed(str(exc))
                self._sleep(max(1.0, exc.retry_after or 5.0), stopping)
                continue
            except ChatError as exc:
                if stopping() or self._closed.is_set():
                    return
                failures += 1
                self._failed(str(exc), failures)
                self._sleep(min(BACKOFF_MAX, 0.5 * 2 ** min(failures, 6)), stopping)
                continue
            if self.problem:
                log.warning("telegram: the Bot API answers again")
            failures, self.problem, self.problem_since = 0, "", 0.0
            for update in updates if isinstance(updates, list) else []:
                if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
                    continue
                self._handle(update, on_press, on_command)
                if self.offsets:
                    self.offsets.set(update["update_id"] + 1)

    def _failed(self, why: str, failures: int = 1) -> None:
        if not self.problem:
            self.problem_since = time.time()
        self.problem = why
        if failures in (1, 10) or failures % 100 == 0:
            log.warning("telegram: reading presses and commands failed (%s); trying again", why)

    def _sleep(self, seconds: float, stopping: Callable[[], bool]) -> None:
        end = time.monotonic() + seconds
        while not stopping() and not self._closed.is_set() and time.monotonic() < end:
            self._closed.wait(min(0.2, end - time.monotonic()))

    def _handle(self, update: dict, on_press: Callable[[Who, str], str],
                on_command: Callable[[Who, str], str]) -> None:
        try:
            if isinstance(update.get("callback_query"), dict):
                self._press(update["callback_query"], on_press)
            elif isinstance(update.get("message"), dict):
                self._command(update["message"], on_command)
        except ChatError as exc:
            log.warning("telegram: could not answer update %s (%s)", update["update_id"], exc)
        except Exception:
            log.exception("telegram: update %s could not be handled", update["update_id"])

    @staticmethod
    def _who(sender: object, chat: object) -> Who | None:
        if not isinstance(sender, dict) or not isinstance(sender.get("id"), int):
            return None
        chat_id = chat.get("id") if isinstance(chat, dict) else None
        name = sender.get("username") or sender.get("first_name") or ""
        return Who("telegram", str(sender["id"]), "" if chat_id is None else str(chat_id), str(name)[:64])

    def _press(self, query: dict, on_press: Callable[[Who, str], str]) -> None:
        message = query.get("message") if isinstance(query.get("message"), dict) else {}
        who = self._who(query.get("from"), message.get("chat"))
        data = query.get("data")
        if who is None or not isinstance(data, str) or "id" not in query:
            return
        answer = on_press(who, data)
        self.call("answerCallbackQuery", {"callback_query_id": str(query["id"]),
                                          "text": answer[:ANSWER_LIMIT], "show_alert": len(answer) > 60})

    def _command(self, message: dict, on_command: Callable[[Who, str], str]) -> None:
        text = message.get("text")
        who = self._who(message.get("from"), message.get("chat"))
        if who is None or not isinstance(text, str) or not text.startswith("/"):
            return
        head, _, rest = text[1:].partition(" ")
        name, _, bot = head.partition("@")
        if bot and self.bot_name and bot.lower() != self.bot_name.lower():
            return  # a command for another bot in the same group
        command = " ".join(p for p in (name.lower(), rest.strip()) if p)
        if not command:
            return
        answer = on_command(who, command)
        if len(answer) > ANSWER_MAX:  # Telegram's 4096 characters, once escaped
            answer = answer[:ANSWER_MAX - 1] + "…"
        params: dict[str, Any] = {"chat_id": who.chat, "text": html.escape(answer), "parse_mode": "HTML",
                                  "disable_web_page_preview": True}
        if isinstance(message.get("message_id"), int):  # the answer quotes the command
            params["reply_parameters"] = {"message_id": message["message_id"],
                                          "allow_sending_without_reply": True}
        self.call("sendMessage", params)

    def close(self) -> None:
        """Ends a poll in progress (a stop): listen returns."""
        self._closed.set()
        self._http.close()


class Offsets:
    """Where getUpdates resumes, kept in the state file under one bot's name."""

    def __init__(self, store: Any, channel: str) -> None:
        self._store, self._channel = store, channel

    def get(self) -> int:
        return self._store.chat.offset(self._channel)

    def set(self, offset: int) -> None:
        self._store.chat.set_offset(self._channel, offset)
