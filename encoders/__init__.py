"""Text -> vectors: language-model encoders and their caches.

This is a leaf package of lmrecsim (it imports no other lmrecsim subpackage). Everything that
turns text (item titles and descriptions, user personas, rendered interaction histories) into
the embedding space of the simulator goes through an :class:`Encoder`:

``Encoder`` (protocol)
    ``name``, ``dim``, ``identity`` and ``encode(texts) -> float32 (n, dim)`` with L2-normalised
    rows, in input order, deterministic; ``n == 0`` gives shape ``(0, dim)``.
``TransformerEncoder``
    A Hugging Face model from a local folder (or a name already in the local HF cache; nothing is
    downloaded) with ``mean`` (default), ``cls`` or ``last`` (decoder models such as GPT-2)
    pooling. Texts are batched longest-first to cut padding.
``EmbeddingCache`` / ``CachedEncoder``
    A checksummed, atomically written on-disk store keyed by ``Encoder.identity`` and the sha256
    of each text; ``CachedEncoder`` only sends uncached texts to the model. Corrupt files are
    discarded with a :class:`CacheCorruptionWarning` and rebuilt. ``get_array``/``put_array``
    keep other derived arrays (e.g. a PCA projection) next to the embeddings.
``LRUEncoder``
    An in-memory LRU for short-lived texts such as rendered histories; wrapped around a
    ``CachedEncoder`` it sends misses to the model, not through the on-disk cache.
``load_encoder``
    The usual entry point: a memoised ``TransformerEncoder`` wrapped in a ``CachedEncoder``.

Example
-------
>>> from lmrecsim.encoders import load_encoder
>>> enc = load_encoder()  # bundled all-MiniLM-L6-v2, d = 384, cached under ~/.cache/lmrecsim
>>> vecs = enc.encode(["a film about astronauts", "a romantic comedy"])
>>> vecs.shape, vecs.dtype
((2, 384), dtype('float32'))

Bad settings raise :class:`EncoderError` with a one-line message naming the model path or key,
e.g. ``encoder.model: '/x/y' does not exist (expected a local Hugging Face model folder with
config.json, or a model name in the local cache)``.

The cache root is ``$LMRECSIM_CACHE_DIR`` if set, else ``~/.cache/lmrecsim``.
"""

from __future__ import annotations

from .base import Encoder, l2_normalise
from .cache import CachedEncoder, EmbeddingCache, default_cache_dir, text_hash
from .errors import CacheCorruptionWarning, EncoderError
from .loader import clear_loaded_encoders, load_encoder
from .lru import LRUEncoder
from .transformer import DEFAULT_MODEL_NAME, TransformerEncoder, default_model_path

__all__ = [
    "DEFAULT_MODEL_NAME",
    "CacheCorruptionWarning",
    "CachedEncoder",
    "EmbeddingCache",
    "Encoder",
    "EncoderError",
    "LRUEncoder",
    "TransformerEncoder",
    "clear_loaded_encoders",
    "default_cache_dir",
    "default_model_path",
    "l2_normalise",
    "load_encoder",
    "text_hash",
]
