"""Interactive chat channels (Telegram, Slack): one living message per incident, buttons and
commands answered by the operator interface."""
