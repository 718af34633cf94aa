"""The deploy request body, from the only log line that ever carries it.

Builds that log INFO print ``Creating hummingbot instance with config: ``
followed by pydantic's ``str()`` of the body: ``field=repr(value)`` pairs
separated by spaces. Values are read with ``ast.literal_eval`` (no code runs),
only known fields are kept, and the result is checked like a request.
"""

from __future__ import annotations

import ast
import re
from typing import Any

_PAIR = re.compile(
    r"(\w+)=('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\[[^\]]*\]|None|True|False|-?\d+(?:\.\d+)?)(?=\s|$)")

FIELDS = {
    "deploy-v2-script": {"instance_name", "credentials_profile", "image", "script", "script_config",
                         "headless"},
    "deploy-v2-controllers": {"instance_name", "credentials_profile", "controllers_config",
                              "max_global_drawdown_quote", "max_controller_drawdown_quote", "image",
                              "script_config", "headless"},
}
DEPLOY_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")  # instance and profile names in a body


def parse_config_repr(text: str, route: str) -> dict[str, Any] | None:
    """The body as a dict, or None when the text is not a well-formed body."""
    body: dict[str, Any] = {}
    for m in _PAIR.finditer(text):
        field, raw = m[1], m[2]
        if field not in FIELDS[route]:
            continue
        try:
            body[field] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return None
    for required in ("instance_name", "credentials_profile"):
        value = body.get(required)
        if not isinstance(value, str) or not DEPLOY_NAME.fullmatch(value):
            return None
    return body
