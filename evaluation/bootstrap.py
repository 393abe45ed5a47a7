"""Percentile-bootstrap confidence intervals for evaluation metrics.

Resampling is vectorised: a block of resamples is one ``(n_block, n)`` index matrix, and the
statistic is applied along its rows. Blocks bound memory for long inputs.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from lmrecsim.evaluation.metrics import MetricInputError

__all__ = ["bootstrap_ci", "keyed_rng", "paired_difference_ci", "summarise"]

#: A statistic that reduces along an axis, like ``np.mean`` or ``np.median``.
Statistic = Callable[..., np.ndarray | float]

# Upper bound on the elements of one resample block (8 bytes each: 32 MiB of floats).
_BLOCK_ELEMENTS = 4_000_000


def _apply(statistic: Statistic, samples: np.ndarray) -> np.ndarray:
    """Apply ``statistic`` to each row of ``samples`` (shape ``(m, n)``) -> shape ``(m,)``."""
    try:
        out = np.asarray(statistic(samples, axis=1), dtype=float)
    except TypeError:
        # A statistic without an ``axis`` argument: fall back to one call per row.
        out = np.array([float(statistic(row)) for row in samples])
    if out.shape != (samples.shape[0],):
        raise MetricInputError(
            f"bootstrap: statistic must reduce each resample to a scalar, got shape {out.shape}"
        )
    return out


def bootstrap_ci(
    values: np.ndarray,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = 0,
    statistic: Statistic = np.mean,
) -> tuple[float, float, float]:
    """Point estimate and percentile-bootstrap confidence interval of a statistic.

    NaNs are dropped first, leaving ``x`` of shape ``(n,)``. Each of ``B = n_resamples``
    resamples draws ``n`` indices uniformly with replacement, giving ``theta*_b =
    statistic(x[idx_b])``; with ``alpha = 1 - confidence`` the interval is the
    ``alpha/2`` and ``1 - alpha/2`` empirical quantiles of ``theta*_1..B``. The estimate is
    ``statistic(x)`` on the full sample.

    The percentile interval assumes the statistic's sampling distribution is roughly
    symmetric, and it is too narrow for small ``n``: for the mean of normal data a nominal 95%
    interval covers about 73% at n = 3, 84% at 5, 90% at 10 and 92% at 20, less for skewed data
    (``python -m benchmarks.bootstrap_coverage``; ``lmrecsim evaluate`` warns below 10 episodes).

    Args:
        values: shape ``(n,)`` (flattened if not 1-D), one value per independent unit
            (e.g. per episode).
        n_resamples: number of bootstrap resamples ``B`` (>= 1).
        confidence: interval coverage, in ``(0, 1)``.
        rng: a Generator, or a seed for ``np.random.default_rng``.
        statistic: reduction called as ``statistic(array, axis=1)`` on a ``(B', n)`` block
            (``np.mean``, ``np.median``, ...); one without ``axis`` is called per resample.

    Returns:
        ``(estimate, low, high)``; ``(nan, nan, nan)`` when no finite value is left.
    """
    if int(n_resamples) < 1:
        raise MetricInputError(f"bootstrap_ci: n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise MetricInputError(f"bootstrap_ci: confidence must lie in (0, 1), got {confidence}")
    x = np.asarray(values, dtype=float).ravel()
    x = x[~np.isnan(x)]
    n = x.size
    if n == 0:
        return (float("nan"), float("nan"), float("nan"))
    gen = np.random.default_rng(rng)
    estimate = float(_apply(statistic, x[None, :])[0])

    block = max(1, _BLOCK_ELEMENTS // n)
    stats = np.empty(int(n_resamples))
    for start in range(0, int(n_resamples), block):
        stop = min(start + block, int(n_resamples))
        idx = gen.integers(0, n, size=(stop - start, n))
        stats[start:stop] = _apply(statistic, x[idx])
    alpha = 1.0 - confidence
    low, high = np.quantile(stats, [alpha / 2.0, 1.0 - alpha / 2.0])
    return (estimate, float(low), float(high))


def paired_difference_ci(
    a: np.ndarray,
    b: np.ndarray,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = 0,
    statistic: Statistic = np.mean,
) -> tuple[float, float, float]:
    """Mean difference ``a - b`` over paired units, with a percentile-bootstrap interval.

    ``a[i]`` and ``b[i]`` must belong to the same unit (e.g. the same seed and episode run
    under two policies, with common random numbers), so resampling the differences
    ``d_i = a_i - b_i`` keeps the pairing and removes the shared noise. Pairs where either
    side is NaN are dropped. The result is :func:`bootstrap_ci` of ``d``.

    Args:
        a: shape ``(n,)``, metric per unit under the first policy.
        b: shape ``(n,)``, metric per unit under the second policy.
        n_resamples: number of bootstrap resamples.
        confidence: interval coverage, in ``(0, 1)``.
        rng: a Generator, or a seed for ``np.random.default_rng``.
        statistic: reduction over the differences (default the mean).

    Returns:
        ``(estimate, low, high)`` of ``statistic(a - b)``; NaNs when no pair is left.
    """
    xa = np.asarray(a, dtype=float).ravel()
    xb = np.asarray(b, dtype=float).ravel()
    if xa.shape != xb.shape:
        raise MetricInputError(
            f"paired_difference_ci: a and b must have the same length, got {xa.size} and {xb.size}"
        )
    return bootstrap_ci(
        xa - xb,
        n_resamples=n_resamples,
        confidence=confidence,
        rng=rng,
        statistic=statistic,
    )


def keyed_rng(base: int, *keys: object) -> np.random.Generator:
    """A generator that is a function of ``base`` and the text of ``keys`` alone (a policy label,
    a metric name): the same cell of a table draws the same numbers whatever else is in it."""
    words = [zlib.crc32(str(key).encode("utf-8")) for key in keys]
    return np.random.default_rng([int(base), *words])


def summarise(
    episodes: pd.DataFrame,
    metrics: Sequence[str],
    by: str = "policy",
    rng: np.random.Generator | int | None = 0,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Mean and bootstrap interval of each metric, one row per group (policy).

    Each episode is one unit: for every group of ``episodes`` by ``by`` and every metric, the
    cell is :func:`bootstrap_ci` (mean) of that metric's column over the group's episodes,
    NaNs dropped. Every (group, metric) cell gets its own generator, derived from ``rng`` and
    the cell's group key and metric name: a cell's interval does not depend on which other groups
    or metrics are in the table (adding a policy used to shift the intervals of the policies
    after it).

    Args:
        episodes: episode table (see ``metrics.episode_table``), one row per episode.
        metrics: numeric column names to summarise.
        by: grouping column.
        rng: a Generator, or a seed for ``np.random.default_rng``.
        n_resamples: bootstrap resamples per cell.
        confidence: interval coverage, in ``(0, 1)``.

    Returns:
        DataFrame with column ``by``, ``n`` (episodes in the group), then for each metric
        ``<metric>``, ``<metric>_low``, ``<metric>_high``; groups sorted.
    """
    missing = [c for c in [by, *metrics] if c not in episodes.columns]
    if missing:
        raise MetricInputError(f"summarise: episodes is missing columns {missing}")
    base = int(np.random.default_rng(rng).integers(2**63))
    rows = []
    for key, part in episodes.groupby(by, sort=True):
        row: dict[str, object] = {by: key, "n": len(part)}
        for metric in metrics:
            est, low, high = bootstrap_ci(
                part[metric].to_numpy(dtype=float),
                n_resamples=n_resamples,
                confidence=confidence,
                rng=keyed_rng(base, key, metric),
            )
            row[metric], row[f"{metric}_low"], row[f"{metric}_high"] = est, low, high
        rows.append(row)
    columns = [by, "n"] + [f"{m}{s}" for m in metrics for s in ("", "_low", "_high")]
    return pd.DataFrame(rows, columns=columns)


def gap_fraction(agent: np.ndarray, random: np.ndarray, oracle: np.ndarray) -> float:
    """(agent - random) / (oracle - random) of the mean returns (nan when oracle <= random)."""
    den = float(np.mean(oracle) - np.mean(random))
    return float((np.mean(agent) - np.mean(random)) / den) if den > 0 else float("nan")


def gap_text(share: float, low: float, high: float) -> str | None:
    """A gap share and its :func:`gap_ci` interval as reports print them (``69% [57%, 81%]``);
    None when there is no share (the oracle does not beat random)."""
    if not np.isfinite(share):
        return None

    def pct(x: float) -> str:  # what rounds to 0% prints without a sign
        text = f"{x:.0%}"
        return "0%" if text == "-0%" else text

    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{pct(share)} [interval unbounded: the oracle often does not beat random]"
    return f"{pct(share)} [{pct(low)}, {pct(high)}]"


def gap_ci(
    agent: np.ndarray,
    random: np.ndarray,
    oracle: np.ndarray,
    rng: np.random.Generator,
    n: int = 2000,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Paired-bootstrap interval of :func:`gap_fraction` (resampling evaluation episodes, the
    three arrays' entries of one episode together), ``confidence`` coverage, ``n`` resamples.

    A resample in which the oracle's mean return does not beat random's has no gap fraction, as
    :func:`gap_fraction` has none for such a sample, and the ratio grows without bound as the two
    means meet. So when more than one tail's share, ``(1 - confidence) / 2``, of the resamples
    has none, the interval is unbounded and ``(nan, nan)`` is returned; otherwise those resamples
    are left out of the quantiles.
    """
    idx = rng.integers(agent.size, size=(n, agent.size))
    a, r, o = agent[idx].mean(axis=1), random[idx].mean(axis=1), oracle[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2
    defined = o - r > 0
    if not defined.any() or np.count_nonzero(~defined) > tail * n:
        return float("nan"), float("nan")
    g = (a[defined] - r[defined]) / (o[defined] - r[defined])
    lo, hi = np.quantile(g, [tail, 1.0 - tail])
    return float(lo), float(hi)
