"""Item catalogs: the shipped default and user-supplied CSV / Parquet files.

A :class:`Catalog` is an immutable, column-oriented table of items. Its numeric arrays are
read-only so that anything keyed on :meth:`Catalog.content_hash` (embedding caches, PCA fits)
cannot be silently invalidated by an in-place edit.

File format (CSV or Parquet), one row per item:

==============  ========  ==========================================================
column          required  meaning
==============  ========  ==========================================================
item_id         yes       unique identifier (any string)
title           yes       non-empty display title
description     yes       free text (may be empty)
topics          yes       ``|``-separated topic names (a list column in Parquet);
                          the first is the item's primary topic
quality         no        real number, default 0 (satisfaction after a click)
appeal          no        real number, default 0 (click-bait: raises clicks only)
popularity      no        non-negative prior, default uniform; renormalised to sum 1
==============  ========  ==========================================================

Extra columns are ignored.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lmrecsim.exceptions import LmrecsimError

REQUIRED_COLUMNS = ("item_id", "title", "description", "topics")
OPTIONAL_COLUMNS = ("quality", "appeal", "popularity")
_EXPECTED = "expected columns item_id, title, description, topics[, quality, appeal, popularity]"


class CatalogError(LmrecsimError):
    """A catalog file or table is missing, unreadable or holds invalid values.

    The message is one line naming the file, the column and, where it applies, the row.
    """


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Catalog:
    """An immutable item catalog of ``n`` items over ``n_topics`` topics.

    Build one with :func:`load_catalog`, :func:`load_default_catalog` or :func:`catalog_from_frame`
    rather than by hand; the constructor only checks that the columns agree.

    Attributes
    ----------
    item_ids:
        ``(n,)`` object array of unique item id strings.
    titles, descriptions:
        ``n`` strings each.
    topics:
        ``n`` tuples of topic names; the first entry is the primary topic.
    topic_names:
        Sorted unique topic names, length ``n_topics``.
    primary_topic:
        ``(n,)`` int64 index into ``topic_names``.
    topic_matrix:
        ``(n, n_topics)`` float32 multi-hot matrix, 1 for every topic of the item.
    quality:
        ``(n,)`` float32 quality ``q_i`` (satisfaction after a click).
    appeal:
        ``(n,)`` float32 click-bait appeal ``a_i`` (raises clicks, not satisfaction).
    popularity:
        ``(n,)`` float64 popularity prior, non-negative, sums to 1.
    source:
        The file the catalog came from, or ``"default"``.
    """

    item_ids: np.ndarray
    titles: list[str]
    descriptions: list[str]
    topics: list[tuple[str, ...]]
    topic_names: tuple[str, ...]
    primary_topic: np.ndarray
    topic_matrix: np.ndarray
    quality: np.ndarray
    appeal: np.ndarray
    popularity: np.ndarray
    source: str

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        for name in ("titles", "descriptions", "topics", "primary_topic", "quality", "appeal"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"Catalog.{name} has {len(getattr(self, name))} rows, expected {n}"
                )
        if self.topic_matrix.shape != (n, len(self.topic_names)):
            raise ValueError(
                f"Catalog.topic_matrix has shape {self.topic_matrix.shape}, "
                f"expected {(n, len(self.topic_names))}"
            )
        if self.popularity.shape != (n,):
            raise ValueError(
                f"Catalog.popularity has shape {self.popularity.shape}, expected {(n,)}"
            )
        if n and not np.isclose(self.popularity.sum(), 1.0, atol=1e-9):
            raise ValueError(f"Catalog.popularity sums to {self.popularity.sum()}, expected 1")

    def __len__(self) -> int:
        return len(self.item_ids)

    def __repr__(self) -> str:
        return (
            f"Catalog(n_items={len(self)}, n_topics={len(self.topic_names)}, "
            f"source={self.source!r})"
        )

    def texts(self) -> list[str]:
        """The text the encoder embeds for each item: ``"{title}. {description}"``.

        A title that already ends in ``.``, ``!`` or ``?`` is not given a second full stop, and
        an empty description leaves the title alone.
        """
        out = []
        for title, description in zip(self.titles, self.descriptions, strict=True):
            if not description:
                out.append(title)
            elif title.endswith((".", "!", "?")):
                out.append(f"{title} {description}")
            else:
                out.append(f"{title}. {description}")
        return out

    def subset(self, index: np.ndarray | Sequence[int]) -> Catalog:
        """The catalog restricted to ``index`` (integer positions or a boolean mask of length n).

        ``topic_names`` is kept whole so that ``topic_matrix`` columns stay aligned with the
        parent catalog; the popularity prior is renormalised over the subset.
        """
        idx = np.asarray(index)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f"boolean mask has shape {idx.shape}, expected {(len(self),)}")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False).reshape(-1)
        if idx.size == 0:
            raise ValueError("subset needs at least one item")
        if len(np.unique(idx)) != idx.size:
            raise ValueError("subset index holds duplicate positions")
        popularity = self.popularity[idx].astype(np.float64)
        total = popularity.sum()
        popularity = popularity / total if total > 0 else np.full(idx.size, 1.0 / idx.size)
        return Catalog(
            item_ids=_readonly(self.item_ids[idx].copy()),
            titles=[self.titles[i] for i in idx],
            descriptions=[self.descriptions[i] for i in idx],
            topics=[self.topics[i] for i in idx],
            topic_names=self.topic_names,
            primary_topic=_readonly(self.primary_topic[idx].copy()),
            topic_matrix=_readonly(self.topic_matrix[idx].copy()),
            quality=_readonly(self.quality[idx].copy()),
            appeal=_readonly(self.appeal[idx].copy()),
            popularity=_readonly(popularity),
            source=self.source,
        )

    def to_frame(self) -> pd.DataFrame:
        """The catalog as a DataFrame in the file format (topics ``|``-joined), one row per item."""
        return pd.DataFrame(
            {
                "item_id": list(self.item_ids),
                "title": self.titles,
                "description": self.descriptions,
                "topics": ["|".join(t) for t in self.topics],
                "quality": self.quality.astype(np.float64),
                "appeal": self.appeal.astype(np.float64),
                "popularity": self.popularity,
            }
        )

    def content_hash(self) -> str:
        """SHA-256 hex digest of the catalog's content (not of its ``source``).

        Stable across processes and platforms. Popularity is rounded to 12 significant digits
        first so that a catalog written to CSV and read back (renormalising again) hashes the same.
        """
        digest = hashlib.sha256()
        for column in (list(self.item_ids), self.titles, self.descriptions):
            for value in column:
                digest.update(str(value).encode("utf-8"))
                digest.update(b"\x1f")
            digest.update(b"\x1e")
        for item_topics in self.topics:
            digest.update("|".join(item_topics).encode("utf-8"))
            digest.update(b"\x1f")
        digest.update(b"\x1e")
        digest.update(np.ascontiguousarray(self.quality, dtype="<f4").tobytes())
        digest.update(np.ascontiguousarray(self.appeal, dtype="<f4").tobytes())
        rounded = [f"{p:.12g}" for p in self.popularity]
        digest.update(",".join(rounded).encode("ascii"))
        return digest.hexdigest()


def _fail(source: str, message: str) -> CatalogError:
    return CatalogError(f"{source}: {message}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _row_label(row: int, item_ids: Sequence[Any] | None) -> str:
    label = f"row {row + 1}"
    if item_ids is not None:
        item_id = item_ids[row]
        if isinstance(item_id, str) and item_id:
            label += f" (item_id {item_id!r})"
    return label


class _NotText(ValueError):
    """A cell that should hold text holds something else (bytes, a list, a mapping)."""


def _as_text(value: Any) -> str:
    if value is None or value is pd.NA:  # pd.NA: a missing cell of a nullable string column
        return ""
    if isinstance(value, float) and np.isnan(value):
        return ""
    if isinstance(value, (bytes, bytearray, list, tuple, dict, set, np.ndarray)):
        # str() of these would become a title like "b'...'" or "['a' 'b']".
        raise _NotText(type(value).__name__)
    return str(value).strip()


def _text_column(
    frame: pd.DataFrame, column: str, source: str, item_ids: Sequence[str] | None = None
) -> list[str]:
    """Column ``column`` as stripped text, or one line naming the first cell that is not text."""
    out = []
    for row, value in enumerate(frame[column]):
        try:
            out.append(_as_text(value))
        except _NotText as exc:
            where = f"row {row + 1}" if item_ids is None else _row_label(row, item_ids)
            raise _fail(
                source, f"column '{column}' {where}: a {exc} value (expected text)"
            ) from None
    return out


def _parse_topics(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        parts: list[Any] = value.split("|")
    elif isinstance(value, (list, tuple, np.ndarray)):
        parts = list(value)
    else:  # _as_text refuses a mapping or bytes (_NotText)
        parts = [] if _as_text(value) == "" else [value]
    seen: dict[str, None] = {}  # ordered set: keeps the primary topic first
    for part in parts:
        name = _as_text(part)
        if name:
            seen[name] = None
    return tuple(seen)


def _numeric_column(
    frame: pd.DataFrame, column: str, source: str, item_ids: Sequence[str]
) -> np.ndarray:
    raw = frame[column]
    kinds = pd.api.types
    if (
        kinds.is_bool_dtype(raw)
        or kinds.is_datetime64_any_dtype(raw)
        or kinds.is_timedelta64_dtype(raw)
    ):
        # pandas would read dates as nanosecond counts and booleans as 0/1.
        raise _fail(source, f"column '{column}': values of type {raw.dtype} (expected numbers)")
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    # Stored as float32 (quality, appeal): a value beyond float32's range would become inf.
    limit = np.finfo(np.float32).max if column != "popularity" else np.inf
    bad = np.flatnonzero(~np.isfinite(values) | (np.abs(values) > limit))
    if bad.size:
        row = int(bad[0])
        shown = raw.iloc[row]
        shown = shown.item() if isinstance(shown, np.generic) else shown
        what = "not a finite number" if limit == np.inf else "not a finite number within +-3.4e38"
        raise _fail(
            source,
            f"column '{column}' {_row_label(row, item_ids)}: {shown!r} is {what} "
            f"({bad.size} bad value{'s' if bad.size > 1 else ''} in total)",
        )
    return values


def catalog_from_frame(frame: pd.DataFrame, source: str = "<frame>") -> Catalog:
    """Validate a DataFrame in the catalog file format and build a :class:`Catalog`.

    Parameters
    ----------
    frame:
        One row per item with the columns described in the module docstring.
    source:
        Name used in error messages and stored as ``Catalog.source``.

    Raises
    ------
    CatalogError
        One line naming ``source``, the column and the first offending row.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise _fail(source, f"missing column '{missing[0]}' ({_EXPECTED})")
    if len(frame) == 0:
        raise _fail(source, f"column 'item_id': the catalog has no rows ({_EXPECTED})")
    frame = frame.reset_index(drop=True)

    item_ids = _text_column(frame, "item_id", source)
    for row, item_id in enumerate(item_ids):
        if not item_id:
            raise _fail(source, f"column 'item_id' row {row + 1}: empty item id")
    first_row: dict[str, int] = {}
    for row, item_id in enumerate(item_ids):
        if item_id in first_row:
            raise _fail(
                source,
                f"column 'item_id' row {row + 1}: duplicate item_id {item_id!r} "
                f"(first seen in row {first_row[item_id] + 1})",
            )
        first_row[item_id] = row

    titles = _text_column(frame, "title", source, item_ids)
    for row, title in enumerate(titles):
        if not title:
            raise _fail(source, f"column 'title' {_row_label(row, item_ids)}: empty title")
    descriptions = _text_column(frame, "description", source, item_ids)

    topics = []
    for row, value in enumerate(frame["topics"]):
        try:
            topics.append(_parse_topics(value))
        except _NotText as exc:
            raise _fail(
                source,
                f"column 'topics' {_row_label(row, item_ids)}: a {exc} value (expected names "
                "separated by '|', or a list of names)",
            ) from None
    for row, item_topics in enumerate(topics):
        if not item_topics:
            raise _fail(
                source,
                f"column 'topics' {_row_label(row, item_ids)}: no topic given "
                "(expected one or more names separated by '|')",
            )

    n = len(frame)
    quality = (
        _numeric_column(frame, "quality", source, item_ids)
        if "quality" in frame.columns
        else np.zeros(n)
    )
    appeal = (
        _numeric_column(frame, "appeal", source, item_ids)
        if "appeal" in frame.columns
        else np.zeros(n)
    )
    if "popularity" in frame.columns:
        popularity = _numeric_column(frame, "popularity", source, item_ids)
        negative = np.flatnonzero(popularity < 0)
        if negative.size:
            row = int(negative[0])
            raise _fail(
                source,
                f"column 'popularity' {_row_label(row, item_ids)}: {float(popularity[row])!r} "
                "is negative (expected a non-negative prior)",
            )
        with np.errstate(over="ignore"):
            total = popularity.sum()
        if total <= 0:
            raise _fail(
                source, "column 'popularity': all values are zero (expected a positive sum)"
            )
        if not np.isfinite(total):
            raise _fail(
                source,
                f"column 'popularity': the values sum to {total} (expected a prior whose sum is "
                "a finite number; it is rescaled to 1)",
            )
        popularity = popularity / total
    else:
        popularity = np.full(n, 1.0 / n)

    topic_names = tuple(sorted({t for item_topics in topics for t in item_topics}))
    position = {name: k for k, name in enumerate(topic_names)}
    topic_matrix = np.zeros((n, len(topic_names)), dtype=np.float32)
    primary = np.empty(n, dtype=np.int64)
    for row, item_topics in enumerate(topics):
        primary[row] = position[item_topics[0]]
        topic_matrix[row, [position[t] for t in item_topics]] = 1.0

    return Catalog(
        item_ids=_readonly(np.array(item_ids, dtype=object)),
        titles=titles,
        descriptions=descriptions,
        topics=topics,
        topic_names=topic_names,
        primary_topic=_readonly(primary),
        topic_matrix=_readonly(topic_matrix),
        quality=_readonly(quality.astype(np.float32)),
        appeal=_readonly(appeal.astype(np.float32)),
        popularity=_readonly(popularity.astype(np.float64)),
        source=source,
    )


def _read_frame(path: Path, source: str) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise _fail(source, f"unsupported file type {suffix!r} (expected .csv or .parquet)")
    if not path.is_file():
        raise _fail(source, "file not found (expected a .csv or .parquet catalog)")
    try:
        if suffix == ".csv":
            # Everything as text: numeric columns are converted later with row-level errors,
            # and titles such as "NA" or "null" must stay strings.
            header = _csv_header(path)
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        else:
            frame = pd.read_parquet(path)
            header = [str(c) for c in frame.columns]
    except Exception as error:  # any reader failure means the file is unusable
        raise _fail(source, f"cannot read file ({_first_line(error)})") from error
    # pandas renames a repeated CSV column ('quality.1'), which then passed as an extra column
    # while the first copy was used: which one was meant is unknown.
    repeated = [c for c in dict.fromkeys(header) if header.count(c) > 1]
    if repeated:
        raise _fail(
            source,
            f"column {repeated[0]!r} appears {header.count(repeated[0])} times (expected each "
            "column once)",
        )
    return frame


def _csv_header(path: Path) -> list[str]:
    """The column names of a CSV file's first row, as written (a byte-order mark dropped)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle), [])


def load_catalog(path: str | os.PathLike[str]) -> Catalog:
    """Load and validate a catalog from a ``.csv`` or ``.parquet`` file.

    Raises
    ------
    CatalogError
        One line naming the file, the column and the first offending row.
    """
    file = Path(path)
    source = str(file)
    return catalog_from_frame(_read_frame(file, source), source=source)


def load_default_catalog() -> Catalog:
    """The shipped default catalog (generated by :mod:`lmrecsim.envs.catalog_build`).

    About 1,300 items over 20 topics, with ~8% click-bait items and a Zipf popularity prior.
    ``Catalog.source`` is ``"default"``.
    """
    resource = resources.files("lmrecsim.envs").joinpath("data").joinpath("catalog.csv")
    with resources.as_file(resource) as file:
        frame = _read_frame(Path(file), "default")
    return catalog_from_frame(frame, source="default")
