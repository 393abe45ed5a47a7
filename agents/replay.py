"""An n-step replay buffer for Dict observations (what DQN over the recommendation env stores).

stable-baselines3 computes n-step returns (``DQN(n_steps=N)``) only for Box observations; with a
Dict observation space it refuses. :class:`DictNStepReplayBuffer` stores transitions exactly as
``DictReplayBuffer`` does and turns each sampled transition into an n-step one when sampled:
the discounted sum of up to ``n_steps`` rewards of the same sub-environment, the observation
after the last of them, and the discount ``gamma ** steps`` for the bootstrap. A sequence stops
early at the end of an episode (terminated: no bootstrap; truncated: bootstrap from the final
observation) and at the newest transition in the buffer, whose successor is not stored yet.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.buffers import DictReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from .errors import AgentError


class DictNStepReplayBuffer(DictReplayBuffer):
    """``DictReplayBuffer`` whose samples carry n-step returns and their bootstrap discounts.

    Args:
        n_steps: rewards summed per sample (1 gives the one-step samples of the parent class,
            with the discount ``gamma`` attached).
        gamma: discount of the summed rewards and of the bootstrap.
        *args, **kwargs: as for ``DictReplayBuffer`` (which does not support
            ``optimize_memory_usage``).
    """

    def __init__(self, *args: Any, n_steps: int = 3, gamma: float = 0.99, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if int(n_steps) < 1:
            raise AgentError(f"agent.hyperparameters.n_steps: expected at least 1, got {n_steps}")
        self.n_steps = int(n_steps)
        self.gamma = float(gamma)

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> DictReplayBufferSamples:
        # The parent draws sub-environments from numpy's global generator, which SB3 seeds from
        # the model's seed; drawing the same way keeps training reproducible under a seed.
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        return self._samples_at(batch_inds, env_indices, env)

    def _samples_at(
        self, batch_inds: np.ndarray, env_indices: np.ndarray, env: VecNormalize | None
    ) -> DictReplayBufferSamples:
        """The n-step samples starting at rows ``batch_inds`` of sub-environments
        ``env_indices``."""
        offsets = np.arange(self.n_steps)
        rows = (batch_inds[:, None] + offsets[None, :]) % self.buffer_size  # (B, n)
        cols = env_indices[:, None]
        stops = (self.dones[rows, cols] > 0) | (self.timeouts[rows, cols] > 0)
        # The newest transition has no successor stored yet.
        stops |= rows == (self.pos - 1) % self.buffer_size
        last = np.where(stops.any(axis=1), stops.argmax(axis=1), self.n_steps - 1)  # (B,)
        used = offsets[None, :] <= last[:, None]
        rewards = self._normalize_reward(self.rewards[rows, cols], env)
        weights = (self.gamma**offsets).astype(np.float32)[None, :] * used
        returns = (rewards * weights).sum(axis=1, dtype=np.float32).reshape(-1, 1)
        end = rows[np.arange(rows.shape[0]), last]
        obs = self._normalize_obs(
            {key: o[batch_inds, env_indices, :] for key, o in self.observations.items()}, env
        )
        next_obs = self._normalize_obs(
            {key: o[end, env_indices, :] for key, o in self.next_observations.items()}, env
        )
        assert isinstance(obs, dict) and isinstance(next_obs, dict)
        # A truncated episode still bootstraps from its final observation.
        dones = self.dones[end, env_indices] * (1 - self.timeouts[end, env_indices])
        discounts = (self.gamma ** (last + 1)).astype(np.float32).reshape(-1, 1)
        return DictReplayBufferSamples(
            observations={key: self.to_torch(o) for key, o in obs.items()},
            actions=self.to_torch(self.actions[batch_inds, env_indices]),
            next_observations={key: self.to_torch(o) for key, o in next_obs.items()},
            dones=self.to_torch(dones).reshape(-1, 1),
            rewards=self.to_torch(returns),
            discounts=self.to_torch(discounts),
        )
