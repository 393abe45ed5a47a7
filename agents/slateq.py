"""SlateQ: DQN over slates with the candidate scorer (Ie et al., 2019).

A slate of L candidates has too many orderings to give each its own Q-value (K! / (K - L)!).
SlateQ decomposes a slate's value into the items the user may choose from it:

    Q(s, A) = sum_{j in A} P(j | s, A) * Qbar(s, j)  +  P(none | s, A) * Qbar(s, none)

``Qbar(s, j)`` is the long-term value of the user choosing item j (a per-candidate score of the
shared candidate-scoring network), ``Qbar(s, none)`` that of choosing nothing (read from the
slate summary), and ``P`` is a conditional-logit choice model like the simulator's own: position
j of the slate gets the logit ``v(s, a_j) - b_j`` (``v`` a second per-candidate head, ``b`` a
learned offset per position, ``b_0 = 0``) against the no-click option's 0. The choice model is
learned from the logged choices (``clicked_position`` in the env's infos, which the replay buffer
keeps), by cross-entropy, beside the TD loss. Each transition trains the value of what the user
chose: ``Qbar(s, clicked item)`` or ``Qbar(s, none)`` towards ``r + gamma * Q(s', A')``, where
``A'`` is the best slate at ``s'``.

The best slate is built greedily, position by position: each position takes the valid candidate
not yet in the slate that most raises the slate's value (the "greedy" optimisation of the SlateQ
paper; exact for L = 1). Exploration shows a random slate of distinct valid candidates with
probability epsilon, as DQN's epsilon-greedy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.vec_env import VecNormalize, unwrap_vec_normalize
from stable_baselines3.dqn.policies import QNetwork
from torch import nn

from .base import sequential_prefix_probabilities, sequential_slate
from .errors import AgentError
from .positions import epsilon_rule_marginals, logged_marginals
from .replay import DictNStepReplayBuffer
from .scorer import (
    MASKED_SCORE,
    CandidateScorerDQNPolicy,
    CandidateScorerExtractor,
    MaskedDQN,
)

#: Choice logits are clipped to this magnitude before ``exp`` (float32 stays finite).
LOGIT_CLIP = 30.0
#: The position offsets are this many times their parameters: Adam moves a parameter by about
#: the learning rate per step, and the offsets, a few shared numbers learned from noisy clicks,
#: would take hundreds of thousands of steps to reach a position bias of 1 at DQN's rate.
OFFSET_SCALE = 10.0


class SlateHeads(NamedTuple):
    """What the SlateQ network computes for a batch of B observations with K candidates.

    Attributes:
        item_q: (B, K) ``Qbar(s, j)``, ``MASKED_SCORE`` at masked candidates.
        choice: (B, K) choice logits ``v(s, j)`` (before the position offsets).
        null_q: (B,) ``Qbar(s, none)``.
        valid: (B, K) bool, the candidates that can be shown.
        offsets: (L,) position offsets ``b`` (``b_0 = 0``).
    """

    item_q: th.Tensor
    choice: th.Tensor
    null_q: th.Tensor
    valid: th.Tensor
    offsets: th.Tensor


def shown_positions(slates: th.Tensor, valid: th.Tensor) -> th.Tensor:
    """(B, L) bool: the positions of ``slates`` (B, L) that show an item, as the simulator
    decides: a valid slot not already at an earlier position."""
    shown = valid.gather(1, slates)
    for j in range(1, slates.shape[1]):
        repeat = (slates[:, j : j + 1] == slates[:, :j]).any(dim=1)
        shown[:, j] &= ~repeat
    return shown


def position_logits(heads: SlateHeads, slates: th.Tensor) -> th.Tensor:
    """(B, L) choice logits of the slates' positions, ``-inf`` where a position shows nothing."""
    logits = heads.choice.gather(1, slates) - heads.offsets[None, :]
    logits = logits.clamp(-LOGIT_CLIP, LOGIT_CLIP)
    shown = shown_positions(slates, heads.valid)
    return logits.masked_fill(~shown, float("-inf"))


def slate_values(heads: SlateHeads, slates: th.Tensor) -> th.Tensor:
    """(B,) ``Q(s, A)`` of the given (B, L) slates under the heads' choice model."""
    logits = position_logits(heads, slates)
    zeros = th.zeros_like(logits[:, :1])
    probs = th.softmax(th.cat([logits, zeros], dim=1), dim=1)  # positions, then no click
    values = th.cat([heads.item_q.gather(1, slates), heads.null_q[:, None]], dim=1)
    # A position that shows nothing has probability 0; its (masked) item value must not leak in.
    values = values.masked_fill(probs == 0, 0.0)
    return (probs * values).sum(dim=1)


def greedy_slates(heads: SlateHeads, slate_size: int) -> tuple[th.Tensor, th.Tensor]:
    """The greedy best slate of each row and its value.

    Position by position, the candidate that most raises ``Q(s, A)`` among the valid ones not yet
    in the slate (masked ones only once no valid one is left; they show nothing). With the
    conditional logit, adding item j with weight ``w = exp(v_j - b_pos)`` turns the value
    ``N / D`` into ``(N + w * Qbar_j) / (D + w)``, starting from ``N = Qbar(none)``, ``D = 1``.

    Returns:
        slates (B, L) int64 slots and their values (B,).
    """
    item_q, choice, valid = heads.item_q, heads.choice, heads.valid
    b, k = item_q.shape
    rows = th.arange(b, device=item_q.device)
    num = heads.null_q.clone()
    den = th.ones_like(num)
    taken = th.zeros_like(valid)
    slates = th.empty((b, slate_size), dtype=th.long, device=item_q.device)
    for j in range(slate_size):
        w = th.exp((choice - heads.offsets[j]).clamp(-LOGIT_CLIP, LOGIT_CLIP))
        w = w * valid  # a masked slot shows nothing
        value = (num[:, None] + w * item_q.masked_fill(~valid, 0.0)) / (den[:, None] + w)
        open_valid = valid & ~taken
        allowed = th.where(open_valid.any(dim=1, keepdim=True), open_valid, ~taken)
        pick = value.masked_fill(~allowed, float("-inf")).argmax(dim=1)
        slates[:, j] = pick
        wp = w[rows, pick]
        num = num + wp * item_q[rows, pick].masked_fill(~valid[rows, pick], 0.0)
        den = den + wp
        taken[rows, pick] = True
    return slates, num / den


class SlateQNetwork(QNetwork):
    """The SlateQ heads over the candidate-scoring network.

    ``forward`` returns the (B, K) item values ``Qbar`` (what :func:`~.scorer.candidate_scores`
    reads); :meth:`heads` all of :class:`SlateHeads`; ``_predict`` the greedy slates.

    Args:
        slate_size: L, the slate's positions.
        dueling: item values and the no-click value share a state value read from the slate
            summary (``Qbar(s, j) = V(s) + A(s, j) - mean_valid A(s, .)``, ``Qbar(s, none) = V(s)
            + A(s, none)``), as :class:`~.scorer.CandidateScorerDQNPolicy`'s dueling head does.
        *args, **kwargs: SB3's :class:`~stable_baselines3.dqn.policies.QNetwork` arguments.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.MultiDiscrete,
        features_extractor: CandidateScorerExtractor,
        features_dim: int,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        dueling: bool = False,
    ) -> None:
        # QNetwork's constructor sizes a head by ``action_space.n``, which a slate space has not.
        super(QNetwork, self).__init__(
            observation_space,
            action_space,
            features_extractor=features_extractor,
            normalize_images=normalize_images,
        )
        self.net_arch = net_arch or []
        self.activation_fn = activation_fn
        self.features_dim = features_dim
        ext = features_extractor
        self.slate_size = int(np.asarray(action_space.nvec).size)
        hidden = ext.score_head.in_features
        summary_dim = features_dim - ext.k
        self.dueling = dueling
        self.choice_head = nn.Linear(hidden, 1)
        self.null_head = nn.Linear(summary_dim, 1)
        self.value_head = nn.Linear(summary_dim, 1) if dueling else None
        self.later_offsets = nn.Parameter(th.zeros(self.slate_size - 1))
        self.q_net = nn.Identity()  # SB3 reads the attribute; the heads above are the network

    def heads(self, obs: Any) -> SlateHeads:
        """Every SlateQ head for a batch of (tensor) observations."""
        ext = self.features_extractor
        assert isinstance(ext, CandidateScorerExtractor)
        prepared = preprocess_obs(obs, self.observation_space, self.normalize_images)
        assert isinstance(prepared, dict)
        h, scores, summary = ext.parts(prepared)
        valid = scores > MASKED_SCORE / 2
        null_q = self.null_head(summary).squeeze(-1)
        if self.value_head is not None:
            count = valid.sum(dim=1, keepdim=True).clamp(min=1).to(scores.dtype)
            mean = scores.masked_fill(~valid, 0.0).sum(dim=1, keepdim=True) / count
            value = self.value_head(summary)
            scores = th.where(valid, value + scores - mean, scores)
            null_q = value.squeeze(-1) + null_q
        # A row with no valid candidate: the extractor left its scores unmasked; any slot shows
        # nothing there, so none is valid.
        valid = valid & (obs["action_mask"] > 0.5)
        choice = self.choice_head(h).squeeze(-1)
        return SlateHeads(scores, choice, null_q, valid, self.position_offsets())

    def position_offsets(self) -> th.Tensor:
        """(L,) the choice model's offsets ``b`` (``b_0 = 0``): position j's choice logit is
        lowered by ``b_j``, as the simulator lowers it by ``response.position_bias * j``."""
        later = OFFSET_SCALE * self.later_offsets
        return th.cat([later.new_zeros(1), later])

    def forward(self, obs: Any) -> th.Tensor:
        return self.heads(obs).item_q

    def _predict(self, observation: Any, deterministic: bool = True) -> th.Tensor:
        slates, _ = greedy_slates(self.heads(observation), self.slate_size)
        return slates

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["dueling"] = self.dueling
        return data


class SlateQPolicy(CandidateScorerDQNPolicy):
    """DQN policy for slates: :class:`SlateQNetwork` as the online and the target network.

    Takes what :class:`~.scorer.CandidateScorerDQNPolicy` takes (``dueling``, the extractor's
    ``hidden``, ``n_layers``, ``summary_dim``) on a ``MultiDiscrete([K] * L)`` action space.
    """

    def make_q_net(self) -> QNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return SlateQNetwork(**net_args, dueling=self.dueling).to(self.device)


class SlateReplayBufferSamples(NamedTuple):
    """``DictReplayBufferSamples`` with each transition's choice: the clicked position, or -1."""

    observations: dict[str, th.Tensor]
    actions: th.Tensor
    next_observations: dict[str, th.Tensor]
    dones: th.Tensor
    rewards: th.Tensor
    discounts: th.Tensor
    choices: th.Tensor


class SlateReplayBuffer(DictNStepReplayBuffer):
    """The n-step Dict replay buffer that also keeps the user's choice of each step
    (``clicked_position`` of the env's infos; -1: no click).

    Args:
        n_steps, gamma, *args, **kwargs: as for :class:`~.replay.DictNStepReplayBuffer`
            (``n_steps=1`` gives one-step samples).
    """

    def __init__(self, *args: Any, n_steps: int = 1, gamma: float = 0.99, **kwargs: Any) -> None:
        super().__init__(*args, n_steps=n_steps, gamma=gamma, **kwargs)
        self.choices = np.full((self.buffer_size, self.n_envs), -1, dtype=np.int64)

    def add(  # type: ignore[override]
        self,
        obs: dict[str, np.ndarray],
        next_obs: dict[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        try:
            self.choices[self.pos] = [int(info["clicked_position"]) for info in infos]
        except KeyError:
            raise AgentError(
                "SlateQ learns from the clicked position of each slate: expected "
                "'clicked_position' in every step's info (lmrecsim's slate envs give it)"
            ) from None
        super().add(obs, next_obs, action, reward, done, infos)

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> SlateReplayBufferSamples:
        # Drawn as the parent draws them (numpy's global generator, seeded by SB3).
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        s = self._samples_at(batch_inds, env_indices, env)
        assert s.discounts is not None
        return SlateReplayBufferSamples(
            s.observations,
            s.actions,
            s.next_observations,
            s.dones,
            s.rewards,
            s.discounts,
            self.to_torch(self.choices[batch_inds, env_indices]),
        )


class SlateQ(MaskedDQN):
    """DQN for slate scenarios (``candidates.slate_size`` L > 1): SlateQ with the candidate
    scorer (module docstring). ``lmrecsim train --algo dqn`` on a slate scenario trains this.

    Takes SB3's DQN arguments, ``double_q`` (the online network picks the next slate, the target
    network values it) and:

    Args:
        choice_coef: weight of the choice model's cross-entropy beside the TD loss.
    """

    def __init__(
        self,
        policy: Any,
        env: Any,
        *args: Any,
        choice_coef: float = 1.0,
        _init_setup_model: bool = True,
        **kwargs: Any,
    ) -> None:
        numeric = isinstance(choice_coef, (int, float)) and not isinstance(choice_coef, bool)
        if not numeric or not 0 <= choice_coef < float("inf"):
            raise AgentError(
                f"agent.hyperparameters.choice_coef: {choice_coef!r} is invalid (expected a "
                "number at least 0)"
            )
        self.choice_coef = float(choice_coef)
        # SB3's DQN accepts Discrete action spaces only; the env is attached here instead.
        super().__init__(policy, None, *args, _init_setup_model=False, **kwargs)
        if env is not None:
            env = self._wrap_env(env, self.verbose, True)
            if not isinstance(env.action_space, spaces.MultiDiscrete):
                raise AgentError(
                    f"SlateQ trains slates (a MultiDiscrete action space), got {env.action_space}"
                )
            self.observation_space = env.observation_space
            self.action_space = env.action_space
            self.n_envs = env.num_envs
            self.env = env
            self._vec_normalize_env = unwrap_vec_normalize(env)
        if _init_setup_model:
            self._setup_model()

    def _own_buffer(self) -> type[DictNStepReplayBuffer] | None:
        return SlateReplayBuffer

    @property
    def slate_size(self) -> int:
        """L, the positions of a slate."""
        return int(np.asarray(self.action_space.nvec).size)

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """SlateQ updates: TD on the chosen item's value, cross-entropy on the choice."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        td_losses, choice_losses = [], []
        q_net, target_net = self.q_net, self.q_net_target
        assert isinstance(q_net, SlateQNetwork) and isinstance(target_net, SlateQNetwork)
        for _ in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            assert isinstance(data, SlateReplayBufferSamples)
            with th.no_grad():
                target_heads = target_net.heads(data.next_observations)
                if self.double_q:
                    next_slates, _ = greedy_slates(
                        q_net.heads(data.next_observations), self.slate_size
                    )
                    next_value = slate_values(target_heads, next_slates)
                else:
                    _, next_value = greedy_slates(target_heads, self.slate_size)
                target = data.rewards.squeeze(1) + (1 - data.dones.squeeze(1)) * (
                    data.discounts.squeeze(1) * next_value
                )
            heads = q_net.heads(data.observations)
            slates = data.actions.long()
            choice = data.choices.long()
            clicked = choice >= 0
            slot = slates.gather(1, choice.clamp(min=0)[:, None]).squeeze(1)
            chosen_q = heads.item_q.gather(1, slot[:, None]).squeeze(1)
            current = th.where(clicked, chosen_q, heads.null_q)
            td_loss = F.smooth_l1_loss(current, target)
            logits = position_logits(heads, slates)
            logits = th.cat([logits, th.zeros_like(logits[:, :1])], dim=1)
            label = th.where(clicked, choice, th.full_like(choice, self.slate_size))
            choice_loss = F.cross_entropy(logits, label)
            loss = td_loss + self.choice_coef * choice_loss
            td_losses.append(td_loss.item())
            choice_losses.append(choice_loss.item())
            self._gradient_step(loss)
        self._record_updates(gradient_steps, td_losses)
        self.logger.record("train/choice_loss", np.mean(choice_losses))

    def _random_slates(self, masks: np.ndarray) -> np.ndarray:
        rng = self._exploration_rng()
        # The random baseline's rule: L distinct valid slots drawn uniformly in order (when fewer
        # are valid, the first slot again: a position that shows nothing).
        slates = [sequential_slate(m, None, self.slate_size, 1.0, rng=rng)[0] for m in masks]
        return np.stack(slates).astype(np.int64)

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """The greedy slate, or with probability ``exploration_rate`` (not ``deterministic``)
        a random one: (L,) for one observation, (B, L) for a batch."""
        action, state = self.policy.predict(observation, state, episode_start, deterministic)
        if deterministic or not isinstance(observation, dict):
            return action, state
        mask = np.asarray(observation["action_mask"]) > 0
        masks = mask if mask.ndim == 2 else mask[None]
        acts = np.array(action).reshape(masks.shape[0], self.slate_size).copy()
        explore = self._exploration_rng().random(acts.shape[0]) < self.exploration_rate
        if explore.any():
            acts[explore] = self._random_slates(masks[explore])
        return (acts if mask.ndim == 2 else acts[0]), state

    def behaviour_probabilities(
        self, observation: dict[str, np.ndarray], slates: np.ndarray, *, warm_up: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What the exploring policy did at a batch of observations, for an episode log.

        Args:
            observation: a batch of B observations.
            slates: the (B, L) slates taken.
            warm_up: the slates were drawn before ``learning_starts`` (random slates only).

        Returns:
            (B, K) probabilities of each slot at the first position, and (B, L) the probability
            of each slate's first 1, 2, ..., L slots: ``(1 - eps) * [the greedy slate's] + eps *
            P(random slate's)`` with ``eps`` the exploration rate (1 in the warm-up); the last
            column is the whole slate's propensity; and (B, L) the probability that position l
            holds the slate's slot l (the item-position marginals, by the same mixture).
        """
        masks = np.asarray(observation["action_mask"]) > 0
        slates = np.asarray(slates).reshape(masks.shape[0], self.slate_size)
        eps = 1.0 if warm_up else float(self.exploration_rate)
        greedy, _ = self.predict(observation, deterministic=True)
        greedy = np.asarray(greedy).reshape(slates.shape)
        # A random slate's first slot is uniform over the valid slots (over all, if none is).
        pool = np.where(masks.any(axis=1, keepdims=True), masks, True)
        first = eps * pool / pool.sum(axis=1, keepdims=True)
        first[np.arange(first.shape[0]), greedy[:, 0]] += 1.0 - eps
        same = np.cumprod(slates == greedy, axis=1)
        uniform = np.stack(
            [
                sequential_prefix_probabilities(m, None, self.slate_size, 1.0, a)
                for m, a in zip(masks, slates, strict=True)
            ]
        )
        at = logged_marginals(epsilon_rule_marginals(masks, None, self.slate_size, 1.0), slates)
        positions = (1.0 - eps) * (slates == greedy) + eps * at
        return first, (1.0 - eps) * same + eps * uniform, positions

    def _sample_action(
        self, learning_starts: int, action_noise: Any = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        # Warm-up: random slates of valid candidates (SB3 would sample any slots, repeats too).
        if self.num_timesteps < learning_starts:
            acts = self._random_slates(np.asarray(self._last_obs["action_mask"]) > 0)  # type: ignore[index]
            return acts, acts
        return super()._sample_action(learning_starts, action_noise, n_envs)


def is_slate_model(path: Any, custom_objects: Mapping[str, Any] | None = None) -> bool:
    """Whether the SB3 model file at ``path`` (a path or a binary file) acts on slates (a
    ``MultiDiscrete`` action space); False for anything unreadable (loading it reports why).

    The action space is ``custom_objects``' when it holds one (``load_model`` passes the checked
    entries of the file's data), else read from the archive's ``data`` entry with the restricted
    unpickler of :mod:`.safe_load` (never SB3's, which runs what a pickle names).
    """
    from .safe_load import safe_custom_objects

    if custom_objects is not None and "action_space" in custom_objects:
        space = custom_objects["action_space"]
    else:
        try:
            position = path.tell() if hasattr(path, "tell") else None
            space = safe_custom_objects(path).get("action_space")
            if position is not None:
                path.seek(position)
        except (AgentError, OSError):
            return False
    return isinstance(space, spaces.MultiDiscrete)
