"""The dueling Q-network of the DQN candidate scorer (``policy_kwargs: {dueling: true}``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th

from lmrecsim.agents.build import build_model, load_model
from lmrecsim.agents.scorer import MASKED_SCORE, CandidateScorerDQNPolicy, MaskedDQN
from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv

from .conftest import RandomMaskVecEnv


def _model(tiny_world, *, steps: int = 600, dueling: bool | None = True, **extra):
    env = RandomMaskVecEnv(BatchedRecommendationVecEnv(world=tiny_world, n_envs=4))
    env.seed(0)
    hp = {"learning_starts": 100, "buffer_size": 2_000, "train_freq": 1, **extra}
    if dueling is not None:
        hp["policy_kwargs"] = {"dueling": dueling}
    model = build_model("dqn", env, seed=0, hyperparameters=hp)
    model.learn(total_timesteps=steps)
    return model, env


def _obs_tensor(model, obs):
    return model.policy.obs_to_tensor(obs)[0]


def test_q_values_are_a_state_value_plus_centred_advantages(tiny_world) -> None:
    model, env = _model(tiny_world)
    obs = env.reset()
    mask = th.as_tensor(obs["action_mask"] > 0)
    assert bool((~mask).any(dim=1).all())  # every row has masked slots
    q_net = model.q_net
    with th.no_grad():
        latent = q_net.extract_features(_obs_tensor(model, obs), q_net.features_extractor)
        q = q_net(_obs_tensor(model, obs))
        k = q.shape[1]
        value = q_net.q_net[0].value(latent[:, k:])
    adv = latent[:, :k]
    mean = th.stack([adv[i][mask[i]].mean() for i in range(adv.shape[0])])
    expected = value + adv - mean[:, None]
    assert th.allclose(q[mask], expected[mask], atol=1e-5)
    # Masked slots keep MASKED_SCORE exactly, however large the state value (a small one would
    # vanish in float32 rounding of -1e8 anyway, so the test makes it large).
    with th.no_grad():
        q_net.q_net[0].value.bias.fill_(1000.0)
        shifted = q_net(_obs_tensor(model, obs))
    assert bool((shifted[~mask] == MASKED_SCORE).all())
    assert bool((q[~mask] == MASKED_SCORE).all())
    # The state value is the mean Q over the valid candidates (the identifiable split).
    for i in range(q.shape[0]):
        assert float(q[i][mask[i]].mean()) == pytest.approx(float(value[i]), abs=1e-5)
    # The greedy action is never a masked slot.
    actions, _ = model.predict(obs, deterministic=True)
    assert bool(mask[th.arange(mask.shape[0]), th.as_tensor(actions)].all())


def test_dueling_q_values_are_permutation_equivariant(tiny_world) -> None:
    model, env = _model(tiny_world, steps=300)
    obs = env.reset()
    perm = np.random.default_rng(3).permutation(obs["action_mask"].shape[1])
    permuted = dict(obs)
    for key in ("candidates", "candidate_features", "action_mask"):
        permuted[key] = obs[key][:, perm]
    with th.no_grad():
        q = model.q_net(_obs_tensor(model, obs))
        q_perm = model.q_net(_obs_tensor(model, permuted))
    assert th.allclose(q_perm, q[:, perm], atol=1e-5)


def test_the_value_head_learns_and_off_is_the_plain_scorer(tiny_world) -> None:
    plain, _ = _model(tiny_world, dueling=None)
    off, _ = _model(tiny_world, dueling=False)
    on, _ = _model(tiny_world, dueling=True)
    assert isinstance(on.policy, CandidateScorerDQNPolicy) and on.policy.dueling
    assert plain.policy.dueling is False
    a, b = plain.q_net.state_dict(), off.q_net.state_dict()
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert th.equal(value, b[key]), key
    # Only the dueling network has a value head, and training moved it (gradients reach it
    # through every transition); the target network has one too.
    value_keys = [key for key in on.q_net.state_dict() if ".value." in key]
    assert value_keys and not any(".value." in key for key in a)
    assert all(key in on.q_net_target.state_dict() for key in value_keys)
    fresh, _ = _model(tiny_world, steps=1, dueling=True)  # no update yet: the initial weights
    moved = [
        not th.equal(on.q_net.state_dict()[key], fresh.q_net.state_dict()[key])
        for key in value_keys
    ]
    assert all(moved)


def test_a_saved_dueling_model_loads_as_one(tiny_world, tmp_path) -> None:
    model, env = _model(tiny_world, steps=300)
    model.save(tmp_path / "model.zip")
    loaded = load_model("dqn", str(tmp_path))
    assert loaded.policy.dueling is True
    obs = env.reset()
    with th.no_grad():
        a = model.q_net(_obs_tensor(model, obs))
        b = loaded.q_net(_obs_tensor(loaded, obs))
    assert th.equal(a, b)


def test_dueling_must_be_a_flag(tiny_world) -> None:
    env = BatchedRecommendationVecEnv(world=tiny_world, n_envs=2)
    with pytest.raises(TypeError, match="dueling: expected True or False, got 'yes'"):
        MaskedDQN(CandidateScorerDQNPolicy, env, buffer_size=100, policy_kwargs={"dueling": "yes"})


def _mlp(tiny_world, policy_kwargs, steps: int = 300):
    env = BatchedRecommendationVecEnv(world=tiny_world, n_envs=2)
    env.seed(0)
    hp = {"learning_starts": 100, "buffer_size": 2_000, "policy_kwargs": policy_kwargs}
    model = build_model("dqn", env, policy="mlp", seed=0, hyperparameters=hp)
    model.learn(total_timesteps=steps)
    return model, env


def test_the_mlp_policy_duels_too_and_off_is_sb3s_network(tiny_world, tmp_path) -> None:
    from stable_baselines3.dqn.policies import MultiInputPolicy

    from lmrecsim.agents.dueling import DuelingQNetwork, MlpDQNPolicy

    plain, env = _mlp(tiny_world, {"net_arch": [32]})
    off, _ = _mlp(tiny_world, {"net_arch": [32], "dueling": False})
    on, _ = _mlp(tiny_world, {"net_arch": [32], "dueling": True})
    assert type(plain.policy) is MultiInputPolicy
    assert isinstance(off.policy, MlpDQNPolicy) and not off.policy.dueling
    for key, value in plain.q_net.state_dict().items():
        assert th.equal(value, off.q_net.state_dict()[key]), key
    assert isinstance(on.q_net, DuelingQNetwork) and isinstance(on.q_net_target, DuelingQNetwork)
    obs = env.reset()
    obs_t = _obs_tensor(on, obs)
    with th.no_grad():
        q = on.q_net(obs_t)
        head = on.q_net.q_net
        h = head.trunk(on.q_net.extract_features(obs_t, on.q_net.features_extractor))
        value, adv = head.value(h), head.advantage(h)
    assert th.allclose(q, value + adv - adv.mean(dim=1, keepdim=True), atol=1e-6)
    assert th.allclose(q.mean(dim=1, keepdim=True), value, atol=1e-5)
    on.save(tmp_path / "model.zip")
    loaded = load_model("dqn", str(tmp_path))
    assert loaded.policy.dueling is True
    with th.no_grad():
        assert th.equal(loaded.q_net(_obs_tensor(loaded, obs)), q)


@pytest.mark.parametrize("algo", ["ppo", "maskable_ppo"])
def test_dueling_is_refused_for_ppo(tiny_world, algo) -> None:
    from lmrecsim.agents.errors import AgentError

    env = BatchedRecommendationVecEnv(world=tiny_world, n_envs=2)
    for policy in ("candidate_scorer", "mlp"):
        with pytest.raises(
            AgentError, match="policy_kwargs.dueling: the dueling Q-network is a DQN"
        ):
            build_model(
                algo, env, policy=policy, hyperparameters={"policy_kwargs": {"dueling": True}}
            )


def test_a_row_without_valid_candidates_gets_finite_centred_q_values(tiny_world) -> None:
    model, env = _model(tiny_world, steps=300)
    obs = env.reset()
    obs["action_mask"][0] = 0
    with th.no_grad():
        q = model.q_net(_obs_tensor(model, obs))
        latent = model.q_net.extract_features(
            _obs_tensor(model, obs), model.q_net.features_extractor
        )
        value = model.q_net.q_net[0].value(latent[:, q.shape[1] :])
    assert bool(th.isfinite(q[0]).all())
    assert float(q[0].mean()) == pytest.approx(float(value[0]), abs=1e-5)


def test_dueling_double_n_step_dqn_never_takes_or_bootstraps_from_a_masked_slot(tiny_world):
    model, env = _model(tiny_world, double_q=True, n_steps=3, exploration_fraction=0.5)
    assert model.double_q and model.policy.dueling
    assert env.invalid_actions == 0
    np.random.seed(5)  # SB3's replay buffers sample with numpy's global generator
    data = model.replay_buffer.sample(128)
    mask = data.next_observations["action_mask"] > 0.5
    with th.no_grad():
        choice = model.q_net(data.next_observations).argmax(dim=1)
        target = model.q_net_target(data.next_observations)
    assert bool(mask[th.arange(mask.shape[0]), choice].all())
    picked = target.gather(1, choice[:, None])
    assert bool((picked > MASKED_SCORE / 2).all())  # the bootstrap value is a real one


@pytest.mark.parametrize(
    ("scenario", "dueling"),
    [
        ("default", True),
        ("clickbait", True),
        ("long_tail", True),
        ("interest_drift", True),
        ("cold_start", False),
    ],
)
def test_the_shipped_scenarios_choice(scenario, dueling) -> None:
    # Chosen by measurement (the yaml comments, RESULTS.md); a change must be measured again.
    from lmrecsim.scenarios import load_scenario

    hp = load_scenario(scenario).agent.hyperparameters_for("dqn")
    assert hp["policy_kwargs"]["dueling"] is dueling
