"""benchmarks/observability.py: its rollouts on single items and on slates."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.envs.test_vec_env import small_world

ROOT = Path(__file__).resolve().parents[2]


def test_rollouts_rank_by_the_score_on_single_items_and_on_slates(tmp_path: Any) -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.observability import rollout

    for overrides in ({}, {"candidates": {"slate_size": 3}}):
        world = small_world(tmp_path / str(len(overrides)), **overrides)
        rng = np.random.default_rng(0)
        knows, _, _ = rollout(world, lambda obs, aff: aff, n_users=64, seed=1)
        blind, _, _ = rollout(
            world, lambda obs, aff, rng=rng: rng.random(aff.shape), n_users=64, seed=1
        )
        # Ranking by the hidden affinity earns more than ranking at random (both see the users).
        assert knows.mean() > blind.mean() + 1.0, (overrides, knows.mean(), blind.mean())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seed", "95"], "--seed: 95 would evaluate on fitting users (rollout seed 100"),
        (["--seed", "97", "--fit-rollouts", "3"], "--seed: 97 would evaluate on fitting users"),
        (["--seed", str(2**70)], f"argument --seed: {2**70} (expected an integer >= 0 and <="),
    ],
)
def test_a_seed_that_evaluates_on_fitting_users_or_overflows_is_refused(argv, message, capsys):
    # --seed 95 scored the ranker on the users it was fitted on; a huge seed reached
    # torch.manual_seed after the rollouts and ended in an OverflowError traceback.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.observability import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
