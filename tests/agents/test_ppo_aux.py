"""PPO's optional reward-prediction task: off it is SB3's PPO; on it learns the step rewards."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO

from lmrecsim.agents.build import build_model, load_model
from lmrecsim.agents.errors import AgentError
from lmrecsim.agents.ppo import ScorerPPO
from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv

SMALL = {"n_steps": 32, "batch_size": 64, "n_epochs": 2}


def _env(world, n: int = 4) -> BatchedRecommendationVecEnv:
    env = BatchedRecommendationVecEnv(world=world, n_envs=n)
    env.seed(0)
    return env


def test_without_the_task_it_is_sb3_ppo_bit_for_bit(tiny_world) -> None:
    from lmrecsim.agents.scorer import CandidateScorerPolicy

    # SB3 seeds numpy's and torch's global generators when a model is built, and the update
    # draws minibatches from them: build and train one model after the other.
    ours = build_model("ppo", _env(tiny_world), seed=3, hyperparameters=SMALL)
    assert type(ours) is ScorerPPO and ours.reward_head is None
    ours.learn(256)
    kwargs = {"n_epochs": 10, "learning_rate": 3e-4, "gamma": 0.95, "ent_coef": 0.01, **SMALL}
    ref = PPO(CandidateScorerPolicy, _env(tiny_world), seed=3, device="cpu", **kwargs)
    ref.learn(256)
    for a, b in zip(ours.policy.parameters(), ref.policy.parameters(), strict=True):
        assert th.equal(a, b)


def test_reward_examples_pair_each_observation_with_its_own_reward(tiny_world) -> None:
    model = build_model("ppo", _env(tiny_world), seed=0, hyperparameters=SMALL)
    _, callback = model._setup_learn(64)
    callback.on_training_start(locals(), globals())
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, 32)
    buf = model.rollout_buffer
    before = model.reward_examples()
    # Row i is env i // 32 at step i % 32, before and after PPO's update flattens the buffer.
    for i in (0, 5, 40, 127):
        env, step = divmod(i, 32)
        assert before[2][i].item() == buf.rewards[step, env]
        assert before[1][i].item() == buf.actions[step, env, 0]
        np.testing.assert_array_equal(
            before[0]["user"][i].numpy(), buf.observations["user"][step, env]
        )
    next(buf.get(64))  # flattens the stored arrays in place
    assert buf.generator_ready
    after = model.reward_examples()
    assert th.equal(before[1], after[1]) and th.equal(before[2], after[2])
    for key in before[0]:
        assert th.equal(before[0][key], after[0][key])


def test_the_task_trains_a_reward_head_that_tracks_clicks_and_is_not_saved(
    tiny_world, tmp_path
) -> None:
    hp = {**SMALL, "reward_aux_coef": 1.0, "reward_aux_epochs": 4}
    model = build_model("ppo", _env(tiny_world), seed=0, hyperparameters=hp)
    head = model.reward_head
    assert head is not None
    model.learn(2_048)
    assert model.logger.name_to_value["train/reward_aux_loss"] > 0
    # On the last rollout the head predicts clicks better than their mean does.
    obs, actions, rewards = model.reward_examples()
    ext = model.policy.features_extractor
    with th.no_grad():
        hidden = ext.candidate_hidden(obs)[th.arange(actions.numel()), actions]
        pred = head(hidden).squeeze(-1)
    mse = th.mean((pred - rewards) ** 2).item()
    assert mse < 0.95 * th.var(rewards).item()
    model.save(tmp_path / "model.zip")
    loaded = load_model("ppo", tmp_path)
    assert loaded.reward_aux_coef == 1.0 and loaded.reward_head is not None
    assert not th.equal(loaded.reward_head.weight, head.weight)  # a fresh head, not saved


def test_the_task_needs_the_candidate_scorer_and_valid_settings(tiny_world) -> None:
    with pytest.raises(AgentError, match="needs agent.policy candidate_scorer"):
        build_model("ppo", _env(tiny_world), policy="mlp", hyperparameters={"reward_aux_coef": 0.5})
    with pytest.raises(AgentError, match="reward_aux_coef must be >= 0"):
        build_model("ppo", _env(tiny_world), hyperparameters={"reward_aux_coef": -1.0})
