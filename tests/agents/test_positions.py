"""Item-position marginals of slate policies, against enumerating every slate."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch as th

from lmrecsim.agents.base import sequential_prefix_probabilities
from lmrecsim.agents.positions import (
    TooManySlates,
    _lattice,
    epsilon_rule_marginals,
    logged_marginals,
    plackett_luce_marginals,
    position_indicators,
)
from lmrecsim.agents.slate import PlackettLuceDistribution

K, L = 6, 3

# Rows: many valid slots, exactly L, fewer than L, one, none.
MASKS = np.array(
    [
        [1, 1, 0, 1, 1, 1],
        [0, 1, 0, 1, 1, 0],
        [1, 0, 0, 0, 1, 0],
        [0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ],
    dtype=bool,
)


def _scores(seed: int = 0) -> np.ndarray:
    scores = np.random.default_rng(seed).standard_normal(MASKS.shape)
    scores[0, 3] = scores[0, 4]  # a tie: the lower slot goes first
    return scores


@pytest.mark.parametrize("epsilon", [1.0, 0.3, 0.0])
def test_epsilon_rule_marginals_are_the_slates_probabilities_summed(epsilon: float) -> None:
    scores = _scores()
    got = epsilon_rule_marginals(MASKS, scores, L, epsilon)
    for row, (mask, s) in enumerate(zip(MASKS, scores, strict=True)):
        want = np.zeros((L, K))
        for slate in itertools.product(range(K), repeat=L):
            p = sequential_prefix_probabilities(mask, s, L, epsilon, np.array(slate))[-1]
            for j, slot in enumerate(slate):
                want[j, slot] += p
        np.testing.assert_allclose(got[row], want, atol=1e-12, err_msg=f"row {row}")
    # Each position holds exactly one slot.
    np.testing.assert_allclose(got.sum(axis=2), 1.0)


def _pl_slates(mask: np.ndarray) -> list[tuple[int, ...]]:
    """Every slate the Plackett-Luce distribution draws: valid slots in any order, then the
    masked ones in increasing order once the valid ones run out."""
    valid = np.flatnonzero(mask).tolist()
    rest = np.flatnonzero(~mask).tolist()
    n = min(len(valid), L)
    if not valid:
        return [tuple(range(L))]
    return [p + tuple(rest[: L - n]) for p in itertools.permutations(valid, n)]


def test_plackett_luce_marginals_are_the_slates_probabilities_summed() -> None:
    logits = th.tensor(_scores(1), dtype=th.float64)
    dist = PlackettLuceDistribution(K, L).proba_distribution(logits, th.tensor(MASKS))
    got = plackett_luce_marginals(dist.probs.numpy(), MASKS, L)
    for row, mask in enumerate(MASKS):
        slates = _pl_slates(mask)
        # The row's distribution once per slate, to score them all in one call.
        one = PlackettLuceDistribution(K, L).proba_distribution(
            logits[row : row + 1].repeat(len(slates), 1),
            th.tensor(mask[None]).repeat(len(slates), 1),
        )
        probs = np.exp(one.log_prob(th.tensor(slates)).numpy())
        assert probs.sum() == pytest.approx(1.0)
        want = np.zeros((L, K))
        for slate, p in zip(slates, probs, strict=True):
            for j, slot in enumerate(slate):
                want[j, slot] += p
        np.testing.assert_allclose(got[row], want, atol=1e-12, err_msg=f"row {row}")
    np.testing.assert_allclose(got.sum(axis=2), 1.0)


def test_plackett_luce_marginals_match_the_draws() -> None:
    # Gumbel-top-L draws of the distribution itself: each cell within 4.5 binomial sds.
    logits = th.tensor(_scores(2)[:1], dtype=th.float64)
    mask = th.tensor(MASKS[:1])
    n = 20_000
    dist = PlackettLuceDistribution(K, L).proba_distribution(logits.repeat(n, 1), mask.repeat(n, 1))
    th.manual_seed(0)
    draws = dist.sample().numpy()
    got = plackett_luce_marginals(dist.probs.numpy()[:1], MASKS[:1], L)[0]
    for j in range(L):
        freq = np.bincount(draws[:, j], minlength=K) / n
        sd = np.sqrt(got[j] * (1 - got[j]) / n)
        assert (np.abs(freq - got[j]) <= 4.5 * sd + 1e-12).all(), (j, freq, got[j])


def test_logged_marginals_and_indicators() -> None:
    marginals = np.arange(2 * L * K, dtype=np.float64).reshape(2, L, K)
    slates = np.array([[0, 5, 2], [3, 3, 1]])
    np.testing.assert_array_equal(logged_marginals(marginals, slates), [[0, 11, 14], [21, 27, 31]])
    # A deterministic policy's: 1 where the logged slate has its slot, position by position.
    np.testing.assert_array_equal(position_indicators([4, 1, 2], [4, 2, 2]), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(position_indicators([4, 1], [4, 1, 2]), [0.0, 0.0, 0.0])


def test_past_the_lattice_budget_only_the_first_position_is_known() -> None:
    # 200 candidates and slates of 5: about 13 billion (set, slot) pairs.
    with pytest.raises(TooManySlates, match="200 candidates and slates of 5"):
        _lattice(200, 5)
    mask = np.ones((2, 200), dtype=bool)
    mask[1, 150:] = False
    probs = np.random.default_rng(3).random((2, 200)) * mask
    probs /= probs.sum(axis=1, keepdims=True)
    got = plackett_luce_marginals(probs, mask, 5)
    np.testing.assert_allclose(got[:, 0], probs)
    assert np.isnan(got[:, 1:]).all()
    # Uniform draws need no lattice: every valid slot is as likely at every position.
    uniform = epsilon_rule_marginals(mask, None, 5, 1.0)
    np.testing.assert_allclose(uniform, np.repeat(mask[:, None] / mask.sum(1)[:, None, None], 5, 1))


def test_shown_probabilities_are_the_enumerated_slates_shown_items() -> None:
    """Position l shows slot k with the summed probability of the slates whose l-th slot is a
    valid k not shown above it: every one of the K^L slates, repeats included."""
    from lmrecsim.agents.base import RandomPolicy
    from lmrecsim.agents.baselines import EpsilonGreedyPolicy, GreedyPolicy, SoftmaxPolicy
    from lmrecsim.envs.simulator import slate_shown
    from tests.fakes import fake_observation

    slates = np.array(list(itertools.product(range(K), repeat=L)))
    policies = [
        RandomPolicy(0, slate_size=L),
        EpsilonGreedyPolicy(0.3, slate_size=L),
        SoftmaxPolicy(0.5, slate_size=L),
        SoftmaxPolicy(0.1, slate_size=L, epsilon=0.25),
        # Cold: once the best slots are taken, every weight left is below float64's smallest
        # relative to the first position's best (the marginals lost those positions then).
        SoftmaxPolicy(5e-4, slate_size=L, epsilon=0.2),
        SoftmaxPolicy(1e-6, slate_size=L),
        GreedyPolicy(slate_size=L),
    ]
    for row, mask in enumerate(MASKS):
        obs = fake_observation(k=K, valid=tuple(np.flatnonzero(mask).tolist()))
        shows = slate_shown(slates, np.broadcast_to(mask, (slates.shape[0], K)))
        for pol in policies:
            probs = np.array([pol.slate_probability(obs, s) for s in slates])
            assert probs.sum() == pytest.approx(1.0), (type(pol).__name__, row)
            expected = np.zeros((L, K))
            for s, p, shown in zip(slates, probs, shows, strict=True):
                expected[np.flatnonzero(shown), s[shown]] += p
            got = pol.shown_probabilities(obs)
            np.testing.assert_allclose(got, expected, atol=1e-12, err_msg=f"{pol} {mask}")
            for slate in slates[probs > 0][:20]:  # and the item-position marginals behind them
                marginal = [probs[slates[:, j] == slate[j]].sum() for j in range(L)]
                got = pol.position_probabilities(obs, slate)
                np.testing.assert_allclose(got, marginal, atol=1e-12, err_msg=f"{pol} {slate}")
    # SB3's independent positions: a repeat of an earlier position's slot shows nothing.
    from lmrecsim.agents.positions import shown_marginals

    gen = np.random.default_rng(5)
    m = gen.dirichlet(np.ones(K), size=L)  # (L, K), each position on its own
    mask = MASKS[0]
    probs = np.prod(m[np.arange(L), slates], axis=1)
    shows = slate_shown(slates, np.broadcast_to(mask, (slates.shape[0], K)))
    expected = np.zeros((L, K))
    for s, p, shown in zip(slates, probs, shows, strict=True):
        expected[np.flatnonzero(shown), s[shown]] += p
    got = shown_marginals(m[None], mask[None], independent=True)[0]
    np.testing.assert_allclose(got, expected, atol=1e-12)
