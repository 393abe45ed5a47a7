"""evaluation subsystem: metrics, bootstrap intervals, rollouts, evaluation reports.

``from lmrecsim.evaluation import evaluate`` runs policies on a scenario and returns the tables;
it is imported lazily so that ``lmrecsim.evaluation.metrics`` stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EvaluationError", "EvaluationResult", "evaluate"]


def __getattr__(name: str) -> Any:
    if name in ("evaluate", "EvaluationResult"):
        from . import runner

        return getattr(runner, name)
    if name == "EvaluationError":
        from .errors import EvaluationError

        return EvaluationError
    raise AttributeError(f"module 'lmrecsim.evaluation' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
