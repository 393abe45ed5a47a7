"""In-memory LRU of text -> vector in front of any :class:`Encoder`."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from .base import Encoder, TokenBudgetOfWrapped, check_texts, empty_vectors
from .cache import CachedEncoder
from .errors import EncoderError

__all__ = ["LRUEncoder"]


class LRUEncoder(TokenBudgetOfWrapped):
    """Keep the ``maxsize`` most recently used text vectors in memory.

    Meant for rendered user histories, which repeat within and across episodes but are too many
    and too short-lived for the on-disk cache.

    Parameters
    ----------
    encoder : Encoder
        The wrapped encoder; its ``name``, ``dim`` and ``identity`` are passed through.
    maxsize : int, default 100_000
        Most texts kept; ``0`` disables memory (every call goes to ``encoder``).
    persist : bool, default False
        Only matters when ``encoder`` is a :class:`CachedEncoder`. ``False`` sends misses to its
        model directly: per-step texts are not worth keeping on disk, and every store would
        rewrite the whole on-disk file (a cost that grows with every run), while texts stored
        by earlier runs would answer from disk and make timings depend on what ran before.
        ``True`` reads and writes through the on-disk cache.

    Attributes
    ----------
    hits : int
        Distinct texts per call answered from memory, summed over calls.
    misses : int
        Distinct texts per call sent to the wrapped encoder, summed over calls.
    """

    def __init__(self, encoder: Encoder, maxsize: int = 100_000, *, persist: bool = False) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 0:
            raise EncoderError(f"encoder.lru_maxsize: {maxsize!r} (expected an integer >= 0)")
        self.encoder = encoder
        self.persist: bool = persist
        self._source: Encoder = (
            encoder.encoder if isinstance(encoder, CachedEncoder) and not persist else encoder
        )
        self.maxsize: int = maxsize
        self.name: str = encoder.name
        self.dim: int = encoder.dim
        self.identity: str = encoder.identity
        self.hits: int = 0
        self.misses: int = 0
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()

    def __repr__(self) -> str:
        return f"LRUEncoder({self.encoder!r}, maxsize={self.maxsize}, persist={self.persist})"

    def __len__(self) -> int:
        return len(self._memory)

    def clear(self) -> None:
        """Forget all vectors (counters are kept)."""
        self._memory.clear()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode ``texts`` (n) into float32 ``(n, dim)``, unit-norm rows, in input order.

        Duplicates within the call are encoded once, and all misses go to the wrapped encoder
        in a single batched call.
        """
        items = check_texts(texts)
        if not items:
            return empty_vectors(self.dim)
        unique = list(dict.fromkeys(items))
        out = np.empty((len(unique), self.dim), dtype=np.float32)
        missing: list[int] = []
        for i, t in enumerate(unique):
            vec = self._memory.get(t)
            if vec is None:
                missing.append(i)
            else:
                self._memory.move_to_end(t)
                out[i] = vec
        self.hits += len(unique) - len(missing)
        self.misses += len(missing)
        if missing:
            new = np.asarray(self._source.encode([unique[i] for i in missing]), dtype=np.float32)
            out[missing] = new
            if self.maxsize > 0:
                for i in missing:
                    self._memory[unique[i]] = out[i].copy()
                while len(self._memory) > self.maxsize:
                    self._memory.popitem(last=False)
        pos = {t: i for i, t in enumerate(unique)}
        return out[[pos[t] for t in items]]
