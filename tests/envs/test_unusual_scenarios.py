"""Unusual but valid scenarios run: every combination here once crashed or could plausibly crash.

Each runs a batched env with a random valid policy through several episode ends (auto-resets) and
checks the observations stay inside the observation space.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lmrecsim.envs.env import observation_space
from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv
from lmrecsim.envs.world import build_world

from .test_vec_env import HashEncoder, small_scenario

CASES: dict[str, dict[str, Any]] = {
    # Fewer items than a past can hold (history_max 30), and every item a candidate.
    "catalog_smaller_than_history": {
        "catalog": {"n_items": 20},
        "candidates": {"k": 20},
        "episode": {"horizon": 40},
    },
    "two_candidates": {"candidates": {"k": 2}},
    "one_step_sessions": {"episode": {"horizon": 1}},
    "no_past_no_onboarding": {"users": {"new_user_fraction": 1.0, "onboarding": "none"}},
    "empty_pasts": {"users": {"history_min": 0, "history_max": 0}},
    "random_source_only": {"candidates": {"popular": 0.0, "nearest": 0.0, "random": 1.0}},
    "nearest_source_only": {"candidates": {"popular": 0.0, "nearest": 1.0, "random": 0.0}},
    "new_items_with_quota_events": {
        "catalog": {"new_items": {"fraction": 0.3, "arrival_start": 1, "arrival_end": 5}},
        "candidates": {"new_item_quota": 3},
        "state": {"mode": "events"},
    },
    "events_all_long_window": {
        "state": {"mode": "events", "text_events": "all", "history_window": 40},
        "users": {"new_user_fraction": 0.5},
    },
    "text_short_window_new_users": {
        "state": {"mode": "text", "history_window": 1},
        "users": {"new_user_fraction": 1.0, "onboarding": "text"},
    },
    "periodic_drift": {"users": {"drift": {"kind": "periodic", "period": 3}}},
    "two_projection_dims": {"encoder": {"project_dim": 2}},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_unusual_scenario_runs_through_resets(tmp_path: Any, name: str) -> None:
    sc = small_scenario(tmp_path, **CASES[name])
    world = build_world(sc, encoder=HashEncoder(dim=24))
    space = observation_space(world)
    venv = BatchedRecommendationVecEnv(world=world, n_envs=6)
    venv.seed(0)
    obs = venv.reset()
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(30):
        for i in range(6):
            assert space.contains({k: v[i] for k, v in obs.items()}), name
        valid = obs["action_mask"].astype(bool)
        actions = np.array([rng.choice(np.flatnonzero(m)) if m.any() else 0 for m in valid])
        venv.step_async(actions)
        obs, rewards, dones, _ = venv.step_wait()
        assert np.isfinite(rewards).all()
        ends += int(dones.sum())
    assert ends > 0  # sessions ended and new users started


def test_a_click_logit_past_exps_range_gives_probability_zero_without_a_warning(tmp_path) -> None:
    # Fatigue that never decays piles up until exp(-logit) overflows: numpy's warning line used to
    # reach the user ("overflow encountered in exp"), though 1 / (1 + inf) = 0 is right.
    import warnings

    from lmrecsim.envs.response import click_probability

    sc = small_scenario(tmp_path, users={"fatigue": {"gain": 100.0, "decay": 1.0}})
    one = np.ones(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = click_probability(sc.response, one, one * 0, one * 0, np.array([0.0, 800.0, 1e6]))
        assert p[0] > 0 and p[1] == 0.0 and p[2] == 0.0
        world = build_world(sc, encoder=HashEncoder(dim=24))
        venv = BatchedRecommendationVecEnv(world=world, n_envs=4)
        venv.seed(0)
        venv.reset()
        for _ in range(60):  # long enough for the fatigue to pass exp's range
            venv.step_async(np.zeros(4, dtype=np.int64))
            _, rewards, _, _ = venv.step_wait()
            assert np.isfinite(rewards).all()
