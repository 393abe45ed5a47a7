"""Each slate position's distribution given the slots above it, for the cascade doubly robust
estimator (:mod:`lmrecsim.evaluation.ope`).

Cascade-DR needs, for every logged slate S and every position l, the target's distribution of
the slot it would put at position l had positions 0..l-1 held S's slots: ``pi(a | x, S_<l)``, one
(L, K) table per round. Every built-in policy gives it (``conditional_probabilities(obs,
slate)``), exactly under the rule its slates are drawn by:

* the position-by-position epsilon rule (random, epsilon-greedy):
  :func:`~lmrecsim.agents.base.sequential_conditionals`, beside the rule's prefix probabilities;
* PPO's Plackett-Luce candidate scorer: :func:`plackett_luce_conditionals`;
* SB3's ``MultiCategorical`` (the ``mlp`` policy): each position's own distribution;
* a deterministic policy: :func:`slate_indicators` of its own slate. Only prefixes it takes itself
  carry weight in the estimator; elsewhere the table says what the rest of its slate would be.

A position that shows nothing (every valid slot already taken) holds, under these rules, a slot
that adds no item; the tables put all of that position's mass on the logged slate's slot there,
which shows nothing either.

Shapes: K candidate slots, L positions.
"""

from __future__ import annotations

import numpy as np


def plackett_luce_conditionals(
    logits: np.ndarray, valid: np.ndarray, slate: np.ndarray
) -> np.ndarray:
    """(L, K) the Plackett-Luce distribution of each position's slot given the earlier positions
    hold ``slate``'s: the softmax of ``logits`` over the valid slots not yet taken, or, when none
    is left, all mass on ``slate``'s own slot there (a position that shows nothing; see
    :mod:`lmrecsim.agents.slate`).

    Args:
        logits: (K,) the candidate scores.
        valid: (K,) bool valid slots.
        slate: (L,) the logged slots.
    """
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    available = np.asarray(valid, dtype=bool).reshape(-1).copy()
    given = np.asarray(slate).reshape(-1).astype(np.int64)
    k = z.shape[0]
    out = np.zeros((given.shape[0], k), dtype=np.float64)
    for j, slot in enumerate(given):
        if available.any():
            top = z[available].max()
            p = np.where(available, np.exp(np.where(available, z - top, 0.0)), 0.0)
            out[j] = p / p.sum()
        elif 0 <= slot < k:
            out[j, slot] = 1.0
        if 0 <= slot < k:
            available[slot] = False
    return out


def slate_indicators(chosen: np.ndarray, k: int) -> np.ndarray:
    """(L, K) a deterministic policy's table: row l one-hot on the slot of its own slate
    ``chosen`` (L,) at position l, whatever the earlier positions hold."""
    chosen = np.asarray(chosen).reshape(-1).astype(np.int64)
    out = np.zeros((chosen.shape[0], k), dtype=np.float64)
    inside = (chosen >= 0) & (chosen < k)
    out[np.flatnonzero(inside), chosen[inside]] = 1.0
    return out
