"""Match: rules from rules/*.yml, compiled once, applied to events."""
