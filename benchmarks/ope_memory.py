"""How much memory does off-policy evaluation's reward model (DM, DR) take as the log grows?

``lmrecsim ope`` runs DM and DR by default; their reward model
(:func:`lmrecsim.evaluation.ope.fit_reward_model`) predicts every candidate of every logged
round. This builds synthetic rounds of the default scenario's shapes (K = 20 candidates, 32-dim
user and candidate vectors, 17 candidate features) and prints, per log size, the peak memory the
model's fit and predictions allocate (numpy's allocations, traced) and the seconds it took, then
the ratio of the largest log's peak to the smallest's: near 1 when memory does not grow with the
log, about the ratio of the sizes when it does. The figures of BENCHMARKS.md come from

    python -m benchmarks.ope_memory

(about 15 s on 2 cores).
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from collections.abc import Sequence

import numpy as np

SIZES = (10_000, 40_000)
K, P, F = 20, 32, 17


def rounds_of(n: int, rng: np.random.Generator):  # noqa: ANN201 - Rounds, imported lazily
    """``n`` synthetic single-item rounds of the default shapes, 50 steps an episode."""
    from lmrecsim.evaluation.ope import Rounds

    return Rounds(
        reward=rng.random(n),
        action=rng.integers(0, K, n),
        pscore=np.full(n, 1.0 / K),
        logger_dist=np.full((n, K), 1.0 / K),
        target_dist=np.full((n, K), 1.0 / K),
        mask=np.ones((n, K), bool),
        user=rng.random((n, P), dtype=np.float32),
        candidates=rng.random((n, K, P), dtype=np.float32),
        features=rng.random((n, K, F), dtype=np.float32),
        cluster=np.arange(n) // 50,
    )


def peak_of_fit(n: int, seed: int) -> tuple[float, float]:
    """(peak MB allocated while fitting and predicting, seconds) for a log of ``n`` rounds."""
    from lmrecsim.evaluation.ope import fit_reward_model

    rounds = rounds_of(n, np.random.default_rng(seed))
    tracemalloc.start()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    start = time.perf_counter()
    fit_reward_model(rounds)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (peak - before) / 2**20, seconds


def main(argv: Sequence[str] | None = None) -> int:
    from lmrecsim.commands.common import OneLineArgumentParser, int_at_least

    parser = OneLineArgumentParser(
        prog="benchmarks/ope_memory.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--rounds",
        type=int_at_least(100, 10_000_000),
        action="append",
        help=f"log sizes to measure (repeatable; default {', '.join(map(str, SIZES))})",
    )
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="default 0")
    args = parser.parse_args(argv)
    sizes = sorted(set(args.rounds or SIZES))
    print(f"{'rounds':>9}  {'peak MB':>8}  {'KB/round':>8}  {'seconds':>7}")
    peaks = []
    for n in sizes:
        mb, seconds = peak_of_fit(n, args.seed)
        peaks.append(mb)
        print(f"{n:>9}  {mb:>8.1f}  {1024 * mb / n:>8.2f}  {seconds:>7.2f}")
    if len(sizes) > 1:
        print(
            f"peak at {sizes[-1]} rounds / peak at {sizes[0]}: {peaks[-1] / peaks[0]:.2f} "
            f"(the log is {sizes[-1] / sizes[0]:.0f} times larger)"
        )
    return 0


if __name__ == "__main__":
    from lmrecsim.errors import report_user_errors

    sys.exit(report_user_errors("benchmarks/ope_memory.py", main))
