"""The fault suite: hb-medic under an operator's worst night, against the real Docker engine
and the hummingbot-api stand-in (`python -m faults [--quick]`)."""
