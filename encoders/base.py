"""The :class:`Encoder` protocol and small helpers shared by the encoder implementations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Encoder",
    "TokenBudgetOfWrapped",
    "l2_normalise",
    "empty_vectors",
    "check_texts",
    "token_budget",
]


@runtime_checkable
class Encoder(Protocol):
    """Anything that turns texts into unit-norm vectors.

    Attributes
    ----------
    name : str
        Human-readable model name, e.g. ``"all-MiniLM-L6-v2"``.
    dim : int
        Output dimension ``d``.
    identity : str
        Stable string identifying the model weights, pooling and ``max_length``; two encoders
        with the same identity produce the same vectors, so it is used as the cache key.

    An encoder that embeds only the first tokens of a long text may also offer a token budget:
    an ``int`` attribute ``text_token_limit`` (tokens of text embedded, special tokens not
    counted) and a method ``token_counts(texts) -> (n,) int64``. Rendered user histories are
    then cut to their newest events that fit (see :func:`token_budget`); without it they are
    passed whole. The cut adds up the counts of a text's sentences, which is exact for tokenizers
    that split on whitespace first (WordPiece, as the default model's); a byte-level BPE may
    count a sentence a token differently inside a text, and the encoder's own truncation then
    takes any excess off the end.
    """

    name: str
    dim: int
    identity: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode ``texts``.

        Parameters
        ----------
        texts : Sequence[str]
            ``n`` texts.

        Returns
        -------
        np.ndarray
            float32 array of shape ``(n, dim)``; rows are L2-normalised and in input order; the
            same texts give the same array on every call. ``n == 0`` gives shape ``(0, dim)``.
        """
        ...


def check_texts(texts: Sequence[str]) -> list[str]:
    """Return ``texts`` as a list, rejecting a bare string and non-string items.

    A bare ``str`` is a Sequence of characters; encoding it letter by letter is never intended.
    A text with a lone surrogate is a ``ValueError`` naming the item (tokenizers fail on it with
    their own ``TypeError``).
    """
    if isinstance(texts, str | bytes):
        raise TypeError("encode() expects a sequence of strings, not a single string")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"encode() expects strings; item {i} is {type(t).__name__}")
        if not t.isascii():
            try:
                t.encode("utf-8")
            except UnicodeEncodeError as exc:  # a lone surrogate, from a bad decode upstream
                raise ValueError(
                    f"encode(): item {i} holds {t[exc.start]!r} at character {exc.start} "
                    "(expected text UTF-8 can hold: a lone surrogate is half of a character)"
                ) from None
    return out


def empty_vectors(dim: int) -> np.ndarray:
    """Return a float32 array of shape ``(0, dim)``."""
    return np.zeros((0, dim), dtype=np.float32)


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Scale each row of ``x`` (shape ``(n, d)``) to unit L2 norm; all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, eps)).astype(np.float32, copy=False)


def token_budget(encoder: object) -> tuple[Callable[[Sequence[str]], np.ndarray], int] | None:
    """The optional token budget of ``encoder``: ``(token_counts, text_token_limit)``, or None
    when the encoder embeds texts of any length (or does not say)."""
    limit = getattr(encoder, "text_token_limit", None)
    counts = getattr(encoder, "token_counts", None)
    if limit is None or counts is None:
        return None
    return counts, int(limit)


class TokenBudgetOfWrapped:
    """For encoders that wrap another (``self.encoder``): the wrapped encoder's token budget,
    when it has one (see :class:`Encoder`)."""

    encoder: object

    @property
    def text_token_limit(self) -> int | None:
        return getattr(self.encoder, "text_token_limit", None)

    def token_counts(self, texts: Sequence[str]) -> np.ndarray:
        """The wrapped encoder's token counts (only when it has a token budget)."""
        if self.text_token_limit is None:
            raise TypeError(f"{self.encoder!r} has no token budget")
        return self.encoder.token_counts(texts)  # type: ignore[attr-defined]
