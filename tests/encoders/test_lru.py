"""LRUEncoder: dedup, one batched call for misses, eviction order, counters."""

from __future__ import annotations

import numpy as np
import pytest

from lmrecsim.encoders import Encoder, EncoderError, LRUEncoder

from .conftest import FakeEncoder


def test_passthrough_and_single_batched_call(fake: FakeEncoder) -> None:
    lru = LRUEncoder(fake, maxsize=10)
    assert isinstance(lru, Encoder)
    assert (lru.name, lru.dim, lru.identity) == (fake.name, fake.dim, fake.identity)
    texts = ["a", "b", "a", "c", "b"]
    out = lru.encode(texts)
    assert fake.received == [["a", "b", "c"]]
    assert np.array_equal(out, fake.encode(texts))
    assert (lru.hits, lru.misses) == (0, 3)


def test_hits_do_not_call_the_model(fake: FakeEncoder) -> None:
    lru = LRUEncoder(fake)
    first = lru.encode(["a", "b"])
    out = lru.encode(["b", "x", "a", "y"])
    assert fake.received[-1] == ["x", "y"]  # both misses in one call
    assert (lru.hits, lru.misses) == (2, 4)
    assert np.array_equal(out[[2, 0]], first)
    assert lru.encode([]).shape == (0, fake.dim)


def test_eviction_is_least_recently_used(fake: FakeEncoder) -> None:
    lru = LRUEncoder(fake, maxsize=2)
    lru.encode(["a", "b"])
    lru.encode(["a"])  # a is now more recent than b
    lru.encode(["c"])  # evicts b
    assert len(lru) == 2
    n = fake.n_texts
    lru.encode(["a", "c"])
    assert fake.n_texts == n
    lru.encode(["b"])
    assert fake.received[-1] == ["b"]


def test_more_misses_than_maxsize_still_returns_all(fake: FakeEncoder) -> None:
    lru = LRUEncoder(fake, maxsize=2)
    texts = [f"t{i}" for i in range(5)]
    assert np.array_equal(lru.encode(texts), fake.encode(texts))
    assert len(lru) == 2


def test_maxsize_zero_disables_memory(fake: FakeEncoder) -> None:
    lru = LRUEncoder(fake, maxsize=0)
    lru.encode(["a"])
    lru.encode(["a"])
    assert fake.n_texts == 2 and len(lru) == 0


def test_returned_rows_are_not_aliases_of_memory(fake: FakeEncoder) -> None:
    lru = LRUEncoder(fake)
    out = lru.encode(["a"])
    out[:] = 0
    assert np.linalg.norm(lru.encode(["a"])[0]) == pytest.approx(1.0, abs=1e-6)


def test_bad_maxsize(fake: FakeEncoder) -> None:
    with pytest.raises(EncoderError, match="maxsize"):
        LRUEncoder(fake, maxsize=-1)


def test_misses_skip_the_disk_cache_unless_persist(fake: FakeEncoder, tmp_path) -> None:
    from lmrecsim.encoders import CachedEncoder, EmbeddingCache

    cache = EmbeddingCache(tmp_path)
    cached = CachedEncoder(fake, cache)
    cached.encode(["stored"])  # a catalog text, on disk
    before = cache.path_for(fake.identity).stat().st_mtime_ns
    lru = LRUEncoder(cached)
    out = lru.encode(["stored", "history one"])
    # Both go to the model, nothing is written or read on disk.
    assert fake.received[-1] == ["stored", "history one"]
    assert cached.calls == 1
    assert cache.path_for(fake.identity).stat().st_mtime_ns == before
    assert np.array_equal(out, fake.encode(["stored", "history one"]))
    found = cache.lookup(fake.identity, ["history one"])[1]
    assert not found.any()

    through = LRUEncoder(cached, persist=True)
    n = len(fake.received)
    through.encode(["stored", "history two"])
    assert fake.received[n:] == [["history two"]]
    assert cache.lookup(fake.identity, ["history two"])[1].all()
