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


class EpisodeSeeded:
    """A policy with its own generator that restarts at every evaluation episode.

    The evaluation calls ``reseed(seed, episode)`` at the start of each episode, so the policy's
    draws in an episode depend on (its seed, the evaluation seed, the episode) alone: not on which
    seeds ran before (``--seeds 1000,1001`` and ``--seeds 1001,1000`` give the same figures).

    Args:
        seed: seed of the policy's own generator (independent of the environment's); None draws
            fresh entropy and is not reproducible.
    """

    def __init__(self, seed: int | None = 0) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: int, episode: int) -> None:
        """Restart the generator for episode ``episode`` of evaluation seed ``seed``."""
        if self.seed is not None:
            self.rng = np.random.default_rng([int(self.seed), int(seed), int(episode)])


class RandomPolicy(EpisodeSeeded):
    """Uniformly random among the valid (unmasked) candidates.

    Args:
        seed: seed of the policy's own generator (independent of the environment's).
    """

    privileged = False

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
