"""encoders subsystem."""
