"""The one protocol every acting thing follows: stable-baselines3's ``predict`` signature."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    """Anything that picks a candidate slot from an observation.

    Trained SB3 models satisfy it as they are; baselines implement it too, so every policy is
    evaluated by the same code.
    """

    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]: ...


class RandomPolicy:
    """Uniformly random among the valid (unmasked) candidates.

    Args:
        seed: seed of the policy's own generator (independent of the environment's).
    """

    privileged = False

    def __init__(self, seed: int | None = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def action_probabilities(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(K,) or (B, K) probability of each slot."""
        mask = np.asarray(observation["action_mask"], dtype=np.float64)
        total = mask.sum(axis=-1, keepdims=True)
        uniform = np.full_like(mask, 1.0 / mask.shape[-1])
        return np.where(total > 0, mask / np.where(total > 0, total, 1.0), uniform)

    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        return sample_actions(self.rng, self.action_probabilities(observation)), state


def sample_actions(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One slot drawn from each row of ``probs``, (K,) -> scalar array, (B, K) -> (B,)."""
    if probs.ndim == 1:
        return np.asarray(rng.choice(probs.shape[0], p=probs))
    return np.array([rng.choice(probs.shape[1], p=row) for row in probs])
