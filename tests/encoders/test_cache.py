"""EmbeddingCache and CachedEncoder: reuse, merging, atomic writes, corruption recovery."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from lmrecsim.encoders import (
    CacheCorruptionWarning,
    CachedEncoder,
    EmbeddingCache,
    Encoder,
    EncoderError,
    TransformerEncoder,
)

from .conftest import CORPUS, FakeEncoder

TEXTS = ["red dust", "love in paris", "orbit", "red dust", "jazz night"]


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _fill(tmp_path: Path, texts: list[str] = TEXTS) -> tuple[Path, np.ndarray]:
    """Write a cache file through one CachedEncoder; return its path and the vectors."""
    cache = EmbeddingCache(tmp_path)
    vecs = CachedEncoder(FakeEncoder(), cache).encode(texts)
    return cache.path_for(FakeEncoder().identity), vecs


def test_second_encode_hits_cache(tmp_path: Path, fake: FakeEncoder) -> None:
    enc = CachedEncoder(fake, EmbeddingCache(tmp_path))
    assert isinstance(enc, Encoder)
    assert (enc.name, enc.dim, enc.identity) == (fake.name, fake.dim, fake.identity)
    first = enc.encode(TEXTS)
    assert enc.calls == 4  # "red dust" twice in the input, encoded once
    assert fake.received == [list(dict.fromkeys(TEXTS))]
    second = enc.encode(TEXTS)
    assert np.array_equal(first, second)
    assert enc.calls == 4 and len(fake.received) == 1
    assert np.array_equal(first, fake.encode(TEXTS))


def test_cache_survives_a_new_process(tmp_path: Path) -> None:
    path, vecs = _fill(tmp_path)
    fresh_model = FakeEncoder()
    again = CachedEncoder(fresh_model, EmbeddingCache(tmp_path)).encode(TEXTS[::-1])
    assert np.array_equal(again, vecs[::-1])
    assert fresh_model.n_texts == 0


def test_only_new_texts_are_encoded(tmp_path: Path, fake: FakeEncoder) -> None:
    enc = CachedEncoder(fake, EmbeddingCache(tmp_path))
    enc.encode(TEXTS)
    calls = enc.calls
    out = enc.encode(["orbit", "brand new", "red dust", "another new"])
    assert fake.received[-1] == ["brand new", "another new"]
    assert enc.calls == calls + 2
    assert np.array_equal(out, fake.encode(["orbit", "brand new", "red dust", "another new"]))
    # Merged into one file per identity, readable by a fresh cache.
    vecs, found = EmbeddingCache(tmp_path).lookup(fake.identity, ["brand new", "jazz night", "x"])
    assert vecs is not None
    assert found.tolist() == [True, True, False]
    assert np.all(vecs[2] == 0)


def test_empty_and_identity_separation(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    a, b = FakeEncoder(identity="a"), FakeEncoder(dim=4, identity="b")
    assert CachedEncoder(a, cache).encode([]).shape == (0, 8)
    assert _files(tmp_path) == []
    CachedEncoder(a, cache).encode(["x"])
    out = CachedEncoder(b, cache).encode(["x"])
    assert out.shape == (1, 4) and b.n_texts == 1
    assert cache.path_for("a") != cache.path_for("b")


def test_lookup_without_file(tmp_path: Path) -> None:
    vecs, found = EmbeddingCache(tmp_path).lookup("nothing", ["a", "b"])
    assert vecs is None
    assert found.dtype == bool and found.tolist() == [False, False]


def test_store_validates(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    with pytest.raises(ValueError):
        cache.store("id", ["a", "b"], np.zeros((3, 4), np.float32))
    cache.store("id", ["a"], np.ones((1, 4), np.float32))
    with pytest.raises(EncoderError, match="d=4"):
        cache.store("id", ["b"], np.ones((1, 5), np.float32))


def test_store_overwrites_repeated_text(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.store("id", ["a", "b"], np.array([[1, 0], [0, 1]], np.float32))
    cache.store("id", ["b", "c"], np.array([[1, 1], [2, 2]], np.float32))
    vecs, found = EmbeddingCache(tmp_path).lookup("id", ["a", "b", "c"])
    assert found.all()
    assert vecs is not None
    assert np.array_equal(vecs, np.array([[1, 0], [1, 1], [2, 2]], np.float32))


def test_default_cache_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMRECSIM_CACHE_DIR", str(tmp_path / "c"))
    assert EmbeddingCache().cache_dir == tmp_path / "c"
    monkeypatch.delenv("LMRECSIM_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert EmbeddingCache().cache_dir == tmp_path / "home" / ".cache" / "lmrecsim"


# -- atomic writes ------------------------------------------------------------------------------


def test_writes_leave_no_temp_files(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    enc = CachedEncoder(FakeEncoder(), cache)
    for i in range(5):
        enc.encode([f"text {i}", f"text {i + 1}"])
    cache.put_array("pca", np.eye(3))
    files = _files(tmp_path)
    assert [p.suffix for p in files] == [".npz", ".npz"]
    assert files == sorted([cache.path_for(enc.identity), cache.array_path("pca")])


def test_failed_write_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, vecs = _fill(tmp_path)
    before = path.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    # One line naming the cache folder and the reason, not a bare OSError.
    with pytest.raises(EncoderError, match="cannot write the embedding cache \\(disk full"):
        CachedEncoder(FakeEncoder(), EmbeddingCache(tmp_path)).encode(["new text"])
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _files(tmp_path) == [path]


# -- corruption ---------------------------------------------------------------------------------


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _random_bytes(path: Path) -> None:
    size = path.stat().st_size
    path.write_bytes(np.random.default_rng(3).bytes(size))


def _bad_checksum(path: Path) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["vectors"] = arrays["vectors"].copy()
    arrays["vectors"][0, 0] += 0.5  # payload changed, checksum not
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _missing_array(path: Path) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, vectors=np.zeros((2, 8), np.float32))


def _empty_file(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize(
    "corrupt", [_truncate, _random_bytes, _bad_checksum, _missing_array, _empty_file]
)
def test_corrupt_file_is_rebuilt_with_warning(tmp_path: Path, corrupt: object) -> None:
    path, vecs = _fill(tmp_path)
    corrupt(path)  # type: ignore[operator]
    model = FakeEncoder()
    enc = CachedEncoder(model, EmbeddingCache(tmp_path))
    with pytest.warns(CacheCorruptionWarning, match="corrupt cache file") as record:
        out = enc.encode(TEXTS)
    assert len(record) == 1
    assert "\n" not in str(record[0].message)
    assert str(path) in str(record[0].message)
    assert "pickle" not in str(record[0].message)  # random bytes are not "pickled data"
    if corrupt is _random_bytes:
        assert "not an .npz archive" in str(record[0].message)
    assert np.array_equal(out, vecs)
    assert model.n_texts == 4  # everything re-encoded
    # The rebuilt file is sound: a fresh cache reads it without warnings or model calls.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again_model = FakeEncoder()
        again = CachedEncoder(again_model, EmbeddingCache(tmp_path)).encode(TEXTS)
    assert np.array_equal(again, vecs) and again_model.n_texts == 0


def test_corrupt_file_lookup_returns_none(tmp_path: Path) -> None:
    path, _ = _fill(tmp_path)
    _truncate(path)
    with pytest.warns(CacheCorruptionWarning):
        vecs, found = EmbeddingCache(tmp_path).lookup(FakeEncoder().identity, TEXTS)
    assert vecs is None and not found.any()
    assert not path.exists()


def test_file_under_wrong_name_is_rejected(tmp_path: Path) -> None:
    path, _ = _fill(tmp_path)
    cache = EmbeddingCache(tmp_path)
    other = cache.path_for("other identity")
    other.write_bytes(path.read_bytes())
    with pytest.warns(CacheCorruptionWarning, match="identity"):
        vecs, _ = cache.lookup("other identity", TEXTS)
    assert vecs is None


# -- named arrays -------------------------------------------------------------------------------


def test_named_arrays_roundtrip(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    assert cache.get_array("pca/model-x/16") is None
    proj = np.random.default_rng(0).standard_normal((384, 16)).astype(np.float32)
    cache.put_array("pca/model-x/16", proj)
    got = EmbeddingCache(tmp_path).get_array("pca/model-x/16")
    assert got is not None and got.dtype == np.float32 and np.array_equal(got, proj)
    cache.put_array("pca/model-x/16", proj * 2)
    got = cache.get_array("pca/model-x/16")
    assert got is not None and np.array_equal(got, proj * 2)
    with pytest.raises(ValueError):
        cache.put_array("bad", np.array([object()], dtype=object))


@pytest.mark.parametrize("corrupt", [_truncate, _random_bytes])
def test_corrupt_named_array(tmp_path: Path, corrupt: object) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.put_array("k", np.arange(100.0))
    corrupt(cache.array_path("k"))  # type: ignore[operator]
    with pytest.warns(CacheCorruptionWarning):
        assert cache.get_array("k") is None
    assert not cache.array_path("k").exists()


def test_named_array_checksum(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.put_array("k", np.arange(10.0))
    path = cache.array_path("k")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["array"] = arrays["array"] + 1
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.warns(CacheCorruptionWarning, match="checksum"):
        assert cache.get_array("k") is None


# -- with a real (tiny) model -------------------------------------------------------------------


def test_cached_transformer(tiny_bert_path: Path, tmp_path: Path) -> None:
    model = TransformerEncoder(tiny_bert_path)
    enc = CachedEncoder(model, EmbeddingCache(tmp_path))
    first = enc.encode(CORPUS)
    assert enc.calls == len(CORPUS)
    second = CachedEncoder(model, EmbeddingCache(tmp_path)).encode(CORPUS)
    assert np.array_equal(first, second)
    np.testing.assert_allclose(first, model.encode(CORPUS), atol=1e-6)


def test_a_cache_folder_that_is_a_file_is_one_line_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(EncoderError) as err:
        EmbeddingCache(blocker)
    assert str(err.value).startswith(f"{blocker}: the embedding cache folder is a file")
    assert "LMRECSIM_CACHE_DIR" in str(err.value) and "\n" not in str(err.value)


def test_a_cache_location_that_cannot_be_used_is_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # A folder below a file can be neither read nor created.
    cache = EmbeddingCache(blocker / "sub")
    with pytest.raises(EncoderError, match=r"cannot read the embedding cache \(Not a directory"):
        CachedEncoder(FakeEncoder(), cache).encode(["a"])
    with pytest.raises(EncoderError, match=r"cannot read the embedding cache"):
        cache.get_array("k")
    # Writing where the folder cannot be created (a read-only disk, another user's folder).
    ok = EmbeddingCache(tmp_path / "ok")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(EncoderError) as err:
        ok.put_array("k", np.zeros(3))
    assert str(err.value) == (
        f"{tmp_path / 'ok' / 'arrays'}: cannot write the embedding cache (Permission denied; "
        "expected a writable folder: set encoder.cache_dir or $LMRECSIM_CACHE_DIR)"
    )


def test_an_unwritable_cache_is_reported_before_the_model_encodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The folder is checked before any text goes to the model: on a real catalog the error came
    # after minutes of encoding, when the vectors were stored.
    filled, _ = _fill(tmp_path / "filled")
    model = FakeEncoder()

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(EncoderError) as err:
        CachedEncoder(model, EmbeddingCache(tmp_path / "new")).encode(["a", "b"])
    assert str(err.value) == (
        f"{tmp_path / 'new' / 'embeddings'}: cannot write the embedding cache (Permission "
        "denied; expected a writable folder: set encoder.cache_dir or $LMRECSIM_CACHE_DIR)"
    )
    assert model.received == []
    # A cache that already holds every text is read without writing.
    cached = CachedEncoder(FakeEncoder(), EmbeddingCache(tmp_path / "filled"))
    assert cached.encode(TEXTS[:1]).shape == (1, 8)
    assert cached.encoder.received == []
    assert filled.exists()


def test_an_unusable_cache_is_a_cli_error_with_exit_code_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lmrecsim.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("LMRECSIM_CACHE_DIR", str(blocker))
    out = tmp_path / "report"
    args = ["evaluate", "--policy", "random", "--episodes", "1", "--no-progress"]
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"lmrecsim: error: {blocker}: the embedding cache folder is a file")
    assert not out.exists()


def test_cached_vectors_do_not_depend_on_what_was_cached_before(
    tiny_bert_path: Path, tmp_path: Path
) -> None:
    # A text's vector used to depend in its last bits on the batch it was encoded in (its
    # padded length), so a cache filled by an earlier run over a subset made a later run over
    # the whole list differ from a cold one.
    from lmrecsim.encoders import load_encoder

    texts = [" ".join(["word"] * (1 + (7 * i) % 40)) + f" item {i}" for i in range(150)]
    subset = texts[::7]
    cold = load_encoder(tiny_bert_path, cache_dir=tmp_path / "cold", batch_size=16).encode(texts)
    warm = load_encoder(tiny_bert_path, cache_dir=tmp_path / "warm", batch_size=16)
    warm.encode(subset)
    again = load_encoder(tiny_bert_path, cache_dir=tmp_path / "warm", batch_size=16)
    np.testing.assert_array_equal(again.encode(texts), cold)
    alone = load_encoder(tiny_bert_path, cache_dir=tmp_path / "alone", batch_size=16)
    np.testing.assert_array_equal(alone.encode([texts[5]])[0], cold[5])
