"""The approximate nearest-item index (``candidates.index: ivf``) against the exact search."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lmrecsim.envs.ann import IVFIndex, default_lists
from lmrecsim.envs.candidates import nearest_items, nearest_items_reference

N_ITEMS, DIM, M = 20_000, 16, 7


def _clustered(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    """Vectors around topic centres, as projected item embeddings are."""
    picks = centres[rng.integers(centres.shape[0], size=n)]
    return (picks + 0.5 * rng.standard_normal((n, centres.shape[1]))).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((60, DIM))
    return _clustered(N_ITEMS, rng, centres), _clustered(128, rng, centres)


@pytest.fixture(scope="module")
def index(data) -> IVFIndex:
    return IVFIndex(data[0], probe=8, seed=0)


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    hits = [len(set(f[f >= 0]) & set(e[e >= 0])) for f, e in zip(found, exact, strict=True)]
    return float(np.sum(hits) / np.sum(exact >= 0))


def test_default_lists_follow_the_square_root_of_the_catalog() -> None:
    assert default_lists(1_000_000) == 1000
    assert default_lists(20_000) == 141
    assert default_lists(100) == 2  # at least 39 items per cluster
    assert default_lists(10) == 1


def test_recall_against_the_exact_search_grows_with_the_probe(data, index) -> None:
    items, query = data
    exact = nearest_items(query, items, M)
    found = index.search(query, M)
    assert index.lists == 141 and index.probe == 8
    # 128 queries x 7 items: measured 0.80 / 0.99 / 1.0 at probe 2 / 8 / 32 of 141 clusters.
    # The bounds leave room for platform differences in the k-means, not for a broken index.
    assert _recall(found, exact) >= 0.95
    narrow = IVFIndex(items, probe=2, seed=0).search(query, M)
    wide = IVFIndex(items, probe=32, seed=0).search(query, M)
    assert _recall(narrow, exact) < _recall(found, exact) <= _recall(wide, exact)
    assert _recall(wide, exact) >= 0.99
    # Each row's results are best first, like the exact search's.
    scores = np.take_along_axis(query.astype(np.float64) @ items.T.astype(np.float64), found, 1)
    assert (np.diff(scores, axis=1) <= 1e-5).all()


def test_scanning_every_cluster_is_the_exact_search(data) -> None:
    items, query = data
    rng = np.random.default_rng(1)
    exclude = rng.integers(-1, N_ITEMS, size=(query.shape[0], 12))
    arrival = np.where(rng.random(N_ITEMS) < 0.3, rng.integers(1, 10, size=N_ITEMS), 0)
    until = rng.integers(0, 10, size=query.shape[0])
    small = IVFIndex(items, lists=20, probe=20, seed=0)
    kw: dict[str, Any] = {"available_until": until, "arrival": arrival, "exclude": exclude}
    found = small.search(query, M, **kw)
    expected = nearest_items_reference(query, items, M, **kw)
    # float32 scores in faiss, float64 in the reference: near-ties may swap order, not members.
    assert _recall(found, expected) == 1.0


def test_exclusions_and_arrivals_are_respected_and_short_rows_fall_back(data) -> None:
    items, query = data
    q = query[:16]
    # 50 tight, far-apart clusters of 40 items: scanning one cluster finds at most 40 items.
    rng = np.random.default_rng(2)
    centres = 10.0 * rng.standard_normal((50, DIM))
    tight = (np.repeat(centres, 40, axis=0) + 0.01 * rng.standard_normal((2000, DIM))).astype(
        np.float32
    )
    near = (centres[:16] + 0.01 * rng.standard_normal((16, DIM))).astype(np.float32)
    exact = nearest_items(near, tight, 60)
    # Excluding 36 of the nearest cluster's 40 leaves 4 there. A row whose one probed list holds
    # fewer than 7 other items comes up short and is answered by the exact search, which goes on
    # into the next cluster. (k-means may merge two clusters into one list; such rows are not
    # short and keep the index's answer.)
    exclude = exact[:, :36]
    ivf = IVFIndex(tight, lists=50, probe=1, seed=0)
    found = ivf.search(near, M, exclude=exclude)
    assert not any(np.isin(f, e).any() for f, e in zip(found, exclude, strict=True))
    _, probed = ivf.index.quantizer.search(near, 1)
    sizes = np.array([ivf.index.invlists.list_size(int(i)) for i in probed[:, 0]])
    short = sizes - 36 < M
    assert short.sum() >= 8
    np.testing.assert_array_equal(found[short], exact[short, 36 : 36 + M])
    # Items that have not arrived by a row's step are never returned.
    arrival = np.zeros(N_ITEMS, dtype=np.int64)
    arrival[exact[:, :3].ravel()] = 5
    until = np.array([4] * 8 + [5] * 8)
    got = IVFIndex(items, probe=8, seed=0).search(q, M, available_until=until, arrival=arrival)
    late = arrival[got] > until[:, None]
    assert not late.any()
    assert (got >= 0).all()


def test_a_user_gets_the_same_items_in_any_batch_and_any_rebuild(data, index) -> None:
    items, query = data
    batched = index.search(query, M)
    one_by_one = np.concatenate([index.search(query[i : i + 1], M) for i in range(40)])
    np.testing.assert_array_equal(batched[:40], one_by_one)
    rebuilt = IVFIndex(items, probe=8, seed=0).search(query, M)
    np.testing.assert_array_equal(batched, rebuilt)


def test_bad_sizes_are_rejected(data) -> None:
    with pytest.raises(ValueError, match="candidates.ivf_lists: expected 1..100"):
        IVFIndex(data[0][:100], lists=101)


def test_more_clusters_than_items_is_one_line_naming_file_and_key(tmp_path, capsys) -> None:
    from lmrecsim.cli import main

    path = tmp_path / "big_lists.yaml"
    path.write_text(
        "name: big_lists\nextends: default\ncatalog: {n_items: 200}\n"
        "candidates: {index: ivf, ivf_lists: 500}\n"
    )
    assert main(["scenarios", "validate", str(path)]) == 0  # the schema cannot know the size
    capsys.readouterr()
    assert main(["scenarios", "validate", "--build", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert (
        f"{path}: candidates.ivf_lists: expected at most the catalog size (200 items), got 500"
        in (err[0])
    )


def test_an_ivf_scenario_builds_its_index_once_per_world(tmp_path) -> None:
    from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv

    from .test_vec_env import small_world

    world = small_world(tmp_path, candidates={"index": "ivf", "ivf_probe": 3})
    assert world.nearest_index is not None
    # 300 items: sqrt would give 17 clusters; faiss's 39 items per cluster allow 7.
    assert (world.nearest_index.lists, world.nearest_index.probe) == (7, 3)
    venv = BatchedRecommendationVecEnv(world=world, n_envs=8)
    # Both user batches of the env search the world's one index.
    assert venv.users._candidates.index is world.nearest_index
    assert venv._next_users._candidates.index is world.nearest_index
    venv.seed(0)
    obs = venv.reset()
    # The nearest source's items are among the index's answers for each user's state.
    users = venv.users
    near = world.nearest_index.search(
        users._user_proj, 7, exclude=users.consumed[:, : max(int(users.n_consumed.max()), 1)]
    )
    for row in range(8):
        assert np.isin(near[row], users.cand[row]).sum() >= 5
    assert obs["action_mask"].all()


def test_no_index_is_built_when_the_nearest_share_rounds_to_no_slot(tmp_path) -> None:
    from lmrecsim.envs.candidates import nearest_slots

    from .test_vec_env import small_world

    # k = 20: a nearest share of 0.02 of the weights is 0.4 slots, which rounds to none.
    world = small_world(
        tmp_path, candidates={"index": "ivf", "popular": 0.49, "nearest": 0.02, "random": 0.49}
    )
    assert nearest_slots(world.scenario.candidates) == 0
    assert world.nearest_index is None
    one_slot = small_world(
        tmp_path, candidates={"index": "ivf", "popular": 0.48, "nearest": 0.04, "random": 0.48}
    )
    assert nearest_slots(one_slot.scenario.candidates) == 1
    assert one_slot.nearest_index is not None


def test_the_index_is_saved_once_and_loaded_by_the_next_world(tmp_path, monkeypatch) -> None:
    from lmrecsim.encoders import EmbeddingCache
    from lmrecsim.encoders.errors import CacheCorruptionWarning
    from lmrecsim.envs import world as world_mod

    from .test_vec_env import small_world

    overrides = {"candidates": {"index": "ivf", "ivf_probe": 3}}
    first = small_world(tmp_path, **overrides).nearest_index
    assert first is not None and not first.from_serialized
    saved = list((tmp_path / "arrays").glob("*.npz"))
    # A new process builds the world afresh (no per-process memo): it loads the saved index.
    monkeypatch.setattr(world_mod, "_WORLDS", {})
    second = small_world(tmp_path, **overrides).nearest_index
    assert second is not None and second.from_serialized
    query = first.items[:30] * 1.5
    np.testing.assert_array_equal(first.search(query, M), second.search(query, M))
    # Another number of lists is another index: built, and saved beside the first.
    monkeypatch.setattr(world_mod, "_WORLDS", {})
    other = small_world(tmp_path, candidates={"index": "ivf", "ivf_lists": 5}).nearest_index
    assert other is not None and not other.from_serialized and other.lists == 5
    assert len(list((tmp_path / "arrays").glob("*.npz"))) == len(saved) + 1
    # A damaged entry is discarded with a warning, rebuilt and saved again.
    cache = EmbeddingCache(tmp_path)
    key = next(k for k in _ivf_keys(first, tmp_path))
    cache.array_path(key).write_bytes(b"not an npz file")
    monkeypatch.setattr(world_mod, "_WORLDS", {})
    with pytest.warns(CacheCorruptionWarning, match="discarding corrupt cache file"):
        rebuilt = small_world(tmp_path, **overrides).nearest_index
    assert rebuilt is not None and not rebuilt.from_serialized
    np.testing.assert_array_equal(first.search(query, M), rebuilt.search(query, M))
    assert cache.get_array(key) is not None


def _ivf_keys(index: IVFIndex, cache_dir) -> list[str]:
    """The cache keys of saved ivf indexes with ``index``'s lists (read back from the files)."""
    keys = []
    for path in (cache_dir / "arrays").glob("*.npz"):
        with np.load(path) as z:
            key = str(z["key"])
        if key.startswith("ivf|") and f"|lists={index.lists}|" in key:
            keys.append(key)
    return keys


def test_items_still_to_arrive_widen_the_search_instead_of_falling_back(data, monkeypatch) -> None:
    from lmrecsim.envs import candidates

    items, query = data
    rng = np.random.default_rng(3)
    # Half the catalog arrives after step 10; every user is at step 5.
    arrival = np.where(rng.random(N_ITEMS) < 0.5, 20, 0).astype(np.int64)
    until = np.full(query.shape[0], 5, dtype=np.int64)
    calls: list[int] = []
    exact_search = candidates.nearest_items

    def counting(q, *args, **kwargs):
        calls.append(q.shape[0])
        return exact_search(q, *args, **kwargs)

    monkeypatch.setattr(candidates, "nearest_items", counting)
    index = IVFIndex(items, probe=8, seed=0)
    found = index.search(query, M, available_until=until, arrival=arrival)
    assert (arrival[found] <= 5).all()
    # Asked for enough results that the arrived ones fill nearly every row, so the exact fallback
    # stays rare: 1 of 128 rows here, where asking for m + 8 results left 35 rows short.
    assert sum(calls) <= 2
    expected = exact_search(query, items, M, available_until=until, arrival=arrival)
    assert _recall(found, expected) >= 0.9
