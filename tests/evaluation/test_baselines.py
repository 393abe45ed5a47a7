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
    with pytest.raises(AgentError, match=r"--policy 3: a int \(expected a policy spec string"):
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
