"""PPO with an optional auxiliary task for the candidate scorer: predict each step's reward.

A policy gradient teaches the shared per-candidate network only through advantages, a noisy
signal; but every step also says, directly, what the chosen candidate earned. With
``reward_aux_coef > 0`` each PPO update is followed by a regression of the step's reward on the
chosen candidate's hidden state (the candidate scorer's trunk plus one linear head), so the trunk
learns what makes a candidate pay off from every step's feedback. With the default 0 this is
exactly stable-baselines3's PPO.

The head and its optimizer are training machinery: they are not saved with the model, and a
loaded model that trains on starts them afresh.
"""

from __future__ import annotations

from typing import Any

import torch as th
from stable_baselines3 import PPO
from torch import nn
from torch.nn import functional as F

from .errors import AgentError
from .scorer import CandidateScorerExtractor


class ScorerPPO(PPO):
    """stable-baselines3 PPO plus the optional reward-prediction task of this module.

    Args:
        reward_aux_coef: weight of the reward regression (mean squared error); 0 turns it off.
        reward_aux_epochs: passes over each rollout for the regression.
        *args, **kwargs: as for ``stable_baselines3.PPO``.
    """

    def __init__(
        self, *args: Any, reward_aux_coef: float = 0.0, reward_aux_epochs: int = 1, **kwargs: Any
    ) -> None:
        if reward_aux_coef < 0 or reward_aux_epochs < 1:
            raise AgentError(
                "agent.hyperparameters: reward_aux_coef must be >= 0 and reward_aux_epochs >= 1, "
                f"got {reward_aux_coef} and {reward_aux_epochs}"
            )
        self.reward_aux_coef = float(reward_aux_coef)
        self.reward_aux_epochs = int(reward_aux_epochs)
        super().__init__(*args, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        self.reward_head: nn.Module | None = None
        self._reward_optimizer: th.optim.Optimizer | None = None
        if getattr(self, "reward_aux_coef", 0.0) <= 0:
            return
        ext = self._scorer_extractor()
        self.reward_head = nn.Linear(ext.score_head.in_features, 1).to(self.device)
        params = list(ext.trunk.parameters()) + list(self.reward_head.parameters())
        self._reward_optimizer = self.policy.optimizer_class(
            params, lr=self.lr_schedule(1), **self.policy.optimizer_kwargs
        )

    def _scorer_extractor(self) -> CandidateScorerExtractor:
        ext = getattr(self.policy, "pi_features_extractor", self.policy.features_extractor)
        if not isinstance(ext, CandidateScorerExtractor):
            raise AgentError(
                "agent.hyperparameters.reward_aux_coef: needs agent.policy candidate_scorer "
                f"(the policy's features extractor is {type(ext).__name__})"
            )
        return ext

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "reward_head", "_reward_optimizer"]

    def train(self) -> None:
        super().train()
        if self.reward_head is not None and self._reward_optimizer is not None:
            self._train_reward_head()

    def reward_examples(self) -> tuple[dict[str, th.Tensor], th.Tensor, th.Tensor]:
        """The rollout buffer's steps as (observations, actions, rewards), one row per step.

        Valid before and after PPO's update has flattened the buffer (the same rows, in the
        env-major order of ``swap_and_flatten``).
        """
        buf = self.rollout_buffer
        n = buf.buffer_size * buf.n_envs
        # The update flattens every stored array but the rewards, which stay (steps, envs).
        flat = buf.generator_ready

        def rows(value: Any, shape: tuple[int, ...]) -> th.Tensor:
            value = value if flat else buf.swap_and_flatten(value)
            return th.as_tensor(value.reshape(n, *shape), device=self.device)

        space = self.observation_space
        obs = {key: rows(value, space[key].shape) for key, value in buf.observations.items()}  # type: ignore[union-attr, index]
        actions = rows(buf.actions, ()).long()
        # A step cut by the time limit holds its reward plus the bootstrapped value SB3 adds.
        rewards = th.as_tensor(buf.swap_and_flatten(buf.rewards).reshape(n), device=self.device)
        return obs, actions, rewards

    def _train_reward_head(self) -> None:
        """Regress each stored step's reward on the chosen candidate's hidden state."""
        assert self.reward_head is not None and self._reward_optimizer is not None
        ext = self._scorer_extractor()
        self._update_learning_rate(self._reward_optimizer)
        obs, actions, rewards = self.reward_examples()
        n = actions.numel()
        losses = []
        for _ in range(self.reward_aux_epochs):
            order = th.randperm(n, device=self.device)
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                hidden = ext.candidate_hidden({key: value[idx] for key, value in obs.items()})
                chosen = hidden[th.arange(idx.numel(), device=self.device), actions[idx]]
                pred = self.reward_head(chosen).squeeze(-1)
                loss = self.reward_aux_coef * F.mse_loss(pred, rewards[idx])
                self._reward_optimizer.zero_grad()
                loss.backward()
                th.nn.utils.clip_grad_norm_(
                    [p for group in self._reward_optimizer.param_groups for p in group["params"]],
                    self.max_grad_norm,
                )
                self._reward_optimizer.step()
                losses.append(loss.item())
        self.logger.record("train/reward_aux_loss", sum(losses) / max(len(losses), 1))
