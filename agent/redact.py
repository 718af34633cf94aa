"""Keep secrets out of logs, messages and the audit trail.

Applied to everything the agent writes about what it did: the values of every
secret setting, passwords and tokens in URLs, and fields whose names say they
hold a secret (password, secret, token, api key...).
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
_SECRET_NAME = re.compile(r"pass(word)?|secret|token|api[_-]?key|private[_-]?key|passphrase|"
                          r"authorization|credential", re.I)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^/\s:@]*):(?P<pw>[^/\s@]+)@", re.I)


class Redactor:
    def __init__(self, secrets: list[str] | None = None) -> None:
        self.secrets: list[str] = []
        for s in secrets or []:
            self.add(s)

    def add(self, secret: str | None) -> None:
        """Register a value that must never be shown (short values are ignored: too common)."""
        if secret and len(secret) >= 4 and secret not in self.secrets:
            self.secrets.append(secret)
            self.secrets.sort(key=len, reverse=True)

    def text(self, value: str) -> str:
        out = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", value)
        for s in self.secrets:
            if s in out:
                out = out.replace(s, MASK)
        return out

    def data(self, value: Any) -> Any:
        """A copy of dicts/lists/strings with secrets masked (by name or by value)."""
        if isinstance(value, dict):
            return {k: MASK if isinstance(k, str) and _SECRET_NAME.search(k) and v not in (None, "")
                    else self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value
