"""The deploy recorder: an HTTP pass-through in front of hummingbot-api."""
