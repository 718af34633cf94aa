"""Ingest: container log bytes to timestamped lines, per stream."""
