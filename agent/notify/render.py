"""One message, rendered for each kind of channel.

Telegram gets HTML (the excerpt in <pre>, everything escaped, so a `<module>`
in a traceback cannot break it) within its 4096 characters: the excerpt is
shortened, never the summary. Slack gets its markdown with a code block.
Everything else gets plain text.
"""

from __future__ import annotations

import html

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


def telegram(m: Message) -> tuple[str, str]:
    e = html.escape

    def body(excerpt: str) -> str:
        parts = [f"<b>{e(m.title)}</b>", e(m.summary),
                 f"<i>incident {e(m.incident)} · {e(m.container)} · {e(m.rule)}</i>"]
        if excerpt:
            parts.append(f"<pre>{e(excerpt)}</pre>")
        if m.actions:
            parts.append("<b>Done:</b>\n" + "\n".join(f"• {e(a)}" for a in m.actions))
        if m.outcome:
            parts.append(f"<b>Result:</b> {e(m.outcome)}")
        if m.next_steps:
            parts.append(f"<b>Next:</b> {e(m.next_steps)}")
        return "\n\n".join(parts)

    return "", _fit(body, m.excerpt, TELEGRAM_LIMIT)


def slack(m: Message) -> tuple[str, str]:
    def body(excerpt: str) -> str:
        parts = [m.summary, f"_incident {m.incident} · {m.container} · {m.rule}_"]
        if excerpt:
            parts.append("```\n" + excerpt.replace("```", "'''") + "\n```")
        if m.actions:
            parts.append("*Done:*\n" + "\n".join(f"• {a}" for a in m.actions))
        if m.outcome:
            parts.append(f"*Result:* {m.outcome}")
        if m.next_steps:
            parts.append(f"*Next:* {m.next_steps}")
        return "\n".join(parts)

    return m.title, _fit(body, m.excerpt, SLACK_LIMIT)


def text(m: Message) -> tuple[str, str]:
    def body(excerpt: str) -> str:
        parts = [m.summary, f"incident {m.incident} | {m.container} | {m.rule}"]
        if excerpt:
            parts.append(excerpt)
        if m.actions:
            parts.append("Done:\n" + "\n".join(f"- {a}" for a in m.actions))
        if m.outcome:
            parts.append(f"Result: {m.outcome}")
        if m.next_steps:
            parts.append(f"Next: {m.next_steps}")
        return "\n\n".join(parts)

    return m.title, _fit(body, m.excerpt, TEXT_LIMIT)


RENDERERS = {"telegram": (telegram, "html"), "slack": (slack, "markdown"), "text": (text, "text")}
