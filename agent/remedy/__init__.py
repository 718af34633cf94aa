"""Remedy: incidents, actions, verification and the deploy retry."""
