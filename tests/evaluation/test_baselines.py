"""Baseline policies, the policy-spec parser and the oracle > greedy > random ordering."""

from __future__ import annotations

import numpy as np
import pytest

from lmrecsim.agents.baselines import (
    EpsilonGreedyPolicy,
    GreedyPolicy,
    LinUCBPolicy,
    OraclePolicy,
    PopularPolicy,
    RandomPolicy,
    make_policy,
)
from lmrecsim.agents.errors import AgentError
from lmrecsim.envs.world import build_world
from lmrecsim.evaluation.rollout import episode_returns, run_policy
from lmrecsim.scenarios import load_scenario, shipped_scenario_names


@pytest.fixture(scope="module")
def default_world():
    return build_world(load_scenario("default"))


def _obs(k: int = 4, p: int = 3) -> dict[str, np.ndarray]:
    user = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    cands = np.array([[0, 1, 0], [1, 0, 0], [1, 1, 0], [-1, 0, 0]], dtype=np.float32)
    feats = np.zeros((k, 6), dtype=np.float32)
    feats[:, 0] = [0.9, 0.1, 0.5, 0.2]
    return {
        "user": user,
        "candidates": cands,
        "candidate_features": feats,
        "action_mask": np.array([1, 0, 1, 1], dtype=np.int8),
    }


def test_popular_and_greedy_pick_the_best_valid_slot() -> None:
    obs = _obs()
    assert int(PopularPolicy().predict(obs)[0]) == 0
    # Slot 1 has cosine 1 but is masked; slot 2 has cosine 1/sqrt(2).
    assert int(GreedyPolicy().predict(obs)[0]) == 2
    assert np.isneginf(GreedyPolicy().scores(obs)[1])


def test_egreedy_probabilities_are_exact_and_sampled() -> None:
    obs = _obs()
    pol = EpsilonGreedyPolicy(epsilon=0.3, seed=1)
    probs = pol.action_probabilities(obs)
    np.testing.assert_allclose(probs, [0.1, 0.0, 0.8, 0.1])
    n = 4000
    draws = np.array([int(pol.predict(obs, deterministic=True)[0]) for _ in range(n)])
    share = np.mean(draws == 2)
    assert abs(share - 0.8) < 4 * np.sqrt(0.8 * 0.2 / n)
    assert not np.any(draws == 1)


def test_linucb_learns_a_rewarding_direction() -> None:
    obs = _obs()
    pol = LinUCBPolicy(alpha=0.0)
    for _ in range(30):
        pol.observe(obs, 3, 1.0, {"invalid_action": False})
        pol.observe(obs, 0, 0.0, {"invalid_action": False})
    assert int(pol.predict(obs)[0]) == 3
    assert pol.n_updates == 60


def test_oracle_needs_binding_and_is_privileged() -> None:
    with pytest.raises(AgentError, match="bind"):
        OraclePolicy().scores(_obs())
    assert OraclePolicy.privileged is True
    assert RandomPolicy.privileged is False


def test_make_policy_specs(default_world) -> None:
    label, pol = make_policy("greedy", default_world)
    assert label == "greedy" and isinstance(pol, GreedyPolicy)
    label, pol = make_policy("mine=egreedy", default_world)
    assert label == "mine" and isinstance(pol, EpsilonGreedyPolicy)
    with pytest.raises(AgentError, match="unknown policy"):
        make_policy("bogus", default_world)
    with pytest.raises(AgentError, match="missing model path"):
        make_policy("ppo:", default_world)
    with pytest.raises(AgentError, match="not found"):
        make_policy("x=dqn:/nonexistent/run", default_world)
    with pytest.raises(AgentError, match=r"policy 3: a int \(expected a policy spec string"):
        make_policy(3, default_world)  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", [RandomPolicy, EpsilonGreedyPolicy])
def test_a_bad_policy_seed_is_one_line_naming_the_policy(cls) -> None:
    # numpy's "expected non-negative integer" (-1) or SeedSequence's TypeError (1.5).
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(AgentError, match=rf"^{cls.__name__}: seed .* \(expected None or an"):
            cls(seed=bad)
    assert cls(seed=np.int64(3)).seed == 3 and type(cls(seed=np.int64(3)).seed) is int


def _per_seed_returns(world, spec: str, seeds: list[int], episodes: int) -> np.ndarray:
    label, pol = make_policy(spec, world)
    steps, _ = run_policy(world, pol, label=label, seeds=seeds, episodes=episodes)
    return episode_returns(steps).groupby("seed")["ret"].mean().to_numpy()


@pytest.mark.parametrize("name", shipped_scenario_names())
def test_oracle_beats_greedy_beats_random_on_every_seed(name: str) -> None:
    world = build_world(load_scenario(name))
    seeds = [11, 12, 13]
    ret = {s: _per_seed_returns(world, s, seeds, 8) for s in ("random", "greedy", "oracle")}
    # Stable ranking: the ordering holds for the mean of every seed separately.
    assert np.all(ret["oracle"] > ret["greedy"]), (name, ret)
    assert np.all(ret["oracle"] > ret["random"]), (name, ret)


def _batched_vec_env(world, n: int = 4):
    from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv

    venv = BatchedRecommendationVecEnv(world=world, n_envs=n)
    venv.seed(5)
    return venv, venv.reset()


def _rows(obs: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    n = obs["action_mask"].shape[0]
    return [{k: v[i] for k, v in obs.items()} for i in range(n)]


@pytest.mark.parametrize("name", ["greedy", "popular", "linucb"])
def test_scoring_baselines_act_on_batched_observations_row_by_row(default_world, name) -> None:
    # A VecEnv observation has a leading B axis; SB3's evaluate_policy hands it to predict as is.
    venv, obs = _batched_vec_env(default_world)
    _, pol = make_policy(name, default_world)
    for _ in range(3):
        actions, _ = pol.predict(obs)
        expected = [int(pol.predict(row)[0]) for row in _rows(obs)]
        assert actions.shape == (4,) and actions.dtype == np.int64
        assert actions.tolist() == expected
        assert all(obs["action_mask"][i, a] for i, a in enumerate(actions))
        obs, *_ = venv.step(actions)


def test_oracle_reads_every_row_of_a_batched_env_and_of_a_dummy_vec_env(default_world) -> None:
    from stable_baselines3.common.vec_env import DummyVecEnv

    from lmrecsim.envs.env import RecommendationEnv

    venv, obs = _batched_vec_env(default_world)
    oracle = OraclePolicy()
    oracle.bind(venv)
    aff = venv.users.candidate_affinity(np.arange(4))
    expected = np.argmax(np.where(obs["action_mask"] > 0, aff, -np.inf), axis=1)
    assert oracle.predict(obs)[0].tolist() == expected.tolist()
    # The rows really differ (four users), so a row mix-up would show.
    assert len(set(expected.tolist())) > 1 or len({tuple(r) for r in aff.round(6)}) > 1

    dummy = DummyVecEnv([lambda: RecommendationEnv(world=default_world) for _ in range(3)])
    dummy.seed(11)
    dobs = dummy.reset()
    oracle.bind(dummy)
    singles = []
    for i, env in enumerate(dummy.envs):
        one = OraclePolicy()
        one.bind(env)
        singles.append(int(one.predict({k: v[i] for k, v in dobs.items()})[0]))
    assert oracle.predict(dobs)[0].tolist() == singles
    with pytest.raises(AgentError, match="bound to 3 envs, observation has 4 rows"):
        oracle.predict(obs)
    oracle.bind(object())
    with pytest.raises(AgentError, match="cannot read the hidden state of object"):
        oracle.predict(obs)


def test_egreedy_and_slates_on_batched_observations(default_world) -> None:
    venv, obs = _batched_vec_env(default_world)
    a, b = EpsilonGreedyPolicy(epsilon=0.5, seed=3), EpsilonGreedyPolicy(epsilon=0.5, seed=3)
    batched = a.predict(obs)[0]
    assert batched.tolist() == [int(b.predict(row)[0]) for row in _rows(obs)]
    for pol in (GreedyPolicy(slate_size=3), EpsilonGreedyPolicy(0.5, seed=3, slate_size=3)):
        twin = (
            GreedyPolicy(slate_size=3)
            if isinstance(pol, GreedyPolicy)
            else (EpsilonGreedyPolicy(0.5, seed=3, slate_size=3))
        )
        slates = pol.predict(obs)[0]
        assert slates.shape == (4, 3)
        assert slates.tolist() == [twin.predict(row)[0].tolist() for row in _rows(obs)]
        assert all(len(set(s)) == 3 for s in slates.tolist())


def test_sb3_evaluate_policy_runs_baselines_on_the_batched_env(default_world) -> None:
    from stable_baselines3.common.evaluation import evaluate_policy

    venv, _ = _batched_vec_env(default_world)
    oracle = OraclePolicy()
    oracle.bind(venv)
    returns = {}
    for label, pol in (("random", RandomPolicy(seed=0)), ("oracle", oracle)):
        venv.seed(21)
        returns[label], _ = evaluate_policy(pol, venv, n_eval_episodes=16, warn=False)
    # The oracle's margin over random on default is several points per episode.
    assert returns["oracle"] > returns["random"] + 3.0
