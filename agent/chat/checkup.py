"""`hb-medic doctor`'s look at the Telegram chat (when MEDIC_CHAT names it): the token is valid
(getMe), the chat is reachable (getChat), someone may act (the allowed users), and with
`--send` a test message whose test button, pressed, comes back within PRESS_WAIT seconds.

Nothing here confirms an update: the test press is looked for among the updates not yet
read (getUpdates without an offset), so presses waiting for the agent stay for it.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from typing import Any

from agent.chat.telegram import Telegram
from agent.chat.transport import Button, ChatError

PRESS_WAIT = 60.0  # seconds `doctor --send` waits for the test button to be pressed
USERS_SETTING = "MEDIC_CHAT_TELEGRAM_USERS"
TOKEN_WHERE = ("the tgram://BOT_TOKEN/CHAT_ID URL in MEDIC_NOTIFY_URLS (or the secret file"
               " medic_notify_urls)")


def allowed_users(settings: Any) -> list[str]:
    """Telegram user ids that may act (the operator's allow-list)."""
    return [str(u) for u in settings.chat_telegram_users]


def findings(settings: Any, send: bool, found: list[tuple[str, str, str]], *,
             wait: float = PRESS_WAIT) -> Iterator[tuple[bool, str, str]]:
    """(ok, what, fix) for each Telegram chat target (private form, token, chat)."""
    for private, token, chat in found:
        t = Telegram(token, chat, api_url=settings.telegram_api_url, timeout=10)
        try:
            yield from _one(t, settings, send, private, wait)
        finally:
            t.close()


def _one(t: Telegram, settings: Any, send: bool, private: str,
         wait: float) -> Iterator[tuple[bool, str, str]]:
    api = settings.telegram_api_url
    try:
        bot = t.me()
    except ChatError as exc:
        refused = "401" in str(exc) or "404" in str(exc)
        yield (False, f"telegram chat {private}: {exc}",
               f"copy the token BotFather gave the bot (BotFather: /mybots, API Token) into {TOKEN_WHERE}"
               if refused else f"check that this host reaches {api} (firewall, proxy), or set"
                               " MEDIC_TELEGRAM_API_URL to your Bot API server")
        return
    yield True, f"telegram chat: bot @{bot.get('username', '?')} (token valid)", ""
    try:
        info = t.call("getChat", {"chat_id": t.chat})
    except ChatError as exc:
        yield (False, f"telegram chat {t.chat}: not reachable by the bot ({exc})",
               "add the bot to that group (or send it /start in a private chat), and check the chat id in"
               f" {TOKEN_WHERE}: a group's id starts with -100")
        return
    info = info if isinstance(info, dict) else {}
    title = info.get("title") or info.get("username") or info.get("first_name") or ""
    yield True, f"telegram chat {t.chat} ({title or 'private'}): reachable", ""
    users = allowed_users(settings)
    if users:
        plural = "s" if len(users) > 1 else ""
        yield True, f"telegram chat: {len(users)} allowed user{plural} may press and command", ""
    else:
        yield (False, "telegram chat: no allowed users: every press and command is answered \"not allowed\"",
               f"set {USERS_SETTING} to the Telegram user ids that may act, comma separated (hb-medic doctor"
               " --send shows the id of whoever presses its test button)")
    if send:
        yield from _press_test(t, wait)
    else:
        yield True, "telegram chat: --send posts a test message with a test button, waits for its press", ""


def _press_test(t: Telegram, wait: float) -> Iterator[tuple[bool, str, str]]:
    data = f"doctor:test:{secrets.token_hex(6)}"
    try:
        posted = t.post("<b>hb-medic doctor</b>: a test message. Press the button below within"
                        f" {wait:.0f} s.", [Button("Test button", data)])
    except ChatError as exc:
        yield False, f"telegram chat: the test message was not sent ({exc})", "see the checks above"
        return
    yield (True, f"telegram chat: test message sent (message {posted.message}); waiting {wait:.0f} s for"
                 " a press", "")
    end = time.monotonic() + wait
    while time.monotonic() < end:
        try:  # no offset: what is read stays unread for the agent
            updates = t.call("getUpdates", {"timeout": 0, "allowed_updates": ["callback_query"]})
        except ChatError as exc:
            if "409" in str(exc):
                yield (False, f"telegram chat: the updates cannot be read ({exc}): another program reads them"
                              " (a running hb-medic?) or the bot has a webhook",
                       "stop the other reader for the test (or press the button and look for the press in"
                       " its log); a webhook: remove it (the Bot API's deleteWebhook)")
                return
            time.sleep(1.0)
            continue
        for u in updates if isinstance(updates, list) else []:
            q = u.get("callback_query") if isinstance(u, dict) else None
            if isinstance(q, dict) and q.get("data") == data:
                who = q.get("from") if isinstance(q.get("from"), dict) else {}
                name = str(who.get("username") or who.get("first_name") or "")[:64]
                with contextlib.suppress(ChatError):
                    t.call("answerCallbackQuery", {"callback_query_id": str(q.get("id")),
                                                   "text": "hb-medic got it"})
                yield True, f"telegram chat: the press came back, from {name} (user id {who.get('id')})", ""
                return
        time.sleep(0.5)
    yield (False, f"telegram chat: no press of the test button within {wait:.0f} s",
           "press it sooner; if it was pressed, check that no webhook is set on the bot (getWebhookInfo):"
           " long polling needs none")
