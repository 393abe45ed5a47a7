"""Candidate-scoring networks: shapes, masking in every algorithm, permutation equivariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from lmrecsim.agents.build import build_model
from lmrecsim.agents.scorer import (
    MASKED_SCORE,
    CandidateScorerDQNPolicy,
    CandidateScorerExtractor,
    CandidateScorerPolicy,
    MaskableCandidateScorerPolicy,
    candidate_scores,
)
from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv

from .conftest import RandomMaskVecEnv

K, P, F = 8, 16, 6


def _space() -> spaces.Dict:
    return spaces.Dict(
        {
            "user": spaces.Box(-np.inf, np.inf, shape=(P,), dtype=np.float32),
            "candidates": spaces.Box(-np.inf, np.inf, shape=(K, P), dtype=np.float32),
            "candidate_features": spaces.Box(-np.inf, np.inf, shape=(K, F), dtype=np.float32),
            "action_mask": spaces.MultiBinary(K),
        }
    )


def _obs(
    batch: int, seed: int, mask_rate: float = 0.5, k: int = K, p: int = P, f: int = F
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = rng.random((batch, k)) >= mask_rate
    mask[np.arange(batch), rng.integers(k, size=batch)] = True
    return {
        "user": rng.normal(size=(batch, p)).astype(np.float32),
        "candidates": rng.normal(size=(batch, k, p)).astype(np.float32),
        "candidate_features": rng.normal(size=(batch, k, f)).astype(np.float32),
        "action_mask": mask.astype(np.int8),
    }


def _torch(obs: dict[str, np.ndarray]) -> dict[str, th.Tensor]:
    return {k: th.as_tensor(v, dtype=th.float32) for k, v in obs.items()}


def _lr(_: float) -> float:
    return 1e-3


def _ppo_policy(cls: type = CandidateScorerPolicy) -> CandidateScorerPolicy:
    th.manual_seed(0)
    # A larger score-head gain than the near-uniform default makes scores differ visibly.
    return cls(_space(), spaces.Discrete(K), _lr, ortho_init=False)


def _dqn_policy() -> CandidateScorerDQNPolicy:
    th.manual_seed(0)
    return CandidateScorerDQNPolicy(_space(), spaces.Discrete(K), _lr)


def test_extractor_output_shape_and_masked_scores() -> None:
    th.manual_seed(0)
    ext = CandidateScorerExtractor(_space(), hidden=32, n_layers=2, summary_dim=12)
    obs = _obs(5, seed=1)
    out = ext(_torch(obs))
    assert out.shape == (5, K + 12) and ext.features_dim == K + 12
    scores = out[:, :K].detach().numpy()
    masked = obs["action_mask"] == 0
    assert masked.any()
    assert np.all(scores[masked] == MASKED_SCORE)
    assert np.all(np.abs(scores[~masked]) < 1e3)


def test_slate_with_no_valid_candidate_keeps_finite_scores() -> None:
    th.manual_seed(0)
    ext = CandidateScorerExtractor(_space())
    obs = _obs(3, seed=2)
    obs["action_mask"][1] = 0
    scores = ext(_torch(obs))[:, :K].detach().numpy()
    assert np.all(np.abs(scores[1]) < 1e3)
    assert np.any(scores[0] == MASKED_SCORE) or obs["action_mask"][0].all()


@pytest.mark.parametrize("cls", [CandidateScorerPolicy, MaskableCandidateScorerPolicy])
def test_actor_critic_shapes_and_masking(cls: type) -> None:
    policy = _ppo_policy(cls)
    obs = _obs(64, seed=3)
    obs_t = _torch(obs)
    with th.no_grad():
        dist = policy.get_distribution(obs_t)
        values = policy.predict_values(obs_t)
        probs = dist.distribution.probs.numpy()
    assert probs.shape == (64, K) and values.shape == (64, 1)
    assert np.all(probs[obs["action_mask"] == 0] == 0.0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    for deterministic in (True, False):
        for _ in range(5):
            actions, _ = policy.predict(obs, deterministic=deterministic)
            assert np.all(obs["action_mask"][np.arange(64), actions] == 1)


def test_fresh_ppo_policy_is_near_uniform_over_valid_candidates() -> None:
    th.manual_seed(0)
    policy = CandidateScorerPolicy(_space(), spaces.Discrete(K), _lr)  # ortho_init: small head
    obs = _obs(32, seed=4)
    with th.no_grad():
        probs = policy.get_distribution(_torch(obs)).distribution.probs.numpy()
    uniform = obs["action_mask"] / obs["action_mask"].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, uniform, atol=0.02)


def test_dqn_q_values_shape_and_masked_argmax() -> None:
    policy = _dqn_policy()
    obs = _obs(64, seed=5)
    with th.no_grad():
        q = policy.q_net(_torch(obs)).numpy()
        q_target = policy.q_net_target(_torch(obs)).numpy()
    assert q.shape == (64, K)
    masked = obs["action_mask"] == 0
    # Masked Q-values are far below any real one, so neither argmax nor the target's max picks them.
    assert np.all(q[masked] == MASKED_SCORE) and np.all(q_target[masked] == MASKED_SCORE)
    actions, _ = policy.predict(obs, deterministic=True)
    assert np.all(obs["action_mask"][np.arange(64), actions] == 1)


def _permuted(obs: dict[str, np.ndarray], perm: np.ndarray) -> dict[str, np.ndarray]:
    out = dict(obs)
    for key in ("candidates", "candidate_features", "action_mask"):
        out[key] = obs[key][:, perm]
    return out


def test_permuting_candidates_permutes_ppo_scores_and_keeps_the_value() -> None:
    policy = _ppo_policy()
    obs = _obs(16, seed=6, mask_rate=0.3)
    perm = np.random.default_rng(7).permutation(K)
    assert not np.array_equal(perm, np.arange(K))
    with th.no_grad():
        logits = policy.get_distribution(_torch(obs)).distribution.logits.numpy()
        logits_p = policy.get_distribution(_torch(_permuted(obs, perm))).distribution.logits.numpy()
        v = policy.predict_values(_torch(obs)).numpy()
        v_p = policy.predict_values(_torch(_permuted(obs, perm))).numpy()
    np.testing.assert_allclose(logits_p, logits[:, perm], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(v_p, v, rtol=1e-5, atol=1e-5)
    # The scores depend on the candidate, not only on its slot.
    assert np.ptp(logits[obs["action_mask"] > 0]) > 1e-3


def test_permuting_candidates_permutes_dqn_q_values() -> None:
    policy = _dqn_policy()
    obs = _obs(16, seed=8, mask_rate=0.3)
    perm = np.random.default_rng(9).permutation(K)
    with th.no_grad():
        q = policy.q_net(_torch(obs)).numpy()
        q_p = policy.q_net(_torch(_permuted(obs, perm))).numpy()
    np.testing.assert_allclose(q_p, q[:, perm], rtol=1e-5, atol=1e-5)


def _masked_env(world, n_envs: int = 4) -> RandomMaskVecEnv:
    venv = BatchedRecommendationVecEnv(world.scenario, n_envs, world=world)
    venv.seed(0)
    return RandomMaskVecEnv(venv, seed=1)


@pytest.mark.parametrize("algo", ["ppo", "maskable_ppo"])
def test_ppo_training_never_picks_a_masked_candidate(tiny_world, algo: str) -> None:
    env = _masked_env(tiny_world)
    model = build_model(
        algo, env, seed=0, hyperparameters={"n_steps": 32, "batch_size": 64, "n_epochs": 2}
    )
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    assert env.invalid_actions == 0
    obs = env.reset()
    for _ in range(20):
        kwargs = {"action_masks": env.action_masks()} if algo == "maskable_ppo" else {}
        actions, _ = model.predict(obs, deterministic=False, **kwargs)
        obs, *_ = env.step(actions)
    assert env.invalid_actions == 0


def test_dqn_warmup_exploration_and_greedy_never_pick_a_masked_candidate(tiny_world) -> None:
    env = _masked_env(tiny_world)
    hp = {
        "learning_starts": 200,  # 200 warm-up steps of uniform actions ...
        "exploration_fraction": 1.0,  # ... then epsilon stays high: many exploratory actions
        "exploration_initial_eps": 1.0,
        "exploration_final_eps": 0.5,
        "buffer_size": 2_000,
        "train_freq": 1,
    }
    model = build_model("dqn", env, seed=0, hyperparameters=hp)
    model.learn(total_timesteps=600)
    assert env.invalid_actions == 0
    # What was stored in the replay buffer is valid too.
    n = model.replay_buffer.pos
    masks = model.replay_buffer.observations["action_mask"][:n]
    acts = model.replay_buffer.actions[:n, :, 0].astype(np.int64)
    assert np.take_along_axis(masks, acts[..., None], axis=2).all()
    # Pure exploration (epsilon 1) and greedy prediction on masked observations.
    k, p = env.observation_space["candidates"].shape
    f = env.observation_space["candidate_features"].shape[1]
    obs = _obs(256, seed=10, k=k, p=p, f=f)
    model.exploration_rate = 1.0
    explored, _ = model.predict(obs, deterministic=False)
    assert np.all(obs["action_mask"][np.arange(256), explored] == 1)
    assert len(np.unique(explored)) == k  # it does explore, across every slot
    greedy, _ = model.predict(obs, deterministic=True)
    assert np.all(obs["action_mask"][np.arange(256), greedy] == 1)


def test_candidate_scores_match_the_policy_logits(tiny_world) -> None:
    env = BatchedRecommendationVecEnv(tiny_world.scenario, 2, world=tiny_world)
    env.seed(0)
    obs = env.reset()
    for algo in ("ppo", "maskable_ppo", "dqn"):
        model = build_model(algo, env, seed=0)
        batch = candidate_scores(model, obs)
        single = candidate_scores(model, {k: v[0] for k, v in obs.items()})
        assert batch.shape == (2, tiny_world.scenario.candidates.k)
        np.testing.assert_allclose(single, batch[0], rtol=1e-5, atol=1e-6)


def test_critic_with_its_own_extractor_keeps_masking_and_equivariance() -> None:
    th.manual_seed(0)
    policy = CandidateScorerPolicy(
        _space(), spaces.Discrete(K), _lr, ortho_init=False, share_features_extractor=False
    )
    assert policy.vf_features_extractor is not policy.pi_features_extractor
    obs = _obs(16, seed=11)
    perm = np.random.default_rng(12).permutation(K)
    with th.no_grad():
        probs = policy.get_distribution(_torch(obs)).distribution.probs.numpy()
        probs_p = policy.get_distribution(_torch(_permuted(obs, perm))).distribution.probs.numpy()
        v = policy.predict_values(_torch(obs)).numpy()
        v_p = policy.predict_values(_torch(_permuted(obs, perm))).numpy()
    assert np.all(probs[obs["action_mask"] == 0] == 0.0)
    np.testing.assert_allclose(probs_p, probs[:, perm], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v_p, v, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("scenario", "shared"),
    [
        ("default", False),
        ("clickbait", False),
        ("long_tail", False),
        ("cold_start", False),
        ("interest_drift", True),
    ],
)
def test_the_shipped_scenarios_critic_extractor(scenario, shared) -> None:
    # Chosen by measurement (the yaml comments, RESULTS.md); a change must be measured again.
    from lmrecsim.scenarios import load_scenario

    hp = load_scenario(scenario).agent.hyperparameters_for("ppo")
    assert hp["policy_kwargs"]["share_features_extractor"] is shared


def test_the_shipped_separate_critic_learns_apart_from_the_actor(tiny_world) -> None:
    # default.yaml's PPO settings give the critic its own extractor: the value loss trains that
    # copy and leaves the actor's scores untouched (with a shared one it moves them too).
    from lmrecsim.scenarios import load_scenario

    env = BatchedRecommendationVecEnv(tiny_world.scenario, 4, world=tiny_world)
    env.seed(0)
    obs = env.reset()
    hp = load_scenario("default").agent.hyperparameters_for("ppo")
    for shared in (False, True):
        kwargs = {**hp, "policy_kwargs": {"share_features_extractor": shared}}
        policy = build_model("ppo", env, seed=0, hyperparameters=kwargs).policy
        assert (policy.vf_features_extractor is policy.pi_features_extractor) is shared
        obs_t, _ = policy.obs_to_tensor(obs)
        policy.predict_values(obs_t).pow(2).sum().backward()
        actor = [p.grad for p in policy.pi_features_extractor.trunk.parameters()]
        critic = [p.grad for p in policy.vf_features_extractor.trunk.parameters()]
        assert all(g is not None and float(g.abs().sum()) > 0 for g in critic)
        touched = any(g is not None and float(g.abs().sum()) > 0 for g in actor)
        assert touched is shared
