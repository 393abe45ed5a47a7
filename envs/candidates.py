"""Candidate generation: K items per user per step from a mix of sources, as array operations.

Sources, in priority order: newly arrived items (a fixed quota), the items nearest to the visible
user state (projected space, blocked matrix products so a 1,000,000-item catalog never becomes a
Python loop), popularity-proportional samples, and uniform random exploration filling the rest.
Duplicates across sources are removed (first source wins); the final K are shuffled so a slot's
position says nothing about where its item came from.
"""

from __future__ import annotations

import numpy as np

from ..scenarios.schema import CandidatesConfig
from . import rng as crng

_BLOCK = 65_536


def nearest_items(
    query: np.ndarray,
    items: np.ndarray,
    m: int,
    *,
    available_until: np.ndarray | None = None,
    arrival: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    block: int = _BLOCK,
) -> np.ndarray:
    """Top-``m`` items by dot product with each query, over the catalog in blocks.

    Args:
        query: (N, p) user states.
        items: (n, p) item vectors (float32 or float16).
        m: how many to return per query.
        available_until: (N,) the step each query is at; items with ``arrival > step`` are skipped.
        arrival: (n,) arrival step of each item (needed with ``available_until``).
        exclude: (N, H) item indices to skip per query (-1 = no item).
        block: items per matrix product.

    Returns:
        (N, m) int64 item indices, best first; -1 where fewer than m items qualify.
    """
    n_q = query.shape[0]
    n = items.shape[0]
    m_eff = min(m, n)
    if m_eff <= 0 or n_q == 0:
        return np.full((n_q, max(m, 0)), -1, dtype=np.int64)
    q = query.astype(items.dtype, copy=False)
    best_s = np.full((n_q, 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((n_q, 0), dtype=np.int64)
    for start in range(0, n, block):
        stop = min(start + block, n)
        scores = (q @ items[start:stop].T).astype(np.float32)
        if available_until is not None and arrival is not None:
            late = arrival[None, start:stop] > available_until[:, None]
            scores[late] = -np.inf
        if exclude is not None:
            local = exclude - start
            ok = (exclude >= 0) & (local >= 0) & (local < stop - start)
            r, c = np.nonzero(ok)
            scores[r, local[r, c]] = -np.inf
        k = min(m_eff, stop - start)
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(scores, part, 1)], axis=1)
        cand_i = np.concatenate([best_i, part + start], axis=1)
        if cand_s.shape[1] > m_eff:
            keep = np.argpartition(-cand_s, m_eff - 1, axis=1)[:, :m_eff]
            cand_s = np.take_along_axis(cand_s, keep, 1)
            cand_i = np.take_along_axis(cand_i, keep, 1)
        best_s, best_i = cand_s, cand_i
    # Sort best first; ties broken by item index so the result is deterministic.
    order = np.lexsort((best_i, -best_s), axis=1) if best_s.size else best_i
    best_i = np.take_along_axis(best_i, order, 1)
    best_s = np.take_along_axis(best_s, order, 1)
    best_i[~np.isfinite(best_s)] = -1
    if m_eff < m:
        best_i = np.concatenate([best_i, np.full((n_q, m - m_eff), -1, dtype=np.int64)], axis=1)
    return best_i


def first_occurrence(proposals: np.ndarray) -> np.ndarray:
    """Mask of entries that are valid (>= 0) and not a repeat of an earlier entry in their row."""
    order = np.argsort(proposals, axis=1, kind="stable")
    sorted_p = np.take_along_axis(proposals, order, 1)
    dup_sorted = np.zeros(sorted_p.shape, dtype=bool)
    dup_sorted[:, 1:] = sorted_p[:, 1:] == sorted_p[:, :-1]
    dup = np.empty_like(dup_sorted)
    np.put_along_axis(dup, order, dup_sorted, 1)
    return (proposals >= 0) & ~dup


def _member(values: np.ndarray, sets: np.ndarray) -> np.ndarray:
    """values (N, M) in sets (N, H) row-wise (-1 in sets is ignored)."""
    if sets.shape[1] == 0:
        return np.zeros(values.shape, dtype=bool)
    return ((values[:, :, None] == sets[:, None, :]) & (sets[:, None, :] >= 0)).any(axis=2)


def generate_candidates(
    cfg: CandidatesConfig,
    *,
    keys: np.ndarray,
    steps: np.ndarray,
    user_proj: np.ndarray,
    has_state: np.ndarray,
    consumed: np.ndarray,
    item_proj: np.ndarray,
    pop_cdf: np.ndarray,
    arrival: np.ndarray,
    new_order: np.ndarray,
    new_arrival_sorted: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the candidate slate of every user.

    Args:
        cfg: the scenario's ``candidates`` block.
        keys: (N,) episode keys; steps: (N,) current step of each user.
        user_proj: (N, p) projected visible states; has_state: (N,) False for users seen as nothing.
        consumed: (N, H) items each user clicked this session (-1 = none).
        item_proj: (n, p); pop_cdf: (n,) cumulative popularity; arrival: (n,) arrival steps.
        new_order / new_arrival_sorted: indices and arrival steps of new items, by arrival.

    Returns:
        ``(items, valid)``: (N, K) int64 item indices and (N, K) bool, False for slots that could not
        be filled with a distinct available item (their item index is 0 and must be masked).
    """
    n_users = keys.shape[0]
    k = cfg.k
    n_items = item_proj.shape[0]
    rows = np.arange(n_users)
    steps = np.asarray(steps, dtype=np.int64)

    # Block A: newly arrived items, a contiguous run of the arrival order from a random offset.
    n_arrived = np.searchsorted(new_arrival_sorted, steps, side="right")
    quota = min(cfg.new_item_quota, k)
    if quota > 0 and new_order.size:
        q_u = np.minimum(quota, n_arrived)
        offset = crng.integers(keys, steps, crng.STREAM_CAND_NEW, 1, np.maximum(n_arrived, 1))[:, 0]
        j = np.arange(quota)
        pos = (offset[:, None] + j[None, :]) % np.maximum(n_arrived, 1)[:, None]
        block_a = new_order[pos]
        block_a[j[None, :] >= q_u[:, None]] = -1
    else:
        q_u = np.zeros(n_users, dtype=np.int64)
        block_a = np.zeros((n_users, 0), dtype=np.int64)

    remaining = k - q_u
    total = cfg.popular + cfg.nearest + cfg.random
    near_w = cfg.nearest / total
    pop_w = cfg.popular / total
    n_near = np.where(has_state, np.rint(remaining * near_w), 0).astype(np.int64)
    n_pop = np.rint(remaining * pop_w).astype(np.int64)

    excl = consumed if cfg.mask_consumed else np.zeros((n_users, 0), dtype=np.int64)

    # Block B: nearest to the visible state.
    m_near = int(np.rint(k * near_w))
    if m_near > 0 and has_state.any():
        block_b = np.full((n_users, m_near), -1, dtype=np.int64)
        who = np.flatnonzero(has_state)
        block_b[who] = nearest_items(
            user_proj[who],
            item_proj,
            m_near,
            available_until=steps[who],
            arrival=arrival,
            exclude=excl[who],
        )
        block_b[np.arange(m_near)[None, :] >= n_near[:, None]] = -1
    else:
        block_b = np.zeros((n_users, 0), dtype=np.int64)

    # Block C: popularity-proportional draws (inverse CDF; zero-prior items are never drawn).
    m_pop = 2 * int(np.rint(k * pop_w)) + 2
    u = crng.uniform(keys, steps, crng.STREAM_CAND_POPULAR, m_pop) * pop_cdf[-1]
    block_c = np.minimum(np.searchsorted(pop_cdf, u, side="right"), n_items - 1)
    block_c[arrival[block_c] > steps[:, None]] = -1

    # Block D: uniform exploration, oversampled to fill whatever is left.
    m_rand = 3 * k
    block_d = crng.integers(keys, steps, crng.STREAM_CAND_RANDOM, m_rand, n_items)
    block_d[arrival[block_d] > steps[:, None]] = -1

    proposals = np.concatenate([block_a, block_b, block_c, block_d], axis=1)
    if excl.shape[1]:
        proposals[_member(proposals, excl)] = -1
    keep = first_occurrence(proposals)
    c0 = block_a.shape[1] + block_b.shape[1]
    c1 = c0 + block_c.shape[1]
    pop_keep = keep[:, c0:c1]
    keep[:, c0:c1] = pop_keep & (np.cumsum(pop_keep, axis=1) <= n_pop[:, None])

    pos = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    items = np.take_along_axis(proposals, pos, 1)
    valid = np.take_along_axis(keep, pos, 1)
    items[~valid] = 0

    perm = np.argsort(crng.uniform(keys, steps, crng.STREAM_CAND_SHUFFLE, k), axis=1, kind="stable")
    items = np.take_along_axis(items, perm, 1)
    valid = np.take_along_axis(valid, perm, 1)
    del rows
    return items, valid
