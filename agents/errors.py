"""Errors of the agents subsystem (kept free of heavy imports so the CLI can catch them cheaply)."""

from __future__ import annotations

from lmrecsim.exceptions import LmrecsimError


class AgentError(LmrecsimError):
    """A bad agent spec or model file (one line)."""
