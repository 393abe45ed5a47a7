"""load_encoder: wrapping, memoisation, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lmrecsim.encoders import (
    CachedEncoder,
    EncoderError,
    TransformerEncoder,
    clear_loaded_encoders,
    load_encoder,
)

from .conftest import CORPUS


@pytest.fixture(autouse=True)
def _fresh_memo() -> Iterator[None]:
    clear_loaded_encoders()
    yield
    clear_loaded_encoders()


def test_cached_by_default_and_memoised(tiny_bert_path: Path, tmp_path: Path) -> None:
    enc = load_encoder(str(tiny_bert_path), cache_dir=tmp_path)
    assert isinstance(enc, CachedEncoder)
    assert isinstance(enc.encoder, TransformerEncoder)
    assert load_encoder(str(tiny_bert_path), cache_dir=tmp_path) is enc
    # Another spelling of the same folder is the same model.
    assert load_encoder(tiny_bert_path / ".." / tiny_bert_path.name, cache_dir=tmp_path) is enc
    plain = load_encoder(str(tiny_bert_path), use_cache=False)
    assert plain is enc.encoder  # one model in memory for both
    other = load_encoder(str(tiny_bert_path), pooling="cls", use_cache=False)
    assert other is not plain and other.identity != plain.identity


def test_cache_used(tiny_bert_path: Path, tmp_path: Path) -> None:
    enc = load_encoder(str(tiny_bert_path), cache_dir=tmp_path)
    assert isinstance(enc, CachedEncoder)
    first = enc.encode(CORPUS)
    clear_loaded_encoders()
    again = load_encoder(str(tiny_bert_path), cache_dir=tmp_path)
    assert again is not enc
    assert np.array_equal(again.encode(CORPUS), first)
    assert isinstance(again, CachedEncoder) and again.calls == 0


def test_errors_are_not_memoised(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    for _ in range(2):
        with pytest.raises(EncoderError, match="does not exist"):
            load_encoder(str(missing), use_cache=False)
