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
# Scores per blocked product: bounds the (N, block) temporary (32 MB in float64).
_SCORES_PER_BLOCK = 1 << 22


def nearest_items(
    query: np.ndarray,
    items: np.ndarray,
    m: int,
    *,
    available_until: np.ndarray | None = None,
    arrival: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    block: int | None = None,
    exact: bool = True,
) -> np.ndarray:
    """Top-``m`` items by dot product with each query, over the catalog in blocks.

    Args:
        query: (N, p) user states.
        items: (n, p) item vectors (float32 or float16; float16 halves the memory per item and is
            widened one block at a time).
        m: how many to return per query.
        available_until: (N,) the step each query is at; items with ``arrival > step`` are skipped.
        arrival: (n,) arrival step of each item (needed with ``available_until``).
        exclude: (N, H) item indices to skip per query (-1 = no item).
        block: items per matrix product; by default about 4M scores per block.
        exact: score in float64. BLAS sums a row in an order that depends on how many rows are
            multiplied together, so float32 scores of one user differ in the last bit between a
            batch of 1 and a batch of 256, and near-ties would then pick different items; float64
            makes such a flip about 1e-9 times as likely, which keeps single-env and batched
            trajectories identical. ``exact=False`` scores in float32 (faster on huge catalogs).

    Returns:
        (N, m) int64 item indices, best first (ties by lower index); -1 where fewer than m items
        qualify.
    """
    n_q = query.shape[0]
    n = items.shape[0]
    m_eff = min(m, n)
    if m_eff <= 0 or n_q == 0:
        return np.full((n_q, max(m, 0)), -1, dtype=np.int64)
    dtype = np.float64 if exact else np.float32
    q = np.asarray(query, dtype=dtype)
    if block is None:
        block = int(min(_BLOCK, max(1024, _SCORES_PER_BLOCK // n_q)))
    min_step = None if available_until is None or arrival is None else available_until.min()
    if exclude is not None and exclude.shape[1]:
        ex_r, ex_c = np.nonzero(exclude >= 0)
        ex_i = exclude[ex_r, ex_c]
    else:
        ex_r = ex_i = np.zeros(0, dtype=np.int64)
    best_s = np.full((n_q, 0), -np.inf, dtype=dtype)
    best_i = np.zeros((n_q, 0), dtype=np.int64)
    for start in range(0, n, block):
        stop = min(start + block, n)
        scores = q @ np.asarray(items[start:stop], dtype=dtype).T
        # The (N, block) arrival comparison is only needed while some item is still to arrive.
        if min_step is not None and int(arrival[start:stop].max()) > min_step:
            scores[arrival[None, start:stop] > available_until[:, None]] = -np.inf
        if ex_i.size:
            inside = (ex_i >= start) & (ex_i < stop)
            scores[ex_r[inside], ex_i[inside] - start] = -np.inf
        k = min(m_eff, stop - start)
        part = (
            np.argpartition(scores, stop - start - k, axis=1)[:, -k:]
            if k < stop - start
            else (np.broadcast_to(np.arange(stop - start), (n_q, stop - start)))
        )
        cand_s = np.concatenate([best_s, np.take_along_axis(scores, part, 1)], axis=1)
        cand_i = np.concatenate([best_i, part + start], axis=1)
        if cand_s.shape[1] > m_eff:
            keep = np.argpartition(cand_s, cand_s.shape[1] - m_eff, axis=1)[:, -m_eff:]
            cand_s = np.take_along_axis(cand_s, keep, 1)
            cand_i = np.take_along_axis(cand_i, keep, 1)
        best_s, best_i = cand_s, cand_i
    # Sort best first; ties broken by item index so the result is deterministic.
    order = np.lexsort((best_i, -best_s), axis=1)
    best_i = np.take_along_axis(best_i, order, 1)
    best_s = np.take_along_axis(best_s, order, 1)
    best_i[~np.isfinite(best_s)] = -1
    if m_eff < m:
        best_i = np.concatenate([best_i, np.full((n_q, m - m_eff), -1, dtype=np.int64)], axis=1)
    return best_i


def nearest_items_reference(
    query: np.ndarray,
    items: np.ndarray,
    m: int,
    *,
    available_until: np.ndarray | None = None,
    arrival: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """The slow reference of :func:`nearest_items`: one query at a time, a full sort per query."""
    out = np.full((query.shape[0], m), -1, dtype=np.int64)
    items64 = np.asarray(items, dtype=np.float64)
    for r in range(query.shape[0]):
        scores = items64 @ np.asarray(query[r], dtype=np.float64)
        ok = np.ones(items.shape[0], dtype=bool)
        if available_until is not None and arrival is not None:
            ok &= arrival <= available_until[r]
        if exclude is not None:
            ex = exclude[r][exclude[r] >= 0]
            ok[ex] = False
        idx = np.flatnonzero(ok)
        order = np.lexsort((idx, -scores[idx]))[:m]
        out[r, : order.size] = idx[order]
    return out


def first_occurrence(proposals: np.ndarray) -> np.ndarray:
    """Mask of entries that are valid (>= 0) and not a repeat of an earlier entry in their row.

    Each entry becomes one int64 key ``item * 2**b + column``; a plain sort of the keys (cheaper
    than a stable argsort) groups equal items with the earliest column first.

    Args:
        proposals: (N, M) int64 item indices, -1 = none.

    Returns:
        (N, M) bool.
    """
    n_rows, m = proposals.shape
    if m == 0:
        return np.zeros(proposals.shape, dtype=bool)
    bits = max(int(m - 1).bit_length(), 1)
    keys = np.sort((proposals << bits) | np.arange(m, dtype=np.int64), axis=1)
    item = keys >> bits
    first = np.ones(keys.shape, dtype=bool)
    first[:, 1:] = item[:, 1:] != item[:, :-1]
    out = np.zeros(proposals.shape, dtype=bool)
    rows = np.broadcast_to(np.arange(n_rows)[:, None], keys.shape)
    out[rows, keys & ((1 << bits) - 1)] = first & (item >= 0)
    return out


def first_occurrence_reference(proposals: np.ndarray) -> np.ndarray:
    """Slow reference of :func:`first_occurrence`: a Python set per row."""
    out = np.zeros(proposals.shape, dtype=bool)
    for r, row in enumerate(proposals.tolist()):
        seen: set[int] = set()
        for c, item in enumerate(row):
            if item >= 0 and item not in seen:
                out[r, c] = True
                seen.add(item)
    return out


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
    consumed_mask: np.ndarray | None = None,
    exact: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the candidate slate of every user.

    Args:
        cfg: the scenario's ``candidates`` block.
        keys: (N,) episode keys; steps: (N,) current step of each user.
        user_proj: (N, p) projected visible states; has_state: (N,) False for users seen as nothing.
        consumed: (N, H) items each user clicked this session (-1 = none).
        item_proj: (n, p); pop_cdf: (n,) cumulative popularity; arrival: (n,) arrival steps.
        new_order / new_arrival_sorted: indices and arrival steps of new items, by arrival.
        consumed_mask: optional (N, n) bool, True where the user clicked the item this session (the
            same set as ``consumed``): membership becomes one gather instead of an (N, M, H)
            comparison. Worth it for small catalogs only (N * n bytes).
        exact: float64 scores for the nearest items (see :func:`nearest_items`).

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
        # Oversampled (distinct while j < n_arrived) so that new items the user already consumed,
        # which are removed below, are replaced; at most q_u are kept.
        j = np.arange(3 * quota)
        pos = (offset[:, None] + j[None, :]) % np.maximum(n_arrived, 1)[:, None]
        block_a = new_order[pos]
        block_a[j[None, :] >= n_arrived[:, None]] = -1
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
            exact=exact,
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
        if consumed_mask is not None:
            hit = consumed_mask[rows[:, None], np.maximum(proposals, 0)] & (proposals >= 0)
        else:
            hit = _member(proposals, excl)
        proposals[hit] = -1
    keep = first_occurrence(proposals)
    ca = block_a.shape[1]
    if ca:
        new_keep = keep[:, :ca]
        keep[:, :ca] = new_keep & (np.cumsum(new_keep, axis=1) <= q_u[:, None])
    c0 = block_a.shape[1] + block_b.shape[1]
    c1 = c0 + block_c.shape[1]
    pop_keep = keep[:, c0:c1]
    keep[:, c0:c1] = pop_keep & (np.cumsum(pop_keep, axis=1) <= n_pop[:, None])

    # Compact the kept proposals to the front, in order: the j-th kept one goes to slot j.
    slot = np.cumsum(keep, axis=1) - 1
    put = keep & (slot < k)
    r_put, c_put = np.nonzero(put)
    items = np.zeros((n_users, k), dtype=np.int64)
    valid = np.zeros((n_users, k), dtype=bool)
    items[r_put, slot[r_put, c_put]] = proposals[r_put, c_put]
    valid[r_put, slot[r_put, c_put]] = True

    perm = np.argsort(crng.uniform(keys, steps, crng.STREAM_CAND_SHUFFLE, k), axis=1, kind="stable")
    items = np.take_along_axis(items, perm, 1)
    valid = np.take_along_axis(valid, perm, 1)
    return items, valid
