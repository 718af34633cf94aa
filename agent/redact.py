"""Keep secrets out of logs, messages and the audit trail.

Applied to everything the agent writes about what it did: the values of every
secret setting, passwords and tokens in URLs, fields whose names say they hold a
secret (password, secret, token, api key...), and the same in text, as `KEY=value`
or `KEY: value`, whoever's secret it is. What is not a secret stays
readable: profile and user names, the deploy body that will be re-sent.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
# A field is secret by the last word of its name: `config_password`, `binance_api_secret`,
# `access_token`, `api_key` are; `credentials_profile`, `token_url`, `key` (an incident's) are not.
_SECRET_LAST = {"pass", "passwd", "password", "pwd", "secret", "token", "passphrase", "authorization",
                "apikey", "credential", "credentials"}
_SECRET_BEFORE_KEY = {"api", "secret", "private", "access", "signing", "encryption"}
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
# hummingbot-api's published default login: masking it would hide every "admin" and protect nothing.
PUBLIC_DEFAULTS = frozenset({"admin"})
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/\s:@]*):(?P<pw>[^/\s@]+)@", re.I)


def secret_name(name: str) -> bool:
    """Does a field of this name hold a secret?"""
    words = [w.lower() for w in _WORDS.findall(name)]
    if not words:
        return False
    last = words[-1]
    return last in _SECRET_LAST or (last == "key" and len(words) > 1 and words[-2] in _SECRET_BEFORE_KEY)


# `KEY=value` and `KEY: value` (also quoted, JSON, YAML, query strings, Python reprs) where the
# key names a secret: anyone's secret, not only hb-medic's own (a bot's CONFIG_PASSWORD, an
# exchange's api_secret) that a program printed into its log. A key starts only where no key
# character precedes it, so a long run of them costs one pass, not one per position.
_ASSIGNMENT = re.compile(
    r"""(?<![A-Za-z0-9_.-])(?P<key>[A-Za-z][A-Za-z0-9_.-]*+)(?P<kq>["']?)(?P<sep>[ \t]*[=:][ \t]*)"""
    r"""(?:(?P<q>["'])(?P<quoted>(?:(?!(?P=q)).)*)(?P=q)"""
    r"""|(?P<scheme>(?:Basic|Bearer|Token|Digest)[ \t]+)?(?P<bare>[^\s"',;&)\]}>]+))""", re.I)


def mask_assignments(text: str) -> str:
    """Mask the value of every `KEY=value` / `KEY: value` whose key names a secret
    (see `secret_name`): CONFIG_PASSWORD=..., "api_secret": "...", token=... in a URL,
    Authorization: Basic ...; the key stays, so a reader still sees what was there."""
    if "=" not in text and ":" not in text:
        return text

    out, pos = [], 0
    while (m := _ASSIGNMENT.search(text, pos)) is not None:
        if not secret_name(m["key"]):
            # Not a secret, but its value may hold one (`detail: 'x CONFIG_PASSWORD=...'`).
            out.append(text[pos:m.end("sep")])
            pos = m.end("sep")
            continue
        out.append(text[pos:m.end("sep")])
        if m["q"] is not None:  # an empty value stays empty: "CONFIG_PASSWORD is empty" is news
            out.append(f"{m['q']}{MASK if m['quoted'] else ''}{m['q']}")
        else:
            out.append(f"{m['scheme'] or ''}{MASK}")
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


class Redactor:
    def __init__(self, secrets: list[str] | None = None, public: list[str] | None = None) -> None:
        """`public`: values shown as they are even when a secret has the same value (a user name
        that equals the password: masking it everywhere would hide the name and protect nothing)."""
        self.public = PUBLIC_DEFAULTS | {p for p in public or [] if p}
        self.secrets: list[str] = []
        for s in secrets or []:
            self.add(s)

    def add(self, secret: str | None) -> None:
        """Register a value that must never be shown (short or public values are ignored)."""
        if secret and len(secret) >= 4 and secret not in self.secrets and secret not in self.public:
            self.secrets.append(secret)
            self.secrets.sort(key=len, reverse=True)

    def text(self, value: str) -> str:
        out = mask_assignments(_URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", value))
        for s in self.secrets:
            if s in out:
                out = out.replace(s, MASK)
        return out

    def data(self, value: Any) -> Any:
        """A copy of dicts/lists/strings with secrets masked (by name or by value)."""
        if isinstance(value, dict):
            return {k: MASK if isinstance(k, str) and secret_name(k) and v not in (None, "")
                    else self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value
