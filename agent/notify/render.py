"""One message, rendered for each kind of channel.

Telegram gets HTML (the excerpt in <pre>, everything escaped, so a `<module>`
in a traceback cannot break it) within its 4096 characters: the excerpt is
shortened, never the summary. Slack gets its markdown with a code block.
Everything else gets plain text.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

from agent.notify.message import Message

TELEGRAM_LIMIT = 4096
SLACK_LIMIT = 35000
TEXT_LIMIT = 32000


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

    escape: Callable[[str], str]
    meta: str  # around the incident/container/rule line
    label: str  # around "Done:", "Result:", "Next:"
    block: str  # around the excerpt
    bullet: str
    sep: str
    limit: int
    title_in_body: bool  # Telegram has no separate title


TELEGRAM = Style(html.escape, "<i>{}</i>", "<b>{}</b>", "<pre>{}</pre>", "• ", "\n\n", TELEGRAM_LIMIT, True)
SLACK = Style(lambda t: t, "_{}_", "*{}*", "```\n{}\n```", "• ", "\n", SLACK_LIMIT, False)
TEXT = Style(lambda t: t, "{}", "{}", "{}", "- ", "\n\n", TEXT_LIMIT, False)


def _render(m: Message, st: Style) -> tuple[str, str]:
    e = st.escape

    def body(excerpt: str) -> str:
        parts = [st.label.format(e(m.title))] if st.title_in_body else []
        incident = f"incident {m.incident}" if m.incident else ""
        meta = " · ".join(p for p in (incident, m.container, m.rule) if p)
        parts += [e(m.summary), st.meta.format(e(meta))]
        if excerpt:
            parts.append(st.block.format(e(excerpt.replace("```", "\'\'\'"))))
        if m.actions:
            parts.append(st.label.format("Done:") + "\n" + "\n".join(st.bullet + e(a) for a in m.actions))
        if m.outcome:
            parts.append(f"{st.label.format('Result:')} {e(m.outcome)}")
        if m.next_steps:
            parts.append(f"{st.label.format('Next:')} {e(m.next_steps)}")
        return st.sep.join(parts)

    return ("" if st.title_in_body else m.title), _fit(body, m.excerpt, st.limit)


def telegram(m: Message) -> tuple[str, str]:
    return _render(m, TELEGRAM)


def slack(m: Message) -> tuple[str, str]:
    return _render(m, SLACK)


def text(m: Message) -> tuple[str, str]:
    return _render(m, TEXT)


RENDERERS = {"telegram": (telegram, "html"), "slack": (slack, "markdown"), "text": (text, "text")}
