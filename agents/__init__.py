"""agents subsystem: stable-baselines3 agents, candidate-scoring networks, baselines.

Names are loaded lazily (PEP 562) so that ``from lmrecsim.agents.errors import AgentError`` and
the CLI's error handling do not import torch and stable-baselines3.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AgentError": ".errors",
    "Policy": ".base",
    "RandomPolicy": ".base",
    "ALGORITHMS": ".build",
    "POLICIES": ".build",
    "DQN_DEFAULTS": ".build",
    "PPO_DEFAULTS": ".build",
    "algorithm_class": ".build",
    "build_model": ".build",
    "load_model": ".build",
    "MASKED_SCORE": ".scorer",
    "CandidateScorerExtractor": ".scorer",
    "CandidateScorerPolicy": ".scorer",
    "MaskableCandidateScorerPolicy": ".scorer",
    "CandidateScorerQNetwork": ".scorer",
    "CandidateScorerDQNPolicy": ".scorer",
    "MaskedDQN": ".scorer",
    "MlpDQNPolicy": ".dueling",
    "candidate_scores": ".scorer",
    "PlackettLuceDistribution": ".slate",
    "SlateQ": ".slateq",
    "SlateQPolicy": ".slateq",
    "TrainResult": ".train",
    "train": ".train",
    "resume": ".train",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
