"""Approximate nearest-item search for large catalogs: a faiss inverted-file (IVF) index.

The exact search of :func:`~lmrecsim.envs.candidates.nearest_items` scores every item for every
user at every step: 100-200 ms per step for 64 users over 1,000,000 items on two cores. An IVF
index clusters the item vectors once (k-means, ``lists`` clusters) and at each step scores only the
items of the ``probe`` clusters whose centroids best match the user state, so a step costs a few
percent of the exact search, at a recall set by ``probe / lists``.

Selected by ``candidates.index: ivf`` in a scenario. Only the "nearest" candidate source uses it;
the other sources and everything after them are unchanged. Results stay reproducible: the
clustering is seeded, and every query is answered by the same per-query code whatever the batch
(faiss's batched BLAS path is switched off), so a user's candidates do not depend on which other
users are stepped with it.

Shapes: N queries, p dims, n items, H excluded items per query, m results.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit
from tqdm.auto import tqdm

# Batches of at least this many queries make faiss score centroids with one BLAS product, whose
# last bits depend on the batch size; above any batch we use, every query takes the same path.
_NO_BLAS = 1 << 30
# Extra results asked for beyond m and the excluded items, for items that have not arrived yet.
_MARGIN = 8


def default_lists(n_items: int) -> int:
    """IVF clusters for a catalog of ``n_items``: about sqrt(n), at least 1 and at most n / 39.

    faiss's k-means wants at least 39 points per cluster; sqrt(n) keeps the cluster scan and the
    list scan balanced (1,000 lists for 1,000,000 items).
    """
    return max(1, min(int(round(math.sqrt(n_items))), n_items // 39))


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency
        raise ImportError(
            "candidates.index: 'ivf' needs the faiss-cpu package (pip install faiss-cpu)"
        ) from exc
    return faiss


@njit(cache=True, nogil=True)
def _filter_kernel(
    found: np.ndarray,
    exclude: np.ndarray,
    arrival: np.ndarray,
    until: np.ndarray,
    check_arrival: bool,
    m: int,
    out: np.ndarray,
) -> np.ndarray:
    """Keep, per row, the first ``m`` found items that are real, not excluded and have arrived.

    Writes them to ``out`` (N, m) (-1 where fewer qualify) and returns (N,) counts.
    """
    counts = np.zeros(found.shape[0], dtype=np.int64)
    for r in range(found.shape[0]):
        c = 0
        for j in range(found.shape[1]):
            if c == m:
                break
            item = found[r, j]
            if item < 0:
                continue
            if check_arrival and arrival[item] > until[r]:
                continue
            skip = False
            for h in range(exclude.shape[1]):
                if exclude[r, h] == item:
                    skip = True
                    break
            if skip:
                continue
            out[r, c] = item
            c += 1
        for j in range(c, m):
            out[r, j] = -1
        counts[r] = c
    return counts


class IVFIndex:
    """Approximate top-m items by inner product with each query (faiss ``IndexIVFFlat``).

    Args:
        items: (n, p) item vectors (the projected catalog the nearest source ranks).
        lists: number of clusters (None: :func:`default_lists`).
        probe: clusters scanned per query (more: higher recall, slower); at most ``lists``.
        seed: seed of the k-means clustering (same seed and items, same index).
        threads: OpenMP threads faiss uses (1 by default: the env steps next to a learner, and
            spare threads spin-wait on a shared two-core machine).
        progress: show a progress bar over the two build stages (clustering, adding the items);
            a 1,000,000-item catalog takes about 10-20 s on two cores.
        serialized: an index saved by :meth:`serialize` for the same items, lists and seed (the
            world keeps one in the embedding cache); used instead of building when it matches the
            items' count and width and the number of lists, ignored otherwise.

    Memory: the item vectors in float32 plus an 8-byte id per item, and ``lists`` centroids.
    """

    def __init__(
        self,
        items: np.ndarray,
        *,
        lists: int | None = None,
        probe: int = 16,
        seed: int = 0,
        threads: int = 1,
        progress: bool = False,
        serialized: np.ndarray | None = None,
    ) -> None:
        faiss = _faiss()
        faiss.omp_set_num_threads(int(threads))
        faiss.cvar.distance_compute_blas_threshold = _NO_BLAS
        x = np.ascontiguousarray(items, dtype=np.float32)
        self.n_items, dim = x.shape
        self.lists = int(lists) if lists is not None else default_lists(self.n_items)
        if not 1 <= self.lists <= self.n_items:
            raise ValueError(f"candidates.ivf_lists: expected 1..{self.n_items}, got {self.lists}")
        self.probe = min(int(probe), self.lists)
        self.items = x
        # (arrival array, its sorted copy) of the last search that checked arrivals.
        self._arrival_sorted: tuple[np.ndarray, np.ndarray] | None = None
        loaded = None if serialized is None else self._load(serialized, dim)
        #: True when the index came from ``serialized`` rather than from clustering the items.
        self.from_serialized = loaded is not None
        if loaded is None:
            self._quantizer = faiss.IndexFlatIP(dim)
            loaded = faiss.IndexIVFFlat(
                self._quantizer, dim, self.lists, faiss.METRIC_INNER_PRODUCT
            )
            loaded.cp.seed = int(seed)
            # faiss prints its own warning (not a Python one) below 39 items per cluster; the
            # threshold changes nothing else. The world warns of too many lists chosen by hand.
            loaded.cp.min_points_per_centroid = 1
            loaded.verbose = False
            desc = f"ivf index ({self.lists} clusters)"
            with tqdm(total=2, desc=desc, unit="stage", disable=not progress) as bar:
                loaded.train(x)
                bar.update()
                loaded.add(x)
                bar.update()
        loaded.nprobe = self.probe
        self.index = loaded

    def _load(self, serialized: np.ndarray, dim: int) -> Any:
        """The saved index, or None when it is not one over these items and lists."""
        faiss = _faiss()
        try:
            index = faiss.deserialize_index(np.ascontiguousarray(serialized, dtype=np.uint8))
        except RuntimeError:  # faiss's own check of the bytes
            return None
        if (
            not isinstance(index, faiss.IndexIVFFlat)
            or index.ntotal != self.n_items
            or index.d != dim
            or index.nlist != self.lists
            or index.metric_type != faiss.METRIC_INNER_PRODUCT
        ):
            return None
        return index

    def _pending_share(self, arrival: np.ndarray, step: int) -> float:
        """Share of the items with ``arrival > step`` (the sorted arrivals are kept per array)."""
        cached = self._arrival_sorted
        if cached is None or cached[0] is not arrival:
            cached = self._arrival_sorted = (arrival, np.sort(arrival))
        sorted_arrival = cached[1]
        return 1.0 - np.searchsorted(sorted_arrival, step, side="right") / max(arrival.size, 1)

    def serialize(self) -> np.ndarray:
        """The index as bytes (uint8 array), for :class:`IVFIndex`'s ``serialized`` argument."""
        return np.asarray(_faiss().serialize_index(self.index), dtype=np.uint8)

    @property
    def bytes_per_item(self) -> float:
        """Memory of the index per catalog item (vectors, ids and the centroids' share)."""
        d = self.items.shape[1]
        return 4.0 * d + 8.0 + 4.0 * d * self.lists / self.n_items

    def search(
        self,
        query: np.ndarray,
        m: int,
        *,
        available_until: np.ndarray | None = None,
        arrival: np.ndarray | None = None,
        exclude: np.ndarray | None = None,
    ) -> np.ndarray:
        """Approximately the top ``m`` available, non-excluded items of each query, best first.

        Same arguments and result as :func:`~lmrecsim.envs.candidates.nearest_items`. Rows for
        which the probed clusters hold fewer than ``m`` qualifying items (many exclusions, items
        still to arrive) are answered by the exact search instead, so no row comes up short.

        Returns:
            (N, m) int64 item indices; -1 only where the whole catalog has fewer than m qualifying.
        """
        from .candidates import nearest_items

        n_q = query.shape[0]
        if m <= 0 or n_q == 0:
            return np.full((n_q, max(m, 0)), -1, dtype=np.int64)
        ex = np.zeros((n_q, 0), dtype=np.int64) if exclude is None else exclude
        check_arrival = available_until is not None and arrival is not None
        width = m + ex.shape[1]
        if check_arrival:
            assert arrival is not None and available_until is not None
            # Room for the items still to arrive among the results: twice their expected number
            # at the share of the catalog still pending for the earliest user, plus a margin, so
            # that the exact fallback stays rare (a few rows in a thousand at half pending).
            pending = self._pending_share(arrival, int(available_until.min()))
            width += math.ceil(2.0 * width * pending / max(1.0 - pending, 1e-3)) + _MARGIN
        width = min(width, self.n_items)
        _, found = self.index.search(np.ascontiguousarray(query, dtype=np.float32), width)
        out = np.empty((n_q, m), dtype=np.int64)
        counts = _filter_kernel(
            found,
            np.ascontiguousarray(ex, dtype=np.int64),
            np.zeros(1, dtype=np.int64) if arrival is None else arrival,
            np.zeros(n_q, dtype=np.int64) if available_until is None else available_until,
            check_arrival,
            m,
            out,
        )
        short = np.flatnonzero(counts < m)
        if short.size:
            out[short] = nearest_items(
                query[short],
                self.items,
                m,
                available_until=None if available_until is None else available_until[short],
                arrival=arrival,
                exclude=ex[short],
            )
        return out
