"""Checks of lmrecsim.evaluation.bootstrap: hand cases, coverage, pairing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lmrecsim.evaluation.bootstrap import (
    bootstrap_ci,
    gap_ci,
    gap_fraction,
    paired_difference_ci,
    summarise,
)
from lmrecsim.evaluation.metrics import MetricInputError


def test_empty_and_all_nan_give_nan() -> None:
    for values in (np.array([]), np.array([np.nan, np.nan])):
        assert all(math.isnan(v) for v in bootstrap_ci(values))


def test_two_point_sample_hand_computed() -> None:
    # Resample means of {1, 3} with n = 2: 1 (p = 1/4), 2 (1/2), 3 (1/4). The 5% and 95%
    # quantiles fall inside the point masses at 1 and 3 (1/4 > 5%), so the 90% interval is [1, 3]
    # (the empirical masses with 2000 resamples are 0.25 +- 0.03, far from 0.05).
    est, low, high = bootstrap_ci(np.array([1.0, 3.0]), confidence=0.90)
    assert (est, low, high) == (2.0, 1.0, 3.0)
    # Max of {1, 3} resampled: 1 only when both draws are 1 (p = 1/4) -> same interval, and a
    # statistic without an ``axis`` argument still works.
    est, low, high = bootstrap_ci(
        np.array([1.0, 3.0]), confidence=0.90, statistic=lambda x: float(max(x))
    )
    assert (est, low, high) == (3.0, 1.0, 3.0)


def test_nans_dropped_constant_degenerate_and_seeded() -> None:
    est, low, high = bootstrap_ci(np.array([2.0, np.nan, 2.0, 2.0]))
    assert (est, low, high) == (2.0, 2.0, 2.0)
    values = np.random.default_rng(1).normal(size=40)
    assert bootstrap_ci(values, rng=5) == bootstrap_ci(values, rng=5)
    assert bootstrap_ci(values, rng=5) != bootstrap_ci(values, rng=6)
    est, low, high = bootstrap_ci(values, statistic=np.median)
    assert est == pytest.approx(np.median(values)) and low < est < high


def test_interval_width_shrinks_like_one_over_sqrt_n() -> None:
    # The mean's standard error is sigma / sqrt(n): 100x the data -> about 1/10 the width.
    rng = np.random.default_rng(2)
    _, lo_s, hi_s = bootstrap_ci(rng.normal(size=100), rng=0)
    _, lo_l, hi_l = bootstrap_ci(rng.normal(size=10_000), rng=0)
    ratio = (hi_s - lo_s) / (hi_l - lo_l)
    assert 7.0 < ratio < 13.0


def test_bad_arguments() -> None:
    with pytest.raises(MetricInputError, match="confidence"):
        bootstrap_ci(np.ones(3), confidence=1.0)
    with pytest.raises(MetricInputError, match="n_resamples"):
        bootstrap_ci(np.ones(3), n_resamples=0)
    with pytest.raises(MetricInputError, match="same length"):
        paired_difference_ci(np.ones(3), np.ones(4))


def test_coverage_of_the_mean_of_an_exponential() -> None:
    """400 intervals from n = 50 draws of Exp(1) should cover the true mean 1 about 95% of the time.

    The number of covering intervals is Binomial(400, p). At the nominal p = 0.95 its rate has
    sd sqrt(0.95 * 0.05 / 400) = 0.0109, so the upper bound is 0.95 + 3 sd = 0.983. The
    percentile bootstrap under-covers for small samples of skewed data: the resampled means
    have the plug-in variance (n - 1)/n * s^2 / n (slightly too narrow) and the sample's own
    skew, which misplaces the tails; for Exp(1) at n = 50 the real coverage is about 0.93
    (0.928 over 4000 repetitions of this very setup). The lower bound is therefore 3 sd below
    that: 0.93 - 3 sqrt(0.93 * 0.07 / 400) = 0.892, i.e. the lower side gets ~0.025 more room.
    A 90% interval mistaken for a 95% one (rate ~0.88) would fail.
    """
    reps, n = 400, 50
    data = np.random.default_rng(12345).exponential(1.0, size=(reps, n))
    boot = np.random.default_rng(7)
    covered = 0
    for row in data:
        _, low, high = bootstrap_ci(row, n_resamples=1000, rng=boot)
        covered += low <= 1.0 <= high
    rate = covered / reps
    upper = 0.95 + 3 * math.sqrt(0.95 * 0.05 / reps)
    lower = 0.93 - 3 * math.sqrt(0.93 * 0.07 / reps)
    assert lower <= rate <= upper


def test_paired_difference_hand_computed() -> None:
    # d = [2, 3, 4] -> mean 3; resample means lie in [2, 4].
    est, low, high = paired_difference_ci(np.array([3.0, 5.0, 7.0]), np.array([1.0, 2.0, 3.0]))
    assert est == pytest.approx(3.0) and 2.0 <= low <= 3.0 <= high <= 4.0
    # The pair with a NaN is dropped: d = [1, 2] -> 1.5.
    est, _, _ = paired_difference_ci(np.array([1.0, np.nan, 3.0]), np.array([0.0, 5.0, 1.0]))
    assert est == pytest.approx(1.5)


def test_paired_difference_recovers_a_known_shift() -> None:
    # Shared per-unit noise (sd 10) cancels in the pairs; the differences have sd 0.1, so the
    # mean difference is 0.5 +- 0.1 / sqrt(200) = 0.007 and the 95% interval is ~0.03 wide.
    rng = np.random.default_rng(11)
    base = rng.normal(0.0, 10.0, size=200)
    a = base + 0.5 + rng.normal(0.0, 0.1, size=200)
    est, low, high = paired_difference_ci(a, base, rng=3)
    assert est == pytest.approx(0.5, abs=4 * 0.1 / math.sqrt(200))
    assert low < 0.5 < high
    assert high - low < 0.05
    # Unpaired, the same data would give an interval about 2 * 1.96 * 10 * sqrt(2 / 200) = 3.9
    # wide: pairing is what makes the shift visible.
    _, ul, uh = bootstrap_ci(a, rng=3)
    assert uh - ul > 1.0


def test_summarise_table() -> None:
    episodes = pd.DataFrame(
        {
            "policy": ["b", "a", "a", "b", "a"],
            "return": [10.0, 1.0, 2.0, 10.0, 3.0],
            "ctr": [0.5, 0.0, np.nan, 0.5, 1.0],
        }
    )
    out = summarise(episodes, ["return", "ctr"])
    assert list(out.columns) == [
        "policy",
        "n",
        "return",
        "return_low",
        "return_high",
        "ctr",
        "ctr_low",
        "ctr_high",
    ]
    assert out["policy"].tolist() == ["a", "b"]
    assert out["n"].tolist() == [3, 2]
    # a: returns 1, 2, 3 -> 2; ctr 0, NaN, 1 -> NaN dropped -> 0.5. b: constant -> degenerate.
    assert out["return"].tolist() == pytest.approx([2.0, 10.0])
    assert out["ctr"].tolist() == pytest.approx([0.5, 0.5])
    a = out.iloc[0]
    assert 1.0 <= a["return_low"] <= 2.0 <= a["return_high"] <= 3.0
    assert (out.iloc[1]["return_low"], out.iloc[1]["return_high"]) == (10.0, 10.0)
    pd.testing.assert_frame_equal(out, summarise(episodes, ["return", "ctr"]))
    with pytest.raises(MetricInputError, match="missing columns"):
        summarise(episodes, ["mean_rating"])


def test_gap_fraction_hand_cases() -> None:
    random, oracle = np.array([1.0, 3.0]), np.array([9.0, 11.0])  # means 2 and 10
    assert gap_fraction(np.array([6.0, 6.0]), random, oracle) == pytest.approx(0.5)
    assert gap_fraction(np.array([12.0, 12.0]), random, oracle) == pytest.approx(1.25)
    assert gap_fraction(np.array([0.0, 0.0]), random, oracle) == pytest.approx(-0.25)
    # No gap to close: the oracle does not beat random.
    assert math.isnan(gap_fraction(np.array([5.0, 5.0]), oracle, random))
    assert math.isnan(gap_fraction(random, random, random))


def test_gap_ci_is_paired_over_episodes() -> None:
    # Episodes vary a lot, but every episode's agent return sits 30% of the way from random to
    # the oracle: resampling episodes together leaves the share exactly 0.3.
    rng = np.random.default_rng(0)
    random = rng.normal(5.0, 3.0, 200)
    oracle = random + rng.uniform(5.0, 15.0, 200)
    agent = random + 0.3 * (oracle - random)
    lo, hi = gap_ci(agent, random, oracle, np.random.default_rng(1))
    assert lo == pytest.approx(0.3) and hi == pytest.approx(0.3)


def test_gap_ci_covers_the_share_and_narrows_with_more_episodes() -> None:
    def interval(n: int) -> tuple[float, float]:
        rng = np.random.default_rng(n)
        random = rng.normal(4.0, 2.0, n)
        oracle = rng.normal(14.0, 4.0, n)
        agent = rng.normal(11.0, 4.0, n)  # true share 0.7
        return gap_ci(agent, random, oracle, np.random.default_rng(0))

    small, large = interval(100), interval(1600)
    # 16 times the episodes: about a quarter of the width (sampling noise of the width allowed).
    ratio = (large[1] - large[0]) / (small[1] - small[0])
    assert 0.15 < ratio < 0.4, ratio
    assert large[0] < 0.7 < large[1]
    # Inputs without any gap: no interval.
    flat = np.ones(50)
    assert all(math.isnan(v) for v in gap_ci(flat, flat, flat, np.random.default_rng(0)))


def test_gap_ci_leaves_out_resamples_without_a_gap() -> None:
    # The whole sample has a gap (point estimate 1.0), but in about a third of the resamples the
    # oracle does not beat random, where the ratio is undefined or has the wrong sign: the
    # interval is unbounded, not a mixture of both signs.
    agent = np.array([3.0, 5, 4, 6, 2, 5])
    random = np.array([3.0, 4, 5, 4, 3, 4])
    oracle = np.array([4.0, 3, 6, 5, 2, 5])
    assert gap_fraction(agent, random, oracle) == pytest.approx(1.0)
    assert all(math.isnan(v) for v in gap_ci(agent, random, oracle, np.random.default_rng(0)))

    # Here under 1% of the resamples have no gap (those holding none of the five episodes
    # where the oracle beats random, some with random ahead): they are left out of the quantiles.
    rng = np.random.default_rng(3)
    random = np.r_[np.zeros(26), 2.0 * np.ones(4)]
    rng.shuffle(random)
    oracle = np.r_[10.0 * np.ones(5), np.zeros(25)]
    agent = 0.5 * oracle + rng.normal(0.0, 0.5, 30)
    idx = np.random.default_rng(1).integers(30, size=(2000, 30))
    a, r, o = agent[idx].mean(axis=1), random[idx].mean(axis=1), oracle[idx].mean(axis=1)
    defined = o > r
    assert 0 < np.count_nonzero(~defined) <= 50
    assert np.count_nonzero(o < r) > 0  # the wrong-sign resamples the interval used to keep
    expected = np.quantile((a - r)[defined] / (o - r)[defined], [0.025, 0.975])
    lo, hi = gap_ci(agent, random, oracle, np.random.default_rng(1))
    assert (lo, hi) == pytest.approx(tuple(expected))


def test_demo_gap_line_says_when_there_is_no_gap() -> None:
    from lmrecsim.api import _gap_lines

    nan = float("nan")
    gap = pd.DataFrame(
        [("ppo", nan, nan, nan), ("greedy", nan, nan, nan)],
        columns=["policy", "gap_closed", "low", "high"],
    )
    assert _gap_lines(gap) == [
        "(no random-to-oracle gap on these users: the oracle did not beat random)"
    ]
    gap = pd.DataFrame(
        [("greedy", -0.75, -0.9, -0.6), ("ppo", -0.375, -0.5, -0.2)],
        columns=["policy", "gap_closed", "low", "high"],
    )
    assert _gap_lines(gap) == [
        "share of the random-to-oracle gap closed (95% CI): ppo -38% [-50%, -20%]; "
        "greedy -75% [-90%, -60%]"
    ]
    # A share whose interval is unbounded (gap_ci's nan pair) says so instead of "nan%".
    gap = pd.DataFrame(
        [("greedy", 0.5, 0.3, 0.7), ("ppo", 1.0, nan, nan)],
        columns=["policy", "gap_closed", "low", "high"],
    )
    assert _gap_lines(gap) == [
        "share of the random-to-oracle gap closed (95% CI): ppo 100% [interval unbounded: the "
        "oracle often does not beat random]; greedy 50% [30%, 70%]"
    ]


def test_demo_ratio_needs_a_positive_random_return() -> None:
    # A reward with a leave penalty made random's mean return negative, and the demo printed
    # "ppo/random return ratio: 13702162974.70" (ppo / max(random, 1e-9)).
    from lmrecsim.api import ratio_text

    assert ratio_text(13.7, 4.1) == "3.34"
    assert ratio_text(13.7, -1.7) == "n/a (random's mean return is -1.70, not positive)"
    assert ratio_text(13.7, 0.0).startswith("n/a")


def test_report_numbers_align_and_never_print_a_signed_zero() -> None:
    from lmrecsim.evaluation.bootstrap import gap_text
    from lmrecsim.evaluation.report import decimals_for, fmt_interval

    # The estimate and its bounds to the same decimals (was "10.92 [8.550, 13.48]").
    assert fmt_interval(10.92, 8.55, 13.48) == "10.92 [8.55, 13.48]"
    assert fmt_interval(9.75, 7.9, 11.77) == "9.75 [7.90, 11.77]"
    assert fmt_interval(12.93, 9.8, 16.17, signed=True) == "+12.93 [9.80, 16.17]"
    # A row's decimals are shared by its cells.
    d = decimals_for([10.92, 8.55, 13.48, 4.083, 3.417, 4.767])
    assert fmt_interval(4.083, 3.417, 4.767, decimals=d) == "4.08 [3.42, 4.77]"
    # What rounds to zero has no sign; 9.9996 is 10.00, not 10.000.
    assert fmt_interval(-0.027, -0.054, -0.0004, signed=True) == "-0.027 [-0.054, 0.000]"
    assert fmt_interval(0.0004, -0.01, 0.02, signed=True) == "0.000 [-0.010, 0.020]"
    assert fmt_interval(9.9996, 9.0, 9.99) == "10.00 [9.00, 9.99]"
    assert fmt_interval(float("nan"), 0.0, 1.0) == "n/a"
    assert gap_text(-0.003, -0.1, 0.004) == "0% [-10%, 0%]"
