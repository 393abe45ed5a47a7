"""Rewards: a reward registered by a program is usable from a scenario, end to end."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lmrecsim.envs.rewards import REWARDS, register_reward
from lmrecsim.envs.world import build_world
from lmrecsim.scenarios import ScenarioError, scenario_from_dict
from lmrecsim.scenarios.schema import reward_names

from .test_vec_env import HashEncoder, small_scenario


def long_clicks(fb: Any, sc: Any) -> np.ndarray:
    """1 for a click the user stayed with for over a minute."""
    return (fb.clicked & (fb.dwell > 60.0)).astype(np.float64)


def test_a_registered_reward_is_a_scenario_reward(tmp_path: Any) -> None:
    from lmrecsim.envs.env import RecommendationEnv

    with pytest.raises(ScenarioError, match="register_reward"):
        scenario_from_dict({"extends": "default", "name": "x", "reward": {"name": "minute_clicks"}})
    register_reward("minute_clicks", long_clicks)
    assert "minute_clicks" in reward_names()
    sc = small_scenario(tmp_path, reward={"name": "minute_clicks"})
    env = RecommendationEnv(world=build_world(sc, encoder=HashEncoder()))
    env.reset(seed=0)
    paid = clicks = 0
    for step in range(200):
        _, reward, term, trunc, info = env.step(step % env.action_space.n)
        assert reward == float(info["clicked"] and info["dwell"] > 60.0)
        paid += reward
        clicks += info["clicked"]
        if term or trunc:
            env.reset()
    assert 0 < paid < clicks  # some clicks paid, short ones not


def test_register_reward_refuses_shipped_and_empty_names() -> None:
    with pytest.raises(ValueError, match="'click' is a shipped reward"):
        register_reward("click", long_clicks)
    with pytest.raises(ValueError, match="expected a non-empty string"):
        register_reward(" ", long_clicks)
    with pytest.raises(ValueError, match="not callable"):
        register_reward("x_reward", 3)  # type: ignore[arg-type]
    assert REWARDS["click"].__name__ == "click_reward"


def test_a_registered_reward_must_return_one_finite_number_per_user(tmp_path: Any) -> None:
    # A scalar used to pass through the batched VecEnv as a 0-d reward that SB3 spread to every
    # user, and to fail deep inside the single env.
    from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv

    register_reward("clicks_in_batch", lambda fb, sc: fb.clicked.sum() * 1.0)
    register_reward("nan_reward", lambda fb, sc: np.full(fb.clicked.shape, np.nan))
    for name, message in (
        ("clicks_in_batch", r"shape \(\) \(expected \(4,\)"),
        ("nan_reward", "non-finite"),
    ):
        sc = small_scenario(tmp_path, reward={"name": name})
        venv = BatchedRecommendationVecEnv(world=build_world(sc, encoder=HashEncoder()), n_envs=4)
        venv.seed(0)
        venv.reset()
        with pytest.raises(ValueError, match=f"reward '{name}': .*{message}"):
            venv.step(np.zeros(4, dtype=np.int64))
