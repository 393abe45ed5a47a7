"""Double DQN bootstrapping (``agent.hyperparameters.dqn.double_q``)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch as th
import torch.nn.functional as F

from lmrecsim.agents.build import build_model, load_model
from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv

from .conftest import RandomMaskVecEnv


def _trained(tiny_world, *, masked: bool = False, **hp):
    env = BatchedRecommendationVecEnv(world=tiny_world, n_envs=2)
    env.seed(0)
    if masked:  # half the slots of every observation masked, next observations included
        env = RandomMaskVecEnv(env)
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
    model = _trained(tiny_world, masked=True, double_q=True, n_steps=n_steps)
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
    assert float((~mask).float().mean()) > 0.3  # many next-state slots are masked
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


@pytest.mark.parametrize("n_steps", [1, 3])
def test_with_synced_networks_double_q_trains_exactly_as_sb3(tiny_world, n_steps) -> None:
    # Both networks equal: the online choice is the target's argmax, so both bootstraps agree,
    # and the rest of the update (sampling, loss, clipping, optimiser) must be SB3's own.
    models = [_trained(tiny_world, double_q=flag, n_steps=n_steps) for flag in (False, True)]
    off, on = models
    on.policy.load_state_dict(off.policy.state_dict())
    # A copy: the loaded optimizer would otherwise share (and step) the other's Adam moments.
    on.policy.optimizer.load_state_dict(copy.deepcopy(off.policy.optimizer.state_dict()))
    on.replay_buffer = off.replay_buffer
    on._n_updates = off._n_updates
    for model in models:
        model.q_net_target.load_state_dict(model.q_net.state_dict())
        np.random.seed(11)
        model.train(gradient_steps=1, batch_size=64)
    assert on.logger.name_to_value["train/loss"] == off.logger.name_to_value["train/loss"]
    for key, value in off.q_net.state_dict().items():
        assert th.equal(value, on.q_net.state_dict()[key]), key
    assert on._n_updates == off._n_updates


def test_double_q_must_be_a_flag(tiny_world) -> None:
    from lmrecsim.agents.scorer import MaskedDQN

    env = BatchedRecommendationVecEnv(world=tiny_world, n_envs=2)
    with pytest.raises(TypeError, match="double_q: expected True or False, got 'false'"):
        MaskedDQN("MultiInputPolicy", env, double_q="false", buffer_size=100)


def test_a_saved_double_dqn_loads_as_one(tiny_world, tmp_path) -> None:
    model = _trained(tiny_world, double_q=True)
    model.save(tmp_path / "model.zip")
    loaded = load_model("dqn", str(tmp_path))
    assert loaded.double_q is True
    obs = model.env.reset()
    a, _ = loaded.predict(obs, deterministic=True)
    b, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a, b)
