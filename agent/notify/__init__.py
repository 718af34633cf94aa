"""Notify: one message per incident step, through apprise, from a persistent outbox."""
