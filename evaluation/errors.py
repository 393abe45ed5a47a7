"""Errors of the evaluation subsystem (kept free of heavy imports so the CLI can catch them cheaply)."""

from __future__ import annotations

from lmrecsim.exceptions import LmrecsimError


class EvaluationError(LmrecsimError):
    """A bad evaluation request: an unknown policy spec, a duplicate label, a missing reference.

    The message is one line naming the argument, the offending value and what was expected.
    """
