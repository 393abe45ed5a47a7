"""scenarios subsystem."""
