"""Capture values come from text anyone can get into a log: validate before use.

A value that fails its declared type, pattern or length is refused: no action
runs with it. Types other than ``text`` never admit ``..``, whitespace, control
characters, shell metacharacters or a leading ``-``, whatever their pattern says.
"""

from __future__ import annotations

import re

from agent.match.model import Capture
from agent.names import IMAGE_PATTERN, protected_profile

_TYPES = {
    "name": re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$"),
    "profile": re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$"),
    "file": re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"),
    "image": re.compile(IMAGE_PATTERN),
    "path": re.compile(r"^(?:/(?!\.(?:/|$))[A-Za-z0-9_.+-]+)+$"),  # absolute; no '.' part ('..' never)
}
_NEVER = re.compile(r"\.\.|[\s;&|$`<>(){}\[\]*?!~'\"\\#%^=,]|[\x00-\x1f\x7f]")
_SLASH_OK = {"image", "path"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def check(spec: Capture, value: str, compiled_pattern: re.Pattern | None = None) -> str | None:
    """None if the value is acceptable, else the reason it is refused."""
    if len(value) > spec.max_length:
        return f"longer than {spec.max_length} characters"
    if spec.type == "text":
        if _CONTROL.search(value):
            return "contains control characters"
    else:
        if not value:
            return "is empty"
        bad = _NEVER.search(value)
        if bad:
            what = "'..'" if bad.group() == ".." else repr(bad.group())
            return f"contains {what}"
        if value.startswith("-"):
            return "starts with '-'"
        if "/" in value and spec.type not in _SLASH_OK:
            return "contains '/'"
        if not _TYPES[spec.type].fullmatch(value):
            return f"is not a valid {spec.type}"
        if spec.type == "profile" and protected_profile(value):
            return "is a protected profile (hummingbot-api's template: hb-medic never touches it)"
    if compiled_pattern is not None and not compiled_pattern.fullmatch(value):
        return f"does not match {spec.pattern}"
    return None


def shown(value: str, limit: int = 80) -> str:
    """A value as it may appear in a refusal message: quoted, escaped, cut."""
    text = repr(value[:limit])
    return text + ("…" if len(value) > limit else "")
