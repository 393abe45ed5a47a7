"""Hand-made observations for tests of policies' probabilities (no world needed), and a filter
for the warning that small test evaluations get."""

from __future__ import annotations

import numpy as np

from lmrecsim.envs.features import N_FEATURES


def fake_observation(k: int = 6, valid: tuple[int, ...] = (0, 2, 3, 5)) -> dict[str, np.ndarray]:
    """One observation of ``k`` candidate slots, ``valid`` of them unmasked: a random user and
    candidates in 4 dimensions, and candidate features that are zero but for a random
    popularity (feature 0). The same for every call with the same ``k``."""
    rng = np.random.default_rng(0)
    mask = np.zeros(k, dtype=np.int8)
    mask[list(valid)] = 1
    feats = np.zeros((k, N_FEATURES), dtype=np.float32)
    feats[:, 0] = rng.random(k)
    return {
        "user": rng.normal(size=4).astype(np.float32),
        "candidates": rng.normal(size=(k, 4)).astype(np.float32),
        "candidate_features": feats,
        "action_mask": mask,
    }


def other_warnings(lines: list[str] | str) -> list[str]:
    """Warning lines (a list, or stderr's text) without the one every evaluation of fewer than
    10 episodes per policy gives (its intervals are too narrow): tests evaluate a few episodes."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    return [line for line in lines if "bootstrap intervals from fewer than 10" not in line]
