"""Preflight: a deploy checked against the stack before hummingbot-api sees it."""
