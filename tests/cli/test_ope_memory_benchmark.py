"""``python -m benchmarks.ope_memory``: the reward model's peak memory per log size, and its bad
input in one line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _main():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.ope_memory import main

    return main


def test_the_table_has_a_row_per_size_and_the_ratio(capsys) -> None:
    assert _main()(["--rounds", "300", "--rounds", "150"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[1:3]]
    assert [int(r[0]) for r in rows] == [150, 300]  # sorted
    peaks = [float(r[1]) for r in rows]
    assert 0 < peaks[0] < peaks[1]
    assert lines[3].startswith("peak at 300 rounds / peak at 150: ")


def test_a_size_below_the_floor_is_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        _main()(["--rounds", "5"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--rounds" in err
