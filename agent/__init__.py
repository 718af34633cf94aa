"""hb-medic: an auto-remediation agent for hummingbot-api deployments."""

__version__ = "0.1.0"

from agent import sshengine  # before anything imports docker-py

sshengine.defer()
