"""The exceptions that mean "bad input from the user" (reported as one line, exit code 2)."""

from __future__ import annotations

import os

# The hub must never be contacted: every model is a local path or already in the user's cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def user_errors() -> tuple[type[BaseException], ...]:
    """Every error class whose message is a complete one-line explanation for the user."""
    from lmrecsim.agents.errors import AgentError
    from lmrecsim.encoders import EncoderError
    from lmrecsim.envs.catalog import CatalogError
    from lmrecsim.envs.personas import PersonaError
    from lmrecsim.envs.world import WorldError
    from lmrecsim.evaluation.logs import LogError
    from lmrecsim.scenarios import ScenarioError

    classes: list[type[BaseException]] = [
        AgentError,
        CatalogError,
        EncoderError,
        LogError,
        PersonaError,
        ScenarioError,
        WorldError,
    ]
    try:
        from lmrecsim.evaluation.errors import EvaluationError

        classes.append(EvaluationError)
    except ImportError:
        pass
    return tuple(classes)
