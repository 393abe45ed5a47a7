"""Candidate generation: K items per user per step from a mix of sources, as array operations.

Sources, in priority order: newly arrived items (a fixed quota), the items nearest to the visible
user state (projected space, blocked matrix products so a 1,000,000-item catalog never becomes a
Python loop), popularity-proportional samples, and uniform random exploration filling the rest.
Duplicates across sources are removed (first source wins); the final K are shuffled so a slot's
position says nothing about where its item came from.

:class:`CandidateGenerator` precomputes what does not change between steps (the float64 item
matrix, the stream layout, constant quotas); :func:`generate_candidates` is the one-shot form.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from ..scenarios.schema import CandidatesConfig
from . import rng as crng
from .blas import one_blas_thread

if TYPE_CHECKING:
    from .ann import IVFIndex

_BLOCK = 65_536
# Scores per blocked product: bounds the (N, block) temporary (32 MB in float64).
_SCORES_PER_BLOCK = 1 << 22
# Keep a prepared (scoring-dtype, padded) copy of catalogs up to this many bytes.
_PREPARED_MAX_BYTES = 1 << 26

_ROWS: dict[int, np.ndarray] = {}
_COLS: dict[int, np.ndarray] = {}


def _rows(n: int) -> np.ndarray:
    """Cached ``arange(n)[:, None]`` (row indices for fancy indexing; read-only)."""
    r = _ROWS.get(n)
    if r is None:
        r = _ROWS[n] = np.arange(n)[:, None]
        r.flags.writeable = False
    return r


def _cols(n: int) -> np.ndarray:
    """Cached ``arange(n)`` (int64, read-only)."""
    c = _COLS.get(n)
    if c is None:
        c = _COLS[n] = np.arange(n, dtype=np.int64)
        c.flags.writeable = False
    return c


def _scores(q: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``q @ items.T`` on one BLAS thread (:func:`~lmrecsim.envs.blas.one_blas_thread`), (N, n)."""
    with one_blas_thread():
        return q @ items.T


def prepare_items(items: np.ndarray, *, exact: bool = True) -> np.ndarray | None:
    """The catalog in the scoring dtype plus one zero padding row, or None if too large.

    Pass the result to :func:`nearest_items` as ``prepared`` to skip the per-call conversion.
    """
    n = items.shape[0]
    dtype = np.float64 if exact else np.float32
    if n == 0 or n > _BLOCK or n * items.shape[1] * np.dtype(dtype).itemsize > _PREPARED_MAX_BYTES:
        return None
    # One padding row, where the -1 entries of exclusion lists point (its column is never chosen).
    out = np.zeros((n + 1, items.shape[1]), dtype=dtype)
    out[:n] = items
    return out


@njit(cache=True, nogil=True)
def _top_k_kernel(
    scores: np.ndarray, width: int, k: int, top_s: np.ndarray, top_i: np.ndarray
) -> None:
    """Fill ``top_s``/``top_i`` (N, k) with each row's best ``k`` of columns ``[0, width)``.

    Order: score descending, column ascending among equal scores (so -inf columns come last, in
    column order). One pass per row keeps a sorted buffer of k; a column enters only if it beats
    the buffer's worst strictly, which keeps the lower column first among ties.
    """
    for r in range(scores.shape[0]):
        row = scores[r]
        bs = top_s[r]
        bi = top_i[r]
        filled = 0
        for j in range(width):
            v = row[j]
            if filled == k:
                if not v > bs[k - 1]:
                    continue
                pos = k - 1
            else:
                pos = filled
                filled += 1
            # Shift worse entries down; an equal score stays ahead (it has the lower column).
            while pos > 0 and bs[pos - 1] < v:
                bs[pos] = bs[pos - 1]
                bi[pos] = bi[pos - 1]
                pos -= 1
            bs[pos] = v
            bi[pos] = j


def _block_top(scores: np.ndarray, width: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``k`` of each row of ``scores`` (N, W) by (score desc, column asc), k <= width.

    Columns from ``width`` on are padding and never chosen.

    Returns:
        (N, k) scores (the scores' dtype) and (N, k) int64 column indices, best first.
    """
    top_s = np.empty((scores.shape[0], k), dtype=scores.dtype)
    top_i = np.empty((scores.shape[0], k), dtype=np.int64)
    _top_k_kernel(scores, width, k, top_s, top_i)
    return top_s, top_i


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
    prepared: np.ndarray | None = None,
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
        prepared: ``prepare_items(items, exact=exact)``, reused across calls (optional).

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
    if prepared is not None and (prepared.dtype != dtype or prepared.shape[0] <= n):
        prepared = None
    if prepared is not None:
        block = n
    elif block is None:
        block = int(min(_BLOCK, max(1024, _SCORES_PER_BLOCK // n_q)))
    min_step = None if available_until is None or arrival is None else available_until.min()
    # With a prepared matrix the last score column is padding (never chosen), which is where the
    # -1 entries of ``exclude`` point: one scatter, no search for the valid entries.
    scatter_all = prepared is not None and exclude is not None and exclude.shape[1] > 0
    if exclude is not None and exclude.shape[1] and not scatter_all:
        ex_r, ex_c = np.nonzero(exclude >= 0)
        ex_i = exclude[ex_r, ex_c]
    else:
        ex_r = ex_i = np.zeros(0, dtype=np.int64)
    best_s: np.ndarray | None = None
    best_i: np.ndarray | None = None
    for start in range(0, n, block):
        stop = min(start + block, n)
        width = stop - start
        blk = prepared if prepared is not None else np.asarray(items[start:stop], dtype=dtype)
        scores = _scores(q, blk)
        # The (N, block) arrival comparison is only needed while some item is still to arrive.
        if min_step is not None and int(arrival[start:stop].max()) > min_step:
            scores[:, :width][arrival[None, start:stop] > available_until[:, None]] = -np.inf
        if scatter_all:
            assert exclude is not None
            scores[_rows(n_q), exclude] = -np.inf
        elif ex_i.size:
            if start == 0 and stop == n:
                scores[ex_r, ex_i] = -np.inf
            else:
                inside = (ex_i >= start) & (ex_i < stop)
                scores[ex_r[inside], ex_i[inside] - start] = -np.inf
        top_s, top_i = _block_top(scores, width, min(m_eff, width))
        if start:
            top_i += start
        if best_s is None or best_i is None:
            best_s, best_i = top_s, top_i
        else:
            # Merge with the best so far; ties by item index, as within a block.
            cand_s = np.concatenate([best_s, top_s], axis=1)
            cand_i = np.concatenate([best_i, top_i], axis=1)
            rows = _rows(n_q)
            order = np.lexsort((cand_i, -cand_s), axis=1)[:, :m_eff]
            best_s, best_i = cand_s[rows, order], cand_i[rows, order]
    assert best_s is not None and best_i is not None
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
    query64 = np.asarray(query, dtype=np.float64)
    with one_blas_thread():
        for r in range(query.shape[0]):
            scores = items64 @ query64[r]
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
    keys = proposals << bits
    keys |= _cols(m)
    keys.sort(axis=1)
    item = keys >> bits
    first = np.empty(keys.shape, dtype=bool)
    first[:, 0] = True
    np.not_equal(item[:, 1:], item[:, :-1], out=first[:, 1:])
    first &= item >= 0
    keys &= (1 << bits) - 1
    out = np.empty(proposals.shape, dtype=bool)
    # Each row's columns appear exactly once among its keys, so every entry is written.
    out[_rows(n_rows), keys] = first
    return out


def first_true_columns(mask: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` of each row's columns ordered True-first, each part in column order.

    Equals ``np.argsort(~mask, axis=1, kind="stable")[:, :k]``, but through one integer sort of
    ``column + M * (not mask)`` (a vectorised sort kernel, several times faster than a stable
    argsort on short rows).

    Args:
        mask: (N, M) bool; k <= M.

    Returns:
        (N, k) int64 column indices.
    """
    m = mask.shape[1]
    cols = _cols(m)
    key = np.where(mask, cols, cols + m)
    key.sort(axis=1)
    key = key[:, :k]
    key[key >= m] -= m
    return key


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


class SortedLookup:
    """``np.searchsorted(edges, x, side="right")`` through a bucket table, for many queries.

    The range ``[0, top)`` is cut into B equal buckets; for each bucket the answers at its two
    ends (widened by a relative 1e-12, more than the rounding of ``floor(x * B / top)``) are
    precomputed. The answer is monotone in x, so where they agree it is every query's answer in
    that bucket; the few queries in buckets that straddle an edge go through ``searchsorted``.
    Same integers as ``searchsorted``, about ten times faster on a few thousand queries.

    Args:
        edges: (n,) ascending float64; top: upper end of the query range (queries in [0, top]).
        buckets: B, about 25 per edge keeps straddling buckets to a few percent.
    """

    # Below this many queries one searchsorted call is cheaper than the table's several calls.
    MIN_QUERIES = 256

    def __init__(self, edges: np.ndarray, top: float, buckets: int) -> None:
        self.edges = edges
        self.n_buckets = max(int(buckets), 1)
        if top <= 0:  # an empty range: every query goes through searchsorted
            self.scale = 0.0
            self.lo = np.zeros(self.n_buckets, dtype=np.int64)
            self.straddle = np.ones(self.n_buckets, dtype=bool)
            return
        self.scale = self.n_buckets / top
        b = np.arange(self.n_buckets + 1, dtype=np.float64) / self.scale
        self.lo = np.searchsorted(edges, b[:-1] * (1.0 - 1e-12), side="right").astype(np.int64)
        hi = np.searchsorted(edges, b[1:] * (1.0 + 1e-12), side="right")
        self.straddle = self.lo != hi

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Answers for queries ``x`` (any shape, values in [0, top]), int64 of the same shape."""
        if x.size < self.MIN_QUERIES:
            return np.searchsorted(self.edges, x, side="right")
        bucket = (x * self.scale).astype(np.int64)
        np.minimum(bucket, self.n_buckets - 1, out=bucket)
        out = self.lo[bucket]
        odd = self.straddle[bucket]
        if odd.any():
            out[odd] = np.searchsorted(self.edges, x[odd], side="right")
        return out


def candidate_streams(cfg: CandidatesConfig) -> tuple[tuple[int, int], ...]:
    """The ``(stream, n)`` draws one user's candidate slate consumes at a step, in column order."""
    k = cfg.k
    pop_w = cfg.popular / (cfg.popular + cfg.nearest + cfg.random)
    return (
        (crng.STREAM_CAND_NEW, 1),
        (crng.STREAM_CAND_POPULAR, 2 * int(np.rint(k * pop_w)) + 2),
        (crng.STREAM_CAND_RANDOM, 3 * k),
        (crng.STREAM_CAND_SHUFFLE, k),
    )


def nearest_slots(cfg: CandidatesConfig) -> int:
    """Slots of the nearest source per step: its share of the three sources' weights times k."""
    total = cfg.popular + cfg.nearest + cfg.random
    return int(np.rint(cfg.k * cfg.nearest / total))


class CandidateGenerator:
    """Draws candidate slates for one catalog and one ``candidates`` config, step after step.

    Args:
        cfg: the scenario's ``candidates`` block.
        item_proj: (n, p); pop_cdf: (n,) cumulative popularity; arrival: (n,) arrival steps.
        new_order / new_arrival_sorted: indices and arrival steps of new items, by arrival.
        exact: float64 scores for the nearest items (see :func:`nearest_items`).
        index: an approximate index that answers the nearest-item searches instead of the exact
            search (``candidates.index: ivf``; see :class:`~lmrecsim.envs.ann.IVFIndex`).
    """

    def __init__(
        self,
        cfg: CandidatesConfig,
        *,
        item_proj: np.ndarray,
        pop_cdf: np.ndarray,
        arrival: np.ndarray,
        new_order: np.ndarray,
        new_arrival_sorted: np.ndarray,
        exact: bool = True,
        index: IVFIndex | None = None,
    ) -> None:
        self.cfg = cfg
        self.k = k = cfg.k
        self.item_proj = item_proj
        self.n_items = item_proj.shape[0]
        self.pop_cdf = pop_cdf
        self.pop_total = pop_cdf[-1]
        # Inverse-CDF popularity draws by bucket table (a few hundred KB at most).
        self.pop_lookup = SortedLookup(
            pop_cdf, float(self.pop_total), min(32 * pop_cdf.size, 1 << 16)
        )
        self.arrival = arrival
        self.arrival_max = int(arrival.max(initial=0))
        self.new_order = new_order
        self.new_arrival_sorted = new_arrival_sorted
        self.exact = exact
        total = cfg.popular + cfg.nearest + cfg.random
        self.near_w = cfg.nearest / total
        self.pop_w = cfg.popular / total
        self.quota = min(cfg.new_item_quota, k) if new_order.size else 0
        self.m_near = nearest_slots(cfg)
        # Without a new-item quota every user has the same number of slots to share out.
        self.n_pop_fixed = int(np.rint(k * self.pop_w))
        self.plan = crng.StreamPlan(candidate_streams(cfg))
        self.s_new, self.s_pop, self.s_rand, self.s_shuffle = self.plan.slices
        self.index = index
        self.prepared = (
            prepare_items(item_proj, exact=exact) if self.m_near and index is None else None
        )
        self._j_new = np.arange(3 * self.quota)
        self._j_near = np.arange(self.m_near)
        self._seen = np.zeros(self.n_items, dtype=bool)  # scratch of finish_slates

    def __call__(
        self,
        *,
        keys: np.ndarray,
        steps: np.ndarray,
        user_proj: np.ndarray,
        has_state: np.ndarray,
        consumed: np.ndarray,
        consumed_mask: np.ndarray | None = None,
        uniforms: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw the candidate slate of every user.

        Args:
            keys: (N,) episode keys; steps: (N,) current step of each user.
            user_proj: (N, p) projected visible states; has_state: (N,) False for users seen as
                nothing.
            consumed: (N, H) items each user clicked this session (-1 = none).
            consumed_mask: optional (N, n) bool, True where the user clicked the item this session
                (the same set as ``consumed``): membership becomes one gather instead of an
                (N, M, H) comparison. Worth it for small catalogs only (N * n bytes).
            uniforms: optional (N, ``self.plan.width``) uniforms of :func:`candidate_streams` at
                (keys, steps), when the caller draws them together with other streams.

        Returns:
            ``(items, valid)``: (N, K) int64 item indices and (N, K) bool, False for slots that
            could not be filled with a distinct available item (their item index is 0 and must be
            masked).
        """
        cfg, k, n_items = self.cfg, self.k, self.n_items
        n_users = keys.shape[0]
        steps = np.asarray(steps, dtype=np.int64)
        if uniforms is None:
            uniforms = self.plan.uniform(keys, steps)
        # Arrival checks are needed only while some item is still to arrive for some user.
        arriving = self.arrival_max > 0 and bool(steps.size) and self.arrival_max > int(steps.min())

        # Block A: newly arrived items, a contiguous run of the arrival order from a random offset.
        quota = self.quota
        if quota:
            n_arrived = np.searchsorted(self.new_arrival_sorted, steps, side="right")
            q_u = np.minimum(quota, n_arrived)
            high = np.maximum(n_arrived, 1)
            offset = crng.uniform_to_integers(uniforms[:, self.s_new], high)[:, 0]
            # Oversampled (distinct while j < n_arrived) so that new items the user already
            # consumed, which are removed below, are replaced; at most q_u are kept.
            j = self._j_new
            block_a = self.new_order[(offset[:, None] + j[None, :]) % high[:, None]]
            block_a[j[None, :] >= n_arrived[:, None]] = -1
            remaining = k - q_u
            n_near = np.where(has_state, np.rint(remaining * self.near_w), 0).astype(np.int64)
            n_pop: np.ndarray | int = np.rint(remaining * self.pop_w).astype(np.int64)
        else:
            block_a = np.zeros((n_users, 0), dtype=np.int64)
            n_near = None
            n_pop = self.n_pop_fixed

        if cfg.mask_consumed:
            excl = consumed
        else:
            # Consumed items may be offered again: neither the lists nor the bitmap exclude them.
            excl = np.zeros((n_users, 0), dtype=np.int64)
            consumed_mask = None

        # Block B: nearest to the visible state.
        m_near = self.m_near
        if m_near > 0 and has_state.any():
            arr = self.arrival if arriving else None
            index = self.index
            if index is not None:
                search = partial(index.search, m=m_near, arrival=arr)
            else:
                search = partial(
                    nearest_items,
                    items=self.item_proj,
                    m=m_near,
                    arrival=arr,
                    exact=self.exact,
                    prepared=self.prepared,
                )
            if has_state.all():
                block_b = search(user_proj, available_until=steps, exclude=excl)
            else:
                block_b = np.full((n_users, m_near), -1, dtype=np.int64)
                who = np.flatnonzero(has_state)
                block_b[who] = search(user_proj[who], available_until=steps[who], exclude=excl[who])
            if n_near is not None:
                block_b[self._j_near[None, :] >= n_near[:, None]] = -1
        else:
            block_b = np.zeros((n_users, 0), dtype=np.int64)

        # Block C: popularity-proportional draws (inverse CDF; zero-prior items are never drawn).
        u = uniforms[:, self.s_pop] * self.pop_total
        block_c = self.pop_lookup(u)
        np.minimum(block_c, n_items - 1, out=block_c)
        # Block D: uniform exploration, oversampled to fill whatever is left.
        block_d = crng.uniform_to_integers(uniforms[:, self.s_rand], n_items)

        proposals = np.concatenate([block_a, block_b, block_c, block_d], axis=1)
        ca = block_a.shape[1]
        c0 = ca + block_b.shape[1]
        if arriving:
            tail = proposals[:, c0:]
            tail[self.arrival[tail] > steps[:, None]] = -1
        return finish_slates(
            proposals,
            excl,
            consumed_mask,
            new_cols=ca,
            new_cap=q_u if ca else None,
            pop_cols=(c0, c0 + block_c.shape[1]),
            pop_cap=n_pop,
            shuffle=uniforms[:, self.s_shuffle],
            k=k,
            seen=self._seen,
        )


def _slate_caps(
    n_rows: int, new_cap: np.ndarray | None, pop_cap: np.ndarray | int
) -> tuple[np.ndarray, np.ndarray]:
    new = np.zeros(n_rows, np.int64) if new_cap is None else np.asarray(new_cap, np.int64)
    pop = np.broadcast_to(np.asarray(pop_cap, np.int64), (n_rows,))
    return np.ascontiguousarray(new), np.ascontiguousarray(pop)


def finish_slates(
    proposals: np.ndarray,
    excl: np.ndarray,
    consumed_mask: np.ndarray | None,
    *,
    new_cols: int,
    new_cap: np.ndarray | None,
    pop_cols: tuple[int, int],
    pop_cap: np.ndarray | int,
    shuffle: np.ndarray,
    k: int,
    seen: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Turn each row's proposals into a slate of ``k`` (one compiled pass per row).

    Proposals the user consumed (``excl``, or the ``consumed_mask`` bitmap) and repeats of an
    earlier proposal are dropped; of the new-item columns ``[0, new_cols)`` at most ``new_cap``
    are kept, of the popular columns ``pop_cols`` at most ``pop_cap``; the first ``k`` kept
    proposals fill the slots, which are then shuffled by the stable ranks of ``shuffle``.
    Equal to :func:`finish_slates_reference`.

    Args:
        proposals: (N, M) int64 item indices, -1 = none (modified: consumed entries become -1).
        excl: (N, H) consumed items (-1 = none); consumed_mask: optional (N, n) bool, the same sets.
        new_cap: (N,) or None (no new-item columns); pop_cap: (N,) or one int.
        shuffle: (N, k) uniforms.
        seen: scratch (n,) bool, all False, longer than the largest item index (allocated when
            None); it is all False again on return.

    Returns:
        ``(items, valid)``: (N, k) int64 and bool; invalid slots hold item 0.
    """
    n_rows = proposals.shape[0]
    new, pop = _slate_caps(n_rows, new_cap, pop_cap)
    items = np.empty((n_rows, k), dtype=np.int64)
    valid = np.empty((n_rows, k), dtype=bool)
    use_mask = consumed_mask is not None
    _finish_kernel(
        proposals,
        np.ascontiguousarray(excl, dtype=np.int64),
        consumed_mask if use_mask else np.zeros((1, 1), dtype=bool),
        use_mask,
        new_cols,
        new,
        pop_cols[0],
        pop_cols[1],
        pop,
        np.ascontiguousarray(shuffle, dtype=np.float64),
        np.zeros(int(proposals.max(initial=-1)) + 1, dtype=bool) if seen is None else seen,
        items,
        valid,
    )
    return items, valid


@njit(cache=True, nogil=True)
def _finish_kernel(
    proposals: np.ndarray,
    excl: np.ndarray,
    consumed_mask: np.ndarray,
    use_mask: bool,
    new_cols: int,
    new_cap: np.ndarray,
    pop_start: int,
    pop_stop: int,
    pop_cap: np.ndarray,
    shuffle: np.ndarray,
    seen: np.ndarray,
    items: np.ndarray,
    valid: np.ndarray,
) -> None:
    n_rows, m = proposals.shape
    k = items.shape[1]
    keep = np.empty(m, dtype=np.bool_)
    first = np.empty(k, dtype=np.int64)
    order = np.empty(k, dtype=np.int64)
    for r in range(n_rows):
        prop = proposals[r]
        # Consumed items are dropped before repeats are looked for.
        for j in range(m):
            v = prop[j]
            if v < 0:
                continue
            if use_mask:
                if consumed_mask[r, v]:
                    prop[j] = -1
            else:
                for h in range(excl.shape[1]):
                    if excl[r, h] == v:
                        prop[j] = -1
                        break
        # First occurrences, marked in ``seen`` and unmarked again after the row.
        for j in range(m):
            v = prop[j]
            if v < 0 or seen[v]:
                keep[j] = False
            else:
                keep[j] = True
                seen[v] = True
        for j in range(m):
            if prop[j] >= 0:
                seen[prop[j]] = False
        # Caps on the new-item and popular blocks (counted over their first occurrences).
        count = 0
        for j in range(new_cols):
            if keep[j]:
                count += 1
                if count > new_cap[r]:
                    keep[j] = False
        count = 0
        for j in range(pop_start, pop_stop):
            if keep[j]:
                count += 1
                if count > pop_cap[r]:
                    keep[j] = False
        # The first k columns, kept ones first, each part in column order.
        f = 0
        for j in range(m):
            if f < k and keep[j]:
                first[f] = j
                f += 1
        for j in range(m):
            if f < k and not keep[j]:
                first[f] = j
                f += 1
        # Stable ranks of the shuffle uniforms (insertion sort of k values).
        u = shuffle[r]
        for j in range(k):
            pos = j
            while pos > 0 and u[order[pos - 1]] > u[j]:
                order[pos] = order[pos - 1]
                pos -= 1
            order[pos] = j
        for j in range(k):
            col = first[order[j]]
            ok = keep[col]
            valid[r, j] = ok
            items[r, j] = prop[col] if ok else 0


def finish_slates_reference(
    proposals: np.ndarray,
    excl: np.ndarray,
    consumed_mask: np.ndarray | None,
    *,
    new_cols: int,
    new_cap: np.ndarray | None,
    pop_cols: tuple[int, int],
    pop_cap: np.ndarray | int,
    shuffle: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`finish_slates` in whole-array numpy (the slow reference path)."""
    n_rows = proposals.shape[0]
    new, pop = _slate_caps(n_rows, new_cap, pop_cap)
    rows = _rows(n_rows)
    if excl.shape[1]:
        if consumed_mask is not None:
            # -1 indexes the last item; such entries are dropped by the >= 0 test anyway.
            hit = consumed_mask[rows, proposals]
            hit &= proposals >= 0
        else:
            hit = _member(proposals, excl)
        proposals[hit] = -1
    keep = first_occurrence(proposals)
    if new_cols:
        new_keep = keep[:, :new_cols]
        new_keep &= np.cumsum(new_keep, axis=1) <= new[:, None]
    pop_keep = keep[:, pop_cols[0] : pop_cols[1]]
    pop_keep &= np.cumsum(pop_keep, axis=1) <= pop[:, None]
    # The kept proposals in order fill slots 0, 1, ...; a random permutation then shuffles the
    # slots (slot j of the result holds the perm[j]-th kept proposal).
    first = first_true_columns(keep, k)
    perm = np.argsort(shuffle, axis=1, kind="stable")
    cols = first[rows, perm]
    valid = keep[rows, cols]
    items = proposals[rows, cols]
    items[~valid] = 0
    return items, valid


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
    """Draw the candidate slate of every user (one-shot :class:`CandidateGenerator`).

    Args:
        cfg: the scenario's ``candidates`` block.
        keys: (N,) episode keys; steps: (N,) current step of each user.
        user_proj: (N, p) projected visible states; has_state: (N,) False for users seen as nothing.
        consumed: (N, H) items each user clicked this session (-1 = none).
        item_proj: (n, p); pop_cdf: (n,) cumulative popularity; arrival: (n,) arrival steps.
        new_order / new_arrival_sorted: indices and arrival steps of new items, by arrival.
        consumed_mask: optional (N, n) bool, the same sets as ``consumed`` as a bitmap.
        exact: float64 scores for the nearest items (see :func:`nearest_items`).

    Returns:
        ``(items, valid)``: (N, K) int64 item indices and (N, K) bool, False for slots that could not
        be filled with a distinct available item (their item index is 0 and must be masked).
    """
    gen = CandidateGenerator(
        cfg,
        item_proj=item_proj,
        pop_cdf=pop_cdf,
        arrival=arrival,
        new_order=new_order,
        new_arrival_sorted=new_arrival_sorted,
        exact=exact,
    )
    return gen(
        keys=keys,
        steps=steps,
        user_proj=user_proj,
        has_state=has_state,
        consumed=consumed,
        consumed_mask=consumed_mask,
    )
