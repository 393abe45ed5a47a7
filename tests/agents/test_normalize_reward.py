"""``normalize_reward``: the learner trains on rewards scaled by the discounted return's spread."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.vec_env import VecNormalize

from lmrecsim.agents.build import build_model, load_model, reward_normalized
from lmrecsim.agents.errors import AgentError
from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv

N_ENVS = 4
GAMMA = 0.9


def _env(world, seed: int = 1) -> BatchedRecommendationVecEnv:
    venv = BatchedRecommendationVecEnv(world.scenario, N_ENVS, world=world)
    venv.seed(seed)
    return venv


def test_scaled_rewards_are_env_rewards_over_the_running_return_std(tiny_world) -> None:
    plain = _env(tiny_world)
    wrapped = reward_normalized(_env(tiny_world), True, gamma=GAMMA)
    assert isinstance(wrapped, VecNormalize) and not wrapped.norm_obs
    obs_plain, obs_wrapped = plain.reset(), wrapped.reset()
    for key in obs_plain:
        np.testing.assert_array_equal(obs_plain[key], obs_wrapped[key])
    rng = np.random.default_rng(0)
    returns = np.zeros(N_ENVS)
    seen: list[np.ndarray] = []
    scaled_all, raw_all = [], []
    for _ in range(200):
        actions = rng.integers(tiny_world.scenario.candidates.k, size=N_ENVS)
        o1, r1, d1, _ = plain.step(actions)
        o2, r2, d2, _ = wrapped.step(actions)
        # Observations, dones and the env's own rewards are those of the unwrapped twin.
        np.testing.assert_array_equal(o1["user"], o2["user"])
        np.testing.assert_array_equal(d1, d2)
        np.testing.assert_array_equal(r1, wrapped.get_original_reward())
        # The discounted return of each user so far, reset when the episode ends.
        returns = GAMMA * returns + r1
        seen.append(returns.copy())
        returns[d1] = 0.0
        # Scaled by the spread of every return seen so far (this one included), not shifted.
        std = np.sqrt(np.var(np.concatenate(seen)))
        if std > 0:
            np.testing.assert_allclose(r2, np.clip(r1 / std, -10, 10), rtol=2e-3)
        else:  # nothing clicked yet
            assert not r1.any() and not r2.any()
        scaled_all.append(r2)
        raw_all.append(r1)
    raw, scaled = np.concatenate(raw_all), np.concatenate(scaled_all)
    assert set(np.unique(raw)) == {0.0, 1.0}  # clicks
    # Clicked steps are worth more than 1 once the return's spread is known (it is below 1).
    assert scaled[raw == 1].min() > 1.0 and (scaled[raw == 0] == 0).all()


def test_off_by_default_on_request_and_never_twice(tiny_world) -> None:
    env = _env(tiny_world)
    assert reward_normalized(env, False, gamma=GAMMA) is env
    model = build_model("ppo", env, seed=0, hyperparameters={"normalize_reward": True})
    norm = model.get_vec_normalize_env()
    assert norm is not None and norm.norm_reward and norm.gamma == pytest.approx(0.95)
    # The key is lmrecsim's, not SB3's: it never reaches the PPO constructor.
    assert not hasattr(model, "normalize_reward")
    again = build_model("ppo", model.get_env(), seed=0, hyperparameters={"normalize_reward": True})
    assert again.get_env() is model.get_env()
    dqn = build_model("dqn", _env(tiny_world), seed=0, hyperparameters={"buffer_size": 500})
    assert dqn.get_vec_normalize_env() is None


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_a_value_that_is_not_a_boolean_is_one_line_naming_the_key(tiny_world, bad) -> None:
    with pytest.raises(AgentError, match=r"^agent.hyperparameters.normalize_reward: expected true"):
        build_model("ppo", _env(tiny_world), hyperparameters={"normalize_reward": bad})


def test_trained_with_scaled_rewards_the_saved_policy_acts_the_same(tiny_world, tmp_path) -> None:
    from lmrecsim.agents.train import train

    from .conftest import tiny_scenario

    hp = {"ppo": {"n_steps": 32, "batch_size": 64, "n_epochs": 2, "normalize_reward": True}}
    sc = tiny_scenario(agent={"n_envs": 2, "hyperparameters": hp})
    res = train(sc, out=tmp_path / "ppo", timesteps=128, progress=False)
    norm = res.model.get_vec_normalize_env()
    assert norm is not None and norm.ret_rms.count > 100
    # The rollout the learner last trained on holds scaled rewards, not the env's 0/1 clicks.
    stored = res.model.rollout_buffer.rewards
    assert not np.isin(stored, [0.0, 1.0]).all()
    # The scaling is part of training only: the saved model acts as the trained one does.
    reloaded = load_model("ppo", tmp_path / "ppo")
    obs = _env(tiny_world, seed=7).reset()
    np.testing.assert_array_equal(
        res.model.predict(obs, deterministic=True)[0], reloaded.predict(obs, deterministic=True)[0]
    )
