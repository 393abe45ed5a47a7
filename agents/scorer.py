"""Candidate-scoring networks for stable-baselines3.

One shared network scores every candidate from ``[user, candidate, user * candidate, features]``,
so the policy is permutation-equivariant (permuting the candidates permutes the scores) and can
rank items it has never seen. Masked candidates get a score of ``MASKED_SCORE``: for PPO that is a
logit with probability ~0, for DQN a Q-value that neither the greedy action nor the bootstrap
target can pick.

Shapes: B batch, K candidates, p embedding dims, F candidate features, H hidden units.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3 import DQN
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import nn

from .base import check_flag
from .dueling import DuelingOption
from .replay import DictNStepReplayBuffer
from .slate import PlackettLuceDistribution

MASKED_SCORE = -1.0e8


class CandidateScorerExtractor(BaseFeaturesExtractor):
    """Scores each candidate with a shared MLP and summarises the slate for a value head.

    Output (B, K + summary_dim): the K masked candidate scores, then a slate summary (mask-weighted
    mean of the per-candidate hidden states concatenated with the user state, through an MLP).

    Args:
        observation_space: the env's Dict space (``user`` (p,), ``candidates`` (K, p),
            ``candidate_features`` (K, F), ``action_mask`` (K,)).
        hidden: hidden units H of the shared per-candidate network.
        n_layers: hidden layers of the shared per-candidate network.
        summary_dim: size of the slate summary fed to the value head.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        hidden: int = 128,
        n_layers: int = 2,
        summary_dim: int = 64,
    ) -> None:
        k, p = observation_space["candidates"].shape
        f = observation_space["candidate_features"].shape[1]
        super().__init__(observation_space, features_dim=k + summary_dim)
        self.k = int(k)
        layers: list[nn.Module] = []
        width = 3 * p + f
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.trunk = nn.Sequential(*layers)
        self.score_head = nn.Linear(hidden, 1)
        self.summary = nn.Sequential(nn.Linear(hidden + p, summary_dim), nn.ReLU())

    def candidate_hidden(self, obs: dict[str, th.Tensor]) -> th.Tensor:
        """Per-candidate hidden states, (B, K, H)."""
        user = obs["user"]
        cands = obs["candidates"]
        u = user.unsqueeze(1).expand_as(cands)
        x = th.cat([u, cands, u * cands, obs["candidate_features"]], dim=-1)
        return self.trunk(x)

    def forward(self, obs: dict[str, th.Tensor]) -> th.Tensor:
        _, scores, summary = self.parts(obs)
        return th.cat([scores, summary], dim=-1)

    def parts(self, obs: dict[str, th.Tensor]) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """The per-candidate hidden states (B, K, H), the masked scores (B, K) and the slate
        summary (B, summary_dim): what :meth:`forward` concatenates, with the hidden states
        for further per-candidate heads (SlateQ's choice model)."""
        h = self.candidate_hidden(obs)
        mask = obs["action_mask"].float()
        # A slate with no valid candidate keeps its raw scores: a row of MASKED_SCORE would
        # become a bootstrap target of about -1e8 for DQN.
        mask = th.where(mask.sum(dim=-1, keepdim=True) > 0.5, mask, th.ones_like(mask))
        scores = self.score_head(h).squeeze(-1)
        scores = th.where(mask > 0.5, scores, th.full_like(scores, MASKED_SCORE))
        weight = mask.unsqueeze(-1)
        pooled = (h * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)
        summary = self.summary(th.cat([pooled, obs["user"]], dim=-1))
        return h, scores, summary


class _TakeScores(nn.Module):
    """Selects the K candidate scores from the extractor output."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, latent: th.Tensor) -> th.Tensor:
        return latent[:, : self.k]


class _ValueFromSummary(nn.Module):
    """Linear value head over the slate summary part of the extractor output."""

    def __init__(self, k: int, summary_dim: int) -> None:
        super().__init__()
        self.k = k
        self.linear = nn.Linear(summary_dim, 1)

    def forward(self, latent: th.Tensor) -> th.Tensor:
        return self.linear(latent[:, self.k :])


def _scorer_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(kwargs)
    kwargs.setdefault("features_extractor_class", CandidateScorerExtractor)
    kwargs.setdefault("features_extractor_kwargs", {})
    return kwargs


def _install_scorer_heads(policy: Any, lr_schedule: Any) -> None:
    """Replace an actor-critic policy's heads: logits = candidate scores, value from the summary.

    Called at the end of ``_build``; rebuilds the optimizer so it holds the new heads' parameters.
    """
    ext = policy.features_extractor
    assert isinstance(ext, CandidateScorerExtractor)
    summary_dim = ext.features_dim - ext.k
    policy.action_net = _TakeScores(ext.k)
    policy.value_net = _ValueFromSummary(ext.k, summary_dim)
    if policy.ortho_init:
        policy.value_net.apply(lambda m: policy.init_weights(m, gain=1.0))
        # Small initial scores keep the first policy close to uniform over valid candidates.
        ext.score_head.apply(lambda m: policy.init_weights(m, gain=0.01))
    policy.optimizer = policy.optimizer_class(
        policy.parameters(), lr=lr_schedule(1), **policy.optimizer_kwargs
    )


def _actor_critic_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs = _scorer_kwargs(kwargs)
    kwargs["net_arch"] = {"pi": [], "vf": []}
    # By default the value head reads the slate summary of the same extractor (one forward pass
    # per step); ``share_features_extractor=False`` gives the critic its own copy.
    kwargs.setdefault("share_features_extractor", True)
    return kwargs


class CandidateScorerPolicy(ActorCriticPolicy):
    """Actor-critic policy whose logits are the per-candidate scores (PPO).

    With a ``Discrete(K)`` action space the action distribution is SB3's categorical over the K
    masked scores. With ``MultiDiscrete([K] * L)`` (slates of L candidates) it is a
    :class:`~lmrecsim.agents.slate.PlackettLuceDistribution` over the same K scores: slates without
    repeats, masked candidates drawn only when fewer than L are valid. The value head reads the
    slate summary either way.

    Extra keyword arguments go to :class:`CandidateScorerExtractor` through
    ``features_extractor_kwargs`` (``hidden``, ``n_layers``, ``summary_dim``).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            observation_space, action_space, lr_schedule, **_actor_critic_kwargs(kwargs)
        )

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        _install_scorer_heads(self, lr_schedule)
        if isinstance(self.action_space, spaces.MultiDiscrete):
            # SB3 built (and the heads replaced) a K * L-logit head for independent positions;
            # a slate is drawn from the K candidate scores instead.
            self.action_dist = slate_distribution(self.action_space, self.features_extractor.k)

    def _get_action_dist_from_latent(self, latent_pi: th.Tensor) -> Any:
        if not isinstance(self.action_dist, PlackettLuceDistribution):
            return super()._get_action_dist_from_latent(latent_pi)
        scores = self.action_net(latent_pi)
        return self.action_dist.proba_distribution(scores, mask=scores > MASKED_SCORE / 2)


def slate_distribution(action_space: spaces.MultiDiscrete, k: int) -> PlackettLuceDistribution:
    """The Plackett-Luce distribution for a ``MultiDiscrete([k] * L)`` action space.

    Raises:
        ValueError: an action space that is not L positions over the same ``k`` candidates.
    """
    nvec = np.asarray(action_space.nvec)
    if nvec.ndim != 1 or not (nvec == k).all() or not 1 <= nvec.size <= k:
        raise ValueError(
            f"action space {action_space}: the candidate scorer takes Discrete({k}) or "
            f"MultiDiscrete([{k}] * L) slates with L <= {k}"
        )
    return PlackettLuceDistribution(k, int(nvec.size))


class MaskableCandidateScorerPolicy(MaskableActorCriticPolicy):
    """:class:`CandidateScorerPolicy` for sb3-contrib's MaskablePPO (masks from ``action_masks()``).

    The extractor masks invalid candidates itself as well, so a MaskablePPO model and a PPO model
    agree on which candidates can be chosen.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            observation_space, action_space, lr_schedule, **_actor_critic_kwargs(kwargs)
        )

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        _install_scorer_heads(self, lr_schedule)


class _DuelingScores(nn.Module):
    """Dueling Q-values (Wang et al., 2016) from the extractor output: a state value from the
    slate summary plus each candidate's score centred on the mean over valid candidates.

    ``Q(s, a) = V(s) + A(s, a) - mean_valid A(s, .)``; masked candidates keep ``MASKED_SCORE``.
    """

    def __init__(self, k: int, summary_dim: int) -> None:
        super().__init__()
        self.k = k
        self.value = nn.Linear(summary_dim, 1)

    def forward(self, latent: th.Tensor) -> th.Tensor:
        scores = latent[:, : self.k]
        # The extractor marks masked candidates with MASKED_SCORE (and leaves a row with no valid
        # candidate unmasked), so the mask is read back from the scores.
        valid = scores > MASKED_SCORE / 2
        count = valid.sum(dim=1, keepdim=True).clamp(min=1).to(scores.dtype)
        mean = scores.masked_fill(~valid, 0.0).sum(dim=1, keepdim=True) / count
        q = self.value(latent[:, self.k :]) + scores - mean
        return th.where(valid, q, scores)


class CandidateScorerQNetwork(QNetwork):
    """Q-network whose Q-values are the per-candidate scores (masked ones at ``MASKED_SCORE``).

    Args:
        dueling: Q-values of a dueling network (:class:`_DuelingScores`): the scores are
            advantages around a state value read from the slate summary.
        *args, **kwargs: SB3's :class:`~stable_baselines3.dqn.policies.QNetwork` arguments.
    """

    def __init__(self, *args: Any, dueling: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ext = self.features_extractor
        assert isinstance(ext, CandidateScorerExtractor)
        head: nn.Module = (
            _DuelingScores(ext.k, ext.features_dim - ext.k) if dueling else _TakeScores(ext.k)
        )
        self.q_net = nn.Sequential(head)


class CandidateScorerDQNPolicy(DuelingOption, DQNPolicy):
    """DQN policy over :class:`CandidateScorerQNetwork` (masked argmax and masked targets).

    Args:
        dueling: a dueling Q-network (``policy_kwargs: {dueling: true}``): one state value from
            the slate summary, shared by every candidate, plus per-candidate advantages. The value
            learns from every transition whichever candidate was taken. False (the default):
            the Q-values are the candidate scores themselves.
        *args, **kwargs: SB3's :class:`~stable_baselines3.dqn.policies.DQNPolicy` arguments.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Any,
        dueling: bool = False,
        **kwargs: Any,
    ) -> None:
        self._set_dueling(dueling)
        kwargs = _scorer_kwargs(kwargs)
        kwargs["net_arch"] = []
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def make_q_net(self) -> QNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return CandidateScorerQNetwork(**net_args, dueling=self.dueling).to(self.device)


class MaskedDQN(DQN):
    """DQN whose epsilon-greedy exploration only samples valid (unmasked) candidates.

    Greedy actions and bootstrap targets are already masked by the network; SB3's exploration
    would otherwise sample any slot. Exploration draws come from a generator seeded with the model's
    seed, not from global numpy state. ``n_steps > 1`` (n-step returns) works with the env's Dict
    observations through :class:`~lmrecsim.agents.replay.DictNStepReplayBuffer`.

    Args:
        double_q: bootstrap as Double DQN does (van Hasselt et al., 2016): the online network
            picks the next action (with the candidate scorer never a masked one) and the target
            network scores it, instead of the target network's own maximum, which over-estimates
            when its Q-values are noisy. False (the default) trains exactly as SB3's DQN.
        *args, **kwargs: SB3's :class:`~stable_baselines3.DQN` arguments.
    """

    def __init__(self, *args: Any, double_q: bool = False, **kwargs: Any) -> None:
        self.double_q = check_flag(double_q, "double_q")
        super().__init__(*args, **kwargs)

    @classmethod
    def load(cls, path: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """SB3's ``load``; a slate model (saved by :class:`~.slateq.SlateQ`) loads as SlateQ."""
        from .slateq import SlateQ, is_slate_model

        if cls is MaskedDQN and is_slate_model(path, kwargs.get("custom_objects")):
            return SlateQ.load(path, *args, **kwargs)
        return super().load(path, *args, **kwargs)

    def _own_buffer(self) -> type[DictNStepReplayBuffer] | None:
        """The replay buffer class this algorithm needs in place of SB3's, or None."""
        # SB3 sets up n-step returns only for Box observations; the env's are a Dict. Any
        # n_steps other than 1 goes to the n-step buffer, which also rejects one below 1.
        return DictNStepReplayBuffer if self.n_steps != 1 else None

    def _setup_model(self) -> None:
        own = self._own_buffer()
        if (
            own is not None
            and self.replay_buffer_class is None
            and isinstance(self.observation_space, spaces.Dict)
        ):
            self.replay_buffer_class = own
            self.replay_buffer_kwargs = {
                **self.replay_buffer_kwargs,
                "n_steps": self.n_steps,
                "gamma": self.gamma,
            }
        with warnings.catch_warnings():
            # SB3 would warn that n_steps is ignored by a custom buffer: ours uses it. A loaded
            # model arrives with the buffer class already set, so check the class.
            if isinstance(self.replay_buffer_class, type) and issubclass(
                self.replay_buffer_class, DictNStepReplayBuffer
            ):
                warnings.filterwarnings("ignore", message=r"`n_steps=\d+` is ignored because")
            super()._setup_model()
        self._explore_rng = np.random.default_rng(self.seed)

    def _exploration_rng(self) -> np.random.Generator:
        """The generator of exploration draws (seeded with the model's seed)."""
        rng = getattr(self, "_explore_rng", None)
        if rng is None:
            rng = self._explore_rng = np.random.default_rng(self.seed)
        return rng

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """SB3's DQN update; with ``double_q`` the bootstrap value is the Double DQN one."""
        if not self.double_q:
            super().train(gradient_steps, batch_size)
            return
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        losses = []
        for _ in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            # n-step samples carry their own discount (gamma ** steps summed).
            discounts = data.discounts if data.discounts is not None else self.gamma
            with th.no_grad():
                next_actions = self.q_net(data.next_observations).argmax(dim=1, keepdim=True)
                next_q = th.gather(self.q_net_target(data.next_observations), 1, next_actions)
                target_q = data.rewards + (1 - data.dones) * discounts * next_q
            current_q = th.gather(self.q_net(data.observations), 1, data.actions.long())
            loss = F.smooth_l1_loss(current_q, target_q)
            losses.append(loss.item())
            self._gradient_step(loss)
        self._record_updates(gradient_steps, losses)

    def _gradient_step(self, loss: th.Tensor) -> None:
        """One optimiser step on ``loss``, gradients clipped as SB3's DQN clips them."""
        self.policy.optimizer.zero_grad()
        loss.backward()
        th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        self.policy.optimizer.step()

    def _record_updates(self, gradient_steps: int, losses: list[float]) -> None:
        """Count the updates and log their mean TD loss, as SB3's DQN does."""
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", np.mean(losses))

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        action, state = self.policy.predict(observation, state, episode_start, deterministic)
        if deterministic or not isinstance(observation, dict) or "action_mask" not in observation:
            return action, state
        rng = self._exploration_rng()
        mask = np.asarray(observation["action_mask"]) > 0
        vectorized = mask.ndim == 2
        masks = mask if vectorized else mask[None]
        acts = np.array(action).reshape(-1).copy()
        explore = rng.random(acts.shape[0]) < self.exploration_rate
        for i in np.flatnonzero(explore):
            valid = np.flatnonzero(masks[i])
            acts[i] = rng.choice(valid) if valid.size else rng.integers(masks.shape[1])
        return (acts if vectorized else acts.reshape(np.shape(action))), state

    def _sample_action(
        self, learning_starts: int, action_noise: Any = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        # SB3's warm-up phase samples any slot; sample only valid ones.
        obs = self._last_obs
        if self.num_timesteps < learning_starts and isinstance(obs, dict) and "action_mask" in obs:
            rng = self._exploration_rng()
            masks = np.asarray(obs["action_mask"]) > 0
            acts = np.array(
                [rng.choice(np.flatnonzero(m)) if m.any() else 0 for m in masks], dtype=np.int64
            )
            return acts, acts
        return super()._sample_action(learning_starts, action_noise, n_envs)


def candidate_scores(model: Any, observation: dict[str, np.ndarray]) -> np.ndarray:
    """Per-candidate scores of an SB3 model using a candidate-scorer policy, (B, K) or (K,)."""
    policy = model.policy
    single = np.asarray(observation["user"]).ndim == 1
    obs_t, _ = policy.obs_to_tensor(observation)
    with th.no_grad():
        if isinstance(policy, CandidateScorerDQNPolicy):
            scores = policy.q_net(obs_t)
        else:
            features = policy.extract_features(obs_t)
            if isinstance(features, tuple):
                features = features[0]
            scores = policy.action_net(policy.mlp_extractor(features)[0])
    out = scores.cpu().numpy()
    return out[0] if single else out
