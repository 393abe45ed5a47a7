"""The Dict n-step replay buffer: its returns, against SB3's Box version and by hand, and in DQN."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, NStepReplayBuffer

from lmrecsim.agents.build import build_model
from lmrecsim.agents.replay import DictNStepReplayBuffer
from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv

OBS = spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
DICT_OBS = spaces.Dict({"x": OBS, "m": spaces.Box(0, 1, shape=(2,), dtype=np.int8)})
ACT = spaces.Discrete(4)


def _fill(buffers, rng: np.random.Generator, steps: int, n_envs: int) -> None:
    """Add the same random transitions (with terminations and truncations) to every buffer."""
    for t in range(steps):
        x = rng.normal(size=(n_envs, 3)).astype(np.float32)
        nx = rng.normal(size=(n_envs, 3)).astype(np.float32)
        act = rng.integers(4, size=(n_envs, 1))
        rew = rng.normal(size=n_envs).astype(np.float32)
        end = rng.random(n_envs) < 0.15
        truncated = end & (rng.random(n_envs) < 0.5)
        infos = [{"TimeLimit.truncated": bool(tr)} for tr in truncated]
        m = np.full((n_envs, 2), t % 2, dtype=np.int8)
        for buf in buffers:
            if isinstance(buf, DictReplayBuffer):
                buf.add({"x": x, "m": m}, {"x": nx, "m": m}, act, rew, end, infos)
            else:
                buf.add(x, nx, act, rew, end, infos)


@pytest.mark.parametrize("steps", [37, 150])  # part-filled, and full with wrap-around
def test_samples_match_sb3_box_n_step_buffer(steps: int) -> None:
    kw = {"device": "cpu", "n_envs": 3, "n_steps": 4, "gamma": 0.9}
    ours = DictNStepReplayBuffer(64, DICT_OBS, ACT, **kw)
    ref = NStepReplayBuffer(64, OBS, ACT, **kw)
    _fill([ours, ref], np.random.default_rng(0), steps, n_envs=3)
    np.random.seed(5)
    a = ours.sample(512)
    np.random.seed(5)
    b = ref.sample(512)
    assert a.discounts is not None and b.discounts is not None
    th.testing.assert_close(a.observations["x"], b.observations)
    th.testing.assert_close(a.next_observations["x"], b.next_observations)
    th.testing.assert_close(a.actions, b.actions)
    th.testing.assert_close(a.rewards, b.rewards)
    th.testing.assert_close(a.dones, b.dones)
    th.testing.assert_close(a.discounts, b.discounts)
    # The samples cover every case: full n-step sums, and sums cut short by an episode's end.
    d = a.discounts.numpy().ravel()
    assert np.isclose(d, 0.9).any() and np.isclose(d, 0.9**4).any()


def test_n_step_returns_by_hand_stop_at_episode_ends_and_the_newest_step() -> None:
    buf = DictNStepReplayBuffer(16, DICT_OBS, ACT, device="cpu", n_envs=1, n_steps=3, gamma=0.5)
    # Rewards 1, 2, 4, 8, 16, 32, 64: step 2 terminates, step 4 is truncated, step 6 is the newest.
    ends = {2: (True, False), 4: (True, True)}
    for t, r in enumerate([1, 2, 4, 8, 16, 32, 64]):
        done, trunc = ends.get(t, (False, False))
        x = np.full((1, 3), t, dtype=np.float32)
        m = np.zeros((1, 2), dtype=np.int8)
        buf.add(
            {"x": x, "m": m},
            {"x": x + 0.5, "m": m},
            np.array([[t % 4]]),
            np.array([r], dtype=np.float32),
            np.array([done]),
            [{"TimeLimit.truncated": trunc}],
        )
    s = buf._get_samples(np.arange(7))
    # step 0: 1 + 0.5*2 + 0.25*4 (ends at the termination at step 2: no bootstrap)
    # step 3: 8 + 0.5*16 (ends at the truncation at step 4: bootstrap from its final observation)
    # step 5: 32 + 0.5*64 (the newest step has no successor stored yet)
    expected_returns = [3, 2 + 2, 4, 8 + 8, 16, 32 + 32, 64]
    expected_last = [2, 2, 2, 4, 4, 6, 6]
    np.testing.assert_allclose(s.rewards.numpy().ravel(), expected_returns)
    np.testing.assert_allclose(s.next_observations["x"].numpy()[:, 0], np.add(expected_last, 0.5))
    np.testing.assert_allclose(
        s.discounts.numpy().ravel(), [0.125, 0.25, 0.5, 0.25, 0.5, 0.25, 0.5]
    )
    np.testing.assert_allclose(s.dones.numpy().ravel(), [1, 1, 1, 0, 0, 0, 0])
    np.testing.assert_allclose(s.observations["x"].numpy()[:, 0], np.arange(7))


def test_dqn_with_n_steps_trains_on_n_step_targets(tiny_world) -> None:
    env = BatchedRecommendationVecEnv(world=tiny_world, n_envs=2)
    env.seed(0)
    hp = {"n_steps": 3, "learning_starts": 100, "buffer_size": 1_000, "train_freq": 1}
    model = build_model("dqn", env, seed=0, hyperparameters=hp)
    assert isinstance(model.replay_buffer, DictNStepReplayBuffer)
    assert model.replay_buffer.n_steps == 3 and model.replay_buffer.gamma == model.gamma
    model.learn(total_timesteps=400)
    sample = model.replay_buffer.sample(256)
    # Most sampled transitions are full three-step ones; a few end with their episode.
    discounts = sample.discounts.numpy().ravel()
    assert np.isclose(discounts, model.gamma**3).mean() > 0.5
    powers = model.gamma ** np.arange(1, 4)
    assert np.isclose(discounts[:, None], powers[None, :]).any(axis=1).all()
    # One-step DQN keeps SB3's own Dict buffer.
    plain = build_model("dqn", env, seed=0, hyperparameters={"buffer_size": 1_000})
    assert type(plain.replay_buffer) is DictReplayBuffer


def test_a_saved_n_step_dqn_loads_without_sb3s_ignored_n_steps_warning(tiny_world, tmp_path):
    import warnings

    from lmrecsim.agents.build import load_model

    env = BatchedRecommendationVecEnv(world=tiny_world, n_envs=2)
    hp = {"n_steps": 3, "learning_starts": 10, "buffer_size": 500}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # building it must not warn either
        model = build_model("dqn", env, seed=0, hyperparameters=hp)
    model.learn(total_timesteps=40)
    model.save(tmp_path / "model.zip")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_model("dqn", str(tmp_path))
    assert not [w for w in caught if "is ignored because" in str(w.message)]
    assert loaded.n_steps == 3


def test_settings_sb3_rejects_are_one_line_agent_errors(tiny_world) -> None:
    from lmrecsim.agents.errors import AgentError

    env = BatchedRecommendationVecEnv(world=tiny_world, n_envs=2)
    # SB3 asserts that a Dict replay buffer cannot save memory this way.
    hp = {"n_steps": 3, "optimize_memory_usage": True, "replay_buffer_kwargs": {}}
    with pytest.raises(AgentError, match="agent.hyperparameters: .*optimize_memory_usage"):
        build_model("dqn", env, seed=0, hyperparameters=hp)
    for make in (
        lambda: DictNStepReplayBuffer(8, DICT_OBS, ACT, device="cpu", n_steps=0),
        lambda: build_model("dqn", env, seed=0, hyperparameters={"n_steps": 0}),
    ):
        with pytest.raises(
            AgentError, match=r"agent.hyperparameters.n_steps: .*expected at least 1"
        ):
            make()
