"""The softmax (Boltzmann) baseline and the tunable baseline specs (``egreedy:EPS``,
``softmax:TEMP[:EPS]``): its probabilities are those its draws follow, for single items and
slates, with and without a uniform floor."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lmrecsim.agents.baselines import (
    EpsilonGreedyPolicy,
    GreedyPolicy,
    SoftmaxPolicy,
    make_policy,
)
from lmrecsim.agents.errors import AgentError
from lmrecsim.envs.world import build_world
from lmrecsim.scenarios import scenario_from_dict
from tests.fakes import fake_observation as _obs


def test_probabilities_are_the_tempered_softmax_of_greedys_scores() -> None:
    obs = _obs()
    scores = GreedyPolicy().scores(obs)
    valid = np.flatnonzero(obs["action_mask"])
    for temperature in (0.05, 0.3, 2.0):
        p = SoftmaxPolicy(temperature).action_probabilities(obs)
        w = np.exp(scores[valid] / temperature)
        np.testing.assert_allclose(p[valid], w / w.sum(), rtol=1e-12)
        assert p.sum() == pytest.approx(1.0) and np.all(p[[1, 4]] == 0.0)
    # Cold approaches greedy, hot approaches uniform over the valid slots.
    assert SoftmaxPolicy(1e-4).action_probabilities(obs)[np.argmax(scores)] == pytest.approx(1.0)
    np.testing.assert_allclose(SoftmaxPolicy(1e4).action_probabilities(obs)[valid], 0.25, atol=1e-3)
    # No valid slot at all: uniform over every slot, as for the other baselines.
    empty = _obs(valid=())
    np.testing.assert_allclose(SoftmaxPolicy(0.1).action_probabilities(empty), 1 / 6)


def test_single_item_draws_follow_the_probabilities_and_restart_per_episode() -> None:
    obs = _obs()
    pol = SoftmaxPolicy(0.5, seed=3)
    p = pol.action_probabilities(obs)
    n = 4000
    draws = np.array([int(pol.predict(obs, deterministic=True)[0]) for _ in range(n)])
    freq = np.bincount(draws, minlength=6) / n
    tol = 4.5 * np.sqrt(p * (1 - p) / n) + 1e-12  # per-slot binomial sd, 4.5 sigma over 6 slots
    assert np.all(np.abs(freq - p) <= tol), (freq, p)
    # Batched observations: one draw per row, in order, from the one generator.
    batch = {key: np.stack([value] * 5) for key, value in obs.items()}
    pol.reseed(1000, 2)
    rows = pol.predict(batch)[0]
    pol.reseed(1000, 2)
    assert rows.tolist() == [int(pol.predict(obs)[0]) for _ in range(5)]


def test_slate_probabilities_sum_to_one_and_match_the_plackett_luce_draws() -> None:
    obs = _obs(k=5, valid=(0, 1, 3, 4))
    pol = SoftmaxPolicy(0.4, seed=2, slate_size=2)
    probs = {
        s: pol.slate_probability(obs, np.array(s)) for s in itertools.permutations(range(5), 2)
    }
    assert sum(probs.values()) == pytest.approx(1.0)
    assert all(probs[s] == 0.0 for s in probs if 2 in s)
    first = pol.action_probabilities(obs)
    for slate, p in probs.items():
        # Plackett-Luce: the second slot is the softmax over the valid slots left.
        a, b = slate
        if 2 not in slate:
            assert p == pytest.approx(first[a] * first[b] / (1.0 - first[a]))
        prefix = pol.prefix_probabilities(obs, np.array(slate))
        table = pol.conditional_probabilities(obs, np.array(slate))
        assert prefix[0] == pytest.approx(first[a]) and prefix[1] == pytest.approx(p)
        assert table[1, b] * table[0, a] == pytest.approx(p)
    _check_pair_draws(pol, obs, probs, (max(probs, key=probs.get), (4, 0), (1, 3)))


def _check_pair_draws(pol, obs, probs: dict, checked) -> None:
    """6,000 slates of two drawn by ``pol``: distinct valid slots, each ``checked`` slate as often
    as ``probs`` says (4.5 binomial sigma), and the second position's marginals the sums of
    ``probs`` over the first."""
    n = 6000
    draws = np.stack([pol.predict(obs)[0] for _ in range(n)])
    assert all(obs["action_mask"][s] for s in draws.ravel()) and np.all(draws[:, 0] != draws[:, 1])
    for slate in checked:
        share = np.mean(np.all(draws == slate, axis=1))
        sd = np.sqrt(probs[slate] * (1 - probs[slate]) / n)
        assert abs(share - probs[slate]) < 4.5 * sd, (slate, share, probs[slate])
    for slot in np.flatnonzero(obs["action_mask"]):
        second = sum(v for s, v in probs.items() if s[1] == slot)
        assert pol.position_probabilities(obs, np.array([slot, slot]))[1] == pytest.approx(second)


def test_short_slates_repeat_the_first_slot_with_the_probabilities_saying_so() -> None:
    obs = _obs(valid=(1, 4))
    pol = SoftmaxPolicy(0.2, seed=0, slate_size=3)
    for _ in range(20):
        slate = pol.predict(obs)[0].tolist()
        assert sorted(slate[:2]) == [1, 4] and slate[2] == slate[0]
    total = pol.slate_probability(obs, np.array([1, 4, 1])) + pol.slate_probability(
        obs, np.array([4, 1, 4])
    )
    assert total == pytest.approx(1.0)
    assert pol.slate_probability(obs, np.array([1, 4, 4])) == 0.0
    marginals = pol.position_probabilities(obs, np.array([1, 4, 1]))
    assert marginals[2] == pytest.approx(marginals[0])


def test_a_floor_mixes_in_the_uniform_rule_and_gives_every_valid_slot_its_share() -> None:
    obs = _obs()
    valid = np.flatnonzero(obs["action_mask"])
    cold, floored = SoftmaxPolicy(0.01), SoftmaxPolicy(0.01, epsilon=0.2)
    p, q = cold.action_probabilities(obs), floored.action_probabilities(obs)
    np.testing.assert_allclose(q, 0.8 * p + 0.2 * obs["action_mask"] / 4, rtol=1e-12)
    assert q[valid].min() >= 0.05 - 1e-15 and p[valid].min() < 1e-10  # the floor: epsilon / n
    assert np.all(q[[1, 4]] == 0.0)
    # epsilon 1 is the random rule; epsilon 0 leaves the policy as it was, draws included.
    np.testing.assert_allclose(
        SoftmaxPolicy(0.01, epsilon=1.0).action_probabilities(obs)[valid], 0.25
    )
    # The slates the policy drew before the floor existed (the code of 1b11c1c, this seed):
    before = [
        [0, 2, 3],
        [2, 0, 5],
        [0, 2, 3],
        [0, 2, 5],
        [2, 5, 0],
        [0, 2, 3],
        [2, 0, 3],
        [0, 2, 3],
    ]
    pol = SoftmaxPolicy(0.3, seed=5, slate_size=3, epsilon=0.0)
    assert [pol.draw(obs).tolist() for _ in range(8)] == before


def test_floored_slates_sum_to_one_and_match_their_draws_and_marginals() -> None:
    obs = _obs(k=5, valid=(0, 1, 3, 4))
    eps = 0.3
    pol = SoftmaxPolicy(0.05, seed=11, slate_size=2, epsilon=eps)
    slates = list(itertools.permutations(range(5), 2))
    probs = {s: pol.slate_probability(obs, np.array(s)) for s in slates}
    assert sum(probs.values()) == pytest.approx(1.0)
    assert all(probs[s] == 0.0 for s in slates if 2 in s)
    # Each position: (1 - eps) * Plackett-Luce over the slots left + eps * uniform over them.
    plain = SoftmaxPolicy(0.05, slate_size=2)
    first = plain.action_probabilities(obs)
    for a, b in slates:
        if 2 in (a, b):
            continue
        expected = ((1 - eps) * first[a] + eps / 4) * (
            (1 - eps) * first[b] / (1 - first[a]) + eps / 3
        )
        assert probs[(a, b)] == pytest.approx(expected, rel=1e-12)
        assert min(probs[(a, b)], 1.0) >= (eps / 4) * (eps / 3) - 1e-15
    least = min((s for s in slates if probs[s] > 0), key=probs.get)
    _check_pair_draws(pol, obs, probs, (max(probs, key=probs.get), least, (1, 3)))
    # Short slates still repeat the first slot, with probabilities saying so.
    short = SoftmaxPolicy(0.2, seed=1, slate_size=3, epsilon=0.5)
    few = _obs(valid=(1, 4))
    for _ in range(20):
        slate = short.draw(few).tolist()
        assert sorted(slate[:2]) == [1, 4] and slate[2] == slate[0]
    total = short.slate_probability(few, np.array([1, 4, 1])) + short.slate_probability(
        few, np.array([4, 1, 4])
    )
    assert total == pytest.approx(1.0)


@pytest.fixture(scope="module")
def world():
    return build_world(scenario_from_dict({"extends": "default", "name": "tiny"}))


def test_specs_set_the_parameter_and_refuse_bad_values_in_one_line(world) -> None:
    label, pol = make_policy("egreedy:0.35", world, seed=4)
    assert label == "egreedy:0.35" and isinstance(pol, EpsilonGreedyPolicy)
    assert pol.epsilon == 0.35 and pol.seed == 4
    assert make_policy("egreedy", world)[1].epsilon == 0.1
    label, pol = make_policy("cool=softmax:0.05", world)
    assert label == "cool" and isinstance(pol, SoftmaxPolicy) and pol.temperature == 0.05
    assert make_policy("softmax", world)[1].temperature == 0.1
    assert make_policy("softmax", world)[1].epsilon == 0.0
    label, pol = make_policy("softmax:0.2:0.05", world)
    assert label == "softmax:0.2:0.05" and (pol.temperature, pol.epsilon) == (0.2, 0.05)
    for spec, expected in (
        ("softmax:0", "policy 'softmax:0': softmax: temperature 0.0 (expected a finite number"),
        ("softmax:-1", "temperature -1.0 (expected a finite number >= 1e-100)"),
        # A subnormal temperature made infinite logits and NaN probabilities.
        ("softmax:1e-310", "policy 'softmax:1e-310': softmax: temperature 1e-310 (expected"),
        ("softmax:inf", "temperature inf"),
        ("softmax:warm", "policy 'softmax:warm': 'warm' is not a number (expected softmax:"),
        ("egreedy:1.5", "policy 'egreedy:1.5': egreedy: epsilon must lie in [0, 1], got 1.5"),
        ("egreedy:", "policy 'egreedy:': '' is not a number (expected egreedy:EPSILON"),
        ("softmax:0.2:1.5", "policy 'softmax:0.2:1.5': softmax: epsilon 1.5 (expected a number"),
        ("softmax:0.2:x", "'x' is not a number (expected softmax:TEMPERATURE[:EPSILON], such as"),
        ("softmax:1:0:0", "3 values (expected softmax:TEMPERATURE[:EPSILON]"),
        ("softmax:0_1", "'0_1' is not a number"),  # not 1.0, as Python's float reads it
        ("egreedy:0.1:0.1", "2 values (expected egreedy:EPSILON, such as egreedy:0.1)"),
    ):
        with pytest.raises(AgentError) as err:
            make_policy(spec, world)
        assert expected in str(err.value) and "\n" not in str(err.value)


def test_a_softmax_log_gives_ips_of_greedy_and_replays_exactly(tmp_path: Path) -> None:
    """End to end through the commands: ``evaluate`` logs softmax's draws with its propensities,
    ``replay`` reproduces that log, and ``ope`` estimates greedy's value from it."""
    from lmrecsim.cli import main

    bandit = tmp_path / "bandit.yaml"
    bandit.write_text("extends: default\nname: bandit\nepisode: {horizon: 1}\ncandidates: {k: 5}\n")
    report = tmp_path / "report"
    argv = ["evaluate", "--scenario", str(bandit), "--policy", "softmax:0.05", "--policy", "greedy"]
    argv += ["--seeds", "7", "--episodes", "300", "--out", str(report), "--no-progress"]
    assert main(argv) == 0
    log = pd.read_parquet(report / "episodes.parquet")
    soft = log[log["policy"] == "softmax:0.05"]
    assert len(soft) == 300 and soft["propensity"].between(0.0, 1.0, inclusive="right").all()
    assert soft["propensity"].nunique() > 50  # smooth propensities, not egreedy's two values
    assert main(["replay", str(report / "episodes.parquet"), "--out", str(tmp_path / "r")]) == 0
    out = tmp_path / "ope"
    argv = ["ope", str(report / "episodes.parquet"), "--logged-policy", "softmax:0.05"]
    assert main([*argv, "--policy", "greedy", "--estimator", "snips", "--out", str(out)]) == 0
    table = pd.read_csv(out / "ope.csv").set_index("estimator")
    greedy_mean = log[log["policy"] == "greedy"]["reward"].mean()
    row = table.loc["snips"]
    # Its interval covers greedy's own mean reward on the same 300 users.
    assert row["ci_low"] <= greedy_mean <= row["ci_high"], (row.to_dict(), greedy_mean)
    assert row["ess"] > 10


def test_a_cold_softmax_over_disliked_candidates_gives_no_overflow_warning() -> None:
    import warnings

    obs = _obs()
    obs["candidates"][[0, 2, 3, 5]] = -obs["user"] * np.array([[1.0], [2.0], [3.0], [4.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # masked slots were exponentiated too, and overflowed
        p = SoftmaxPolicy(1e-6).action_probabilities(obs)
    assert p.sum() == pytest.approx(1.0) and np.all(p[[1, 4]] == 0.0)
