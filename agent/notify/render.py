"""One message, rendered for each kind of channel.

Telegram gets HTML (the excerpt in <pre>, text marked as code in <code>, everything
escaped, so a `<module>` in a traceback cannot break it) within its 4096
characters: the excerpt is shortened, never the summary. Slack gets markdown that
apprise turns into Slack's own: plain text is escaped so `&`, `<` and `>` reach
Slack as entities (no `<!channel>`, no `<https://...|link>`) and no markup applies,
code goes in code spans and blocks. A Slack chat channel (agent/chat/slack.py, the Web API, no
apprise between) gets Slack's mrkdwn made here: `&`, `<` and `>` as entities everywhere, code
in spans and blocks no backtick can close. Everything else gets plain text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass

from agent.logs import printable
from agent.notify.message import Message, segments

TELEGRAM_LIMIT = 4096
SLACK_LIMIT = 35000
TEXT_LIMIT = 32000
MRKDWN_LIMIT = 12000  # a Slack message's blocks hold about 13k characters in all
_MARKDOWN = re.compile(r"([\\`*_\[\]<>~|!#])")
_TICKS = re.compile(r"`+")


def slack_escape(text: str) -> str:
    """Plain text for apprise's markdown-to-Slack conversion: markup characters escaped, so
    `<` and `>` arrive as `&lt;` and `&gt;` (apprise writes `&` as `&amp;` itself)."""
    return _MARKDOWN.sub(r"\\\1", text)


def mrkdwn_escape(text: str) -> str:
    """Plain text as Slack's mrkdwn shows it: `&`, `<`, `>` as entities (Slack's three), so no
    `<!here>`, `<@U1>`, `<#C1>` or `<url|label>` can be made from it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mrkdwn_code(text: str) -> str:
    """A code span in Slack's mrkdwn, which has no way to hold a backtick: shown as `'`."""
    return f"`{mrkdwn_escape(text.replace('`', chr(39)))}`"


def slack_code(text: str) -> str:
    """A code span that no backtick inside it can close (apprise escapes its content)."""
    fence = "`" * (max((len(t) for t in _TICKS.findall(text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def quoted(excerpt: str, prefix: str = "") -> str:
    """A program's output as a quote: each line's control characters shown escaped (nothing it
    printed moves the cursor, clears a screen or starts a line of its own), each line prefixed."""
    return "\n".join(prefix + printable(line) for line in excerpt.split("\n"))


def _fit(build, excerpt: str, limit: int) -> str:
    """Shorten the excerpt (keeping its end, where the exception is) until the text fits."""
    text = build(excerpt)
    while len(text) > limit and excerpt:
        keep = max(0, len(excerpt) - (len(text) - limit) - 40)
        excerpt = ("…" + excerpt[-keep:]) if keep > 0 else ""
        text = build(excerpt)
    return text[:limit]


@dataclass(frozen=True)
class Style:
    """How one kind of channel marks up the parts of a message."""

    escape: Callable[[str], str]  # plain text
    code: Callable[[str], str]  # text marked as code
    block_escape: Callable[[str], str]  # the excerpt, inside `block`
    meta: str  # around the incident/container/rule line
    label: str  # around "Done:", "Result:", "Next:"
    block: str  # around the excerpt
    quote: str  # before each line of an excerpt that quotes a program (see Message.excerpt_from)
    bullet: str
    sep: str
    limit: int
    title_in_body: bool  # Telegram has no separate title


def _same(text: str) -> str:
    return text


TELEGRAM = Style(html.escape, lambda t: f"<code>{html.escape(t)}</code>", html.escape, "<i>{}</i>",
                 "<b>{}</b>", "<pre>{}</pre>", "", "• ", "\n\n", TELEGRAM_LIMIT, True)
SLACK = Style(slack_escape, slack_code, _same, "_{}_", "**{}**", "```\n{}\n```", "", "• ", "\n",
              SLACK_LIMIT, False)
TEXT = Style(_same, _same, _same, "{}", "{}", "{}", "| ", "- ", "\n\n", TEXT_LIMIT, False)
MRKDWN = Style(mrkdwn_escape, _mrkdwn_code, mrkdwn_escape, "_{}_", "*{}*", "```\n{}\n```", "", "• ", "\n\n",
               MRKDWN_LIMIT, True)


def _render(m: Message, st: Style, steps: bool | None = None) -> tuple[str, str]:
    """`steps`: show the steps so far (None: only when intermediate steps were folded into this
    message, as for an apprise target; a chat's living message shows them always)."""
    steps = bool(m.folded) if steps is None else steps

    def e(text: str) -> str:
        return "".join(st.code(t) if is_code else st.escape(t) for is_code, t in segments(text))

    def body(excerpt: str) -> str:
        parts = [st.label.format(e(m.title))] if st.title_in_body else []
        incident = f"incident {m.incident}" if m.incident else ""
        stack = m.stack if m.show_stack else ""
        meta = " · ".join(p for p in (incident, stack, m.container, m.rule) if p)
        parts += [e(m.summary), st.meta.format(e(meta))]
        if excerpt and m.excerpt_from:
            parts.append(st.label.format(e(m.excerpt_from)) + "\n" + st.block.format(
                st.block_escape(quoted(excerpt, st.quote).replace("```", "\'\'\'"))))
        elif excerpt:
            parts.append(st.block.format(st.block_escape(excerpt.replace("```", "\'\'\'"))))
        if steps and m.steps:
            parts.append(st.label.format("Steps so far:") + "\n"
                         + "\n".join(st.bullet + e(step) for step in m.steps))
        if m.actions:
            parts.append(st.label.format("Done:") + "\n" + "\n".join(st.bullet + e(a) for a in m.actions))
        if m.outcome:
            parts.append(f"{st.label.format('Result:')} {e(m.outcome)}")
        if m.next_steps:
            parts.append(f"{st.label.format('Next:')} {e(m.next_steps)}")
        return st.sep.join(parts)

    return ("" if st.title_in_body else "".join(t for _, t in segments(m.title))), _fit(body, m.excerpt,
                                                                                       st.limit)


def telegram(m: Message, steps: bool | None = None) -> tuple[str, str]:
    return _render(m, TELEGRAM, steps)


def slack(m: Message, steps: bool | None = None) -> tuple[str, str]:
    return _render(m, SLACK, steps)


def mrkdwn(m: Message, steps: bool | None = None) -> tuple[str, str]:
    """For a Slack chat channel through the Web API: ("", the whole message as mrkdwn)."""
    return _render(m, MRKDWN, steps)


def text(m: Message) -> tuple[str, str]:
    return _render(m, TEXT)


RENDERERS = {"telegram": (telegram, "html"), "slack": (slack, "markdown"), "text": (text, "text")}
