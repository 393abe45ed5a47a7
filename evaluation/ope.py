"""Off-policy evaluation from a step log: IPS, SNIPS, DM and DR estimates of a target policy.

Each logged step is one round of a contextual bandit: context x_i (the observation, recovered by
re-simulating the logged episode, which is deterministic), K candidates, the logged action a_i with
propensity p_i = pi_0(a_i | x_i), and reward r_i. With the target's distribution pi(. | x_i) and
importance weight w_i = pi(a_i | x_i) / p_i:

* IPS:   mean_i w_i r_i
* SNIPS: sum_i w_i r_i / sum_i w_i
* DM:    mean_i sum_k pi(k | x_i) q(x_i, k)
* DR:    mean_i [sum_k pi(k | x_i) q(x_i, k) + w_i (r_i - q(x_i, a_i))]

where q is a ridge regression of the reward on ``[user, candidate, user*candidate, features]``,
cross-fitted (folds by episode: each round's q comes from a model that did not see its episode).
Intervals are normal 95% intervals with a cluster-robust (by episode) standard error, so steps of
one episode are not treated as independent. The effective sample size is Kish's
``(sum w)^2 / sum w^2``.

The estimand is the target's expected reward per step on the logged contexts. For one-step
episodes (a contextual bandit) that is the target's value; for longer episodes the target would
also change which states occur, which these per-step estimators do not model (the result says so).

PDIS and WPDIS (any log, asked for by name) estimate the target's expected return per episode
instead, which includes that: per-decision importance sampling (Precup et al., 2000) along each
logged episode, the reward of step t weighted by ``rho_t = prod_{s <= t} w_s``, the ratio of the
target's to the logger's probability of the episode's actions so far (for slates, of the whole
slates). PDIS is ``mean_e sum_t rho_et r_et``, unbiased when the propensities are right; WPDIS
divides each step's weighted rewards by the mean weight at that step (consistent, less variable).
An episode that ended keeps its last weight in the later steps' normalisers (it ended the same
way under the target's actions). Their terms are whole episodes, which are independent; their
effective sample size is that of the whole episodes' weights, which shrinks with the session
length. FQE, PDDR and WDR add a value model of the target's return from each step on
(:func:`fit_value_model`, fitted-Q evaluation; on slate logs over the slate's positions,
:func:`_slate_value_features`): FQE is its mean value of the sessions'
first states; PDDR, the per-decision doubly robust estimate (Jiang and Li, 2016), is PDIS with
the model as control variate, and WDR (Thomas and Brunskill, 2016) the same weighted as WPDIS
is (:func:`_episode_estimate`).

Slates (``candidates.slate_size`` L above 1). The logged action is the ordered slate S_i and its
propensity is the logger's probability of that whole slate, so IPS and SNIPS weight a round by
``w_i = pi(S_i | x_i) / p_i`` (the target's ``slate_probability``, or 1/0 for a policy that only
predicts: its slate is the logged one or not). That is the standard slate IPS: unbiased with no
model of how the user chooses among a slate's items, but with K!/(K-L)! slates its weights are
large unless the target is close to the logger, so its effective sample size is small then (the
low-overlap warning says so). The support check on slates looks at the first position: a target
whose first slot the logger never puts first (logged ``action_probabilities``) is outside the
logger's support; a slate that agrees in the first position can still be one the logger never
shows, which the log cannot tell.

RIPS and SNRIPS (slate logs, schema 3) weigh a click at position l by the prefix ratio
``pi(S_1..l) / mu(S_1..l)`` of the slate's first l + 1 slots (``prefix_propensities`` and the
target's ``prefix_probabilities``) and a reward without a click by the whole slate's ratio
(:func:`_positionwise_estimate`): the cascade assumption, biased where the user's choice depends on
later positions (as this simulator's multinomial logit does), with far larger effective samples.

IIPS and SNIIPS (slate logs, schema 4) weigh a click at position l by the ratio of the
item-position marginals ``pi(S_l at l) / mu(S_l at l)`` (``position_propensities`` and the
target's ``position_probabilities``; :mod:`lmrecsim.agents.positions`) and a reward without a
click by the last position's: the independence assumption (each position's reward depends on its
own item only), the most biased here and with the largest effective samples. The Open Bandit
Pipeline export of a slate log (:func:`export_slate_bandit_feedback`) carries all three
propensities, the logger's and the target's.

DM and DR on slate logs use a Q-model of the reward from each position on
(:func:`fit_slate_q_model`: ridge regressions fitted from the last position up by fitted-Q
evaluation, cross-fitted by episode) and the target's distribution of each position's slot given
the logged slots above it (``target_conditional``, the policies' ``conditional_probabilities``;
:mod:`lmrecsim.agents.conditionals`). DM is ``mean_i sum_a pi(a | x_i) Q_0(x_i, a)``; DR is the
cascade doubly robust estimator (Kiyohara et al., WSDM 2022), RIPS's prefix weights with the
Q-model as control variate (:func:`_cascade_terms`): unbiased under the cascade assumption when
the propensities are right, whatever the model, and with a smaller variance than RIPS where the
model is good.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ..agents.base import prefix_indicators
from ..agents.conditionals import slate_indicators
from ..agents.positions import MAX_TRANSITIONS, chosen_shown, position_indicators
from ..atomic import atomic_file, atomic_write
from ..envs.blas import one_blas_thread
from ..envs.simulator import slate_shown
from .logs import LogError, StepLog, matrix, read_step_log
from .replay import (
    check_out,
    load_world,
    precheck_policy,
    resimulate,
    resolve_policy,
    trained_elsewhere,
)
from .rollout import (
    call_predict,
    policy_conditional_propensities,
    policy_position_propensities,
    policy_prefix_propensities,
    policy_slate,
    policy_slot,
)

#: The estimators of single-item logs (the default there).
ESTIMATORS = ("ips", "snips", "dm", "dr")
#: The estimators of slate logs (the default there; DR is then Cascade-DR).
SLATE_ESTIMATORS = ("ips", "snips", "iips", "sniips", "rips", "snrips", "dm", "dr")
#: The independent-item slate estimators (they need the item-position marginals, log schema 4).
POSITION_ESTIMATORS = ("iips", "sniips")
#: The cascade slate estimators (they need the prefixes' propensities, log schema 3).
PREFIX_ESTIMATORS = ("rips", "snrips")
#: The model-based estimators of the target's return per episode (fitted-Q evaluation, and the
#: per-decision and weighted doubly robust estimates with it); any log.
RETURN_MODEL_ESTIMATORS = ("fqe", "pddr", "wdr")
#: The estimators of the target's return per episode (per-decision importance sampling along
#: each logged episode, and the model-based ones); asked for by name, not in the defaults.
EPISODE_ESTIMATORS = ("pdis", "wpdis", *RETURN_MODEL_ESTIMATORS)
#: Every estimator name ``--estimator`` takes.
ALL_ESTIMATORS = ESTIMATORS + POSITION_ESTIMATORS + PREFIX_ESTIMATORS + EPISODE_ESTIMATORS
#: Effective sample size under which the weighted estimates get a low-overlap warning.
MIN_ESS = 100
#: Effective number of whole episodes under which the weighted estimates of the return per
#: episode (pdis, wpdis, pddr, wdr) get a low-overlap warning (their terms are independent episodes).
MIN_EPISODE_ESS = 30
_Z95 = 1.959963984540054
# Probability mass below this is treated as zero when checking support.
_SUPPORT_TOL = 1e-12


@dataclass(frozen=True)
class Estimate:
    """One estimator's value per step with its 95% interval."""

    estimator: str
    estimate: float
    ci_low: float
    ci_high: float
    ess: float
    ground_truth: float = float("nan")
    relative_error: float = float("nan")
    #: What the estimate is of: ``step`` (expected reward per step on the logged states) or
    #: ``episode`` (the target's expected return per episode: pdis, wpdis, fqe, pddr,
    #: wdr).
    unit: str = "step"


@dataclass(frozen=True)
class Support:
    """Where the target puts probability on actions the logger never takes.

    Attributes:
        unsupported_rounds: rounds where the target has mass on a slot with logger probability 0.
        n_rounds: all rounds.
        unsupported_mass: mean over rounds of the target's mass on such slots.
    """

    unsupported_rounds: int
    n_rounds: int
    unsupported_mass: float

    @property
    def supported(self) -> bool:
        return self.unsupported_rounds == 0

    def describe(self) -> str:
        if self.supported:
            return "support: the logger gives every action the target takes a positive propensity"
        return (
            f"UNSUPPORTED: in {self.unsupported_rounds} of {self.n_rounds} rounds the target puts "
            f"mass on actions the logger never takes (propensity 0; {self.unsupported_mass:.1%} of "
            "its mass on average); IPS, SNIPS and DR are biased and DM extrapolates"
        )


@dataclass
class Rounds:
    """The log as bandit rounds, with everything the estimators need.

    Shapes: n rounds, K candidates, p projected dims, f candidate features.
    """

    reward: np.ndarray  # (n,)
    action: np.ndarray  # (n,) int64
    pscore: np.ndarray  # (n,) logged propensity
    logger_dist: np.ndarray  # (n, K) the logger's full action distribution
    target_dist: np.ndarray  # (n, K) the target's action distribution
    mask: np.ndarray  # (n, K) bool
    user: np.ndarray  # (n, p) float32
    candidates: np.ndarray  # (n, K, p) float32
    features: np.ndarray  # (n, K, f) float32
    cluster: np.ndarray  # (n,) int64 episode index (rounds of one episode are dependent)
    # Slate logs only: the logged slates (n, L) and the target's probability of each (n,); the
    # logged propensity (pscore) is then the logger's probability of the whole slate, and
    # logger_dist / target_dist are first-position distributions.
    slate: np.ndarray | None = None
    target_slate_prob: np.ndarray | None = None
    # Slate logs: (n, L) the logger's and the target's probability of each prefix of the logged
    # slate (its first 1, 2, ..., L slots; NaN where unknown), and (n,) the clicked position.
    logged_prefix: np.ndarray | None = None
    target_prefix: np.ndarray | None = None
    clicked_position: np.ndarray | None = None
    # Slate logs: (n, L) the logger's and the target's probability that position l holds the
    # logged slate's slot l (item-position marginals; NaN where unknown).
    logged_position: np.ndarray | None = None
    target_position: np.ndarray | None = None
    # Slate logs: (n, L, K) the target's distribution of each position's slot given that the
    # earlier positions hold the logged slate's slots (NaN where unknown); Cascade-DR and DM.
    target_conditional: np.ndarray | None = None
    # Slate logs: (n, L, K) the target's probability that position l shows slot k's item (a
    # valid slot not held above it; NaN where unknown); the slate value model of fqe/pddr/wdr.
    target_shown: np.ndarray | None = None
    # (n,) each round's step within its episode, and whether the episode ended there
    # (terminated or truncated): the episode estimators follow whole episodes in order.
    step: np.ndarray | None = None
    ended: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.reward.shape[0])

    @property
    def k(self) -> int:
        return int(self.target_dist.shape[1])


@dataclass
class OPEResult:
    """Estimates of one target policy from one logged policy's steps."""

    policy: str
    logged_policy: str
    n_rounds: int
    n_episodes: int
    estimates: list[Estimate]
    support: Support
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """Columns: estimator, estimate, ci_low, ci_high, ess, ground_truth, relative_error, unit."""
        return pd.DataFrame([asdict(e) for e in self.estimates])

    @property
    def warnings(self) -> list[str]:
        """The notes that are warnings (low overlap, a single episode), without ``warning:``."""
        return [n.removeprefix("warning: ") for n in self.notes if n.startswith("warning: ")]

    def summary(self, *, with_warnings: bool = True) -> str:
        """The estimates as text, one line each after the notes (``with_warnings=False``: the
        notes that are :attr:`warnings` left out, for a caller that reports them itself)."""
        notes = [n for n in self.notes if with_warnings or not n.startswith("warning: ")]
        units = {e.unit for e in self.estimates}
        what = (
            "return per episode"
            if units == {"episode"}
            else "per step (and its return per episode, where marked)"
            if "episode" in units
            else "per step"
        )
        lines = [
            f"off-policy estimate of {self.policy!r} {what} from {self.n_rounds} rounds "
            f"({self.n_episodes} episodes) logged by {self.logged_policy!r}",
            self.support.describe(),
            *notes,
        ]
        for e in self.estimates:
            ci = "model CI" if e.estimator in ("dm", "fqe") else "95% CI"  # see the DM note
            line = (
                f"  {e.estimator:<6} {e.estimate:.4f}  {ci} [{e.ci_low:.4f}, {e.ci_high:.4f}]  "
                f"ESS {e.ess:.1f}"
            )
            if not math.isnan(e.ground_truth):  # not computed with --no-ground-truth
                line += f"  truth {e.ground_truth:.4f}"
                if not math.isnan(e.relative_error):
                    line += f"  rel. error {e.relative_error:+.1%}"
            if e.unit == "episode":
                line += "  (return per episode)"
            lines.append(line)
        lines.extend(f"wrote {p}" for p in self.files)
        return "\n".join(lines)


def refuse_slate_estimators(log: StepLog, estimators: Sequence[str]) -> None:
    """Raise a one-line LogError for a position-wise estimator (IIPS, SNIIPS, RIPS, SNRIPS) on a
    single-item log."""
    size = log.scenario().candidates.slate_size
    positionwise = POSITION_ESTIMATORS + PREFIX_ESTIMATORS
    if size == 1 and any(e in positionwise for e in estimators):
        first = next(e for e in estimators if e in positionwise)
        raise LogError(
            f"estimators: {first!r} on a single-item log ({log.path}; expected "
            f"{' or '.join(ESTIMATORS)}: {first} weighs the positions of a slate, and with one "
            "item it is ips)"
        )


def _target_predict(policy: Any, obs: dict[str, np.ndarray], state: Any, start: bool) -> Any:
    """The target's greedy ``(action, state)`` (for a policy without probabilities)."""
    return call_predict(
        policy,
        obs,
        label="target",
        state=state,
        episode_start=np.array([start]),
        deterministic=True,
    )


def _target_slate(
    policy: Any, obs: dict[str, np.ndarray], slate: np.ndarray, state: Any, start: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, Any]:
    """The target's first-position distribution (K,), its probability of each prefix of
    ``slate`` (L,) (NaN but for the whole slate when the policy gives only that), its
    probability that position l holds ``slate``'s slot l (L,) (NaN where unknown), its
    distribution of each position's slot given that the earlier ones hold ``slate``'s (L, K)
    (:func:`~lmrecsim.evaluation.rollout.policy_conditional_propensities`; NaN where unknown)
    and its probability that position l shows slot k's item (L, K) (the policy's
    ``shown_probabilities``; NaN without it)."""
    probs_fn = getattr(policy, "action_probabilities", None)
    says = callable(getattr(policy, "prefix_probabilities", None)) or callable(
        getattr(policy, "slate_probability", None)
    )
    k = obs["action_mask"].shape[0]
    if callable(probs_fn) and says:
        first = np.asarray(probs_fn(obs), dtype=np.float64).reshape(-1)
        prefix = policy_prefix_propensities(policy, obs, slate, first)
        position = policy_position_propensities(policy, obs, slate, prefix)
        shown_fn = getattr(policy, "shown_probabilities", None)
        shown = np.full((slate.shape[0], k), np.nan)
        if callable(shown_fn):
            got = np.asarray(shown_fn(obs), dtype=np.float64)
            if got.shape != shown.shape:
                raise LogError(
                    f"target: shown_probabilities(obs) returned shape {got.shape} (expected "
                    f"(L, K) = {shown.shape}: each position's probability of showing each slot)"
                )
            shown = got
        conditional = policy_conditional_propensities(policy, obs, slate)
        return first, prefix, position, conditional, shown, state
    action, state = _target_predict(policy, obs, state, start)
    chosen = policy_slate(action, "target", k, slate.shape[0])
    first = np.zeros(k, dtype=np.float64)
    first[int(chosen[0])] = 1.0
    return (
        first,
        prefix_indicators(chosen, slate),
        position_indicators(chosen, slate),
        slate_indicators(chosen, k),
        chosen_shown(chosen, np.asarray(obs["action_mask"]) > 0),
        state,
    )


# ----------------------------------------------------------------------------- rounds from a log
def _target_distribution(
    policy: Any, obs: dict[str, np.ndarray], state: Any, start: bool
) -> tuple[np.ndarray, Any]:
    fn = getattr(policy, "action_probabilities", None)
    if callable(fn):
        return np.asarray(fn(obs), dtype=np.float64).reshape(-1), state
    action, state = _target_predict(policy, obs, state, start)
    probs = np.zeros(obs["action_mask"].shape[0], dtype=np.float64)
    probs[policy_slot(action, "target", probs.shape[0])] = 1.0
    return probs, state


def collect_rounds(log: StepLog, policy: Any, *, logged_policy: str | None = None) -> Rounds:
    """Re-simulate one logged policy's episodes and evaluate the target on each logged context.

    The target policy is bound to the re-simulation env (``bind``), reset at each episode start
    (``reset``) and treated as fixed: it does not learn from the logged feedback.

    Raises:
        LogError: the log does not replay exactly (its contexts cannot be recovered) or holds a
            zero propensity for a logged action.
    """
    rows = log.for_policy(logged_policy)
    n = len(rows)
    pscore = rows["propensity"].to_numpy(dtype=np.float64)
    if n and not (pscore > 0).all():  # NaN too (a propensity the logger did not know)
        # Checked before the replay, which it does not need; named by the file's row.
        bad = int(np.argmax(~(pscore > 0)))
        file_row = int(
            np.flatnonzero(log.steps["policy"].to_numpy() == rows["policy"].iloc[0])[bad]
        )
        raise LogError(
            f"{log.path}: column 'propensity' is {pscore[bad]} in row {file_row} (expected > 0 "
            "for a logged action)"
        )
    world = load_world(log)
    slates = log.scenario().candidates.slate_size > 1
    slate = matrix(rows["slate_slots"], np.int64) if slates and n else None
    size = log.scenario().candidates.slate_size
    target_prefix = np.zeros((n, size), dtype=np.float64) if slates else None
    target_position = np.zeros((n, size), dtype=np.float64) if slates else None
    target_conditional: np.ndarray | None = None
    target_shown: np.ndarray | None = None
    k = len(rows["candidate_item_ids"].iloc[0]) if n else 0
    p = world.project_dim
    user = np.zeros((n, p), dtype=np.float32)
    cands = np.zeros((n, k, p), dtype=np.float32)
    feats: np.ndarray | None = None
    mask = np.zeros((n, k), dtype=bool)
    target = np.zeros((n, k), dtype=np.float64)
    seeds = rows["seed"].to_numpy()
    episodes = rows["episode"].to_numpy()
    steps = rows["step"].to_numpy()
    state: dict[str, Any] = {"bound": False, "rnn": None, "episode": None}

    def visit(pos: int, env: Any, obs: dict[str, np.ndarray]) -> None:
        nonlocal feats, target_conditional, target_shown
        if not state["bound"]:
            binder = getattr(policy, "bind", None)
            if callable(binder):
                binder(env)
            state["bound"] = True
        # The replay visits an episode's steps in order, one episode after another; a training
        # log's rows interleave its envs' episodes, so the row before in the file is no guide.
        episode = (int(seeds[pos]), int(episodes[pos]))
        start = steps[pos] == 0 or state["episode"] != episode
        state["episode"] = episode
        if start:
            hook = getattr(policy, "reset", None)
            if callable(hook):
                hook()
            state["rnn"] = None
        if feats is None:
            feats = np.zeros((n, k, obs["candidate_features"].shape[-1]), dtype=np.float32)
        user[pos] = obs["user"]
        cands[pos] = obs["candidates"]
        feats[pos] = obs["candidate_features"]
        mask[pos] = obs["action_mask"].astype(bool)
        if slate is not None and target_prefix is not None and target_position is not None:
            if target_conditional is None or target_shown is None:
                target_conditional = np.zeros((n, size, k), dtype=np.float64)
                target_shown = np.zeros((n, size, k), dtype=np.float64)
            (
                target[pos],
                target_prefix[pos],
                target_position[pos],
                target_conditional[pos],
                target_shown[pos],
                state["rnn"],
            ) = _target_slate(policy, obs, slate[pos], state["rnn"], start)
        else:
            target[pos], state["rnn"] = _target_distribution(policy, obs, state["rnn"], start)

    diff = resimulate(world, rows, visit=visit)
    if diff is not None:
        raise LogError(
            f"{log.path}: the log does not replay exactly ({diff.describe()}); cannot recover its contexts"
        )
    cluster = pd.factorize(pd.MultiIndex.from_arrays([seeds, episodes]))[0].astype(np.int64)
    return Rounds(
        reward=rows["reward"].to_numpy(dtype=np.float64),
        action=rows["action"].to_numpy(dtype=np.int64),
        pscore=pscore,
        logger_dist=matrix(rows["action_probabilities"]) if n else np.zeros((0, k)),
        target_dist=target,
        mask=mask,
        user=user,
        candidates=cands,
        features=feats if feats is not None else np.zeros((n, k, 0), dtype=np.float32),
        cluster=cluster,
        slate=slate,
        target_slate_prob=None if target_prefix is None else target_prefix[:, -1],
        logged_prefix=(matrix(rows["prefix_propensities"]) if slates and n else None),
        target_prefix=target_prefix,
        clicked_position=rows["clicked_position"].to_numpy(dtype=np.int64) if slates else None,
        logged_position=(matrix(rows["position_propensities"]) if slates and n else None),
        target_position=target_position,
        target_conditional=(
            np.zeros((n, size, k)) if slates and target_conditional is None else target_conditional
        ),
        target_shown=(np.zeros((n, size, k)) if slates and target_shown is None else target_shown),
        step=steps.astype(np.int64),
        ended=(rows["terminated"].to_numpy(dtype=bool) | rows["truncated"].to_numpy(dtype=bool)),
    )


def check_support(rounds: Rounds) -> Support:
    """Find target mass on slots the logger gave probability 0."""
    outside = np.where(rounds.logger_dist <= _SUPPORT_TOL, rounds.target_dist, 0.0).sum(axis=1)
    return Support(
        unsupported_rounds=int((outside > _SUPPORT_TOL).sum()),
        n_rounds=rounds.n,
        unsupported_mass=float(outside.mean()) if rounds.n else 0.0,
    )


# ------------------------------------------------------------------------------- reward model
def pair_features(rounds: Rounds, rows: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Features of (round, slot) pairs: ``[user, candidate, user*candidate, features]``, (m, 3p+f)."""
    u = rounds.user[rows].astype(np.float64)
    c = rounds.candidates[rows, slots].astype(np.float64)
    f = rounds.features[rows, slots].astype(np.float64)
    return np.concatenate([u, c, u * c, f], axis=1)


class _RidgeDesign:
    """Standardised ridge regression on the inputs ``x``, the penalty chosen by exact
    leave-one-out error for each target: the design's SVD is computed once, so fitted-Q
    evaluation refits many targets on it. ``pred = ((x - mean) / scale) @ coef + intercept``."""

    def __init__(self, x: np.ndarray) -> None:
        self.mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
        self.scale = scale
        z = (x - self.mean) / scale
        self.u, self.s, self.vt = np.linalg.svd(z, full_matrices=False)

    def solve(self, y: np.ndarray, lambdas: Sequence[float]) -> tuple[np.ndarray, float]:
        """``(coef, intercept)`` for target ``y``, the penalty chosen by leave-one-out error."""
        u, s, vt = self.u, self.s, self.vt
        y_mean = float(y.mean())
        yc = y - y_mean
        uty = u.T @ yc
        n = max(len(y), 1)
        best: tuple[float, np.ndarray] | None = None
        for lam in lambdas:
            shrink = s**2 / (s**2 + lam)
            fitted = u @ (shrink * uty)
            # Leverage includes the intercept's 1/n.
            lev = (u**2) @ shrink + 1.0 / n
            loo = (yc - fitted) / np.clip(1.0 - lev, 1e-6, None)
            err = float(np.mean(loo**2))
            if best is None or err < best[0]:
                coef = vt.T @ (s / (s**2 + lam) * uty)
                best = (err, coef)
        assert best is not None
        return best[1], y_mean

    def predict(self, x: np.ndarray, coef: np.ndarray, intercept: float) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ coef + intercept


def _episode_folds(
    rounds: Rounds, n_folds: int, rng: np.random.Generator | int | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-fitting splits ``(train, test)`` of the rounds: episodes are dealt at random into
    ``n_folds`` folds (at most one per episode), and each fold is tested on a model trained on
    the others; with one fold, trained and tested on every round (no cross-fitting)."""
    gen = np.random.default_rng(rng)
    n_clusters = int(rounds.cluster.max()) + 1
    folds_of_cluster = gen.permutation(n_clusters) % max(min(n_folds, n_clusters), 1)
    fold = folds_of_cluster[rounds.cluster]
    splits = []
    for f in np.unique(fold):
        train = np.flatnonzero(fold != f)
        test = np.flatnonzero(fold == f)
        splits.append((test if train.size == 0 else train, test))
    return splits


def fit_reward_model(
    rounds: Rounds,
    *,
    n_folds: int = 2,
    rng: np.random.Generator | int | None = 0,
    lambdas: Sequence[float] = tuple(np.logspace(-1, 4, 11)),
) -> np.ndarray:
    """Cross-fitted estimated reward of every candidate of every round, shape (n, K).

    Episodes are split into ``n_folds`` folds at random; each fold's predictions come from a ridge
    regression fitted on the logged (context, action, reward) of the other folds, with the
    penalty chosen by leave-one-out error. Predictions are clipped to the training rewards' range.
    """
    n, k = rounds.n, rounds.k
    out = np.zeros((n, k), dtype=np.float64)
    if n == 0:
        return out
    for train, test in _episode_folds(rounds, n_folds, rng):
        x = pair_features(rounds, train, rounds.action[train])
        y = rounds.reward[train]
        # One BLAS thread: the SVD and products split their sums by thread count, and DM's
        # estimate moved in its last digits with OMP_NUM_THREADS (see lmrecsim.envs.blas).
        with one_blas_thread():
            design = _RidgeDesign(x)
            out[test] = _predict_candidates(
                design,
                design.solve(y, lambdas),
                test,
                k,
                lambda rows, slots: pair_features(rounds, rows, slots),
                (y.min(), y.max()),
            )
    return out


#: Rounds whose candidates a model predicts at a time (memory, not results: each prediction is
#: its own row's product). The whole of a fold at once took about 28 KB per round: 3 GB for a
#: 100,000-step training log.
_PREDICT_ROUNDS = 1024


def _predict_candidates(
    design: _RidgeDesign,
    fit: tuple[np.ndarray, float],
    rows: np.ndarray,
    k: int,
    features: Callable[[np.ndarray, np.ndarray], np.ndarray],
    bounds: tuple[float, float],
) -> np.ndarray:
    """(len(rows), K) the fitted ``design``'s predictions, ``fit = (coef, intercept)``, for every
    candidate slot of the rounds ``rows``, clipped to ``bounds``; ``features(rows, slots)`` gives
    the inputs of (round, slot) pairs. :data:`_PREDICT_ROUNDS` rounds at a time."""
    out = np.empty((rows.size, k))
    for start in range(0, rows.size, _PREDICT_ROUNDS):
        block = rows[start : start + _PREDICT_ROUNDS]
        xt = features(np.repeat(block, k), np.tile(np.arange(k), block.size))
        pred = design.predict(xt, *fit)
        out[start : start + block.size] = np.clip(pred, *bounds).reshape(block.size, k)
    return out


def _position_rewards(rounds: Rounds) -> np.ndarray:
    """(n, L) each round's reward at its clicked position, or at the last position when nothing
    was clicked (what the user did without choosing an item), 0 elsewhere."""
    assert rounds.clicked_position is not None and rounds.slate is not None
    n, size = rounds.slate.shape
    where = np.where(rounds.clicked_position >= 0, rounds.clicked_position, size - 1)
    rewards = np.zeros((n, size))
    rewards[np.arange(n), where] = rounds.reward
    return rewards


def _slot_features(rounds: Rounds, rows: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Features of (round, slot) pairs for the slate Q-model: ``[user . candidate, features]``,
    (m, 1 + f)."""
    u = rounds.user[rows].astype(np.float64)
    c = rounds.candidates[rows, slots].astype(np.float64)
    f = rounds.features[rows, slots].astype(np.float64)
    return np.concatenate([np.einsum("md,md->m", u, c)[:, None], f], axis=1)


def _logged_slot_features(rounds: Rounds) -> tuple[np.ndarray, np.ndarray]:
    """(n, L, 1 + f) the :func:`_slot_features` of each logged slate's slot at each position,
    zero where the position showed nothing, and (n, L) bool whether it showed its item."""
    assert rounds.slate is not None
    shown = slate_shown(rounds.slate, rounds.mask)
    rows = np.arange(rounds.n)
    features = np.stack(
        [_slot_features(rounds, rows, rounds.slate[:, j]) for j in range(rounds.slate.shape[1])],
        axis=1,
    )
    return features * shown[:, :, None], shown


def _slate_q_features(
    rounds: Rounds, rows: np.ndarray, slots: np.ndarray, position: int, prefix: np.ndarray
) -> np.ndarray:
    """Features of a Q-model input: slot ``slots`` at ``position`` of round ``rows``, the logged
    slate's slots above it: ``[shown * pair features, shown, prefix mean, prefix share]``, where
    shown says the slot adds an item (valid, not taken above) and the prefix mean is
    ``prefix[rows]`` ((n, L, D + 1) per round and position: the mean pair features of the items
    shown above, and their number over L)."""
    assert rounds.slate is not None
    above = rounds.slate[rows, :position]
    shown = slate_shown(np.concatenate([above, slots[:, None]], axis=1), rounds.mask[rows])[:, -1]
    pair = _slot_features(rounds, rows, slots) * shown[:, None]
    return np.concatenate([pair, shown[:, None].astype(np.float64), prefix[rows, position]], axis=1)


def fit_slate_q_model(
    rounds: Rounds,
    *,
    n_folds: int = 2,
    rng: np.random.Generator | int | None = 0,
    lambdas: Sequence[float] = tuple(np.logspace(-1, 4, 11)),
) -> np.ndarray:
    """Cross-fitted Q-model of a slate log for the cascade doubly robust estimator, (n, L, K).

    Entry ``[i, l, a]`` estimates the reward from position l on (the round's reward if it lands
    at l or below: a click there or further down, or no click) when positions 0..l-1 hold round
    i's logged slots, position l holds slot a, and the target fills the positions below:
    ``Q_l(x_i, S_<l, a)``. Fitted by fitted-Q evaluation from the last position up: position l's
    ridge regression (:class:`_RidgeDesign`, one per position) is fitted on the logged slots with
    the target ``r_l + sum_a pi(a | x, S_<=l) Q_{l+1}(x, S_<=l, a)``, the second term from position
    l + 1's model and the target's conditional distributions (``rounds.target_conditional``).
    Features: :func:`_slate_q_features`. Episodes are split into ``n_folds`` folds as in
    :func:`fit_reward_model`; each fold's entries come from models fitted on the other folds.
    Predictions are clipped to the range of their position's training targets.
    """
    assert rounds.slate is not None and rounds.target_conditional is not None
    n, size = rounds.slate.shape
    k = rounds.k
    out = np.zeros((n, size, k), dtype=np.float64)
    if n == 0:
        return out
    rewards = _position_rewards(rounds)
    logged, shown = _logged_slot_features(rounds)
    # Per round and position: the mean pair features of the items shown above, and their share.
    all_rows = np.arange(n)
    above = np.concatenate([np.zeros_like(logged[:, :1]), np.cumsum(logged, axis=1)[:, :-1]], 1)
    count = np.concatenate([np.zeros((n, 1)), np.cumsum(shown, axis=1)[:, :-1]], axis=1)
    prefix = np.concatenate(
        [above / np.maximum(count, 1.0)[:, :, None], (count / size)[:, :, None]], axis=2
    )
    cond = rounds.target_conditional
    for train, test in _episode_folds(rounds, n_folds, rng):
        following = np.zeros(n)  # sum_a pi(a | S_<=l) Q_{l+1}(S_<=l, a), per round
        for pos in range(size - 1, -1, -1):
            y = rewards[train, pos] + following[train]
            x = _slate_q_features(rounds, train, rounds.slate[train, pos], pos, prefix)
            # One BLAS thread, as in fit_reward_model: the estimates must not move with it.
            with one_blas_thread():
                design = _RidgeDesign(x)
                # Every round's K candidates: the next position's targets need them all.
                q = _predict_candidates(
                    design,
                    design.solve(y, lambdas),
                    all_rows,
                    k,
                    lambda rows, slots, pos=pos: _slate_q_features(
                        rounds, rows, slots, pos, prefix
                    ),
                    (y.min(), y.max()),
                )
            out[test, pos] = q[test]
            following = np.sum(cond[:, pos] * q, axis=1)
    return out


def _cascade_terms(rounds: Rounds, slate_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n,) per-round terms of slate DM and of Cascade-DR.

    DM: ``sum_a pi(a | x) Q_0(x, a)``. Cascade-DR: ``sum_l [w_<=l (r_l - Q_l(x, S_<=l)) +
    w_<l sum_a pi(a | x, S_<l) Q_l(x, S_<l, a)]``, with ``w_<=l`` the prefix weights of RIPS
    (``w_<0`` = 1) and ``r_l`` the reward at position l (:func:`_position_rewards`).
    """
    assert rounds.slate is not None and rounds.target_conditional is not None
    n, size = rounds.slate.shape
    expected = np.sum(rounds.target_conditional * slate_q, axis=2)  # (n, L)
    logged_q = np.take_along_axis(slate_q, rounds.slate[:, :, None], axis=2)[:, :, 0]
    w = position_weights(rounds, "rips")
    w_before = np.concatenate([np.ones((n, 1)), w[:, :-1]], axis=1)
    dr = np.sum(w * (_position_rewards(rounds) - logged_q) + w_before * expected, axis=1)
    return expected[:, 0], dr


# --------------------------------------------------------------------------------- estimators
def _least_overlap(sizes: Sequence[tuple[float, str]]) -> str:
    """``"ips's"``, or ``"ips, snips and dr's"`` when several share the least effective sample
    size (the same weights): the estimators the low-overlap warning is about, from sorted
    ``(ess, estimator)`` pairs."""
    least = sizes[0][0]
    names = [name for ess, name in sizes if ess <= least * (1 + 1e-12)]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"{listed}'s"


def _kish_ess(weights: np.ndarray) -> float:
    """Kish's effective sample size of ``weights``, ``(sum w)^2 / sum w^2`` (0 when all are 0)."""
    square = np.sum(weights**2)
    return float(weights.sum() ** 2 / square) if square > 0 else 0.0


def _cluster_se(psi: np.ndarray, cluster: np.ndarray) -> float:
    """Cluster-robust standard error of a mean whose centred influence terms are ``psi`` (n,)."""
    n = psi.shape[0]
    totals = np.bincount(cluster, weights=psi)
    g = int((np.bincount(cluster) > 0).sum())
    if g < 2:
        return float("nan")
    return float(np.sqrt(g / (g - 1) * np.sum(totals**2)) / n)


def _missing_table(table: np.ndarray, what: str, method: str, instead: str) -> str | None:
    """``what`` in the first round where the target's (n, L, K) ``table`` is unknown (NaN), with
    what would give it, or None when it is known everywhere."""
    unknown = np.isnan(table).any(axis=(1, 2))
    if not unknown.any():
        return None
    return (
        f"{what} in round {int(np.argmax(unknown))} (expected the target's {method}, as every "
        "built-in policy has, or a target without action_probabilities (deterministic); or "
        f"the estimators {instead})"
    )


def _unknown_propensities(rounds: Rounds, path: Path, label: str, estimator: str) -> str | None:
    """Why ``estimator`` (a position-wise one, or DM / DR on slates) cannot run on these rounds:
    a propensity the logger or the target did not give (``iips``/``sniips``: of each position's
    slot; ``rips``/``snrips``: of each prefix; ``dm``: the target's distribution of each
    position's slot given the slots above; ``dr``: that and the prefixes'); None when all are
    known. ``fqe``/``pddr``/``wdr``: the target's probability that each position shows each
    slot (its ``shown_probabilities``)."""
    if estimator in RETURN_MODEL_ESTIMATORS:
        assert rounds.target_shown is not None
        return _missing_table(
            rounds.target_shown,
            f"{path}: policy {label!r} gives no probability that each position shows each slot",
            "shown_probabilities(obs)",
            "pdis / wpdis",
        )
    if estimator in ("dm", "dr"):
        assert rounds.target_conditional is not None
        problem = _missing_table(
            rounds.target_conditional,
            f"{path}: policy {label!r} gives no distribution of a position's slot given the "
            "slots above it",
            "conditional_probabilities(obs, slate)",
            "ips / rips",
        )
        if problem is not None or estimator == "dm":
            return problem
        return _unknown_propensities(rounds, path, label, "rips")
    if estimator in POSITION_ESTIMATORS:
        column, logged, target = (
            "position_propensities",
            rounds.logged_position,
            rounds.target_position,
        )
        what, schema = "of the slot at each later position", 4
        method = f"position_probabilities (within {MAX_TRANSITIONS:,} (set, slot) pairs)"
    else:
        column, logged, target = "prefix_propensities", rounds.logged_prefix, rounds.target_prefix
        what, method, schema = "of the slate's shorter prefixes", "prefix_probabilities", 3
    assert logged is not None and target is not None
    for table, where, whose in (
        (logged, f"column {column!r}", "the logger's"),
        (target, f"policy {label!r}", f"the target {label!r}'s"),
    ):
        unknown = np.isnan(table).any(axis=1)
        if unknown.any():
            row = int(np.argmax(unknown))
            return (
                f"{path}: {where} gives no probability {what} in round {row} (expected {whose} "
                f"probability {what}: a log of schema {schema} by a policy with {method}, and "
                "such a target; or the estimators ips / snips)"
            )
    return None


def _positionwise_estimate(
    rounds: Rounds, weights: np.ndarray, *, normalized: bool
) -> tuple[float, np.ndarray, float]:
    """A position-wise slate estimate, its influence terms and effective sample size.

    A click at position l is weighted by ``weights[:, l]`` and a reward without a click (nothing
    the user chose) by the last position's weight. RIPS takes the prefix ratios (the last is the
    whole slate's), IIPS the item-position marginals' ratios; the normalized forms (SNRIPS,
    SNIIPS) divide each position's sum by the sum of its weights.
    """
    assert rounds.clicked_position is not None
    n, size = weights.shape
    where = np.where(rounds.clicked_position >= 0, rounds.clicked_position, size - 1)
    rewards = _position_rewards(rounds)
    used = weights[np.arange(n), where]
    ess = _kish_ess(used)
    if not normalized:
        v = (weights * rewards).sum(axis=1)
        est = float(v.mean())
        return est, v - est, ess
    mean_w = weights.mean(axis=0)  # (L,)
    if not (mean_w > 0).all():
        return float("nan"), np.full(n, np.nan), ess
    per_position = (weights * rewards).sum(axis=0) / weights.sum(axis=0)
    psi = (weights * (rewards - per_position[None, :]) / mean_w[None, :]).sum(axis=1)
    return float(per_position.sum()), psi, ess


def position_weights(rounds: Rounds, estimator: str) -> np.ndarray:
    """(n, L) the importance weights of a position-wise estimator: the target's over the
    logger's item-position marginals (IIPS, SNIIPS) or prefix probabilities (RIPS, SNRIPS)."""
    if estimator in POSITION_ESTIMATORS:
        assert rounds.target_position is not None and rounds.logged_position is not None
        return rounds.target_position / rounds.logged_position
    assert rounds.target_prefix is not None and rounds.logged_prefix is not None
    return rounds.target_prefix / rounds.logged_prefix


def _episode_layout(rounds: Rounds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rounds as episodes: ``(order, episode, step)`` with ``order`` the rounds sorted by
    episode then step, and for each sorted round its episode's row (0..m-1) and its position in
    the episode (0, 1, ...). Raises ValueError naming a round where an episode skips or repeats a
    step, or does not start at step 0."""
    assert rounds.step is not None
    if rounds.n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    order = np.lexsort((rounds.step, rounds.cluster))
    cluster = rounds.cluster[order]
    starts = np.flatnonzero(np.r_[True, cluster[1:] != cluster[:-1]])
    lengths = np.diff(np.r_[starts, cluster.shape[0]])
    episode = np.repeat(np.arange(starts.shape[0]), lengths)
    position = np.arange(cluster.shape[0]) - np.repeat(starts, lengths)
    whole = (
        "(the estimates of the return per episode follow whole episodes from step 0, each step "
        "once, to the end)"
    )
    bad = np.flatnonzero(rounds.step[order] != position)
    if bad.size:
        row = int(order[bad[0]])
        raise ValueError(
            f"round {row} is step {int(rounds.step[row])} of its episode, where step "
            f"{int(position[bad[0]])} was expected {whole}"
        )
    if rounds.ended is not None:
        last = np.r_[starts[1:] - 1, cluster.shape[0] - 1]
        is_last = np.zeros(cluster.shape[0], dtype=bool)
        is_last[last] = True
        wrong = np.flatnonzero(rounds.ended[order] != is_last)
        if wrong.size:
            row = int(order[wrong[0]])
            state = (
                "ends its episode but is neither terminated nor truncated"
                if is_last[wrong[0]]
                else "is terminated or truncated but its episode goes on"
            )
            raise ValueError(f"round {row} (step {int(rounds.step[row])}) {state} {whole}")
    return order, episode, position


def episode_weights(
    rounds: Rounds,
    w: np.ndarray,
    layout: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-decision weights and rewards by episode, both (m episodes, T longest episode).

    Entry ``[e, t]`` of the weights is the product of episode e's per-step ratios ``w`` up to
    step t, the target's over the logger's probability of the episode's first t + 1 actions;
    past an episode's end it keeps its last value (the user left: nothing further happens under
    either policy). The rewards are 0 there. ``layout``: the rounds' :func:`_episode_layout`,
    when the caller has it.
    """
    order, episode, position = _episode_layout(rounds) if layout is None else layout
    m = int(episode.max()) + 1 if episode.size else 0
    t = int(position.max()) + 1 if position.size else 0
    ratios = np.ones((m, t))
    rewards = np.zeros((m, t))
    ratios[episode, position] = w[order]
    rewards[episode, position] = rounds.reward[order]
    return np.cumprod(ratios, axis=1), rewards


class ValueModel(NamedTuple):
    """Fitted-Q evaluation of a target on a log (:func:`fit_value_model`), per round (n,)."""

    #: ``Q(x_i, a_i)``: the return from round i's step on, its logged slot (slate) first.
    q_logged: np.ndarray
    #: ``V(x_i) = sum_a pi(a | x_i) Q(x_i, a)`` (over slates: Q at the target's mean features).
    v: np.ndarray


def fit_value_model(
    rounds: Rounds,
    *,
    horizon: int | None = None,
    n_folds: int = 2,
    rng: np.random.Generator | int | None = 0,
    lambdas: Sequence[float] = tuple(np.logspace(-1, 4, 11)),
    chunk: int = 4096,
    max_iter: int = 500,
    tol: float = 1e-8,
) -> ValueModel:
    """Cross-fitted fitted-Q evaluation of the target's return from each logged step on.

    ``Q(x, a)`` estimates the rewards from step t to the end of the episode when the user's state
    is x, slot a is recommended now and the target acts afterwards; ``V(x) = sum_a pi(a | x)
    Q(x, a)``. One ridge regression on ``[phi, s, phi * s]``, with phi the pair features
    ``[user, candidate, user*candidate, features]`` and s the share of the horizon still ahead,
    ``(H - t) / H``, is refitted on the targets ``r_t + V(x_{t+1})`` (``r_t`` at an episode's last
    step) with V from the previous fit, until V moves by less than ``tol`` (relative to its size)
    or ``max_iter`` fits: the fixed point of fitted-Q evaluation. The penalty is chosen by
    leave-one-out error at every fit. Values are clipped to what a session can still earn,
    ``[min(r, 0), max(r, 0)] * (H - t)`` over the logged rewards r. Folds by episode as in
    :func:`fit_reward_model`; each fold's values come from the model fitted on the others.

    On a slate log, a is the logged slate and phi its position-by-position features
    (:func:`_slate_value_features`), whose mean under the target gives V, as the features are
    linear in what each position shows.

    Args:
        horizon: H, the scenario's episode horizon (default: the longest logged episode).
    """
    n, k = rounds.n, rounds.k
    if n == 0:
        return ValueModel(np.zeros(0), np.zeros(0))
    order, episode, position = _episode_layout(rounds)
    h = max(int(horizon or 0), int(position.max()) + 1)
    # Each round's next round in its episode (-1 after its last step), in the rounds' order.
    nxt_sorted = np.r_[order[1:], -1]
    nxt_sorted[np.r_[episode[1:] != episode[:-1], True]] = -1
    nxt = np.empty(n, dtype=np.int64)
    nxt[order] = nxt_sorted
    ahead = (h - rounds.step) / h
    low = min(float(rounds.reward.min()), 0.0) * (h - rounds.step)
    high = max(float(rounds.reward.max()), 0.0) * (h - rounds.step)

    def features(rows: np.ndarray, slots: np.ndarray) -> np.ndarray:
        pair = pair_features(rounds, rows, slots)
        steps = ahead[rows, None]
        return np.concatenate([pair, steps, pair * steps], axis=1)

    if rounds.slate is not None:
        logged, expected = _slate_value_features(rounds, ahead, chunk)
    else:
        logged = features(np.arange(n), rounds.action)
        # The target's mean features per round: V is linear in them, since its weights sum to 1.
        expected = np.zeros_like(logged)
        for lo in range(0, n, chunk):
            rows = np.arange(lo, min(lo + chunk, n))
            grid = features(np.repeat(rows, k), np.tile(np.arange(k), rows.size))
            dist = rounds.target_dist[rows].reshape(-1, 1)
            expected[rows] = (grid * dist).reshape(rows.size, k, -1).sum(axis=1)
    q_logged, v_out = np.zeros(n), np.zeros(n)
    for train, test in _episode_folds(rounds, n_folds, rng):
        has_next = nxt[train] >= 0
        with one_blas_thread():  # the estimates must not move with the thread count
            design = _RidgeDesign(logged[train])
            v = np.zeros(n)
            for _ in range(max_iter):
                y = rounds.reward[train] + np.where(has_next, v[np.maximum(nxt[train], 0)], 0.0)
                coef, icpt = design.solve(y, lambdas)
                v_new = np.clip(design.predict(expected, coef, icpt), low, high)
                change = float(np.max(np.abs(v_new - v)))
                v = v_new
                if change <= tol * max(1.0, float(np.max(np.abs(v)))):
                    break
            q = np.clip(design.predict(logged[test], coef, icpt), low[test], high[test])
        q_logged[test] = q
        v_out[test] = v[test]
    return ValueModel(q_logged, v_out)


def _slate_value_features(
    rounds: Rounds, ahead: np.ndarray, chunk: int
) -> tuple[np.ndarray, np.ndarray]:
    """The value model's features of the logged slates and their mean under the target, both
    (n, F), for :func:`fit_value_model` on a slate log.

    Position by position, ``[shown_l * phi(x, S_l), shown_l]`` with phi the slot features of the
    slate Q-model, ``[user . candidate, candidate features]`` (:func:`_slot_features`), and
    shown_l whether position l showed its slot's item (a valid slot not held above it); then
    those L blocks ``B``, the share of the horizon ahead s and ``B * s``: ``[B, s, B * s]``. So
    the return from a step is modelled position by position (a click's value depends on where
    the item sits), and the target's mean features follow from its probability that position l
    shows slot k (``rounds.target_shown``): ``E[shown_l phi(x, S_l)] = sum_k P(l shows k)
    phi(x, k)``.
    """
    assert rounds.slate is not None and rounds.target_shown is not None
    n, size = rounds.slate.shape
    k = rounds.k
    features, shown = _logged_slot_features(rounds)
    blocks = np.concatenate([features, shown[:, :, None].astype(np.float64)], axis=2)
    logged = blocks.reshape(n, -1)
    d = blocks.shape[2]
    mean = np.zeros_like(logged)
    for lo in range(0, n, chunk):
        rows = np.arange(lo, min(lo + chunk, n))
        grid = _slot_features(rounds, np.repeat(rows, k), np.tile(np.arange(k), rows.size))
        grid = np.concatenate([grid, np.ones((grid.shape[0], 1))], axis=1).reshape(rows.size, k, d)
        for pos in range(size):
            mean[rows, pos * d : (pos + 1) * d] = np.einsum(
                "rk,rkd->rd", rounds.target_shown[rows, pos], grid
            )
    steps = ahead[:, None]
    return (
        np.concatenate([logged, steps, logged * steps], axis=1),
        np.concatenate([mean, steps, mean * steps], axis=1),
    )


def _episode_estimate(
    rounds: Rounds, w: np.ndarray, name: str, model: ValueModel | None = None
) -> tuple[float, np.ndarray, float]:
    """An estimate of the target's return per episode, its influence terms (one per episode:
    episodes are independent) and its effective sample size.

    * PDDR (per-decision doubly robust, Jiang and Li 2016): ``mean_e sum_t [rho_t (r_t -
      Q(x_t, a_t)) + rho_{t-1} V(x_t)]`` with ``rho_{-1}`` = 1 and the value ``model``.
    * WDR (weighted doubly robust, Thomas and Brunskill 2016): the same with each step's two
      weighted sums divided by the mean of their weights (NaN when no episode keeps a weight to
      some step).
    * PDIS and WPDIS are PDDR and WDR without a model (Q = V = 0): ``mean_e sum_t rho_et r_et``,
      and ``sum_t (sum_e rho_et r_et) / (sum_e rho_et)``.
    * FQE: ``mean_e V(x_e0)``, with the episodes' number as its sample size.

    The effective sample size of the weighted ones is that of the whole episodes' weights. Past
    an episode's end the rewards and values are 0 and the weights keep their last value.
    """
    layout = _episode_layout(rounds)
    order, episode, position = layout
    rho, rewards = episode_weights(rounds, w, layout)
    m = rho.shape[0]
    if rho.size == 0:
        return float("nan"), np.zeros(0), 0.0
    q_m, v_m = np.zeros_like(rho), np.zeros_like(rho)
    if model is not None:
        q_m[episode, position] = model.q_logged[order]
        v_m[episode, position] = model.v[order]
    if name == "fqe":
        terms = v_m[:, 0]
        est = float(terms.mean())
        return est, terms - est, float(m)
    ess = _kish_ess(rho[:, -1])
    rho_before = np.concatenate([np.ones((m, 1)), rho[:, :-1]], axis=1)
    if name in ("pdis", "pddr"):
        terms = (rho * (rewards - q_m) + rho_before * v_m).sum(axis=1)
        est = float(terms.mean())
        return est, terms - est, ess
    mean_w, mean_before = rho.mean(axis=0), rho_before.mean(axis=0)
    if not ((mean_w > 0).all() and (mean_before > 0).all()):
        return float("nan"), np.full(m, np.nan), ess
    corrected = (rho * (rewards - q_m)).mean(axis=0) / mean_w
    baseline = (rho_before * v_m).mean(axis=0) / mean_before
    psi = (rho * (rewards - q_m - corrected) / mean_w).sum(axis=1) + (
        rho_before * (v_m - baseline) / mean_before
    ).sum(axis=1)
    return float(corrected.sum() + baseline.sum()), psi, ess


def estimate_all(
    rounds: Rounds,
    q_hat: np.ndarray,
    estimators: Sequence[str] = ESTIMATORS,
    *,
    slate_q: np.ndarray | None = None,
    value_model: ValueModel | None = None,
) -> list[Estimate]:
    """Per-step value estimates of the target with 95% intervals and effective sample size.

    Args:
        rounds: the logged rounds with the target's distribution.
        q_hat: (n, K) estimated rewards (cross-fitted), used by DM and DR on single-item rounds.
        estimators: any of ``ips``, ``snips``, ``dm``, ``dr``, and ``pdis``, ``wpdis``, ``fqe``,
            ``pddr`` and ``wdr`` (:func:`_episode_estimate`, the return per episode); on slate
            rounds ``iips``,
            ``sniips``, ``rips`` and ``snrips`` (:func:`_positionwise_estimate`) too.
        slate_q: (n, L, K) the slate Q-model (:func:`fit_slate_q_model`), which DM and DR use on
            slate rounds (DR is then Cascade-DR, :func:`_cascade_terms`).
        value_model: :func:`fit_value_model`'s, which ``fqe``, ``pddr`` and ``wdr`` use.
    """
    n = rounds.n
    idx = np.arange(n)
    if rounds.target_slate_prob is not None:  # slate IPS: whole slates
        w = rounds.target_slate_prob / rounds.pscore
    else:
        w = rounds.target_dist[idx, rounds.action] / rounds.pscore
    r = rounds.reward
    ess = _kish_ess(w)
    if rounds.slate is not None and any(e in ("dm", "dr") for e in estimators):
        if slate_q is None:
            raise ValueError("dm and dr on slate rounds need slate_q (fit_slate_q_model)")
        dm_terms, dr_terms = _cascade_terms(rounds, slate_q)
        # Cascade-DR's weights are RIPS's: its effective sample size is theirs.
        dr_ess = _positionwise_estimate(rounds, position_weights(rounds, "rips"), normalized=False)[
            2
        ]
    else:
        dm_terms = np.sum(rounds.target_dist * q_hat, axis=1)
        dr_terms = dm_terms + w * (r - q_hat[idx, rounds.action])
        dr_ess = ess
    out = []
    for name in estimators:
        if name == "ips":
            v = w * r
            est = float(v.mean())
            psi = v - est
            e_ess = ess
        elif name == "snips":
            wm = float(w.mean())
            est = float(np.sum(w * r) / np.sum(w)) if wm > 0 else float("nan")
            psi = w * (r - est) / wm if wm > 0 else np.full(n, np.nan)
            e_ess = ess
        elif name == "dm":
            est = float(dm_terms.mean())
            psi = dm_terms - est
            e_ess = float(n)
        elif name == "dr":
            est = float(dr_terms.mean())
            psi = dr_terms - est
            e_ess = dr_ess
        elif name in POSITION_ESTIMATORS + PREFIX_ESTIMATORS:
            est, psi, e_ess = _positionwise_estimate(
                rounds, position_weights(rounds, name), normalized=name.startswith("sn")
            )
        elif name in EPISODE_ESTIMATORS:
            model = value_model if name in RETURN_MODEL_ESTIMATORS else None
            if name in RETURN_MODEL_ESTIMATORS and model is None:
                raise ValueError("fqe, pddr and wdr need value_model (fit_value_model)")
            est, psi, e_ess = _episode_estimate(rounds, w, name, model)
            se = _cluster_se(psi, np.arange(psi.size))  # one term per independent episode
            out.append(Estimate(name, est, est - _Z95 * se, est + _Z95 * se, e_ess, unit="episode"))
            continue
        else:
            raise ValueError(
                f"unknown estimator {name!r} (expected one of {', '.join(ALL_ESTIMATORS)})"
            )
        se = _cluster_se(psi, rounds.cluster)
        out.append(Estimate(name, est, est - _Z95 * se, est + _Z95 * se, e_ess))
    return out


def ground_truth(
    log: StepLog, policy: Any, label: str, *, logged_policy: str | None = None
) -> float:
    """The target's actual mean reward per step on the logged scenario, seeds and episodes."""
    return ground_truths(log, policy, label, logged_policy=logged_policy)[0]


def ground_truths(
    log: StepLog, policy: Any, label: str, *, logged_policy: str | None = None
) -> tuple[float, float]:
    """The target's actual mean reward per step and mean return per episode on the logged
    scenario, seeds and episodes (one run of the target)."""
    from .rollout import run_policy

    rows = log.for_policy(logged_policy)
    pairs = rows[["seed", "episode"]].drop_duplicates()
    seeds = list(dict.fromkeys(int(s) for s in pairs["seed"]))
    episodes = int(pairs["episode"].max()) + 1
    # Policies that state their distribution act by it; the others act greedily (as OPE assumed).
    stochastic = callable(getattr(policy, "action_probabilities", None))
    steps, _ = run_policy(
        load_world(log),
        policy,
        label=label,
        seeds=seeds,
        episodes=episodes,
        deterministic=not stochastic,
    )
    steps = steps.merge(pairs, on=["seed", "episode"], how="inner")
    returns = steps.groupby(["seed", "episode"])["reward"].sum()
    return float(steps["reward"].mean()), float(returns.mean())


def export_bandit_feedback(path: str | os.PathLike[str], rounds: Rounds, q_hat: np.ndarray) -> Path:
    """Write the rounds as Open Bandit Pipeline-style bandit feedback (``.npz``).

    Keys: ``n_rounds``, ``n_actions``, ``action`` (n,), ``position`` (n,) zeros, ``reward`` (n,),
    ``pscore`` (n,), ``context`` (n, p), ``action_dist`` (n, K, 1) the target's distribution,
    ``estimated_rewards_by_reg_model`` (n, K, 1), ``logger_action_dist`` (n, K).
    """
    dest = Path(path)
    with atomic_file(dest) as fh:
        np.savez(
            fh,
            n_rounds=np.int64(rounds.n),
            n_actions=np.int64(rounds.k),
            action=rounds.action,
            position=np.zeros(rounds.n, dtype=np.int64),
            reward=rounds.reward,
            pscore=rounds.pscore,
            context=rounds.user.astype(np.float64),
            action_dist=rounds.target_dist[:, :, None],
            estimated_rewards_by_reg_model=q_hat[:, :, None],
            logger_action_dist=rounds.logger_dist,
        )
    return dest


def export_slate_bandit_feedback(
    path: str | os.PathLike[str], rounds: Rounds, slate_q: np.ndarray | None = None
) -> Path:
    """Write slate rounds as Open Bandit Pipeline-style slate bandit feedback (``.npz``).

    One entry per (round, position), rounds in order and positions 0..L-1 within each, as OBP's
    slate estimators (``SlateStandardIPS``, ``SlateIndependentIPS``,
    ``SlateRewardInteractionIPS``) read them. Keys: ``n_rounds``, ``n_unique_action`` (K, the
    candidate slots), ``len_list`` (L); per entry (n * L,): ``slate_id``, ``position``,
    ``action`` (the slot), ``reward`` (the round's reward at its clicked position; a reward
    without a click at the last position), ``pscore`` (the logger's probability of the whole
    slate), ``pscore_item_position`` (of the slot at that position), ``pscore_cascade`` (of the
    slate's prefix up to that position), and the target's ``evaluation_policy_pscore``,
    ``evaluation_policy_pscore_item_position``, ``evaluation_policy_pscore_cascade``;
    ``context`` (n, p) the user vectors. With ``slate_q`` (:func:`fit_slate_q_model`), also what
    OBP's ``SlateCascadeDoublyRobust`` takes: ``q_hat`` (n * L * K,) the Q-model of every slot at
    every position and ``evaluation_policy_action_dist`` (n * L * K,) the target's distribution of
    each position's slot given the logged slots above it, entries in (round, position, slot)
    order.
    """
    assert rounds.slate is not None and rounds.clicked_position is not None
    assert rounds.logged_prefix is not None and rounds.target_prefix is not None
    assert rounds.logged_position is not None and rounds.target_position is not None
    n, size = rounds.slate.shape
    where = np.where(rounds.clicked_position >= 0, rounds.clicked_position, size - 1)
    reward = np.zeros((n, size))
    reward[np.arange(n), where] = rounds.reward
    whole = np.repeat(rounds.pscore[:, None], size, axis=1)
    target_whole = np.repeat(rounds.target_prefix[:, -1:], size, axis=1)
    extra: dict[str, np.ndarray] = {}
    if slate_q is not None:
        assert rounds.target_conditional is not None
        extra = {
            "q_hat": slate_q.reshape(-1),
            "evaluation_policy_action_dist": rounds.target_conditional.reshape(-1),
        }
    dest = Path(path)
    with atomic_file(dest) as fh:
        np.savez(
            fh,
            **extra,
            n_rounds=np.int64(n),
            n_unique_action=np.int64(rounds.k),
            len_list=np.int64(size),
            slate_id=np.repeat(np.arange(n, dtype=np.int64), size),
            position=np.tile(np.arange(size, dtype=np.int64), n),
            action=rounds.slate.reshape(-1),
            reward=reward.reshape(-1),
            pscore=whole.reshape(-1),
            pscore_item_position=rounds.logged_position.reshape(-1),
            pscore_cascade=rounds.logged_prefix.reshape(-1),
            evaluation_policy_pscore=target_whole.reshape(-1),
            evaluation_policy_pscore_item_position=rounds.target_position.reshape(-1),
            evaluation_policy_pscore_cascade=rounds.target_prefix.reshape(-1),
            context=rounds.user.astype(np.float64),
        )
    return dest


def evaluate_off_policy(
    log_path: str | os.PathLike[str],
    policy_spec: Any,
    *,
    estimators: Sequence[str] | None = None,
    logged_policy: str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    export_dir: str | os.PathLike[str] | None = None,
    with_ground_truth: bool = True,
    n_folds: int = 2,
    seed: int = 0,
) -> OPEResult:
    """Estimate a target policy's value per step from a step log.

    Args:
        log_path: a step log made by a stochastic logging policy.
        policy_spec: ``make_policy`` spec, ``(label, policy)`` pair or policy object.
        estimators: which of ``ips``, ``snips``, ``dm``, ``dr`` to compute (default: all). On a
            slate log also ``iips``, ``sniips``, ``rips`` and ``snrips``, and ``dm`` and ``dr``
            are slate DM and Cascade-DR (default there: all eight, less those the log or the
            target cannot give, with a note). On any log ``pdis``, ``wpdis``, ``fqe``,
            ``pddr`` and ``wdr``, by name only: the return per episode (their
            :class:`Estimate` has ``unit="episode"``).
        logged_policy: the logging policy's label (when the log holds several).
        out_dir: also write ``out_dir/ope.csv``.
        export_dir: also write ``export_dir/bandit_feedback.npz``.
        with_ground_truth: run the target on the same scenario, seeds and episodes for the truth.
        n_folds: cross-fitting folds of the reward model, or of a slate log's Q-model (episodes
            are split at random; each fold's rewards are predicted by a model fitted on the
            others). 1 fits one model on
            every episode, without cross-fitting; more folds than episodes means one per episode.
        seed: seed of the fold assignment.
    """
    if estimators is not None and not isinstance(estimators, str):
        estimators = list(estimators)  # read once: a generator is used up by the check below
    if isinstance(estimators, str) or (estimators is not None and not estimators):
        # A plain string would be read letter by letter ('i' is unknown), [] as "all".
        raise LogError(
            f"estimators: {estimators!r} (expected None for the log's defaults, or a non-empty "
            f"list of names among {', '.join(ALL_ESTIMATORS)})"
        )
    from .runner import _is_integer

    if not _is_integer(seed) or seed < 0:
        raise LogError(f"seed: {seed!r} (expected an integer >= 0, the folds' seed)")
    chosen = estimators
    estimators = tuple(dict.fromkeys(estimators or ESTIMATORS))  # one row each: ips given twice
    unknown = [e for e in estimators if e not in ALL_ESTIMATORS]
    if unknown:
        raise LogError(
            f"estimators: {unknown[0]!r} is unknown (expected one of: {', '.join(ALL_ESTIMATORS)})"
        )
    if not _is_integer(n_folds) or n_folds < 1:
        raise LogError(f"n_folds: {n_folds!r} (expected an integer >= 1)")
    n_folds = int(n_folds)
    for name, folder, file in (
        ("out_dir", out_dir, "ope.csv"),
        ("export_dir", export_dir, "bandit_feedback.npz"),
    ):
        if folder is not None:
            check_out(folder, name, (file,))
    log = read_step_log(log_path)
    slates = log.scenario().candidates.slate_size > 1
    if slates and not chosen:
        estimators = SLATE_ESTIMATORS
    refuse_slate_estimators(log, estimators)
    rows = log.for_policy(logged_policy)
    logged_label = str(rows["policy"].iloc[0])
    precheck_policy(policy_spec)
    label, policy = resolve_policy(policy_spec, load_world(log))
    rounds = collect_rounds(log, policy, logged_policy=logged_label)
    support = check_support(rounds)
    notes = [f"warning: {line}" for line in trained_elsewhere(label, policy, log)]
    families = (POSITION_ESTIMATORS, PREFIX_ESTIMATORS, ("dm",), ("dr",), RETURN_MODEL_ESTIMATORS)
    for family in families if slates else ():
        asked = [e for e in estimators if e in family]
        problem = _unknown_propensities(rounds, log.path, label, asked[0]) if asked else None
        if problem is not None and chosen:
            raise LogError(problem)
        if problem is not None:  # the default set: leave the family out, with a note
            estimators = tuple(e for e in estimators if e not in family)
            notes.append(f"note: no {' or '.join(family)}: {problem}")
    if slates and export_dir is not None:
        problem = _unknown_propensities(rounds, log.path, label, "iips") or _unknown_propensities(
            rounds, log.path, label, "rips"
        )
        if problem is not None:
            raise LogError(f"export_dir: {problem}")
    # Slate logs: DM and DR use the slate Q-model (Cascade-DR); the others need no model.
    # The export carries the Q-model too, whenever the target gives the tables it needs.
    modelled = any(e in ("dm", "dr") for e in estimators)
    exported = (
        slates
        and export_dir is not None
        and _unknown_propensities(rounds, log.path, label, "dm") is None
    )
    slate_q = (
        fit_slate_q_model(rounds, n_folds=n_folds, rng=seed)
        if slates and (modelled or exported)
        else None
    )
    q_hat = (
        np.zeros((rounds.n, rounds.k))
        if slates
        else fit_reward_model(rounds, n_folds=n_folds, rng=seed)
    )
    value_model = (
        fit_value_model(rounds, horizon=log.scenario().episode.horizon, n_folds=n_folds, rng=seed)
        if any(e in RETURN_MODEL_ESTIMATORS for e in estimators)
        else None
    )
    results = estimate_all(rounds, q_hat, estimators, slate_q=slate_q, value_model=value_model)
    if slates:
        notes.append(
            "note: slate log: ips and snips weight each round by the target's probability of the "
            "whole logged slate over the logger's (standard slate IPS); the support check covers "
            "the first position only"
        )
    if slates and any(e in POSITION_ESTIMATORS for e in estimators):
        notes.append(
            "note: iips and sniips weight a click at position l by the ratio of the probabilities "
            "that position l holds its logged item (the item-position marginals), as if each "
            "position's reward depended on its own item only; this simulator's users choose among "
            "the whole slate, so they trade the most bias for the largest effective samples"
        )
    if slates and any(e in PREFIX_ESTIMATORS for e in estimators):
        notes.append(
            "note: rips and snrips weight a click at position l by the ratio of the slate's first "
            "l + 1 slots only (the cascade assumption: a click depends on the items above it, not "
            "below); this simulator's users choose among the whole slate, so they trade a bias "
            "wherever the target changes later positions for far larger effective samples"
        )
    # The least overlap among the weighted estimators run (slate IPS's whole-slate weights overlap
    # far less than IIPS's per position), whichever order they were asked for in.
    weighted = sorted(
        (e.ess, e.estimator) for e in results if e.estimator != "dm" and e.unit == "step"
    )
    if value_model is not None:
        notes.append(
            "note: fqe is the value model's own estimate of the return per episode (fitted-Q "
            "evaluation of the target, one ridge regression refitted step by step from the end, "
            "cross-fitted by episode): like DM, its model CI leaves out the model's error, "
            "which is large where the target acts unlike the logger (the model extrapolates "
            "there; the episodes' ESS says how much the log shows of the target's sessions); "
            "pddr is the per-decision doubly robust estimate, pdis with that model as control "
            "variate: right when the propensities are, whatever the model, and less variable "
            "where the model is good, but where the weights vanish along a session it is the "
            "model's; wdr is pddr weighted as wpdis is (consistent, less variable)"
        )
    # An absolute floor, not a share of the rounds: a uniform logger over K slots gives a
    # deterministic target an ESS of n/K, which is as good as that logger gets and well served
    # by the interval; what breaks the normal interval is a handful of effective rounds.
    # (A deterministic target on a deterministic logger's own rounds: ESS n, give or take the
    # float rounding of (sum w)^2 / sum w^2.)
    if rounds.n and weighted and weighted[0][0] < MIN_ESS * (1 - 1e-9):
        ess, name = weighted[0][0], _least_overlap(weighted)
        notes.append(
            f"warning: low overlap (effective sample size {ess:.1f} of {rounds.n} rounds, "
            f"{name}, under {MIN_ESS}); the weighted estimates and their normal intervals are "
            "unreliable"
        )
    per_episode = sorted(
        (e.ess, e.estimator) for e in results if e.unit == "episode" and e.estimator != "fqe"
    )
    n_episodes = int(rounds.cluster.max()) + 1 if rounds.n else 0
    if rounds.n and per_episode and per_episode[0][0] < MIN_EPISODE_ESS * (1 - 1e-9):
        ess, name = per_episode[0][0], _least_overlap(per_episode)
        notes.append(
            f"warning: low overlap along the episodes (effective sample size {ess:.1f} of "
            f"{n_episodes} episodes, {name}, under {MIN_EPISODE_ESS}); the weighted estimates "
            "of the return per episode and their normal intervals are unreliable"
        )
    if rounds.n and int(rounds.cluster.max()) < 1:
        notes.append(
            "warning: the log holds 1 episode, so there are no intervals (nan): the standard "
            "errors are cluster-robust by episode (expected at least 2 episodes)"
        )
    if slates and modelled:
        notes.append(
            "note: dm and dr on a slate log use a Q-model of the reward from each position on, "
            "fitted position by position from the last (fitted-Q evaluation with the target's "
            "distribution of each position given the slots above); dr is Cascade-DR: rips's "
            "weights with that model as control variate, so it keeps rips's cascade assumption "
            "and its bias, with a smaller variance where the model is good"
        )
    if "dm" in estimators:
        notes.append(
            "note: DM's interval covers the averaging over logged contexts only, not the reward "
            "model's own error: where the model is wrong, DM is biased and its interval too narrow "
            "(DR's stays valid when the propensities are right)"
        )
    episodic = [e for e in estimators if e in EPISODE_ESTIMATORS]
    reweighted = [e for e in episodic if e != "fqe"]
    if episodic:
        notes.append(
            f"note: {' and '.join(episodic)} estimate the target's return per episode (the sum of "
            "its rewards over a session, not a mean per step), so they include how the target "
            "changes later states"
            + (
                f"; {' and '.join(reweighted)} weight each step's reward by the ratio of the "
                "target's to the logger's probability of the episode's actions up to that step, "
                "so their variance grows with the session length (ESS: of the whole episodes' "
                "weights)"
                if reweighted
                else ""
            )
        )
    if log.scenario().episode.horizon > 1 and len(episodic) < len(estimators):
        note = (
            "note: episodes have several steps; these are per-step estimates on the logged states, "
            "which ignore how the target would change later states (exact for one-step episodes"
            "; the estimators pdis / wpdis estimate its return per episode, which includes that)"
        )
        if with_ground_truth:  # the rest is about the truth column, absent otherwise
            note += (
                "; the truth is the target's per-step reward on its own sessions, so truth and "
                "estimate differ where the target changes later states (fatigue, patience), and "
                "the relative error measures that as well as the estimator's error"
            )
        notes.append(note)
    if with_ground_truth:
        per_step, per_episode = ground_truths(log, policy, label, logged_policy=logged_label)
        results = [
            Estimate(
                e.estimator,
                e.estimate,
                e.ci_low,
                e.ci_high,
                e.ess,
                truth,
                (e.estimate - truth) / abs(truth) if truth != 0 else float("nan"),
                e.unit,
            )
            for e, truth in ((e, per_episode if e.unit == "episode" else per_step) for e in results)
        ]
    result = OPEResult(
        policy=label,
        logged_policy=logged_label,
        n_rounds=rounds.n,
        n_episodes=int(rounds.cluster.max()) + 1 if rounds.n else 0,
        estimates=results,
        support=support,
        notes=notes,
    )
    try:  # both files or neither: a failed export takes the table it followed with it
        if out_dir is not None:
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            dest = out / "ope.csv"
            atomic_write(dest, result.table().to_csv(index=False))
            result.files.append(dest)
        if export_dir is not None:
            dest = Path(export_dir) / "bandit_feedback.npz"
            result.files.append(
                export_slate_bandit_feedback(dest, rounds, slate_q)
                if slates
                else export_bandit_feedback(dest, rounds, q_hat)
            )
    except BaseException:
        for written in result.files:
            written.unlink(missing_ok=True)
        raise
    return result
