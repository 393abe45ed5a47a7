"""``lmrecsim bench --learning`` forwards to the learning benchmark of the source tree."""

from __future__ import annotations

import pytest

from lmrecsim.cli import main


def test_bench_learning_forwards_its_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--learning", "--learning-args=--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    # The learning benchmark's own options, not the speed benchmark's.
    assert "--timesteps" in out and "--scenarios" in out
