"""`hb-medic doctor`'s look at the Slack chat (when MEDIC_CHAT names it): the bot token is valid
(auth.test), the app-level token opens Socket Mode (apps.connections.open), the channel is
reachable (conversations.info), someone may act (MEDIC_CHAT_SLACK_USERS), and with `--send` a
test message whose test button, pressed, comes back over Socket Mode within PRESS_WAIT seconds.
The same shape as the Telegram one (agent.chat.checkup): (ok, what, fix) triples.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from agent.chat.slack import SlackTransport, refused
from agent.chat.transport import Button, ChatError, Who
from agent.notify.render import mrkdwn_escape

PRESS_WAIT = 60.0  # seconds `doctor --send` waits for the test button to be pressed
USERS_SETTING = "MEDIC_CHAT_SLACK_USERS"
APP_PAGE = "your app's page (api.slack.com/apps)"
BOT_FIX = (f"copy the Bot User OAuth Token (xoxb-...) from {APP_PAGE}, OAuth & Permissions, into the secret"
           " file medic_slack_bot_token (or MEDIC_SLACK_BOT_TOKEN); install the app to the workspace first")
APP_FIX = (f"make an app-level token with the scope connections:write ({APP_PAGE}, Basic Information,"
           " App-Level Tokens) and put it (xapp-...) in the secret file medic_slack_app_token (or"
           " MEDIC_SLACK_APP_TOKEN); turn Socket Mode on (Settings, Socket Mode)")
Triple = tuple[bool, str, str]


def findings(settings: Any, send: bool, *, wait: float = PRESS_WAIT) -> Iterator[Triple]:
    """(ok, what, fix) for the Slack chat the settings describe."""
    bot = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    app = settings.slack_app_token.get_secret_value() if settings.slack_app_token else ""
    channel = settings.slack_channel or ""
    if not bot:
        yield False, "slack chat: MEDIC_SLACK_BOT_TOKEN is not set", BOT_FIX
    elif not bot.startswith("xoxb-"):
        yield False, "slack chat: MEDIC_SLACK_BOT_TOKEN is not a bot token (they start with xoxb-)", BOT_FIX
        bot = ""
    if not app:
        yield False, "slack chat: MEDIC_SLACK_APP_TOKEN is not set", APP_FIX
    elif not app.startswith("xapp-"):
        yield (False, "slack chat: MEDIC_SLACK_APP_TOKEN is not an app-level token (they start with xapp-)",
               APP_FIX)
        app = ""
    if not channel:
        yield (False, "slack chat: MEDIC_SLACK_CHANNEL is not set",
               "set MEDIC_SLACK_CHANNEL to the channel's id (C...: the channel's name, then About, at the"
               " bottom)")
    api = settings.slack_api_url
    ok_bot = bool(bot) and (yield from _bot(bot, api))
    ok_app = bool(app) and (yield from _app(app, api))
    ok_channel = ok_bot and bool(channel) and (yield from _channel(bot, api, channel))
    users = list(settings.chat_slack_users or [])
    if users:
        plural = "s" if len(users) > 1 else ""
        yield True, f"slack chat: {len(users)} allowed user{plural} may press and command", ""
    else:
        yield (False, "slack chat: no allowed users: every press and command is answered \"not allowed\"",
               f"set {USERS_SETTING} to the Slack user ids that may act (U...: a person's profile, the ⋮"
               " menu, Copy member ID), comma separated; hb-medic doctor --send shows the id of whoever"
               " presses its test button")
    if not send:
        yield True, "slack chat: --send posts a test message with a test button, waits for its press", ""
    elif ok_bot and ok_app and ok_channel:
        yield from _press_test(SlackTransport(bot, app, channel, api_url=api, timeout=10), wait)
    else:
        yield False, "slack chat: no test message sent", "fix the checks above first"


def _call(token: str, api: str, method: str, **args) -> tuple[dict | None, ChatError | None]:
    client = WebClient(token=token, base_url=api if api.endswith("/") else api + "/", timeout=10)
    try:
        return client.api_call(method, params=args).data, None  # type: ignore[return-value]
    except (SlackApiError, SlackClientError, OSError) as exc:
        return None, refused(method, exc)


def _unreachable(api: str) -> str:
    return f"check that this host reaches {api} (firewall, proxy), or correct MEDIC_SLACK_API_URL"


def _bot(token: str, api: str) -> Iterator[Triple]:
    answer, error = _call(token, api, "auth.test")
    if error is not None:
        yield False, f"slack chat: the bot token was refused ({error})", (
            _unreachable(api) if "cannot be reached" in str(error) else BOT_FIX)
        return False
    who, team = mrkdwn_escape(str(answer.get("user", "?")))[:64], str(answer.get("team", "?"))[:64]
    yield True, f"slack chat: bot {who} in workspace {team} (bot token valid)", ""
    return True


def _app(token: str, api: str) -> Iterator[Triple]:
    _, error = _call(token, api, "apps.connections.open")
    if error is not None:
        yield False, f"slack chat: the app-level token cannot open Socket Mode ({error})", (
            _unreachable(api) if "cannot be reached" in str(error) else APP_FIX)
        return False
    yield True, "slack chat: the app-level token opens Socket Mode (presses and commands can come)", ""
    return True


def _channel(token: str, api: str, channel: str) -> Iterator[Triple]:
    answer, error = _call(token, api, "conversations.info", channel=channel)
    if error is not None and "missing_scope" in str(error):  # channels:read is optional
        yield (True, f"slack chat: channel {channel} not checked (the bot scope channels:read, or groups:read"
                     " for a private channel, lets doctor look); --send checks it by posting", "")
        return True
    if error is not None:
        yield False, f"slack chat: channel {channel} is not reachable by the bot ({error})", (
            _unreachable("the Web API") if "cannot be reached" in str(error) else
            "invite the app to the channel (in it: /invite @your-app) and check that MEDIC_SLACK_CHANNEL is"
            " its id (C...: the channel's name, then About, at the bottom)")
        return False
    info = answer.get("channel") if isinstance(answer.get("channel"), dict) else {}
    name = mrkdwn_escape(str(info.get("name") or ""))[:80]
    if info.get("is_member") is False:
        yield (False, f"slack chat: the app is not in channel {channel} (#{name}): it cannot post there",
               "invite it: in the channel, /invite @your-app")
        return False
    yield True, f"slack chat: channel {channel} (#{name}): reachable", ""
    return True


def _press_test(t: SlackTransport, wait: float) -> Iterator[Triple]:
    data = f"doctor:test:{secrets.token_hex(6)}"
    try:
        posted = t.post(f"*hb-medic doctor*: a test message. Press the button below within {wait:.0f} s.",
                        [Button("Test button", data)])
    except ChatError as exc:
        yield False, f"slack chat: the test message was not sent ({exc})", "see the checks above"
        return
    yield True, f"slack chat: test message sent (ts {posted.message}); waiting {wait:.0f} s for a press", ""
    pressed: list[Who] = []
    end = time.monotonic() + wait

    def on_press(who: Who, got: str) -> str:
        if got != data:
            return ""
        pressed.append(who)
        return "hb-medic got it"

    t.listen(on_press, lambda who, text: "", lambda: bool(pressed) or time.monotonic() > end)
    if pressed:
        who = pressed[0]
        with contextlib.suppress(ChatError):  # the finding below is what counts
            t.edit(posted, "*hb-medic doctor*: the test button came back.", [])
        yield True, f"slack chat: the press came back, from {who.name or '?'} (user id {who.user})", ""
    else:
        yield (False, f"slack chat: no press of the test button within {wait:.0f} s",
               "press it sooner; if it was pressed: turn Interactivity on (your app's page, Interactivity &"
               " Shortcuts; with Socket Mode no request URL is needed), and stop a running hb-medic for the"
               " test (Slack hands each press to one of the app's connections)")
