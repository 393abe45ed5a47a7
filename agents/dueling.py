"""A dueling Q-network for DQN with SB3's MLP policy (``agent.policy: mlp``).

The candidate scorer's dueling head is :class:`lmrecsim.agents.scorer.CandidateScorerDQNPolicy`;
this is the same split for the comparison policy, so ``policy_kwargs: {dueling: true}`` in a
scenario means a dueling Q-network whichever policy trains: ``Q(s, a) = V(s) + A(s, a) -
mean_a A(s, a)`` (Wang et al., 2016), with the value and the advantages read from one MLP trunk.
The MLP sees the action mask only as an input (as SB3's does), so the mean runs over all slots.
"""

from __future__ import annotations

from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import create_mlp
from stable_baselines3.dqn.policies import MultiInputPolicy, QNetwork
from torch import nn

from .base import check_flag


class _DuelingMLP(nn.Module):
    """An MLP trunk (``net_arch``) with a value head and an advantage head."""

    def __init__(
        self,
        features_dim: int,
        n_actions: int,
        net_arch: list[int],
        activation_fn: type[nn.Module],
    ) -> None:
        super().__init__()
        self.trunk = nn.Sequential(*create_mlp(features_dim, -1, net_arch, activation_fn))
        width = net_arch[-1] if net_arch else features_dim
        self.value = nn.Linear(width, 1)
        self.advantage = nn.Linear(width, n_actions)

    def forward(self, features: th.Tensor) -> th.Tensor:
        h = self.trunk(features)
        adv = self.advantage(h)
        return self.value(h) + adv - adv.mean(dim=1, keepdim=True)


class DuelingQNetwork(QNetwork):
    """SB3's :class:`~stable_baselines3.dqn.policies.QNetwork` with a dueling head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        assert isinstance(self.action_space, spaces.Discrete)
        self.q_net = _DuelingMLP(
            self.features_dim, int(self.action_space.n), self.net_arch, self.activation_fn
        )


class DuelingOption:
    """Mixin for a DQN policy with a ``dueling`` flag, kept in its saved constructor parameters
    (so a loaded model builds the same network)."""

    dueling: bool = False

    def _set_dueling(self, dueling: Any) -> None:
        """Set the flag (before the networks are built); anything but a bool is a TypeError."""
        self.dueling = check_flag(dueling, "dueling")

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        data["dueling"] = self.dueling
        return data


class MlpDQNPolicy(DuelingOption, MultiInputPolicy):
    """SB3's ``MultiInputPolicy`` for DQN, with a dueling Q-network when ``dueling`` is true.

    Args:
        dueling: use :class:`DuelingQNetwork`. False: exactly SB3's Q-network.
        *args, **kwargs: SB3's ``MultiInputPolicy`` arguments.
    """

    def __init__(self, *args: Any, dueling: bool = False, **kwargs: Any) -> None:
        self._set_dueling(dueling)
        super().__init__(*args, **kwargs)

    def make_q_net(self) -> QNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        cls = DuelingQNetwork if self.dueling else QNetwork
        return cls(**net_args).to(self.device)
