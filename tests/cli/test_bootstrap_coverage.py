"""``python -m benchmarks.bootstrap_coverage``: the coverage table behind the evaluation's
few-episodes warning, and its bad input in one line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _main():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.bootstrap_coverage import main

    return main


def test_the_table_shows_coverage_rising_towards_the_nominal_level(capsys) -> None:
    assert _main()(["--samples", "400", "--resamples", "200", "--seed", "1"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    sizes = [int(r[0]) for r in rows]
    normal = [float(r[1]) for r in rows]
    assert sizes == [2, 3, 5, 10, 20, 60]
    # 400 samples: a share's standard error is at most 0.025. Two episodes cover about half the
    # time, sixty close to the nominal 95%.
    assert normal[0] < 0.65 and normal[-1] > 0.88
    assert all(0.0 <= float(v) <= 1.0 for r in rows for v in r[1:])


def test_bad_input_is_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        _main()(["--samples", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--samples" in err[0], err
