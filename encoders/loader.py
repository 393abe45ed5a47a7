"""``load_encoder``: the one place that turns encoder settings into an :class:`Encoder`."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from .base import Encoder
from .cache import CachedEncoder, EmbeddingCache, default_cache_dir
from .transformer import Pooling, TransformerEncoder, default_model_path

__all__ = ["load_encoder", "clear_loaded_encoders"]

_LOCK = threading.Lock()
_MODELS: dict[tuple[Any, ...], TransformerEncoder] = {}
_WRAPPED: dict[tuple[Any, ...], Encoder] = {}


def _model_key(model: str | os.PathLike[str] | None) -> str:
    """Normalise ``model`` so that equivalent spellings share one loaded model."""
    if model is None or model == "default":
        return str(default_model_path().resolve())
    raw = os.fspath(model)
    path = Path(raw).expanduser()
    return str(path.resolve()) if path.exists() else raw


def load_encoder(
    model: str | os.PathLike[str] | None = None,
    *,
    pooling: Pooling = "mean",
    max_length: int = 128,
    batch_size: int = 64,
    device: str = "cpu",
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    show_progress: bool = False,
) -> Encoder:
    """Load a :class:`TransformerEncoder`, wrapped in a :class:`CachedEncoder` when ``use_cache``.

    Models are memoised per process: the same arguments return the same object, and the
    cached and uncached variants share one loaded model.

    Parameters
    ----------
    model : str | os.PathLike | None
        See :class:`TransformerEncoder`; ``None`` is the bundled all-MiniLM-L6-v2.
    pooling, max_length, batch_size, device, show_progress
        Passed to :class:`TransformerEncoder`.
    cache_dir : str | os.PathLike | None
        Root of the :class:`EmbeddingCache`; ``None`` means ``$LMRECSIM_CACHE_DIR`` or
        ``~/.cache/lmrecsim``.
    use_cache : bool, default True
        Wrap in a :class:`CachedEncoder`.

    Raises
    ------
    EncoderError
        See :class:`TransformerEncoder`.
    """
    model_key = (_model_key(model), pooling, max_length, batch_size, device, show_progress)
    cache_key = None
    if use_cache:
        root = default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
        cache_key = str(root.resolve())
    full_key = (*model_key, cache_key)
    with _LOCK:
        hit = _WRAPPED.get(full_key)
        if hit is not None:
            return hit
        inner = _MODELS.get(model_key)
        if inner is None:
            inner = TransformerEncoder(
                model,
                pooling=pooling,
                max_length=max_length,
                batch_size=batch_size,
                device=device,
                show_progress=show_progress,
            )
            _MODELS[model_key] = inner
        result: Encoder = (
            CachedEncoder(inner, EmbeddingCache(cache_key)) if cache_key is not None else inner
        )
        _WRAPPED[full_key] = result
        return result


def clear_loaded_encoders() -> None:
    """Forget memoised encoders (frees their models once nothing else refers to them)."""
    with _LOCK:
        _MODELS.clear()
        _WRAPPED.clear()
