"""Each slate position's distribution given the slots above it (Cascade-DR's tables), against
the prefix probabilities the same rules give and against enumerating every slate."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch as th

from lmrecsim.agents.base import (
    RandomPolicy,
    sequential_conditionals,
    sequential_prefix_probabilities,
)
from lmrecsim.agents.baselines import EpsilonGreedyPolicy, GreedyPolicy
from lmrecsim.agents.conditionals import plackett_luce_conditionals, slate_indicators
from lmrecsim.agents.slate import PlackettLuceDistribution

from .test_positions import MASKS, _pl_slates, _scores

K, L = 6, 3


def _chain(table: np.ndarray, slate: tuple[int, ...]) -> np.ndarray:
    """(L,) the product of each position's entry at ``slate``'s slot, position by position."""
    return np.cumprod([table[j, slot] for j, slot in enumerate(slate)])


@pytest.mark.parametrize("epsilon", [1.0, 0.3, 0.0])
def test_the_epsilon_rules_tables_chain_to_its_prefix_probabilities(epsilon: float) -> None:
    scores = _scores()
    for row, (mask, s) in enumerate(zip(MASKS, scores, strict=True)):
        total = 0.0
        for slate in itertools.product(range(K), repeat=L):
            table = sequential_conditionals(mask, s, L, epsilon, np.array(slate))
            # Every row is a distribution, whatever the slots above it.
            np.testing.assert_allclose(table.sum(axis=1), 1.0, err_msg=f"row {row} {slate}")
            want = sequential_prefix_probabilities(mask, s, L, epsilon, np.array(slate))
            np.testing.assert_allclose(_chain(table, slate), want, atol=1e-12, err_msg=str(slate))
            total += want[-1]
        assert total == pytest.approx(1.0)


def test_the_epsilon_rules_table_after_a_prefix_it_would_not_take() -> None:
    # Greedy (epsilon 0) with the best slot taken away by the logged first position: the second
    # position takes the best of the rest, and nothing is left to chance.
    mask = np.ones(4, dtype=bool)
    scores = np.array([0.1, 0.9, 0.5, 0.3])
    table = sequential_conditionals(mask, scores, 2, 0.0, np.array([2, 0]))
    np.testing.assert_array_equal(table, [[0, 1, 0, 0], [0, 1, 0, 0]])
    table = sequential_conditionals(mask, scores, 2, 0.0, np.array([1, 0]))
    np.testing.assert_array_equal(table[1], [0, 0, 1, 0])
    # Past the valid slots the rule repeats the first slot.
    one_valid = np.array([False, False, True, False])
    table = sequential_conditionals(one_valid, scores, 3, 0.5, np.array([2, 2, 2]))
    np.testing.assert_array_equal(table, [[0, 0, 1, 0]] * 3)


def test_plackett_luce_tables_chain_to_its_prefix_probabilities() -> None:
    logits = th.tensor(_scores(1), dtype=th.float64)
    for row, mask in enumerate(MASKS):
        slates = _pl_slates(mask)
        dist = PlackettLuceDistribution(K, L).proba_distribution(
            logits[row : row + 1].repeat(len(slates), 1),
            th.tensor(mask[None]).repeat(len(slates), 1),
        )
        prefix = np.exp(dist.prefix_log_prob(th.tensor(slates)).numpy())
        for slate, want in zip(slates, prefix, strict=True):
            table = plackett_luce_conditionals(logits[row].numpy(), mask, np.array(slate))
            np.testing.assert_allclose(table.sum(axis=1), 1.0)
            np.testing.assert_allclose(_chain(table, slate), want, atol=1e-12, err_msg=str(slate))


def test_plackett_luce_table_is_the_softmax_over_the_slots_left() -> None:
    logits = np.array([0.0, 1.0, 2.0, -1.0])
    valid = np.array([True, True, True, False])
    table = plackett_luce_conditionals(logits, valid, np.array([2, 0, 1]))
    e = np.exp(logits[:3])
    np.testing.assert_allclose(table[0, :3], e / e.sum())
    np.testing.assert_allclose(table[1, :2], e[:2] / e[:2].sum())
    np.testing.assert_allclose(table[2], [0, 1, 0, 0])
    assert table[:, 3].sum() == 0.0  # a masked slot is never drawn while a valid one is left


def test_indicators_and_the_baselines_tables() -> None:
    np.testing.assert_array_equal(slate_indicators(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    obs = {
        "user": np.array([1.0, 0.0], dtype=np.float32),
        "candidates": np.array([[0.2, 1], [0.9, 0.1], [0.5, 0.5], [0.7, 0.3]], dtype=np.float32),
        "candidate_features": np.zeros((4, 2), dtype=np.float32),
        "action_mask": np.array([1, 1, 0, 1], dtype=np.int8),
    }
    slate = np.array([0, 3])
    # Greedy follows its own slate (1, 3), whatever the logged slate holds above.
    greedy = GreedyPolicy(slate_size=2).conditional_probabilities(obs, slate)
    np.testing.assert_array_equal(greedy, [[0, 1, 0, 0], [0, 0, 0, 1]])
    # Random: uniform over the valid slots the logged positions above have not taken.
    rand = RandomPolicy(slate_size=2).conditional_probabilities(obs, slate)
    np.testing.assert_allclose(rand, [[1 / 3, 1 / 3, 0, 1 / 3], [0, 0.5, 0, 0.5]])
    eps = EpsilonGreedyPolicy(epsilon=0.2, slate_size=2)
    table = eps.conditional_probabilities(obs, slate)
    np.testing.assert_allclose(_chain(table, (0, 3)), eps.prefix_probabilities(obs, slate))
