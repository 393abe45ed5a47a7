"""agents subsystem."""
