"""One base class catches every bad-input error of the Python API."""

from __future__ import annotations

import pytest


def test_every_bad_input_error_derives_from_lmrecsim_error(tmp_path) -> None:
    # Catching bad input meant importing eight classes (ScenarioError, AgentError, ...).
    import lmrecsim
    from lmrecsim import LmrecsimError
    from lmrecsim.agents.errors import AgentError
    from lmrecsim.encoders import EncoderError
    from lmrecsim.envs.catalog import CatalogError
    from lmrecsim.envs.personas import PersonaError
    from lmrecsim.envs.world import WorldError
    from lmrecsim.errors import UsageError, user_errors
    from lmrecsim.evaluation.errors import EvaluationError
    from lmrecsim.evaluation.logs import LogError
    from lmrecsim.evaluation.metrics import MetricInputError
    from lmrecsim.scenarios import ScenarioError

    for cls in (
        AgentError,
        CatalogError,
        EncoderError,
        EvaluationError,
        LogError,
        MetricInputError,
        PersonaError,
        ScenarioError,
        UsageError,
        WorldError,
    ):
        assert issubclass(cls, LmrecsimError), cls
    # The two that were ValueErrors still are.
    assert issubclass(MetricInputError, ValueError) and issubclass(UsageError, ValueError)
    assert user_errors() == (LmrecsimError,)
    assert "LmrecsimError" in dir(lmrecsim)
    # One clause catches a scenario error, an evaluation error and a log error of one session.
    with pytest.raises(LmrecsimError, match="agent.timesteps"):
        lmrecsim.train("default", out=tmp_path / "x", timesteps=0)
    with pytest.raises(LmrecsimError, match="^seeds: "):
        lmrecsim.evaluate("default", ["greedy"], seeds=[], episodes=1)
    from lmrecsim.evaluation.logs import read_step_log

    with pytest.raises(LmrecsimError, match="no such step log"):
        read_step_log(tmp_path / "missing.parquet")
