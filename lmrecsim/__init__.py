"""lmrecsim: a reinforcement-learning recommendation simulator with language-model-encoded users.

The public API is loaded lazily so that ``import lmrecsim.scenarios`` stays light::

    from lmrecsim import make_env, load_scenario, train, evaluate
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_API = {
    "load_scenario": "lmrecsim.scenarios",
    "Scenario": "lmrecsim.scenarios",
    "make_env": "lmrecsim.envs",
    "make_vec_env": "lmrecsim.envs",
    "train": "lmrecsim.agents.train",
    "evaluate": "lmrecsim.evaluation",
    "LmrecsimError": "lmrecsim.exceptions",
}


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'lmrecsim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))


__all__ = [*_API, "__version__"]
