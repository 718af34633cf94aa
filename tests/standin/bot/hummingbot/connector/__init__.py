"""See hummingbot/__init__.py."""
