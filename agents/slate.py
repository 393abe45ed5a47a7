"""A Plackett-Luce distribution over slates, for the candidate scorer under PPO.

With ``candidates.slate_size`` L > 1 the env's action is ``MultiDiscrete([K] * L)``: L candidate
slots shown at once. The candidate scorer gives one score per candidate; a slate is then drawn
*without replacement* by the Plackett-Luce model: position 1 takes candidate i with probability
softmax(scores)_i, position 2 a candidate among the rest with the softmax over those, and so on.
SB3's own distribution for a ``MultiDiscrete`` space (independent categoricals per position) would
need K * L logits and could repeat a candidate, which the env shows only once.

Masked candidates are never drawn while a valid one is left. When fewer than L candidates are
valid, the valid ones fill the first positions (in Plackett-Luce order) and the remaining positions
hold the masked slots in increasing slot order: in-range integers, as the action space requires,
at which the env shows nothing. A position that shows nothing (a masked slot, or a slot repeated
from an earlier position) adds 0 to the log-probability once no valid candidate is left, and
before that makes the slate one Plackett-Luce never draws (log-probability -inf, as the
conditional tables of :mod:`lmrecsim.agents.conditionals` say); the entropy estimate adds, for
every position while valid candidates remain, the entropy of that position's choice among them
(slates drawn by ``sample`` or ``mode`` never repeat a slot or place a masked one before the
valid ones run out).

Shapes: B batch, K candidates, L slate positions.
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch as th
from stable_baselines3.common.distributions import Distribution
from torch import nn
from torch.distributions import Categorical

SelfPlackettLuce = TypeVar("SelfPlackettLuce", bound="PlackettLuceDistribution")


class PlackettLuceDistribution(Distribution):
    """Plackett-Luce (ranking without replacement) distribution over slates of L of K candidates.

    ``sample()`` perturbs each valid score with Gumbel(0, 1) noise and takes the top L (exactly a
    Plackett-Luce draw); ``mode()`` takes the top L scores (ties go to the lower slot);
    ``log_prob(actions)`` is ``sum_j log softmax(scores over the valid candidates not chosen at
    positions < j)[actions[:, j]]``, with 0 for a position that shows nothing once no valid
    candidate is left, and -inf for one that shows nothing before (see the module docstring).
    ``entropy()`` is the chain-rule estimate ``sum_j H(position j | positions < j)`` along the
    slate last passed to ``log_prob`` (or drawn by ``sample``/``mode``; by default the mode): its
    expectation over slates drawn from the distribution is the exact entropy, and
    unlike SB3's fallback (``-log_prob``, whose gradient is zero in expectation) it gives PPO's
    entropy bonus a gradient.

    ``distribution`` is the first position's ``torch.distributions.Categorical`` and ``probs`` its
    (B, K) probabilities (the softmax of the masked scores), the per-slot distribution that episode
    logs record.

    Args:
        n_candidates: K, the candidates per observation.
        slate_size: L, the positions per slate (1 <= L <= K).
    """

    distribution: Categorical

    def __init__(self, n_candidates: int, slate_size: int) -> None:
        super().__init__()
        if not 1 <= slate_size <= n_candidates:
            raise ValueError(
                f"slate_size: {slate_size} (expected 1 <= slate_size <= {n_candidates} candidates)"
            )
        self.n_candidates = int(n_candidates)
        self.slate_size = int(slate_size)
        self.logits: th.Tensor | None = None
        self.valid: th.Tensor | None = None
        self._slate: th.Tensor | None = None

    def proba_distribution_net(self, latent_dim: int) -> nn.Module:
        """A linear layer giving the K scores from a latent code of size ``latent_dim`` (the
        candidate scorer replaces it with its own shared per-candidate network)."""
        return nn.Linear(latent_dim, self.n_candidates)

    def proba_distribution(
        self: SelfPlackettLuce, action_logits: th.Tensor, mask: th.Tensor | None = None
    ) -> SelfPlackettLuce:
        """Set the scores.

        Args:
            action_logits: (B, K) candidate scores.
            mask: (B, K) valid candidates (bool or 0/1), or None: all valid. A row with no valid
                candidate gives the slate of slots 0..L-1 with log-probability 0.
        """
        valid = (
            th.ones_like(action_logits, dtype=th.bool)
            if mask is None
            else mask.to(action_logits.device) > 0
        )
        self.valid = valid
        # A finite floor, not -inf: a row with nothing left must not turn log_softmax into NaNs
        # (their gradients would reach the scores even through a where()).
        self.logits = action_logits.masked_fill(~valid, th.finfo(action_logits.dtype).min)
        self.distribution = Categorical(logits=self.logits)
        self._slate = None
        return self

    @property
    def probs(self) -> th.Tensor:
        """(B, K) probability of each candidate at the first position."""
        return self.distribution.probs

    def _ranked(self, key: th.Tensor) -> th.Tensor:
        """(B, L) the L slots of highest ``key`` among the valid ones (ties: lower slot first),
        then masked slots in increasing order."""
        assert self.valid is not None
        key = key.masked_fill(~self.valid, -th.inf)
        order = th.sort(key, dim=-1, descending=True, stable=True).indices
        self._slate = order[:, : self.slate_size]
        return self._slate

    def sample(self) -> th.Tensor:
        """(B, L) a Plackett-Luce slate per row (Gumbel-top-L, torch's global generator)."""
        assert self.logits is not None
        gumbel = -th.empty_like(self.logits).exponential_().log()
        return self._ranked(self.logits + gumbel)

    def mode(self) -> th.Tensor:
        """(B, L) the L valid candidates of highest score, best first (ties: lower slot first)."""
        assert self.logits is not None
        return self._ranked(self.logits)

    def _positions(self, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """(B, L) log-probability of each prefix of the (B, L) slates ``actions`` (their first
        1, 2, ..., L slots) and (B,) their chain-rule entropy."""
        assert self.logits is not None and self.valid is not None
        slots = actions.reshape(-1, self.slate_size).long()
        floor = th.finfo(self.logits.dtype).min
        available = self.valid.clone()
        log_prob = self.logits.new_zeros(slots.shape[0])
        prefixes = []
        entropy = self.logits.new_zeros(slots.shape[0])
        for j in range(self.slate_size):
            slot = slots[:, j : j + 1]
            log_p = th.log_softmax(self.logits.masked_fill(~available, floor), dim=-1)
            shown = available.gather(1, slot).squeeze(1)
            # Nothing shown: free once no valid slot is left, impossible while one is.
            nothing = th.where(available.any(dim=1), -th.inf, 0.0)
            log_prob = log_prob + th.where(shown, log_p.gather(1, slot).squeeze(1), nothing)
            prefixes.append(log_prob)
            terms = th.where(available, log_p.exp() * log_p, 0.0)
            entropy = entropy - terms.sum(dim=-1)
            available = available.scatter(1, slot, False)
        return th.stack(prefixes, dim=1), entropy

    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        """(B,) log-probability of the (B, L) slates ``actions`` (any numeric dtype)."""
        self._slate = actions.reshape(-1, self.slate_size).long()
        return self._positions(self._slate)[0][:, -1]

    def prefix_log_prob(self, actions: th.Tensor) -> th.Tensor:
        """(B, L) log-probability of the first 1, 2, ..., L slots of the (B, L) slates
        ``actions`` (the last column is :meth:`log_prob`)."""
        return self._positions(actions.reshape(-1, self.slate_size).long())[0]

    def entropy(self) -> th.Tensor:
        """(B,) chain-rule entropy estimate along the last slate evaluated, sampled or (by
        default) the mode; see the class docstring."""
        slate = self._slate if self._slate is not None else self.mode()
        return self._positions(slate)[1]

    def actions_from_params(
        self, action_logits: th.Tensor, mask: th.Tensor | None = None, deterministic: bool = False
    ) -> th.Tensor:
        """(B, L) slates for (B, K) scores (and optional mask)."""
        self.proba_distribution(action_logits, mask)
        return self.get_actions(deterministic=deterministic)

    def log_prob_from_params(
        self, action_logits: th.Tensor, mask: th.Tensor | None = None
    ) -> tuple[th.Tensor, th.Tensor]:
        """(B, L) sampled slates and their (B,) log-probabilities."""
        actions = self.actions_from_params(action_logits, mask)
        return actions, self.log_prob(actions)


def prefix_log_probs(dist: Any, actions: Any) -> th.Tensor:
    """(B, L) log-probability of the first 1, 2, ..., L slots of the (B, L) slates ``actions``
    under an SB3 slate distribution: the candidate scorer's Plackett-Luce one, or SB3's
    ``MultiCategoricalDistribution`` (independent positions: cumulative sums of their
    log-probabilities)."""
    if isinstance(dist, PlackettLuceDistribution):
        return dist.prefix_log_prob(th.as_tensor(actions))
    parts = getattr(dist, "distribution", None)
    if not isinstance(parts, (list, tuple)):
        raise TypeError(f"{type(dist).__name__} is not a slate distribution")
    acts = th.as_tensor(actions, device=parts[0].logits.device).long()
    terms = th.stack([d.log_prob(acts[:, j]) for j, d in enumerate(parts)], dim=1)
    return th.cumsum(terms, dim=1)


def position_marginals(dist: Any, mask: Any) -> Any:
    """(B, L, K) float64 numpy item-position marginals of an SB3 slate distribution: the
    Plackett-Luce ones of the candidate scorer's (:func:`~lmrecsim.agents.positions.
    plackett_luce_marginals`, ``mask`` (B, K) its valid slots), or the positions' own
    distributions for SB3's ``MultiCategoricalDistribution`` (independent positions)."""
    import numpy as np

    from .positions import plackett_luce_marginals

    if isinstance(dist, PlackettLuceDistribution):
        probs = dist.probs.detach().cpu().numpy().astype(np.float64)
        return plackett_luce_marginals(probs, np.asarray(mask) > 0, dist.slate_size)
    parts = getattr(dist, "distribution", None)
    if not isinstance(parts, (list, tuple)):
        raise TypeError(f"{type(dist).__name__} is not a slate distribution")
    return np.stack([d.probs.detach().cpu().numpy() for d in parts], axis=1).astype(np.float64)
