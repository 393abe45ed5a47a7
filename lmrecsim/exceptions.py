"""The base class of lmrecsim's errors about bad input.

Every error whose message is a complete one-line explanation for the user (a malformed scenario,
a missing model, a corrupt log, an argument out of range) derives from :class:`LmrecsimError`, so
Python code catches them all with one clause::

    from lmrecsim import LmrecsimError, train

    try:
        train({"extends": "default", "agent": {"timesteps": 0}}, out="runs/x")
    except LmrecsimError as exc:
        print(exc)  # one line naming the key and what was expected

The subsystems raise their own subclasses (``ScenarioError``, ``EncoderError``, ``WorldError``,
``AgentError``, ``EvaluationError``, ``LogError``, ...). This module imports nothing of lmrecsim,
so every layer may derive from it.
"""

from __future__ import annotations


class LmrecsimError(Exception):
    """Bad input from the user: the message is one line naming the file or argument, the key and
    what was expected."""
