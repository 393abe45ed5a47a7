"""Baseline policies and the policy-spec parser used by evaluation.

Every baseline follows the SB3 ``predict`` protocol of :class:`lmrecsim.agents.base.Policy` and
exposes ``scores(obs) -> (K,)`` (its ranking of the candidates, for precision/recall/NDCG) and
``action_probabilities(obs) -> (K,)`` (the probability of each slot under its action rule, for
propensities). Masked candidates get score ``-inf`` and probability 0.

Shapes: K candidates, p projected embedding dims, F = 14 candidate features.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .base import EpisodeSeeded, RandomPolicy, sample_actions
from .errors import AgentError

__all__ = [
    "BASELINES",
    "EpsilonGreedyPolicy",
    "GreedyPolicy",
    "LinUCBPolicy",
    "OraclePolicy",
    "PopularPolicy",
    "RandomPolicy",
    "SB3Policy",
    "make_policy",
]

#: Baseline names accepted by :func:`make_policy`.
BASELINES = ("random", "popular", "greedy", "linucb", "egreedy", "oracle")
#: Saved-model prefixes accepted by :func:`make_policy` (``PREFIX:PATH``).
MODEL_PREFIXES = ("ppo", "dqn", "maskable_ppo")


def _mask(observation: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray(observation["action_mask"]).reshape(-1) > 0


def _masked(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, scores, -np.inf)


def _argmax_one_hot(scores: np.ndarray) -> np.ndarray:
    probs = np.zeros(scores.shape[0], dtype=np.float64)
    probs[int(np.argmax(scores))] = 1.0
    return probs


class ScoringPolicy:
    """Deterministic policy: recommend the valid candidate with the highest ``scores``.

    Ties go to the lowest slot; with no valid slot at all, slot 0 (the env treats it as a skip).
    Subclasses implement :meth:`scores`. Observations must be single (unbatched).
    """

    privileged = False

    def scores(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(K,) score of each candidate; ``-inf`` at masked slots."""
        raise NotImplementedError

    def action_probabilities(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(K,) one-hot on the chosen slot."""
        return _argmax_one_hot(self.scores(observation))

    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
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


class EpsilonGreedyPolicy(EpisodeSeeded):
    """With probability ``epsilon`` a uniformly random valid candidate, else the greedy one.

    ``action_probabilities`` are the true probabilities of this rule:
    ``(1 - epsilon) * onehot(greedy) + epsilon / n_valid`` on valid slots. The policy is
    stochastic by definition, so ``predict`` samples even when ``deterministic`` is True.

    Args:
        epsilon: exploration probability in [0, 1].
        seed: seed of the policy's own generator.
    """

    privileged = False

    def __init__(self, epsilon: float = 0.1, seed: int | None = 0) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise AgentError(f"egreedy: epsilon must lie in [0, 1], got {epsilon}")
        super().__init__(seed)
        self.epsilon = float(epsilon)
        self._greedy = GreedyPolicy()

    def scores(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(K,) the greedy scores (the ranking this policy exploits)."""
        return self._greedy.scores(observation)

    def action_probabilities(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(K,) probability of each slot."""
        mask = _mask(observation)
        n_valid = int(mask.sum())
        if n_valid == 0:
            return np.full(mask.shape[0], 1.0 / mask.shape[0])
        probs = np.where(mask, self.epsilon / n_valid, 0.0)
        probs[int(np.argmax(self.scores(observation)))] += 1.0 - self.epsilon
        return probs

    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        return sample_actions(self.rng, self.action_probabilities(observation)), state


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

    Args:
        alpha: width of the confidence bonus (exploration).
        ridge: the ridge ``lambda`` of ``A``'s initial value.
    """

    def __init__(self, alpha: float = 0.5, ridge: float = 1.0) -> None:
        if alpha < 0 or ridge <= 0:
            raise AgentError(f"linucb: expected alpha >= 0 and ridge > 0, got {alpha}, {ridge}")
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
        self, observation: dict[str, np.ndarray], action: int, reward: float, info: dict[str, Any]
    ) -> None:
        """Update the model with the reward of the recommended candidate (skipped if invalid)."""
        if info.get("invalid_action", False):
            return
        x = self.contexts(observation)[int(action)]
        self._ensure(x.shape[0])
        assert self._a_inv is not None and self._b is not None
        ax = self._a_inv @ x
        self._a_inv -= np.outer(ax, ax) / (1.0 + x @ ax)
        self._b += float(reward) * x
        self.n_updates += 1


class OraclePolicy(ScoringPolicy):
    """Privileged upper bound: the candidate with the highest hidden affinity ``cos(theta_u, e_c)``.

    It reads the simulator's hidden taste through :meth:`bind`, which the evaluation runner calls
    with the environment before the first episode. It is not a competitor: reports always mark it
    privileged.
    """

    privileged = True

    def __init__(self) -> None:
        self._env: Any = None

    def bind(self, env: Any) -> None:
        """Remember the (single-user) environment whose hidden state this policy reads."""
        self._env = env

    def scores(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        if self._env is None:
            raise AgentError("oracle: not bound to an environment (call bind(env) first)")
        aff = np.asarray(self._env.users.candidate_affinity(np.zeros(1, dtype=np.int64))[0])
        return _masked(aff.astype(np.float64), _mask(observation))


class SB3Policy:
    """A saved stable-baselines3 model behind the evaluation protocol.

    ``scores`` are the candidate-scorer network's per-candidate scores (Q-values for DQN, logits for
    PPO); for other policy networks, the action distribution's logits (PPO) or the Q-values (DQN).
    The model acts deterministically (its greedy action) unless ``deterministic=False``, and
    ``action_probabilities`` match whichever rule it follows.

    Args:
        model: a loaded SB3 model.
        algo: ``ppo``, ``dqn`` or ``maskable_ppo``.
        deterministic: act greedily (True) or sample from the policy (False, PPO only).
        run_dir: the model's run folder (for learning curves from ``progress.csv``), if known.
    """

    privileged = False

    def __init__(
        self,
        model: Any,
        algo: str,
        *,
        deterministic: bool = True,
        run_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.model = model
        self.algo = algo
        self.deterministic = deterministic
        self.run_dir = None if run_dir is None else Path(run_dir)

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
                    out = policy.get_distribution(obs_t).distribution.logits
            raw = out.cpu().numpy().astype(np.float64)[0]
        return raw

    def action_probabilities(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(K,) probability of each slot under the rule the model acts by.

        Only MaskablePPO applies the action mask when it acts; the candidate scorer gives masked
        slots a score that is never the best, but an ``mlp`` policy can pick a masked slot, and
        then that slot is what it does (the user sees nothing), so its probability is its own.
        """
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
        kwargs: dict[str, Any] = {}
        if self.algo == "maskable_ppo":
            kwargs["action_masks"] = _mask(observation)
        return self.model.predict(
            observation,
            state=state,
            episode_start=episode_start,
            deterministic=self.deterministic,
            **kwargs,
        )


def _baseline(name: str, seed: int) -> Any:
    if name == "random":
        return RandomPolicy(seed=seed)
    if name == "popular":
        return PopularPolicy()
    if name == "greedy":
        return GreedyPolicy()
    if name == "linucb":
        return LinUCBPolicy()
    if name == "egreedy":
        return EpsilonGreedyPolicy(seed=seed)
    return OraclePolicy()


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
                f"--policy {spec}: the model's observation {key!r} has shape {have}, the scenario's "
                f"is {expected[key].shape} (expected a model trained on a compatible scenario)"
            )


def run_folder(path: str | os.PathLike[str]) -> Path:
    """The training run folder of a saved model: the folder itself, the folder of its
    ``model.zip``, or the run of a checkpoint (``RUN/checkpoints/model_N_steps.zip``), whose
    ``train.json`` and ``progress.csv`` are the run's."""
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    if folder.name == "checkpoints" and (folder.parent / "train.json").is_file():
        return folder.parent
    return folder


def make_policy(spec: str, world: Any, *, seed: int = 0) -> tuple[str, Any]:
    """Parse a policy spec into ``(label, policy)``.

    ``SPEC`` is a baseline name (``random``, ``popular``, ``greedy``, ``linucb``, ``egreedy``,
    ``oracle``) or ``ppo:PATH`` / ``dqn:PATH`` / ``maskable_ppo:PATH`` to a saved model (a
    ``model.zip`` or its run folder), optionally labelled ``LABEL=SPEC``. Without a label, the label
    is the spec itself.

    Args:
        spec: the policy spec.
        world: the scenario's world (a saved model's observation shapes are checked against it).
        seed: seed of a stochastic baseline's own generator.

    Raises:
        AgentError: a bad spec or a model that is missing or cannot be loaded (one line).
    """
    text = spec.strip()
    label, body = None, text
    eq, colon = text.find("="), text.find(":")
    if eq > 0 and (colon < 0 or eq < colon):
        label, body = text[:eq].strip(), text[eq + 1 :].strip()
        if not label:
            raise AgentError(f"--policy {spec!r}: empty label (expected LABEL=SPEC)")
    if body in BASELINES:
        return (label or body), _baseline(body, seed)
    prefix, sep, path = body.partition(":")
    if sep and prefix in MODEL_PREFIXES:
        if not path.strip():
            raise AgentError(f"--policy {spec!r}: missing model path (expected {prefix}:PATH)")
        from .build import load_model

        model = load_model(prefix, path.strip())
        _check_spaces(model, world, spec)
        return (label or body), SB3Policy(model, prefix, run_dir=run_folder(path.strip()))
    raise AgentError(
        f"--policy {spec!r}: unknown policy (expected one of {', '.join(BASELINES)}, "
        f"or {'|'.join(MODEL_PREFIXES)}:PATH, optionally LABEL=SPEC)"
    )
