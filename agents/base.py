"""The one protocol every acting thing follows: stable-baselines3's ``predict`` signature."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..envs.vec_env import check_seed
from .errors import AgentError


@runtime_checkable
class Policy(Protocol):
    """Anything that picks a candidate slot (or, on slate scenarios, a slate) from an observation.

    Trained SB3 models satisfy it as they are; baselines implement it too, so every policy is
    evaluated by the same code. On a scenario with ``candidates.slate_size`` L > 1 the action is
    an (L,) array of slots (``MultiDiscrete([K] * L)``): a baseline learns L from its
    ``slate_size`` constructor argument (``make_policy`` passes the scenario's), a trained model
    from its action space.
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
        try:
            self.seed = check_seed(seed)
        except ValueError:
            # numpy's "expected non-negative integer" or SeedSequence's TypeError named neither
            # the policy nor the argument.
            raise AgentError(
                f"{type(self).__name__}: seed {seed!r} (expected None or an integer >= 0)"
            ) from None
        self.rng = np.random.default_rng(self.seed)

    def reseed(self, seed: int, episode: int) -> None:
        """Restart the generator for episode ``episode`` of evaluation seed ``seed``."""
        if self.seed is not None:
            self.rng = np.random.default_rng([int(self.seed), int(seed), int(episode)])


class RandomPolicy(EpisodeSeeded):
    """Uniformly random among the valid (unmasked) candidates.

    With ``slate_size`` L > 1 (a slate scenario), ``predict`` returns L distinct valid slots drawn
    uniformly without replacement, in order (see :func:`sequential_slate`); when fewer than L
    slots are valid, the remaining positions repeat the first one (a repeat shows nothing).

    Args:
        seed: seed of the policy's own generator (independent of the environment's).
        slate_size: items per recommendation, L (the scenario's ``candidates.slate_size``).
    """

    privileged = False
    # A class default too: subclasses written before slates existed may not call __init__.
    slate_size: int = 1

    def __init__(self, seed: int | None = 0, slate_size: int = 1) -> None:
        super().__init__(seed)
        self.slate_size = check_slate_size(slate_size, "random")

    def action_probabilities(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(K,) or (B, K) probability of each slot (for slates: of the first position's slot)."""
        mask = np.asarray(observation["action_mask"], dtype=np.float64)
        total = mask.sum(axis=-1, keepdims=True)
        uniform = np.full_like(mask, 1.0 / mask.shape[-1])
        return np.where(total > 0, mask / np.where(total > 0, total, 1.0), uniform)

    def slate_probability(self, observation: dict[str, np.ndarray], slate: np.ndarray) -> float:
        """Probability of drawing the ordered (L,) ``slate`` (one unbatched observation)."""
        return float(self.prefix_probabilities(observation, slate)[-1])

    def prefix_probabilities(
        self, observation: dict[str, np.ndarray], slate: np.ndarray
    ) -> np.ndarray:
        """(L,) probability of drawing ``slate``'s first 1, 2, ..., L slots in that order."""
        mask = np.asarray(observation["action_mask"]).reshape(-1) > 0
        return sequential_prefix_probabilities(mask, None, self.slate_size, 1.0, slate)

    def position_probabilities(
        self, observation: dict[str, np.ndarray], slate: np.ndarray
    ) -> np.ndarray:
        """(L,) probability that position l holds ``slate``'s slot l, each position on its own
        (the item-position marginals)."""
        from .positions import epsilon_rule_marginals, logged_marginals

        mask = np.asarray(observation["action_mask"]).reshape(1, -1) > 0
        marginals = epsilon_rule_marginals(mask, None, self.slate_size, 1.0)
        return logged_marginals(marginals, np.asarray(slate).reshape(1, -1))[0]

    def shown_probabilities(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(L, K) probability that position l shows slot k's item
        (:func:`~lmrecsim.agents.positions.shown_marginals`)."""
        from .positions import epsilon_rule_marginals, shown_marginals

        mask = np.asarray(observation["action_mask"]).reshape(1, -1) > 0
        marginals = epsilon_rule_marginals(mask, None, self.slate_size, 1.0)
        return shown_marginals(marginals, mask)[0]

    def conditional_probabilities(
        self, observation: dict[str, np.ndarray], slate: np.ndarray
    ) -> np.ndarray:
        """(L, K) each position's distribution of slots given that the earlier positions hold
        ``slate``'s (:func:`sequential_conditionals`)."""
        mask = np.asarray(observation["action_mask"]).reshape(-1) > 0
        return sequential_conditionals(mask, None, self.slate_size, 1.0, slate)

    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        if self.slate_size > 1:
            mask = np.asarray(observation["action_mask"]) > 0
            if mask.ndim == 1:
                return sequential_slate(mask, None, self.slate_size, 1.0, rng=self.rng)[0], state
            rows = [sequential_slate(m, None, self.slate_size, 1.0, rng=self.rng)[0] for m in mask]
            return np.stack(rows), state
        return sample_actions(self.rng, self.action_probabilities(observation)), state


def sample_actions(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One slot drawn from each row of ``probs``, (K,) -> scalar array, (B, K) -> (B,)."""
    if probs.ndim == 1:
        return np.asarray(rng.choice(probs.shape[0], p=probs))
    return np.array([rng.choice(probs.shape[1], p=row) for row in probs])


def action_slate_size(space: Any) -> int:
    """L, the slots an action of ``space`` recommends: the positions of ``MultiDiscrete([K] *
    L)``, 1 for ``Discrete(K)``."""
    nvec = getattr(space, "nvec", None)
    return 1 if nvec is None else int(np.asarray(nvec).size)


def check_slate_size(slate_size: Any, name: str) -> int:
    """``slate_size`` as an int >= 1, or a one-line AgentError naming the policy."""
    if isinstance(slate_size, bool) or not isinstance(slate_size, (int, np.integer)):
        raise AgentError(f"{name}: slate_size {slate_size!r} (expected an integer >= 1)")
    if int(slate_size) < 1:
        raise AgentError(f"{name}: slate_size {slate_size} (expected an integer >= 1)")
    return int(slate_size)


def check_flag(value: Any, name: str) -> bool:
    """``value`` as a bool, or a ``TypeError`` naming the constructor argument ``name`` (a
    string such as ``"false"`` would otherwise turn the option on)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def top_slate(scores: np.ndarray, size: int) -> np.ndarray:
    """(L,) the ``size`` best slots by ``scores`` (K,), best first; masked slots score ``-inf``.

    Ties go to the lowest slot (the single-item rule of ``argmax``). When fewer than L slots are
    valid, the remaining positions repeat the first slot, which shows nothing at its position;
    with no valid slot at all the slate is slot 0 throughout (the env treats it as a skip).
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-s, kind="stable")  # -(-inf) = inf sorts masked slots last
    slate = order[:size].astype(np.int64)
    n_valid = int(np.count_nonzero(s > -np.inf))
    slate[min(n_valid, size) :] = slate[0]
    return slate


def sequential_slate(
    mask: np.ndarray,
    scores: np.ndarray | None,
    size: int,
    epsilon: float,
    *,
    rng: np.random.Generator | None = None,
    slate: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Draw a slate position by position, or give the probability of ``slate`` under that rule.

    Position j explores with probability ``epsilon`` (uniformly among the valid slots not yet in
    the slate) and otherwise takes the best remaining slot by ``scores`` (ties: lowest slot), so
    ``epsilon = 1`` draws L distinct valid slots uniformly without replacement (``scores`` may
    then be None). With no valid slot at all every slot counts as valid (the single-item rule:
    uniform over K). After ``n_valid`` positions the slate repeats its first slot (nothing shown).

    Args:
        mask: (K,) bool valid slots.
        scores: (K,) scores of the exploit step, or None when ``epsilon`` is 1.
        size: L.
        epsilon: exploration probability in [0, 1].
        rng: generator to draw with (when ``slate`` is None).
        slate: (L,) slate whose probability is wanted instead of a draw.

    Returns:
        ``(slate, probability)``: the (L,) slate drawn (or the one given) and its probability.
    """
    if slate is not None:
        given = np.asarray(slate).reshape(-1).astype(np.int64)
        return given, float(sequential_prefix_probabilities(mask, scores, size, epsilon, given)[-1])
    valid, epsilon = _valid_slots(mask, epsilon)
    k = valid.shape[0]
    n = min(int(valid.sum()), size)
    out = np.empty(size, dtype=np.int64)
    for j in range(n):
        probs = _position_probabilities(valid, scores, epsilon)
        assert rng is not None
        slot = int(rng.choice(k, p=probs))
        out[j] = slot
        valid[slot] = False
    out[n:] = out[0]
    return out, 1.0


def sequential_prefix_probabilities(
    mask: np.ndarray, scores: np.ndarray | None, size: int, epsilon: float, slate: np.ndarray
) -> np.ndarray:
    """(L,) the probability that :func:`sequential_slate`'s rule puts ``slate``'s first l + 1
    slots first, for l = 0..L-1 (the last entry is the whole slate's probability).

    Positions past the valid slots repeat the first slot with probability 1 (anything else: 0);
    a slate of another length or with a slot outside ``[0, K)`` has probability 0 from there on.
    """
    valid, epsilon = _valid_slots(mask, epsilon)
    k = valid.shape[0]
    given = np.asarray(slate).reshape(-1).astype(np.int64)
    out = np.zeros(size, dtype=np.float64)
    if given.shape[0] != size:
        return out
    n = min(int(valid.sum()), size)
    prob = 1.0
    for j in range(size):
        slot = int(given[j])
        if not 0 <= slot < k:
            break
        if j < n:
            prob *= float(_position_probabilities(valid, scores, epsilon)[slot])
            valid[slot] = False
        elif slot != given[0]:
            break
        out[j] = prob
    return out


def sequential_conditionals(
    mask: np.ndarray, scores: np.ndarray | None, size: int, epsilon: float, slate: np.ndarray
) -> np.ndarray:
    """(L, K) :func:`sequential_slate`'s rule's distribution of each position's slot, given that
    the earlier positions hold ``slate``'s slots (what the cascade doubly robust estimator needs;
    :mod:`lmrecsim.agents.conditionals`).

    Row j is the rule's next-position distribution over the valid slots ``slate[:j]`` has not
    taken; past the valid slots the rule repeats the first slot (one-hot on ``slate[0]``). The
    product of row l's entry at ``slate[l]`` over l <= j is :func:`sequential_prefix_probabilities`'
    entry j.

    Args:
        mask: (K,) bool valid slots.
        scores: (K,) scores of the exploit step, or None when ``epsilon`` is 1.
        size: L.
        epsilon: exploration probability in [0, 1].
        slate: (L,) the logged slots (out-of-range slots take nothing away).
    """
    valid, epsilon = _valid_slots(mask, epsilon)
    k = valid.shape[0]
    given = np.asarray(slate).reshape(-1).astype(np.int64)
    n = min(int(valid.sum()), size)
    out = np.zeros((size, k), dtype=np.float64)
    for j in range(size):
        if j >= n:
            if 0 <= given[0] < k:
                out[j, given[0]] = 1.0
            continue
        out[j] = _position_probabilities(valid, scores, epsilon)
        if j < given.shape[0] and 0 <= given[j] < k:
            valid[given[j]] = False
    return out


def _valid_slots(mask: np.ndarray, epsilon: float) -> tuple[np.ndarray, float]:
    """A copy of ``mask`` as the valid slots, and the exploration rate: with no valid slot at
    all, every slot and uniform exploration."""
    valid = np.asarray(mask, dtype=bool).reshape(-1).copy()
    if not valid.any():
        valid[:] = True
        epsilon = 1.0
    return valid, epsilon


def _position_probabilities(
    valid: np.ndarray, scores: np.ndarray | None, epsilon: float
) -> np.ndarray:
    """(K,) the next position's distribution over the ``valid`` remaining slots."""
    probs = np.where(valid, epsilon / int(valid.sum()), 0.0)
    if epsilon < 1.0:
        assert scores is not None
        best = int(np.argmax(np.where(valid, scores, -np.inf)))
        probs[best] += 1.0 - epsilon
    return probs


def prefix_indicators(chosen: np.ndarray, slate: np.ndarray) -> np.ndarray:
    """(L,) a deterministic policy's prefix probabilities: 1 while ``slate``'s first l + 1 slots
    are those of the slate it ``chosen``, 0 from the first difference on."""
    chosen = np.asarray(chosen).reshape(-1)
    slate = np.asarray(slate).reshape(-1)
    if chosen.shape != slate.shape:
        return np.zeros(slate.shape[0], dtype=np.float64)
    return np.cumprod(chosen == slate).astype(np.float64)
