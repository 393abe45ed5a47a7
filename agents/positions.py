"""Item-position marginals of slate policies: the probability of each slot at each position.

A slate policy that draws its slate position by position, without replacement, puts slot s at
position l with probability ``sum_U P(U) * q(s | U)``, summed over the sets U of l slots the
first l positions can hold, where ``P(U)`` is the probability that they hold exactly U (in any
order) and ``q(s | U)`` the rule's distribution of the next slot given U. Both the Plackett-Luce
distribution (PPO's candidate scorer) and the epsilon-greedy sequential rule (random, egreedy,
SlateQ's exploration) depend on the slots already taken only through their set, so the sum runs
over the lattice of subsets of size < L rather than over the K!/(K-L)! ordered prefixes: 211 sets
for K = 20 and L = 3. These marginals are the propensities of the independent-item estimators of
slate off-policy evaluation (IIPS; the Open Bandit Pipeline's ``pscore_item_position``).

Positions after the valid slots run out follow the policy's own rule for them (the sequential
rule repeats the first slot, Plackett-Luce fills in the masked slots in increasing order); those
positions show nothing.

Shapes: B batch, K candidate slots, L slate positions, S subsets of one size.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from itertools import combinations

import numpy as np
from scipy import sparse

#: The most (set, next slot) pairs a marginal computation walks; beyond it (K and L far larger
#: than the shipped slate scenarios') the later positions' marginals are not computed (NaN).
MAX_TRANSITIONS = 2_000_000


class TooManySlates(ValueError):
    """The subset lattice of K slots and L positions is too large to sum over."""


@lru_cache(maxsize=16)
def _lattice(
    k: int, size: int
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, sparse.csr_matrix | None], ...]:
    """Per position j < L: the sets of j slots (S_j, K) bool, and for each (set, slot not in it)
    transition its set index, slot and the (T, S_{j+1}) 0/1 matrix summing the transitions into
    the sets of j + 1 slots (None at the last position)."""
    total = 0
    for j in range(size):
        n_sets = 1
        for i in range(j):
            n_sets = n_sets * (k - i) // (i + 1)
        total += n_sets * (k - j)
    if total > MAX_TRANSITIONS:
        raise TooManySlates(
            f"{total:,} (set, slot) pairs for {k} candidates and slates of {size} (expected at "
            f"most {MAX_TRANSITIONS:,})"
        )
    levels = []
    sets = [()]
    for j in range(size):
        taken = np.zeros((len(sets), k), dtype=bool)
        for i, s in enumerate(sets):
            taken[i, list(s)] = True
        if j + 1 == size:
            levels.append((taken, np.zeros(0, np.int64), np.zeros(0, np.int64), None))
            break
        nxt = list(combinations(range(k), j + 1))
        index = {s: i for i, s in enumerate(nxt)}
        parent, slot, child = [], [], []
        for i, s in enumerate(sets):
            for t in range(k):
                if t not in s:
                    parent.append(i)
                    slot.append(t)
                    child.append(index[tuple(sorted((*s, t)))])
        n_t = len(parent)
        into = sparse.csr_matrix(
            (np.ones(n_t), (np.arange(n_t), np.asarray(child))), shape=(n_t, len(nxt))
        )
        levels.append((taken, np.asarray(parent), np.asarray(slot), into))
        sets = nxt
    return tuple(levels)


def sequential_marginals(
    next_probs: Callable[[np.ndarray], np.ndarray], batch: int, k: int, size: int
) -> np.ndarray:
    """(B, L, K) probability that a position-by-position rule puts each slot at each position.

    Args:
        next_probs: ``next_probs(taken)`` for ``taken`` (S, K) bool, the sets of slots already in
            the slate, gives (B, S, K) the distribution of the next slot after each set (rows sum
            to 1, or to 0 when nothing is left to draw).
        batch: B; k: K; size: L.

    When K and L give more than :data:`MAX_TRANSITIONS` transitions, only the first position's
    marginals are computed (the next slot's distribution after nothing) and the later positions'
    are NaN: unknown.
    """
    out = np.zeros((batch, size, k))
    try:
        lattice = _lattice(k, size)
    except TooManySlates:
        out[:, 0] = next_probs(np.zeros((1, k), dtype=bool))[:, 0]
        out[:, 1:] = np.nan
        return out
    p_sets = np.ones((batch, 1))
    for j, (taken, parent, slot, into) in enumerate(lattice):
        q = next_probs(taken)
        out[:, j] = np.einsum("bs,bsk->bk", p_sets, q)
        if into is not None:
            flow = p_sets[:, parent] * q[:, parent, slot]  # (B, T)
            p_sets = np.asarray((into.T @ flow.T).T)
    return out


def epsilon_rule_marginals(
    mask: np.ndarray, scores: np.ndarray | None, size: int, epsilon: float | np.ndarray
) -> np.ndarray:
    """(B, L, K) item-position marginals of :func:`~lmrecsim.agents.base.sequential_slate`'s rule.

    Each position explores with probability ``epsilon`` (uniformly among the valid slots not yet
    taken) and otherwise takes the best remaining slot by ``scores`` (ties: lowest slot); a row
    with no valid slot counts every slot as valid and explores. Positions after the valid slots
    run out repeat the first slot.

    Args:
        mask: (B, K) valid slots; scores: (B, K), or None when ``epsilon`` is 1.
        size: L; epsilon: in [0, 1], one for all rows or (B,).
    """
    valid = np.asarray(mask, dtype=bool).copy()
    b, k = valid.shape
    eps = np.broadcast_to(np.asarray(epsilon, dtype=np.float64), (b,)).copy()
    none = ~valid.any(axis=1)
    valid[none] = True
    eps[none] = 1.0
    if not (eps < 1.0).any():
        # Uniform draws without replacement: every valid slot is equally likely at every
        # position (and a position past the valid slots repeats the first, as likely).
        uniform = valid / valid.sum(axis=1, keepdims=True)
        return np.repeat(uniform[:, None, :], size, axis=1)
    if scores is None:
        raise ValueError("epsilon_rule_marginals: scores are needed when epsilon is below 1")
    s = np.asarray(scores, dtype=np.float64)

    def next_probs(taken: np.ndarray) -> np.ndarray:
        left = valid[:, None, :] & ~taken[None]  # (B, S, K)
        count = left.sum(axis=2, keepdims=True)
        q = eps[:, None, None] * left / np.maximum(count, 1)
        best = np.argmax(np.where(left, s[:, None, :], -np.inf), axis=2)  # (B, S)
        pick = np.zeros_like(q)
        np.put_along_axis(pick, best[..., None], 1.0, axis=2)
        q += (1.0 - eps)[:, None, None] * pick * (count > 0)
        return q

    out = sequential_marginals(next_probs, b, k, size)
    n_valid = valid.sum(axis=1)
    for j in range(1, size):
        past = n_valid <= j
        out[past, j] = out[past, 0]
    return out


def plackett_luce_marginals(
    probs: np.ndarray | None,
    mask: np.ndarray,
    size: int,
    *,
    epsilon: float = 0.0,
    logits: np.ndarray | None = None,
) -> np.ndarray:
    """(B, L, K) item-position marginals of a Plackett-Luce slate distribution.

    Position 1 takes valid slot i with probability ``probs[i]``, each later position a remaining
    valid slot with probability proportional to its ``probs`` (:class:`~lmrecsim.agents.slate.
    PlackettLuceDistribution`). With ``epsilon`` > 0 each position instead takes, with that
    probability, a uniformly random remaining valid slot (the ``softmax`` baseline's floor).
    When fewer than L slots are valid, the remaining positions hold the masked slots in
    increasing slot order (a row with no valid slot: slots 0..L-1).

    Args:
        probs: (B, K) the Plackett-Luce weights (first-position probabilities without a floor);
            mask: (B, K) valid slots.
        size: L; epsilon: the uniform share of each position's draw, in [0, 1].
        logits: (B, K) the weights' logarithms, when known: each position's weights are then
            taken relative to the best slot left, so that a very cold distribution (weights
            below float64's smallest once the best slots are taken) keeps its later positions;
            ``probs`` may then be None.
    """
    valid = np.asarray(mask, dtype=bool)
    b, k = valid.shape
    if logits is None:
        assert probs is not None, "plackett_luce_marginals: probs or logits"
        p = np.where(valid, np.asarray(probs, dtype=np.float64), 0.0)

        def weights(taken: np.ndarray) -> np.ndarray:
            return np.where(taken[None], 0.0, p[:, None, :])  # (B, S, K)
    else:
        z = np.where(valid, np.asarray(logits, dtype=np.float64), -np.inf)

        def weights(taken: np.ndarray) -> np.ndarray:
            left = np.where(taken[None], -np.inf, z[:, None, :])  # (B, S, K)
            top = left.max(axis=2, keepdims=True)
            return np.exp(left - np.where(np.isfinite(top), top, 0.0))

    def next_probs(taken: np.ndarray) -> np.ndarray:
        w = weights(taken)
        total = w.sum(axis=2, keepdims=True)
        q = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
        if epsilon > 0.0:
            left = (valid[:, None, :] & ~taken[None]).astype(np.float64)
            count = left.sum(axis=2, keepdims=True)
            uniform = np.divide(left, count, out=np.zeros_like(left), where=count > 0)
            q = (1.0 - epsilon) * q + epsilon * uniform
        return q

    out = sequential_marginals(next_probs, b, k, size)
    n_valid = valid.sum(axis=1)
    for r in np.flatnonzero(n_valid < size):
        rest = np.flatnonzero(~valid[r])
        for j in range(int(n_valid[r]), size):
            out[r, j] = 0.0
            out[r, j, rest[j - n_valid[r]]] = 1.0
    return out


def logged_marginals(marginals: np.ndarray, slates: np.ndarray) -> np.ndarray:
    """(B, L) the marginal of each slate's own slot at each position: ``marginals[b, l,
    slates[b, l]]`` from (B, L, K) marginals and (B, L) slates."""
    m = np.asarray(marginals)
    s = np.asarray(slates, dtype=np.int64).reshape(m.shape[0], m.shape[1])
    return np.take_along_axis(m, s[..., None], axis=2)[..., 0]


def position_indicators(chosen: np.ndarray, slate: np.ndarray) -> np.ndarray:
    """(L,) a deterministic policy's item-position marginals of ``slate``: 1 at each position
    where the slate it ``chosen`` holds the same slot, else 0."""
    chosen = np.asarray(chosen).reshape(-1)
    slate = np.asarray(slate).reshape(-1)
    if chosen.shape != slate.shape:
        return np.zeros(slate.shape[0], dtype=np.float64)
    return (chosen == slate).astype(np.float64)


def shown_marginals(
    marginals: np.ndarray, mask: np.ndarray, *, independent: bool = False
) -> np.ndarray:
    """(B, L, K) probability that position l shows slot k's item, from (B, L, K) item-position
    ``marginals`` and (B, K) valid slots ``mask``.

    A position shows its slot's item when the slot is valid and no earlier position holds it (a
    masked slot or a repeat shows nothing; :func:`lmrecsim.envs.simulator.slate_shown`). For a
    rule that draws distinct valid slots while any are left and repeats only past them (every
    baseline, Plackett-Luce, the epsilon-greedy sequential rule), that is the marginal of a valid
    slot while l is below the number of valid slots, and nothing beyond. With ``independent``
    (SB3's ``MultiCategorical``: each position drawn on its own) slot k shows at position l with
    probability ``m[l, k] * prod_{j < l} (1 - m[j, k])``, when it is valid.

    These are what the slate value model of off-policy evaluation averages over
    (:func:`lmrecsim.evaluation.ope.fit_value_model`).
    """
    m = np.asarray(marginals, dtype=np.float64)
    valid = np.asarray(mask, dtype=bool)[:, None, :]
    if independent:
        free = np.cumprod(1.0 - m, axis=1)  # (B, L, K): no position up to l holds k
        before = np.concatenate([np.ones_like(m[:, :1]), free[:, :-1]], axis=1)
        return m * before * valid
    n_valid = valid.sum(axis=2, keepdims=True)  # (B, 1, 1)
    inside = np.arange(m.shape[1])[None, :, None] < n_valid
    return m * valid * inside


def chosen_shown(chosen: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(L, K) a deterministic policy's :func:`shown_marginals`: 1 where its own slate
    ``chosen`` (L,) shows slot k at position l, given the (K,) valid slots ``mask``."""
    from ..envs.simulator import slate_shown

    chosen = np.asarray(chosen, dtype=np.int64).reshape(-1)
    valid = np.asarray(mask, dtype=bool).reshape(-1)
    out = np.zeros((chosen.shape[0], valid.shape[0]), dtype=np.float64)
    inside = (chosen >= 0) & (chosen < valid.shape[0])
    shows = np.zeros(chosen.shape[0], dtype=bool)
    shows[inside] = slate_shown(chosen[inside][None], valid[None])[0]
    rows = np.flatnonzero(shows)
    out[rows, chosen[rows]] = 1.0
    return out
