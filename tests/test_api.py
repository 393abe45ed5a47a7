"""The top-level public API (``from lmrecsim import ...``) and the env's manual."""

from __future__ import annotations

import pytest

import lmrecsim


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("load_scenario", "lmrecsim.scenarios"),
        ("Scenario", "lmrecsim.scenarios"),
        ("make_env", "lmrecsim.envs"),
        ("make_vec_env", "lmrecsim.envs"),
        ("train", "lmrecsim.agents.train"),
        ("evaluate", "lmrecsim.evaluation"),
    ],
)
def test_public_api_names_are_the_subpackages_objects(name, module):
    from importlib import import_module

    assert name in lmrecsim.__all__
    assert getattr(lmrecsim, name) is getattr(import_module(module), name)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lmrecsim.nope  # noqa: B018


def test_the_env_manual_gives_the_feature_count_of_the_observation():
    from lmrecsim.envs.env import RecommendationEnv
    from lmrecsim.envs.features import N_FEATURES

    assert f"``candidate_features`` (K, {N_FEATURES})" in RecommendationEnv.__doc__
