"""Errors no rule knows: counted by fingerprint, summarised, and turned into draft rules."""
