"""How often does the evaluation's percentile-bootstrap interval of a mean hold the true mean?

The evaluation reports a 95% percentile bootstrap over episodes
(:func:`lmrecsim.evaluation.bootstrap.bootstrap_ci`) and warns below
:data:`lmrecsim.evaluation.runner.FEW_EPISODES` episodes per policy. This measures why: for each
sample size n it draws ``--samples`` samples of n values whose mean is known, from a normal and
from a skewed (exponential) distribution, and prints the share of intervals that hold the true
mean. The figures of docs/evaluation.md ("Intervals") come from

    python -m benchmarks.bootstrap_coverage

(about 10 s on 2 cores).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

SIZES = (2, 3, 5, 10, 20, 60)


def coverage(
    n: int, distribution: str, *, samples: int, resamples: int, rng: np.random.Generator
) -> float:
    """Share of ``samples`` percentile-bootstrap 95% intervals, each from n values of
    ``distribution`` (``normal``: N(0, 1); ``exponential``: Exp(1) - 1; true mean 0 for both),
    that hold 0."""
    from lmrecsim.evaluation.bootstrap import bootstrap_ci

    hits = 0
    for _ in range(samples):
        x = rng.normal(0.0, 1.0, n) if distribution == "normal" else rng.exponential(1.0, n) - 1.0
        _, low, high = bootstrap_ci(x, n_resamples=resamples, rng=rng)
        hits += bool(low <= 0.0 <= high)
    return hits / samples


def main(argv: Sequence[str] | None = None) -> int:
    from lmrecsim.commands.common import OneLineArgumentParser, int_at_least

    parser = OneLineArgumentParser(
        prog="benchmarks/bootstrap_coverage.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--samples", type=int_at_least(1, 1_000_000), default=4000, help="per cell (default 4000)"
    )
    parser.add_argument(
        "--resamples",
        type=int_at_least(1, 1_000_000),
        default=1000,
        help="bootstrap resamples per interval (default 1000)",
    )
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="default 0")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    # A binomial share of `samples` draws: its standard error, to read the table with.
    print(
        f"coverage of a nominal 95% interval, {args.samples} samples per cell (+-2 SE about ",
        end="",
    )
    print(f"{2 * np.sqrt(0.9 * 0.1 / args.samples):.3f} near 0.9)")
    print(f"{'episodes':>8}  {'normal':>7}  {'exponential':>11}")
    for n in SIZES:
        normal = coverage(n, "normal", samples=args.samples, resamples=args.resamples, rng=rng)
        skewed = coverage(n, "exponential", samples=args.samples, resamples=args.resamples, rng=rng)
        print(f"{n:>8}  {normal:>7.3f}  {skewed:>11.3f}")
    return 0


if __name__ == "__main__":
    from lmrecsim.errors import report_user_errors

    sys.exit(report_user_errors("benchmarks/bootstrap_coverage.py", main))
