"""Double DQN bootstrapping (``agent.hyperparameters.dqn.double_q``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
import torch.nn.functional as F

from lmrecsim.agents.build import build_model, load_model
from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv


def _trained(tiny_world, **hp):
    env = BatchedRecommendationVecEnv(world=tiny_world, n_envs=2)
    env.seed(0)
    settings = {"learning_starts": 100, "buffer_size": 2_000, "train_freq": 1, **hp}
    model = build_model("dqn", env, seed=0, hyperparameters=settings)
    model.learn(total_timesteps=600)
    return model


def _targets(model, data) -> tuple[th.Tensor, th.Tensor]:
    """(Double DQN, SB3 DQN) bootstrap targets of a sampled batch, by hand."""
    discounts = data.discounts if data.discounts is not None else model.gamma
    with th.no_grad():
        online = model.q_net(data.next_observations)
        target = model.q_net_target(data.next_observations)
        picked = target.gather(1, online.argmax(dim=1, keepdim=True))
        best = target.max(dim=1, keepdim=True).values
    keep = (1 - data.dones) * discounts
    return data.rewards + keep * picked, data.rewards + keep * best


@pytest.mark.parametrize("n_steps", [1, 3])
def test_double_q_bootstraps_from_the_target_value_of_the_online_choice(tiny_world, n_steps):
    model = _trained(tiny_world, double_q=True, n_steps=n_steps)
    # Make the two networks disagree, as they do between target syncs.
    with th.no_grad():
        gen = th.Generator().manual_seed(0)
        for p in model.q_net_target.parameters():
            p.add_(0.3 * th.randn(p.shape, generator=gen))
    np.random.seed(7)  # SB3's replay buffers sample with numpy's global generator
    data = model.replay_buffer.sample(64)
    double, single = _targets(model, data)
    with th.no_grad():
        current = model.q_net(data.observations).gather(1, data.actions.long())
        # The online network's choice is never a masked candidate.
        choice = model.q_net(data.next_observations).argmax(dim=1)
    mask = data.next_observations["action_mask"] > 0.5
    has_valid = mask.any(dim=1)
    assert bool(has_valid.all())
    assert bool(mask[th.arange(mask.shape[0]), choice].all())
    expected = F.smooth_l1_loss(current, double).item()
    sb3_loss = F.smooth_l1_loss(current, single).item()
    assert abs(expected - sb3_loss) > 1e-3  # the two rules give different targets here

    np.random.seed(7)
    model.train(gradient_steps=1, batch_size=64)
    assert model.logger.name_to_value["train/loss"] == pytest.approx(expected, rel=1e-5)


def test_double_q_changes_training_and_off_is_sb3s_dqn(tiny_world) -> None:
    plain = _trained(tiny_world)
    off = _trained(tiny_world, double_q=False)
    on = _trained(tiny_world, double_q=True)
    assert plain.double_q is False
    params = [dict(m.q_net.state_dict()) for m in (plain, off, on)]
    for key, value in params[0].items():
        assert th.equal(value, params[1][key]), key
    assert any(not th.equal(v, params[2][k]) for k, v in params[0].items())


def test_a_saved_double_dqn_loads_as_one(tiny_world, tmp_path) -> None:
    model = _trained(tiny_world, double_q=True)
    model.save(tmp_path / "model.zip")
    loaded = load_model("dqn", str(tmp_path))
    assert loaded.double_q is True
    obs = model.env.reset()
    a, _ = loaded.predict(obs, deterministic=True)
    b, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a, b)
