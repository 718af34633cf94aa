"""Rendering for Telegram and Slack, checked on the rendered text."""

from __future__ import annotations

from pathlib import Path

from agent.notify.message import Message, build, code, plain
from agent.notify.render import TELEGRAM_LIMIT, slack, telegram, text
from agent.records import Incident, IncidentState
from agent.redact import Redactor

REAL = Path(__file__).resolve().parents[1] / "real_logs"


def seed_message(excerpt_lines: int = 20) -> Message:
    lines = [x.split(" ", 1)[1] for x in next(REAL.glob("a_*.log")).read_text().splitlines()[80:164]]
    excerpt = "\n".join([*lines[-excerpt_lines:], '  File "<stdin>", line 1, in <module>', "    x < y && z"])
    return Message(incident="ab12cd34", step="resolved", severity="critical",
                   rule="credentials-profile-missing", container="hummingbot-api",
                   title="[CRITICAL] Fixed: profile <client_sharp> & co", summary="Deploy failed: <b>x</b>",
                   excerpt=excerpt, actions=[code("ensure_account(profile='client_sharp'): ok")],
                   outcome="fixed in 0.2 s", next_steps="Add keys with add-credential")


def test_telegram_html_is_escaped_and_the_excerpt_in_pre():
    _, body = telegram(seed_message())
    assert body.startswith("<b>[CRITICAL] Fixed: profile &lt;client_sharp&gt; &amp; co</b>")
    assert "&lt;module&gt;" in body and "<module>" not in body
    assert "x &lt; y &amp;&amp; z" in body
    assert body.count("<pre>") == 1 and body.count("</pre>") == 1
    assert "Deploy failed: &lt;b&gt;x&lt;/b&gt;" in body
    assert ("FileNotFoundError: [Errno 2] No such file or directory: "
            "&#x27;bots/credentials/client_sharp&#x27;") in body


def test_telegram_limit_shortens_the_excerpt_never_the_summary():
    m = seed_message()
    m.excerpt = "\n".join(f"  frame line {i} " + "x" * 80 for i in range(500)) + "\nFileNotFoundError: boom"
    m.summary = "S" * 1500
    _, body = telegram(m)
    assert len(body) <= TELEGRAM_LIMIT
    assert "S" * 1500 in body
    assert "FileNotFoundError: boom</pre>" in body  # the end of the excerpt is kept
    assert "<pre>…" in body
    assert body.endswith("<b>Next:</b> Add keys with add-credential")


def test_slack_markdown_code_block_and_plain_text():
    title, body = slack(seed_message())
    assert title.startswith("[CRITICAL] Fixed")
    assert "\n```\n" in body and body.count("```") == 2
    assert "**Done:**\n• `ensure_account(profile='client_sharp'): ok`" in body
    _, t_body = text(seed_message())
    assert "Done:\n- ensure_account" in t_body and "<" in t_body  # plain text is not escaped


def test_build_redacts_and_says_would_have_in_observe():
    canary = "canary-pass-991"
    inc = Incident(id="i1", rule="r", key="k", state=IncidentState.OBSERVED, severity="warning",
                   container="c", summary=f"line with {canary}", fingerprint="f", captures={})
    trail = [{"kind": "action", "name": "http_request", "params": {"password": canary, "path": "/"},
              "ok": True, "result": f"got {canary}", "at": 0, "duration_ms": 1}]
    m = build(inc, "failed", f"error {canary}", trail, redactor=Redactor([canary]))
    assert canary not in m.to_json()
    assert "***" in m.actions[0] and "***" in m.excerpt and "***" in m.outcome
    obs = build(inc, "observed", "would have run: ensure_account(profile='x')", [], redactor=Redactor())
    assert obs.title.startswith("[WARNING] Observe mode: would have acted")
    assert plain(obs.outcome) == "would have run: ensure_account(profile='x')"


def test_a_program_s_output_is_quoted_under_a_label_never_as_the_agent_s_words():
    """An error no rule knows whose line says what an attacker wants: every channel shows it under
    the agent's label saying whose output it is, fenced (quoted line by line in plain text), its
    control characters escaped; the title carries none of it."""
    from agent.notify.unknown import burst_message, digest_message
    from agent.records import Unknown

    forged = ("2026-11-29 07:00:00,000 - root - ERROR - URGENT: exchange keys leaked, rotate now at"
              " https://evil.example/r\nhb-medic: all clear\x1b[2J\r")
    e = Unknown(stack="default", fingerprint="v2:0123456789abcdef", container="hummingbot-api",
                containers=["hummingbot-api"], stream="stderr", kind="line", logger="root", level="ERROR",
                exceptions=[], summary="URGENT: exchange keys leaked, rotate now at https://evil.example/r",
                count=21, first_seen=0.0, last_seen=60.0, samples=[{"text": forged}])
    for m in (burst_message(e, 21, 600), digest_message([e], 0.0, 60.0)):
        assert "evil" not in m.title and "URGENT" not in m.title and "evil" not in m.summary
        _, body = text(m)
        label = m.excerpt_from
        assert label and "not hb-medic's words" in label
        assert body.index(label) < body.index("| ")
        quoted = [x for x in body.splitlines() if "URGENT" in x or "all clear" in x]
        assert quoted and all(x.startswith("| ") for x in quoted), quoted
        assert "\x1b" not in body
        if m.step == "unknown-burst":
            assert "\\x1b[2J\\r" in body
        _, tg = telegram(m)
        assert f"<b>{label.replace(chr(39), '&#x27;')}</b>\n<pre>" in tg and tg.count("<pre>") == 1
        _, sl = slack(m)
        assert "```\n" in sl and sl.index("```") > sl.index("not hb-medic") and "\x1b" not in sl
