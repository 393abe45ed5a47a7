"""Errors of the agents subsystem (kept free of heavy imports so the CLI can catch them cheaply)."""

from __future__ import annotations


class AgentError(Exception):
    """A bad agent spec or model file (one line)."""
