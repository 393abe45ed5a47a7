"""Baseline policies and the policy-spec parser used by evaluation.

Every baseline follows the SB3 ``predict`` protocol of :class:`lmrecsim.agents.base.Policy` and
exposes ``scores(obs) -> (K,)`` (its ranking of the candidates, for precision/recall/NDCG) and
``action_probabilities(obs) -> (K,)`` (the probability of each slot under its action rule, for
propensities). Masked candidates get score ``-inf`` and probability 0.

Slates. On a scenario with ``candidates.slate_size`` L > 1 the action is an (L,) array of slots.
A baseline cannot tell L from an observation, so it takes it as the ``slate_size`` constructor
argument (default 1: one slot per step); :func:`make_policy` passes the scenario's
``candidates.slate_size``. A slate baseline's ``predict`` returns (L,) distinct valid slots (the
top L by its scores, ties to the lowest slot; ``random`` and ``egreedy`` draw position by
position, see :func:`lmrecsim.agents.base.sequential_slate`); when fewer than L slots are valid
the remaining positions repeat the first slot (a repeat shows nothing). ``action_probabilities``
is then the distribution of the first position's slot, and ``slate_probability(obs, slate)`` the
probability of a whole ordered slate (the logged propensity). With ``slate_size`` 1 everything is
exactly the single-item rule.

Shapes: K candidates, L slate positions, p projected embedding dims, F = 17 candidate features
(``lmrecsim.envs.features.N_FEATURES``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .base import (
    EpisodeSeeded,
    RandomPolicy,
    action_slate_size,
    check_slate_size,
    prefix_indicators,
    sample_actions,
    sequential_conditionals,
    sequential_prefix_probabilities,
    sequential_slate,
    top_slate,
)
from .conditionals import plackett_luce_conditionals, slate_indicators
from .errors import AgentError
from .positions import (
    chosen_shown,
    epsilon_rule_marginals,
    logged_marginals,
    plackett_luce_marginals,
    position_indicators,
    shown_marginals,
)

__all__ = [
    "BASELINES",
    "EpsilonGreedyPolicy",
    "GreedyPolicy",
    "LinUCBPolicy",
    "OraclePolicy",
    "PopularPolicy",
    "RandomPolicy",
    "SB3Policy",
    "SoftmaxPolicy",
    "make_policy",
]

#: Baseline names accepted by :func:`make_policy`.
BASELINES = ("random", "popular", "greedy", "linucb", "egreedy", "softmax", "oracle")
#: Saved-model prefixes accepted by :func:`make_policy` (``PREFIX:PATH``).
MODEL_PREFIXES = ("ppo", "dqn", "maskable_ppo")


#: The ``egreedy`` baseline's exploration probability when none is given.
EGREEDY_EPSILON = 0.1
#: The ``softmax`` baseline's temperature and uniform floor when none are given.
SOFTMAX_TEMPERATURE = 0.1
SOFTMAX_EPSILON = 0.0
#: The smallest temperature: greedy's scores (cosines, at most 2 apart, plus a popularity
#: tie-break) over it stay far inside float64 (a subnormal one made infinite logits and NaN).
MIN_TEMPERATURE = 1e-100


def _mask(observation: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray(observation["action_mask"]).reshape(-1) > 0


def _masked(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, scores, -np.inf)


def _argmax_one_hot(scores: np.ndarray) -> np.ndarray:
    probs = np.zeros(scores.shape[0], dtype=np.float64)
    probs[int(np.argmax(scores))] = 1.0
    return probs


def batch_size(observation: dict[str, np.ndarray]) -> int | None:
    """B for a batched observation (``action_mask`` (B, K), as a ``VecEnv`` returns), None for
    a single one (``action_mask`` (K,))."""
    mask = np.asarray(observation["action_mask"])
    return int(mask.shape[0]) if mask.ndim == 2 else None


def observation_rows(observation: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The B single observations of a batched one, in row order."""
    n = batch_size(observation)
    if n is None:
        raise AgentError("observation_rows: expected a batched observation (action_mask (B, K))")
    return [{key: np.asarray(value)[i] for key, value in observation.items()} for i in range(n)]


class ScoringPolicy:
    """Deterministic policy: recommend the valid candidate with the highest ``scores``.

    Ties go to the lowest slot; with no valid slot at all, slot 0 (the env treats it as a skip).
    With ``slate_size`` L > 1, the top L valid candidates by ``scores``, best first (same tie
    rule; see :func:`lmrecsim.agents.base.top_slate`). Subclasses implement :meth:`scores`.

    ``predict`` also takes a batched observation (every entry with a leading B axis, as an SB3
    ``VecEnv`` returns it) and gives (B,) actions, or (B, L) slates, like an SB3 model, so
    ``stable_baselines3.common.evaluation.evaluate_policy`` runs a baseline on a ``VecEnv``.
    ``scores``, ``action_probabilities`` and ``slate_probability`` take single observations.

    Args:
        slate_size: items per recommendation, L (the scenario's ``candidates.slate_size``).
    """

    privileged = False
    # A class default too: subclasses written before slates existed may not call __init__.
    slate_size: int = 1

    def __init__(self, slate_size: int = 1) -> None:
        self.slate_size = check_slate_size(slate_size, type(self).__name__)

    def scores(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(K,) score of each candidate; ``-inf`` at masked slots."""
        raise NotImplementedError

    def action_probabilities(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(K,) one-hot on the chosen slot (for slates: the first position's)."""
        return _argmax_one_hot(self.scores(observation))

    def slate_probability(self, observation: dict[str, np.ndarray], slate: np.ndarray) -> float:
        """1.0 for the (L,) slate this policy recommends, 0.0 for any other."""
        return float(self.prefix_probabilities(observation, slate)[-1])

    def prefix_probabilities(
        self, observation: dict[str, np.ndarray], slate: np.ndarray
    ) -> np.ndarray:
        """(L,) 1.0 while ``slate``'s first 1, 2, ..., L slots are this policy's, then 0.0."""
        return prefix_indicators(top_slate(self.scores(observation), self.slate_size), slate)

    def position_probabilities(
        self, observation: dict[str, np.ndarray], slate: np.ndarray
    ) -> np.ndarray:
        """(L,) 1.0 at each position where ``slate`` holds this policy's slot, else 0.0."""
        return position_indicators(top_slate(self.scores(observation), self.slate_size), slate)

    def conditional_probabilities(
        self, observation: dict[str, np.ndarray], slate: np.ndarray
    ) -> np.ndarray:
        """(L, K) row l one-hot on this policy's slot at position l, whatever ``slate`` holds
        above it (a deterministic policy's table; see :mod:`lmrecsim.agents.conditionals`)."""
        scores = self.scores(observation)
        return slate_indicators(top_slate(scores, self.slate_size), scores.shape[0])

    def shown_probabilities(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(L, K) 1.0 where this policy's slate shows slot k at position l
        (:func:`~lmrecsim.agents.positions.chosen_shown`)."""
        return chosen_shown(
            top_slate(self.scores(observation), self.slate_size), _mask(observation)
        )

    def batch_scores(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(B, K) :meth:`scores` of each row of a batched observation."""
        return np.stack([self.scores(row) for row in observation_rows(observation)])

    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        if batch_size(observation) is not None:
            scores = self.batch_scores(observation)
            if self.slate_size > 1:
                return np.stack([top_slate(row, self.slate_size) for row in scores]), state
            return np.argmax(scores, axis=1).astype(np.int64), state
        if self.slate_size > 1:
            return top_slate(self.scores(observation), self.slate_size), state
        return np.asarray(int(np.argmax(self.scores(observation)))), state


class PopularPolicy(ScoringPolicy):
    """Most popular candidate: score = ``candidate_features[:, 0]`` (log popularity / 5)."""

    def scores(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        pop = np.asarray(observation["candidate_features"], dtype=np.float64)[:, 0]
        return _masked(pop, _mask(observation))


def cosine_scores(observation: dict[str, np.ndarray]) -> np.ndarray:
    """(K,) cosine between the visible user state (p,) and each candidate (K, p).

    A user with no visible state (the zero vector) gets cosine 0 for every candidate.
    """
    user = np.asarray(observation["user"], dtype=np.float64)
    cands = np.asarray(observation["candidates"], dtype=np.float64)
    norms = np.linalg.norm(cands, axis=1) * np.linalg.norm(user)
    dots = cands @ user
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


class GreedyPolicy(ScoringPolicy):
    """Highest cosine between the visible user state and the candidate embedding.

    Score = ``cos(user, candidate) + 1e-6 * log_popularity_feature``: the tiny popularity term
    only breaks ties, which matter when the user has no visible state (all cosines 0).
    """

    def scores(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        pop = np.asarray(observation["candidate_features"], dtype=np.float64)[:, 0]
        return _masked(cosine_scores(observation) + 1e-6 * pop, _mask(observation))


class GreedyExplorer(EpisodeSeeded):
    """A stochastic policy built on greedy's scores (``egreedy``, ``softmax``): its own
    generator, greedy's ranking and the SB3 ``predict`` protocol; subclasses say how a slot or a
    slate is drawn (:meth:`draw`) and give its probabilities (``action_probabilities``,
    ``prefix_probabilities``, ``position_probabilities``, ``conditional_probabilities``). Being
    stochastic by definition, ``predict`` samples even when ``deterministic`` is True.

    Args:
        seed: seed of the policy's own generator.
        slate_size: items per recommendation, L (the scenario's ``candidates.slate_size``).
        name: the policy's name in error messages.
    """

    privileged = False
    # A class default too: subclasses written before slates existed may not call __init__.
    slate_size: int = 1

    def __init__(self, seed: int | None, slate_size: int, name: str) -> None:
        super().__init__(seed)
        self.slate_size = check_slate_size(slate_size, name)
        self._greedy = GreedyPolicy()

    def scores(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(K,) the greedy scores (the ranking this policy explores around; ``-inf`` masked)."""
        return self._greedy.scores(observation)

    def prefix_probabilities(
        self, observation: dict[str, np.ndarray], slate: np.ndarray
    ) -> np.ndarray:
        """(L,) probability of ``slate``'s first 1, 2, ..., L slots under this policy."""
        raise NotImplementedError

    def slate_probability(self, observation: dict[str, np.ndarray], slate: np.ndarray) -> float:
        """Probability of the ordered (L,) ``slate`` (the last prefix probability)."""
        return float(self.prefix_probabilities(observation, slate)[-1])

    def draw(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """One slot (a scalar array) or, with ``slate_size`` > 1, an (L,) slate for a single
        observation, from the policy's generator."""
        raise NotImplementedError

    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        if batch_size(observation) is not None:  # row by row, in order, from the one generator
            rows = [self.draw(row) for row in observation_rows(observation)]
            return np.stack(rows).astype(np.int64), state
        return self.draw(observation), state


class EpsilonGreedyPolicy(GreedyExplorer):
    """With probability ``epsilon`` a uniformly random valid candidate, else the greedy one.

    ``action_probabilities`` are the true probabilities of this rule:
    ``(1 - epsilon) * onehot(greedy) + epsilon / n_valid`` on valid slots. The policy is
    stochastic by definition, so ``predict`` samples even when ``deterministic`` is True.

    With ``slate_size`` L > 1 each position in turn explores with probability ``epsilon``
    (uniformly among the valid slots not yet in the slate) and otherwise takes the greedy best of
    them, so the slate's slots are distinct; ``action_probabilities`` is the first position's
    distribution (the single-item one) and ``slate_probability`` the product over positions.

    Args:
        epsilon: exploration probability in [0, 1].
        seed: seed of the policy's own generator.
        slate_size: items per recommendation, L (the scenario's ``candidates.slate_size``).
    """

    def __init__(
        self, epsilon: float = EGREEDY_EPSILON, seed: int | None = 0, slate_size: int = 1
    ) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise AgentError(f"egreedy: epsilon must lie in [0, 1], got {epsilon}")
        super().__init__(seed, slate_size, "egreedy")
        self.epsilon = float(epsilon)

    def action_probabilities(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(K,) probability of each slot."""
        mask = _mask(observation)
        n_valid = int(mask.sum())
        if n_valid == 0:
            return np.full(mask.shape[0], 1.0 / mask.shape[0])
        probs = np.where(mask, self.epsilon / n_valid, 0.0)
        probs[int(np.argmax(self.scores(observation)))] += 1.0 - self.epsilon
        return probs

    def prefix_probabilities(
        self, observation: dict[str, np.ndarray], slate: np.ndarray
    ) -> np.ndarray:
        """(L,) probability of ``slate``'s first 1, 2, ..., L slots under the same rule."""
        mask, scores = _mask(observation), self.scores(observation)
        return sequential_prefix_probabilities(mask, scores, self.slate_size, self.epsilon, slate)

    def position_probabilities(
        self, observation: dict[str, np.ndarray], slate: np.ndarray
    ) -> np.ndarray:
        """(L,) probability that position l holds ``slate``'s slot l under the same rule (the
        item-position marginals)."""
        marginals = self._marginals(observation)
        return logged_marginals(marginals, np.asarray(slate).reshape(1, -1))[0]

    def shown_probabilities(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(L, K) probability that position l shows slot k's item under the same rule
        (:func:`~lmrecsim.agents.positions.shown_marginals`)."""
        return shown_marginals(self._marginals(observation), _mask(observation)[None])[0]

    def _marginals(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(1, L, K) the item-position marginals of the rule."""
        mask, scores = _mask(observation)[None], self.scores(observation)[None]
        return epsilon_rule_marginals(mask, scores, self.slate_size, self.epsilon)

    def conditional_probabilities(
        self, observation: dict[str, np.ndarray], slate: np.ndarray
    ) -> np.ndarray:
        """(L, K) each position's distribution of slots under the same rule, given that the
        earlier positions hold ``slate``'s (:func:`~lmrecsim.agents.base.
        sequential_conditionals`)."""
        mask, scores = _mask(observation), self.scores(observation)
        return sequential_conditionals(mask, scores, self.slate_size, self.epsilon, slate)

    def draw(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        if self.slate_size > 1:
            mask, scores = _mask(observation), self.scores(observation)
            return sequential_slate(mask, scores, self.slate_size, self.epsilon, rng=self.rng)[0]
        return sample_actions(self.rng, self.action_probabilities(observation))


class SoftmaxPolicy(GreedyExplorer):
    """Boltzmann exploration over greedy's scores: slot i with probability proportional to
    ``exp(score_i / temperature)`` among the valid candidates, optionally with a uniform floor.

    A logging policy for off-policy evaluation whose propensities are all positive and grade
    with the scores (the usual logger of the OPE literature), where ``egreedy`` explores
    uniformly. Without a floor (``epsilon`` 0, the default), candidates far below greedy's best
    get next to nothing at low temperatures (docs/logs.md compares the loggers); with
    ``epsilon`` > 0 the draw is, with probability ``epsilon``, a uniformly random valid
    candidate instead, so every valid candidate gets at least ``epsilon / n`` of n. Small
    temperatures approach greedy, large ones random; greedy's scores are cosines in [-1, 1], so
    0.05-1 is the useful range. With no valid slot at all every slot counts as valid, with
    equal weight (the other baselines' rule).

    With ``slate_size`` L > 1 the slate is a Plackett-Luce draw, the kind PPO's candidate scorer
    makes: position by position a valid slot not yet in the slate, with probability proportional
    to its weight (with a floor: each position, with probability ``epsilon``, a uniformly random
    valid slot not yet in the slate instead). When fewer than L slots are valid, the remaining
    positions repeat the first slot (a repeat shows nothing), as for the other baselines.

    Args:
        temperature: the softmax temperature, a finite number > 0.
        seed: seed of the policy's own generator.
        slate_size: items per recommendation, L (the scenario's ``candidates.slate_size``).
        epsilon: the uniform floor's share, in [0, 1] (1 is ``random``).
    """

    def __init__(
        self,
        temperature: float = SOFTMAX_TEMPERATURE,
        seed: int | None = 0,
        slate_size: int = 1,
        *,
        epsilon: float = SOFTMAX_EPSILON,
    ) -> None:
        if not _finite_number(temperature) or temperature < MIN_TEMPERATURE:
            raise AgentError(
                f"softmax: temperature {temperature!r} (expected a finite number >= "
                f"{MIN_TEMPERATURE:g})"
            )
        if not _finite_number(epsilon) or not 0.0 <= epsilon <= 1.0:
            raise AgentError(f"softmax: epsilon {epsilon!r} (expected a number in [0, 1])")
        super().__init__(seed, slate_size, "softmax")
        self.temperature = float(temperature)
        self.epsilon = float(epsilon)

    def _logits(self, observation: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(K,) logits (score / temperature) and (K,) valid slots; with no valid slot, every
        slot and logits 0."""
        s = self.scores(observation)
        valid = np.isfinite(s)
        if not valid.any():
            return np.zeros(s.shape[0]), np.ones(s.shape[0], dtype=bool)
        return np.where(valid, s, 0.0) / self.temperature, valid

    def action_probabilities(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(K,) probability of each slot (for slates: of the first position's slot)."""
        logits, valid = self._logits(observation)
        w = np.zeros(logits.shape[0])
        w[valid] = np.exp(logits[valid] - logits[valid].max())  # masked slots: never exponentiated
        probs = w / w.sum()
        if self.epsilon > 0.0:
            probs = (1.0 - self.epsilon) * probs + self.epsilon * valid / valid.sum()
        return probs

    def conditional_probabilities(
        self, observation: dict[str, np.ndarray], slate: np.ndarray
    ) -> np.ndarray:
        """(L, K) each position's distribution of slots given that the earlier positions hold
        ``slate``'s: the softmax over the valid slots not yet taken
        (:func:`~lmrecsim.agents.conditionals.plackett_luce_conditionals`), mixed with the
        uniform distribution over them by ``epsilon``, and past the valid slots one-hot on
        ``slate``'s first slot (the repeat)."""
        logits, valid = self._logits(observation)
        given = np.asarray(slate).reshape(-1).astype(np.int64)
        table = plackett_luce_conditionals(logits, valid, given)
        if self.epsilon > 0.0:  # equal logits: uniform over the same remaining slots
            uniform = plackett_luce_conditionals(np.zeros_like(logits), valid, given)
            table = (1.0 - self.epsilon) * table + self.epsilon * uniform
        n = int(valid.sum())
        if n < table.shape[0]:
            table[n:] = 0.0
            if 0 <= given[0] < table.shape[1]:
                table[n:, given[0]] = 1.0
        return table

    def prefix_probabilities(
        self, observation: dict[str, np.ndarray], slate: np.ndarray
    ) -> np.ndarray:
        """(L,) probability of drawing ``slate``'s first 1, 2, ..., L slots in that order (a
        slot outside ``[0, K)`` or a slate of another length: 0 from there on)."""
        given = np.asarray(slate).reshape(-1).astype(np.int64)
        if given.shape[0] != self.slate_size:
            return np.zeros(self.slate_size, dtype=np.float64)
        table = self.conditional_probabilities(observation, given)
        k = table.shape[1]
        inside = (given >= 0) & (given < k)
        picked = table[np.arange(given.shape[0]), np.clip(given, 0, k - 1)]
        return np.cumprod(np.where(inside, picked, 0.0))

    def position_probabilities(
        self, observation: dict[str, np.ndarray], slate: np.ndarray
    ) -> np.ndarray:
        """(L,) probability that position l holds ``slate``'s slot l (the item-position
        marginals, :func:`~lmrecsim.agents.positions.plackett_luce_marginals`; past the valid
        slots, the first position's)."""
        marginals, valid = self._marginals(observation)
        marginals[0, int(valid.sum()) :] = marginals[0, 0]
        return logged_marginals(marginals, np.asarray(slate).reshape(1, -1))[0]

    def shown_probabilities(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(L, K) probability that position l shows slot k's item
        (:func:`~lmrecsim.agents.positions.shown_marginals`)."""
        return shown_marginals(self._marginals(observation)[0], _mask(observation)[None])[0]

    def _marginals(self, observation: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(1, L, K) the item-position marginals of the slate rule, and (K,) the slots it counts
        as valid (:meth:`_logits`)."""
        logits, valid = self._logits(observation)
        marginals = plackett_luce_marginals(
            None, valid[None], self.slate_size, epsilon=self.epsilon, logits=logits[None]
        )
        return marginals, valid

    def draw(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        if self.slate_size == 1:
            return sample_actions(self.rng, self.action_probabilities(observation))
        logits, valid = self._logits(observation)
        if self.epsilon == 0.0:
            # The top L of the logits plus Gumbel noise is exactly a Plackett-Luce draw.
            key = np.where(valid, logits + self.rng.gumbel(size=logits.shape[0]), -np.inf)
            slate = np.argsort(-key, kind="stable")[: self.slate_size].astype(np.int64)
        else:  # position by position: a uniform slot with probability epsilon, else softmax
            slate = np.zeros(self.slate_size, dtype=np.int64)
            left = valid.copy()
            for j in range(min(self.slate_size, int(valid.sum()))):
                slots = np.flatnonzero(left)
                if self.rng.random() < self.epsilon:
                    slot = slots[self.rng.integers(slots.shape[0])]
                else:
                    z = logits[slots]
                    w = np.exp(z - z.max())
                    slot = slots[self.rng.choice(slots.shape[0], p=w / w.sum())]
                slate[j] = slot
                left[slot] = False
        slate[int(valid.sum()) :] = slate[0]
        return slate


def _finite_number(value: Any) -> bool:
    """A real number (not a bool) that is finite."""
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.integer, np.floating))
        and bool(np.isfinite(value))
    )


class LinUCBPolicy(ScoringPolicy):
    """LinUCB with one shared linear model over per-candidate contexts, learning online.

    Context of candidate c: ``x_c = [1, features_c (F), candidate_c (p), user * candidate_c (p)]``
    with the projected embeddings scaled by ``1/sqrt(p)`` (projected dims have variance ~1, so
    this keeps ``||x||`` of order 1 whatever p is). With ``A = lambda I + sum x x^T`` and
    ``b = sum r x`` over the steps observed so far::

        theta = A^-1 b,   score_c = theta . x_c + alpha * sqrt(x_c^T A^-1 x_c)

    ``A^-1`` is kept up to date with the Sherman-Morrison formula (O(D^2) per step). The model
    persists across episodes (that is how it learns about the population); :meth:`reset` does
    not clear it, :meth:`forget` does.

    With ``slate_size`` L > 1 it recommends the top L by its upper confidence bound and learns
    from every item the slate showed, in slate order: the clicked position with the step's reward,
    every other shown position with reward 0 (the user passed it over). A reward the step earns
    without a click (the ``cosine`` reward, a leave penalty) is credited to no position.

    Args:
        alpha: width of the confidence bonus (exploration).
        ridge: the ridge ``lambda`` of ``A``'s initial value.
        slate_size: items per recommendation, L (the scenario's ``candidates.slate_size``).
    """

    def __init__(self, alpha: float = 0.5, ridge: float = 1.0, slate_size: int = 1) -> None:
        if alpha < 0 or ridge <= 0:
            raise AgentError(f"linucb: expected alpha >= 0 and ridge > 0, got {alpha}, {ridge}")
        super().__init__(slate_size)
        self.alpha = float(alpha)
        self.ridge = float(ridge)
        self._a_inv: np.ndarray | None = None
        self._b: np.ndarray | None = None
        self.n_updates = 0

    def forget(self) -> None:
        """Drop everything learned."""
        self._a_inv = None
        self._b = None
        self.n_updates = 0

    def reset(self) -> None:
        """Start of an episode: nothing to do (the model keeps learning across users)."""

    @staticmethod
    def contexts(observation: dict[str, np.ndarray]) -> np.ndarray:
        """(K, D) contexts, D = 1 + F + 2p."""
        user = np.asarray(observation["user"], dtype=np.float64)
        cands = np.asarray(observation["candidates"], dtype=np.float64)
        feats = np.asarray(observation["candidate_features"], dtype=np.float64)
        scale = 1.0 / np.sqrt(max(cands.shape[1], 1))
        ones = np.ones((cands.shape[0], 1))
        return np.concatenate([ones, feats, cands * scale, user[None, :] * cands * scale], axis=1)

    def _ensure(self, dim: int) -> None:
        if self._a_inv is None or self._a_inv.shape[0] != dim:
            self._a_inv = np.eye(dim) / self.ridge
            self._b = np.zeros(dim)

    def scores(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        x = self.contexts(observation)
        self._ensure(x.shape[1])
        assert self._a_inv is not None and self._b is not None
        theta = self._a_inv @ self._b
        width = np.sqrt(np.maximum(np.einsum("kd,de,ke->k", x, self._a_inv, x), 0.0))
        return _masked(x @ theta + self.alpha * width, _mask(observation))

    def observe(
        self,
        observation: dict[str, np.ndarray],
        action: int | np.ndarray,
        reward: float,
        info: dict[str, Any],
    ) -> None:
        """Update the model with the reward of the recommended candidate (skipped if invalid).

        For a slate (``info`` has ``slate_items``; ``action`` the (L,) slots), one update per
        shown position in slate order: reward ``reward`` at ``info["clicked_position"]``, 0 at the
        others; positions that showed nothing (masked, repeated) are skipped.
        """
        if info.get("invalid_action", False):
            return
        if "slate_items" in info:
            slots = np.asarray(action, dtype=np.int64).reshape(-1)
            shown = np.asarray(info["slate_items"]).reshape(-1) >= 0
            clicked = int(info.get("clicked_position", -1))
            x_all = self.contexts(observation)
            for j in np.flatnonzero(shown):
                self._update(x_all[slots[j]], float(reward) if j == clicked else 0.0)
            return
        x = self.contexts(observation)[int(action)]
        self._update(x, float(reward))

    def _update(self, x: np.ndarray, reward: float) -> None:
        """Sherman-Morrison update of ``A^-1`` and ``b`` with context (D,) ``x`` and ``reward``."""
        self._ensure(x.shape[0])
        assert self._a_inv is not None and self._b is not None
        ax = self._a_inv @ x
        self._a_inv -= np.outer(ax, ax) / (1.0 + x @ ax)
        self._b += reward * x
        self.n_updates += 1


class OraclePolicy(ScoringPolicy):
    """Privileged upper bound: the candidate with the highest hidden affinity ``cos(theta_u, e_c)``.

    With ``slate_size`` L > 1 it shows the L candidates of highest hidden affinity, best first:
    the same knowledge of the taste, not a click maximiser (the slate of highest click chance
    this step would rank by the full click logit, popularity and click-bait appeal included, and
    click-bait costs patience: on ``benchmarks/scenarios/slate.yaml`` that ranking returned 14.8
    per episode against 15.6 for ``greedy``, seeds 1000-1002 x 20 episodes).

    It reads the simulator's hidden state through :meth:`bind`, which the evaluation runner calls
    with the environment before the first episode. It is not a competitor: reports always mark it
    privileged.

    Args:
        slate_size: items per recommendation, L (the scenario's ``candidates.slate_size``).
    """

    privileged = True

    def __init__(self, slate_size: int = 1) -> None:
        super().__init__(slate_size)
        self._env: Any = None

    def bind(self, env: Any) -> None:
        """Remember the environment whose hidden state this policy reads: a single
        ``RecommendationEnv`` (possibly wrapped), a ``BatchedRecommendationVecEnv``, or an SB3
        ``DummyVecEnv`` of single envs (for batched observations; a ``SubprocVecEnv`` keeps its
        users in other processes and cannot be read)."""
        self._env = env

    def _affinities(self, n: int | None) -> np.ndarray:
        """(K,) for a single observation, (n, K) for a batch of n, from the bound env."""
        env = self._env
        if env is None:
            raise AgentError("oracle: not bound to an environment (call bind(env) first)")
        if n is None:
            return _single_user_affinity(env)
        subs = getattr(env, "envs", None)  # SB3 DummyVecEnv: one single env per row
        if subs is not None:
            if len(subs) != n:
                raise AgentError(f"oracle: bound to {len(subs)} envs, observation has {n} rows")
            return np.stack([_single_user_affinity(e) for e in subs])
        users = _users(env)
        if users.n != n:
            raise AgentError(f"oracle: bound to {users.n} users, observation has {n} rows")
        return np.asarray(users.candidate_affinity(np.arange(n)), dtype=np.float64)

    def scores(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return _masked(self._affinities(None), _mask(observation))

    def batch_scores(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(B, K) hidden affinities of the bound env's B users, ``-inf`` at masked slots."""
        mask = np.asarray(observation["action_mask"]) > 0
        return np.where(mask, self._affinities(int(mask.shape[0])), -np.inf)


def _single_user_affinity(env: Any) -> np.ndarray:
    """(K,) hidden affinity of the candidates of a single env's one user."""
    users = _users(env)
    return np.asarray(users.candidate_affinity(np.zeros(1, dtype=np.int64))[0], np.float64)


def _users(env: Any) -> Any:
    """The ``UserBatch`` behind ``env`` (through Gymnasium wrappers), or a one-line error."""
    for candidate in (env, getattr(env, "unwrapped", None)):
        users = getattr(candidate, "users", None)
        if users is not None and hasattr(users, "candidate_affinity"):
            return users
    raise AgentError(
        f"oracle: cannot read the hidden state of {type(env).__name__} (expected a "
        "RecommendationEnv, a BatchedRecommendationVecEnv or a DummyVecEnv of RecommendationEnv)"
    )


class SB3Policy:
    """A saved stable-baselines3 model behind the evaluation protocol.

    ``scores`` are the candidate-scorer network's per-candidate scores (Q-values for DQN, logits for
    PPO); for other policy networks, the action distribution's logits (PPO) or the Q-values (DQN).
    The model acts deterministically (its greedy action) unless ``deterministic=False``, and
    ``action_probabilities`` match whichever rule it follows.

    A model whose action space is ``MultiDiscrete([K] * L)`` recommends slates: ``predict``
    returns its (L,) slate, ``scores`` and ``action_probabilities`` describe the first position
    (for an ``mlp`` policy, the first position's categorical; a distribution that exposes
    ``probs`` (B, K) gives those), and ``slate_probability`` is ``exp(log_prob(slate))`` of the
    policy's distribution (1.0 for the greedy slate when acting deterministically).

    Args:
        model: a loaded SB3 model.
        algo: ``ppo``, ``dqn`` or ``maskable_ppo``.
        deterministic: act greedily (True) or sample from the policy (False, PPO only).
        run_dir: the model's run folder (for learning curves from ``progress.csv``), if known.
        model_path: the file the model was loaded from, if known (a run's ``best_model.zip`` was
            chosen on its validation users).
    """

    privileged = False

    def __init__(
        self,
        model: Any,
        algo: str,
        *,
        deterministic: bool = True,
        run_dir: str | os.PathLike[str] | None = None,
        model_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.model = model
        self.algo = algo
        self.deterministic = deterministic
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.model_path = None if model_path is None else Path(model_path)
        #: L, from the model's action space (1 for ``Discrete(K)``).
        self.slate_size = action_slate_size(getattr(model, "action_space", None))
        if algo == "maskable_ppo" and self.slate_size > 1:
            # sb3-contrib's own MaskablePPO trains on a slate env (its masks are (L * K,)), but
            # its independent per-position categoricals are neither lmrecsim's candidate scorer
            # nor a distribution the propensities here can be read from.
            where = f"{self.model_path}: " if self.model_path is not None else ""
            raise AgentError(
                f"{where}a MaskablePPO model of slates of {self.slate_size} (expected a "
                "MaskablePPO model that picks one slot, or a ppo or dqn model for slates)"
            )

    def _obs_tensor(self, observation: dict[str, np.ndarray]) -> Any:
        obs_t, _ = self.model.policy.obs_to_tensor(observation)
        return obs_t

    def scores(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(K,) per-candidate scores, ``-inf`` at masked slots."""
        return _masked(self._raw_scores(observation), _mask(observation))

    def _raw_scores(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(K,) the network's output before masking (what an unmasked ``predict`` acts on)."""
        import torch as th

        from .scorer import CandidateScorerDQNPolicy, CandidateScorerPolicy, candidate_scores

        policy = self.model.policy
        if isinstance(policy, (CandidateScorerPolicy, CandidateScorerDQNPolicy)):
            raw = np.asarray(candidate_scores(self.model, observation), dtype=np.float64)
        else:
            with th.no_grad():
                obs_t = self._obs_tensor(observation)
                if hasattr(policy, "q_net"):
                    out = policy.q_net(obs_t)
                else:
                    out = first_position_logits(policy.get_distribution(obs_t))
            raw = out.cpu().numpy().astype(np.float64)[0]
        return raw

    def slate_probability(self, observation: dict[str, np.ndarray], slate: np.ndarray) -> float:
        """Probability of the ordered (L,) ``slate`` under the rule the model acts by."""
        return float(self.prefix_probabilities(observation, slate)[-1])

    def _slate_rule(self, observation: dict[str, np.ndarray]) -> tuple[np.ndarray | None, Any]:
        """What the model's slates are drawn from: ``(greedy slate, None)`` when it acts
        greedily (or has no distribution: DQN), else ``(None, its slate distribution)``."""
        import torch as th

        policy = self.model.policy
        if self.deterministic or not hasattr(policy, "get_distribution"):
            chosen, _ = self.model.predict(
                observation, deterministic=True, **self._mask_kwargs(observation)
            )
            return np.asarray(chosen), None
        with th.no_grad():
            return None, policy.get_distribution(self._obs_tensor(observation))

    def prefix_probabilities(
        self, observation: dict[str, np.ndarray], slate: np.ndarray
    ) -> np.ndarray:
        """(L,) probability of ``slate``'s first 1, 2, ..., L slots under the rule the model acts
        by: 1/0 against its greedy slate, or PPO's slate distribution position by position."""
        import torch as th

        from .slate import prefix_log_probs

        slate = np.asarray(slate, dtype=np.int64).reshape(-1)
        chosen, dist = self._slate_rule(observation)
        if chosen is not None:
            return prefix_indicators(chosen, slate)
        with th.no_grad():
            log_p = prefix_log_probs(dist, slate[None, :])
        return np.exp(log_p.cpu().numpy().astype(np.float64)).reshape(-1)

    def position_probabilities(
        self, observation: dict[str, np.ndarray], slate: np.ndarray
    ) -> np.ndarray:
        """(L,) probability that position l holds ``slate``'s slot l under the rule the model acts
        by: 1/0 against its greedy slate, or the item-position marginals of PPO's slate
        distribution."""
        from .slate import position_marginals

        slate = np.asarray(slate, dtype=np.int64).reshape(-1)
        chosen, dist = self._slate_rule(observation)
        if chosen is not None:
            return position_indicators(chosen, slate)
        marginals = position_marginals(dist, _mask(observation)[None])
        return logged_marginals(marginals, slate[None, :])[0]

    def shown_probabilities(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(L, K) probability that position l shows slot k's item under the rule the model acts
        by: 1/0 from its greedy slate, PPO's Plackett-Luce marginals, or SB3's independent
        positions (:func:`~lmrecsim.agents.positions.shown_marginals`)."""
        from .slate import PlackettLuceDistribution, position_marginals

        mask = _mask(observation)
        chosen, dist = self._slate_rule(observation)
        if chosen is not None:
            return chosen_shown(np.asarray(chosen).reshape(-1), mask)
        marginals = position_marginals(dist, mask[None])
        independent = not isinstance(dist, PlackettLuceDistribution)
        return shown_marginals(marginals, mask[None], independent=independent)[0]

    def conditional_probabilities(
        self, observation: dict[str, np.ndarray], slate: np.ndarray
    ) -> np.ndarray:
        """(L, K) each position's distribution of slots under the rule the model acts by, given
        that the earlier positions hold ``slate``'s: one-hot on its greedy slate's slots, PPO's
        Plackett-Luce choice among the valid slots not yet taken, or the positions' own
        distributions for SB3's ``MultiCategorical`` (independent positions)."""
        from .slate import PlackettLuceDistribution, position_marginals

        slate = np.asarray(slate, dtype=np.int64).reshape(-1)
        k = np.asarray(observation["action_mask"]).shape[-1]
        chosen, dist = self._slate_rule(observation)
        if chosen is not None:
            return slate_indicators(chosen, k)
        if isinstance(dist, PlackettLuceDistribution):
            assert dist.logits is not None and dist.valid is not None
            logits = dist.logits.detach().cpu().numpy().astype(np.float64)[0]
            valid = dist.valid.detach().cpu().numpy()[0]
            return plackett_luce_conditionals(logits, valid, slate)
        # Independent positions: each position's distribution whatever the others hold, which
        # is its marginal.
        return position_marginals(dist, _mask(observation)[None])[0]

    def _mask_kwargs(self, observation: dict[str, np.ndarray]) -> dict[str, Any]:
        """``action_masks`` (K,) for MaskablePPO (one slot: a MaskablePPO model of slates is
        refused when it is loaded; slates are PPO's and DQN's)."""
        return {"action_masks": _mask(observation)} if self.algo == "maskable_ppo" else {}

    def action_probabilities(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(K,) probability of each slot under the rule the model acts by.

        Only MaskablePPO applies the action mask when it acts; the candidate scorer gives masked
        slots a score that is never the best, but an ``mlp`` policy can pick a masked slot, and
        then that slot is what it does (the user sees nothing), so its probability is its own.
        """
        if self.algo == "dqn" and self.slate_size > 1:
            # SlateQ's greedy slate is built from item values and its choice model together:
            # its first slot need not be the best-valued item.
            slate, _ = self.model.predict(observation, deterministic=True)
            first = np.zeros(np.asarray(observation["action_mask"]).shape[-1])
            first[int(np.asarray(slate).reshape(-1)[0])] = 1.0
            return first
        if self.algo == "maskable_ppo":
            scores = self.scores(observation)
        else:
            scores = self._raw_scores(observation)
        if self.deterministic or self.algo == "dqn":
            return _argmax_one_hot(scores)
        finite = np.isfinite(scores)
        if not finite.any():
            return np.full(scores.shape[0], 1.0 / scores.shape[0])
        z = np.where(finite, scores - scores[finite].max(), -np.inf)
        p = np.exp(z)
        return p / p.sum()

    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        return self.model.predict(
            observation,
            state=state,
            episode_start=episode_start,
            deterministic=self.deterministic,
            **self._mask_kwargs(observation),
        )


def obs_t_device(obs_t: Any) -> Any:
    """The torch device of an observation tensor (or of the first tensor of a Dict one)."""
    if isinstance(obs_t, dict):
        obs_t = next(iter(obs_t.values()))
    return obs_t.device


def first_position_logits(dist: Any) -> Any:
    """(B, K) logits of the first position of an SB3 action distribution.

    ``Discrete``: the categorical's logits. ``MultiDiscrete`` (SB3's
    ``MultiCategoricalDistribution``): ``.distribution`` is a list of per-position categoricals,
    and the first one's logits are returned. A slate distribution that exposes ``probs`` (B, K),
    the first-position probabilities, gives their logarithm.
    """
    import torch as th

    inner = getattr(dist, "distribution", None)
    if isinstance(inner, (list, tuple)):
        return inner[0].logits
    if inner is not None and hasattr(inner, "logits"):
        return inner.logits
    return th.log(dist.probs)


def first_position_probs(dist: Any) -> Any:
    """(B, K) probabilities of the first position of an SB3 action distribution (see
    :func:`first_position_logits`)."""
    inner = getattr(dist, "distribution", None)
    if isinstance(inner, (list, tuple)):
        return inner[0].probs
    if hasattr(dist, "probs"):
        return dist.probs
    return inner.probs


#: Baselines that take parameters, ``NAME:VALUE[:VALUE]`` (``egreedy:0.3``, ``softmax:0.05``,
#: ``softmax:0.2:0.05``): in order, each parameter's name and the value it takes when left out.
PARAMETERS: dict[str, tuple[tuple[str, float], ...]] = {
    "egreedy": (("epsilon", EGREEDY_EPSILON),),
    "softmax": (("temperature", SOFTMAX_TEMPERATURE), ("epsilon", SOFTMAX_EPSILON)),
}


def _baseline(name: str, seed: int, slate_size: int = 1, values: tuple[float, ...] = ()) -> Any:
    if name == "random":
        return RandomPolicy(seed=seed, slate_size=slate_size)
    if name == "popular":
        return PopularPolicy(slate_size=slate_size)
    if name == "greedy":
        return GreedyPolicy(slate_size=slate_size)
    if name == "linucb":
        return LinUCBPolicy(slate_size=slate_size)
    if name in PARAMETERS:
        given = dict(zip((meaning for meaning, _ in PARAMETERS[name]), values, strict=False))
        if name == "egreedy":
            return EpsilonGreedyPolicy(**given, seed=seed, slate_size=slate_size)
        return SoftmaxPolicy(**given, seed=seed, slate_size=slate_size)
    return OraclePolicy(slate_size=slate_size)


def _parametric_baseline(spec: str, body: str, seed: int, slate_size: int) -> Any:
    """The baseline of a ``NAME:VALUE[:VALUE]`` spec (``egreedy:0.3``, ``softmax:0.2:0.05``),
    ``NAME`` one of :data:`PARAMETERS`.

    Raises:
        AgentError: a value that is not a number, too many values, or a value out of the
            baseline's range (one line).
    """
    name, _, text = body.partition(":")
    name = name.strip()
    params = PARAMETERS[name]
    form = f"{name}:{params[0][0].upper()}" + "".join(f"[:{m.upper()}" for m, _ in params[1:])
    form += "]" * (len(params) - 1)
    example = f"{name}:{params[0][1]}"
    parts = text.split(":")
    if len(parts) > len(params):
        raise AgentError(
            f"policy {spec!r}: {len(parts)} values (expected {form}, such as {example})"
        )
    values = []
    for part in parts:
        try:
            if "_" in part:  # float() reads '0_1' as 1.0
                raise ValueError(part)
            values.append(float(part))
        except ValueError:
            raise AgentError(
                f"policy {spec!r}: {part.strip()!r} is not a number (expected {form}, such as "
                f"{example})"
            ) from None
    try:
        return _baseline(name, seed, slate_size, tuple(values))
    except AgentError as exc:
        raise AgentError(f"policy {spec!r}: {exc}") from None


def sb3_algo_name(model: Any) -> str | None:
    """``maskable_ppo``, ``dqn`` (SlateQ included) or ``ppo`` for a stable-baselines3 model of
    those algorithms (or their subclasses), else None."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import DQN, PPO

    if isinstance(model, MaskablePPO):
        return "maskable_ppo"
    if isinstance(model, DQN):
        return "dqn"
    if isinstance(model, PPO):
        return "ppo"
    return None


def scenario_slate_size(world: Any) -> int:
    """L, the items per recommendation of a world's scenario (``candidates.slate_size``)."""
    return int(world.scenario.candidates.slate_size)


def _check_spaces(model: Any, world: Any, spec: str) -> None:
    from ..envs.env import observation_space

    expected = observation_space(world)
    got = getattr(model, "observation_space", None)
    if got is None:
        return
    for key in ("user", "candidates", "candidate_features"):
        if key not in got.spaces or got[key].shape != expected[key].shape:
            have = None if key not in got.spaces else got[key].shape
            raise AgentError(
                f"policy {spec}: the model's observation {key!r} has shape {have}, the scenario's "
                f"is {expected[key].shape} (expected a model trained on a compatible scenario)"
            )
    space = getattr(model, "action_space", None)
    model_size, size = action_slate_size(space), scenario_slate_size(world)
    if space is not None and model_size != size:
        raise AgentError(
            f"policy {spec}: the model recommends {model_size} item(s) per step, the scenario's "
            f"candidates.slate_size is {size} (expected a model trained with the same slate size)"
        )


def split_spec(spec: str) -> tuple[str | None, str]:
    """``(label, body)`` of a policy spec ``[LABEL=]SPEC`` (label None when not given).

    Raises:
        AgentError: an empty label (``=greedy``) or spec (``mine=``), or a control character
            (a newline would split the label over lines of the reports and tables).
    """
    if any(not ch.isprintable() for ch in spec):
        bad = next(ch for ch in spec if not ch.isprintable())
        raise AgentError(
            f"policy {spec!r}: holds the control character {bad!r} (expected printable text)"
        )
    text = spec.strip()
    eq, colon = text.find("="), text.find(":")
    if eq >= 0 and (colon < 0 or eq < colon):
        label, body = text[:eq].strip(), text[eq + 1 :].strip()
        if not label:
            raise AgentError(f"policy {spec!r}: empty label (expected LABEL=SPEC)")
        if not body:
            raise AgentError(
                f"policy {spec!r}: nothing after {label + '='!r} (expected LABEL=SPEC)"
            )
        return label, body
    return None, text


def model_spec_path(spec: str) -> str | None:
    """The PATH of a saved-model spec (``[LABEL=]ppo:PATH`` and the like), or None for any other
    spec (a baseline, or one :func:`make_policy` refuses)."""
    if not isinstance(spec, str):
        return None
    try:
        body = split_spec(spec)[1]
    except AgentError:
        return None
    prefix, sep, path = body.partition(":")
    if sep and prefix in MODEL_PREFIXES:
        return path.strip() or None
    return body if _run_model_algo(body) is not None else None


def _run_model_algo(path: str) -> str | None:
    """The algorithm of a run folder, or of a model file in one, written without ``ALGO:``: the
    ``algo`` its ``train.json`` records, or None (not a path, or no run to say)."""
    from .build import run_folder
    from .train import run_record  # train imports this module

    if not path or not Path(path).exists():
        return None
    folder = run_folder(path)
    try:
        data = run_record(folder)
    except ValueError as exc:  # a run whose train.json cannot be read: say so, not "unknown"
        raise AgentError(f"policy {path!r}: {exc}") from None
    if data is None:
        return None
    algo = data.get("algo")
    if algo not in MODEL_PREFIXES:
        raise AgentError(
            f"policy {path!r}: {folder / 'train.json'}: 'algo' is {algo!r} (expected one of "
            f"{', '.join(MODEL_PREFIXES)}, or ALGO:PATH)"
        )
    return algo


def make_policy(spec: str, world: Any, *, seed: int = 0) -> tuple[str, Any]:
    """Parse a policy spec into ``(label, policy)``.

    ``SPEC`` is a baseline name (``random``, ``popular``, ``greedy``, ``linucb``, ``egreedy``,
    ``softmax``, ``oracle``), ``egreedy:EPSILON`` or ``softmax:TEMPERATURE[:EPSILON]``
    (:data:`PARAMETERS`, which gives the values a bare name uses), or ``ppo:PATH`` / ``dqn:PATH`` / ``maskable_ppo:PATH`` to a saved model (a
    ``model.zip`` or its run folder), optionally labelled ``LABEL=SPEC``. A bare ``PATH`` to a run
    folder of ``lmrecsim train`` (or to a model in it: ``best_model.zip``, a checkpoint) is read
    with the algorithm its ``train.json`` records. Without a label, the label
    is the spec itself. A baseline is built with the scenario's ``candidates.slate_size`` as its
    ``slate_size`` (a saved model knows its slate size from its action space).

    Args:
        spec: the policy spec.
        world: the scenario's world (a saved model's observation shapes are checked against it).
        seed: seed of a stochastic baseline's own generator.

    Raises:
        AgentError: a bad spec or a model that is missing or cannot be loaded (one line).
    """
    label, kind, value = _parse_spec(spec, seed, lambda: scenario_slate_size(world))
    if kind == "baseline":
        return label, value
    prefix, path = value
    from .build import load_model, model_file, run_folder

    model = load_model(prefix, path)
    _check_spaces(model, world, spec)
    return label, SB3Policy(model, prefix, run_dir=run_folder(path), model_path=model_file(path))


def check_policy_spec(spec: Any) -> str:
    """Refuse, before any world is built, a spec :func:`make_policy` would refuse whatever the
    scenario: not a string, a bad label, an unknown name, a baseline's value out of range, a
    missing model file. (Whether a model loads and fits the scenario is left to make_policy.)
    Returns the label make_policy would give it.

    Raises:
        AgentError: make_policy's line for it.
    """
    label, kind, value = _parse_spec(spec, 0, lambda: 1)
    if kind == "model":
        from .build import existing_model_file

        existing_model_file(value[1])
    return label


def _parse_spec(spec: Any, seed: int, slate_size: Callable[[], int]) -> tuple[str, str, Any]:
    """``(label, "baseline", policy)`` or ``(label, "model", (algo, path))`` of a spec, with
    make_policy's one-line errors for what no scenario makes right; ``slate_size()`` is asked
    only for a baseline (a bad label fails before any world is needed)."""
    if not isinstance(spec, str):  # was an AttributeError ('int' object has no attribute 'strip')
        raise AgentError(
            f"policy {spec!r}: a {type(spec).__name__} (expected a policy spec string such as "
            "'greedy' or 'ppo:runs/x')"
        )
    label, body = split_spec(spec)
    if body in BASELINES:
        return (label or body), "baseline", _baseline(body, seed, slate_size())
    prefix, sep, path = body.partition(":")
    if sep and prefix.strip() in PARAMETERS:
        return (label or body), "baseline", _parametric_baseline(spec, body, seed, slate_size())
    run_algo = None if sep and prefix in MODEL_PREFIXES else _run_model_algo(body)
    if run_algo is not None:  # a run folder (or a model in one): its train.json names the algo
        prefix, sep, path = run_algo, ":", body
    if sep and prefix in MODEL_PREFIXES:
        if not path.strip():
            raise AgentError(f"policy {spec!r}: missing model path (expected {prefix}:PATH)")
        return (label or body), "model", (prefix, path.strip())
    if body and Path(body).is_dir():  # a folder, but not a run's (no train.json)
        raise AgentError(
            f"policy {spec!r}: {body} holds no run of lmrecsim train (no train.json; expected "
            f"its folder, a model.zip, or {'|'.join(MODEL_PREFIXES)}:PATH)"
        )
    raise AgentError(
        f"policy {spec!r}: unknown policy (expected one of {', '.join(BASELINES)}, "
        f"{'|'.join(MODEL_PREFIXES)}:PATH, or the folder of a run lmrecsim train wrote (or a model "
        "in it), optionally LABEL=SPEC)"
    )
