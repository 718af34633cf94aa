"""Keep secrets out of logs, messages and the audit trail.

Applied to everything the agent writes about what it did: the values of every
secret setting, passwords and tokens in URLs, fields whose names say they hold a
secret (password, secret, token, api key...), and the same in text, as `KEY=value`
or `KEY: value`, as `password is value`, and a wallet's words (`*_secret_phrase`, `seed`,
`mnemonic`), whoever's secret it is. What is not a secret stays
readable: profile and user names, the deploy body that will be re-sent.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
# A field is secret by the last word of its name: `config_password`, `binance_api_secret`,
# `access_token`, `api_key` are; `credentials_profile`, `token_url`, `key` (an incident's) are not.
_SECRET_LAST = {"pass", "passwd", "password", "pwd", "secret", "token", "passphrase", "authorization",
                "apikey", "credential", "credentials", "seed", "mnemonic"}
_SECRET_BEFORE_KEY = {"api", "secret", "private", "access", "signing", "encryption"}
# `*_secret_phrase`, `seed_phrase`, `recovery_phrase`: a wallet's words, whose value runs on over spaces.
_SECRET_BEFORE_PHRASE = {"secret", "seed", "recovery", "mnemonic", "wallet", "backup"}
_WORDY = {"phrase", "seed", "mnemonic", "passphrase"}
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
# hummingbot-api's published default login: masking it would hide every "admin" and protect nothing.
PUBLIC_DEFAULTS = frozenset({"admin"})
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/\s:@]*):(?P<pw>[^/\s@]+)@", re.I)


def shown_url(url: str) -> str:
    """A URL as it may be shown (a status page, doctor): without the password of its userinfo."""
    return _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url)


def secret_name(name: str) -> bool:
    """Does a field of this name hold a secret?"""
    words = [w.lower() for w in _WORDS.findall(name)]
    if not words:
        return False
    last = words[-1]
    before = words[-2] if len(words) > 1 else ""
    return (last in _SECRET_LAST or (last == "key" and before in _SECRET_BEFORE_KEY)
            or (last == "phrase" and before in _SECRET_BEFORE_PHRASE))


def _wordy(name: str) -> bool:
    """A secret made of words (a seed phrase): its bare value runs on over spaces."""
    words = _WORDS.findall(name)
    return bool(words) and words[-1].lower() in _WORDY


# `KEY=value` and `KEY: value` (also quoted, JSON, YAML, query strings, Python reprs) where the
# key names a secret: anyone's secret, not only hb-medic's own (a bot's CONFIG_PASSWORD, an
# exchange's api_secret) that a program printed into its log. A key starts only where no key
# character precedes it, so a long run of them costs one pass, not one per position.
_ASSIGNMENT = re.compile(
    r"""(?<![A-Za-z0-9_.-])(?P<key>[A-Za-z][A-Za-z0-9_.-]*+)(?P<kq>["']?)(?P<sep>[ \t]*[=:][ \t]*)"""
    r"""(?:(?P<q>["'])(?P<quoted>(?:(?!(?P=q)).)*)(?P=q)"""
    r"""|(?P<scheme>(?:Basic|Bearer|Token|Digest)[ \t]+)?(?P<bare>[^\s"',;&)\]}>]+))""", re.I)


# `password is X`, `secret was X`: a secret told in words. A value that is a word saying what the
# secret is like (`password is empty`, `is not set`) stays: it is news, not the secret.
_TOLD = re.compile(r"""(?<![A-Za-z0-9_.-])(?P<key>(?:[A-Za-z]+[ \t]+)?[A-Za-z][A-Za-z0-9_.-]*+)"""
                   r"""(?P<sep>[ \t]+(?:is|was)[ \t]*:?[ \t]+)"""
                   r"""(?:(?P<q>["'`])(?P<quoted>(?:(?!(?P=q))[^\n])*)(?P=q)"""
                   r"""|(?P<value>[^\s"'`,;)\]}>]+))""", re.I)
_NOT_A_VALUE = frozenset({"a", "accepted", "also", "always", "an", "at", "being", "blank", "changed",
                          "checked", "correct", "different", "empty", "expired", "for", "given",
                          "hidden", "ignored", "in", "incorrect", "invalid", "kept", "known", "masked",
                          "missing", "needed", "never", "no", "none", "not", "now", "null", "of", "ok",
                          "on", "provided", "read", "refused", "rejected", "required", "right", "same",
                          "sent", "set", "shown", "still", "stored", "the", "to", "too", "unknown",
                          "unset", "used", "valid", "written", "wrong"})


def mask_told(text: str) -> str:
    """Mask X in `password is X` (any key naming a secret), unless X says what it is like."""
    if " is" not in text and " was" not in text and "\tis" not in text and "\twas" not in text:
        return text

    def one(m: re.Match[str]) -> str:
        value = m["value"] if m["q"] is None else m["quoted"]
        if not secret_name(m["key"]) or not value or value.lower().rstrip(".:!") in _NOT_A_VALUE \
                or value == MASK:
            return m[0]
        return f"{m['key']}{m['sep']}{m['q'] or ''}{MASK}{m['q'] or ''}"

    out, pos = [], 0
    while (m := _TOLD.search(text, pos)) is not None:
        masked = one(m)
        out.append(text[pos:m.start()] + masked)
        pos = m.end()
        if masked != m[0] and not m["q"] and _wordy(m["key"]):  # the rest of a seed phrase's words
            more = _MORE_WORDS.match(text, pos)
            pos = more.end() if more else pos
    out.append(text[pos:])
    return "".join(out)


_MORE_WORDS = re.compile(r"(?:[ \t]+[A-Za-z]+)+")


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
        if m["q"] is None and _wordy(m["key"]):  # the rest of a seed phrase's words
            more = _MORE_WORDS.match(text, pos)
            pos = more.end() if more else pos
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
        out = mask_told(mask_assignments(shown_url(value)))
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
