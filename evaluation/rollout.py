"""Running policies on a scenario and recording every step.

All policies see the same users, candidates and random numbers for a given (seed, episode): the
env is reset with ``seed`` at the first episode and continues its own stream after, and every draw a
user makes is keyed by its episode key (see ``lmrecsim.envs.rng``). Comparisons are paired.

Slates (``candidates.slate_size`` L > 1): a step's action is an (L,) slate. Its row in the step
log describes the item the step's feedback is about (the clicked item, or the first item shown
when nothing was clicked): ``action`` is that item's slot, ``clicked_position`` its position (-1:
no click), ``propensity`` the policy's probability of the whole ordered slate; the slate itself
is in :class:`StepArrays` (``slate_slots``, ``slate_items``). A single-item step is a slate of
one: ``slate_slots = [action]``, ``clicked_position`` 0 on a click.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..agents.base import Policy
from ..envs.env import RecommendationEnv
from ..envs.simulator import check_actions, check_slates
from ..envs.world import World
from .errors import EvaluationError

# Per-step scalar columns of the step log, in order.
STEP_FIELDS = (
    "policy",
    "seed",
    "episode",
    "step",
    "user_id",
    "is_new_user",
    "action",
    "item_index",
    "item_id",
    "clicked",
    "clicked_position",
    "rating",
    "dwell",
    "reward",
    "terminated",
    "truncated",
    "popularity_rank",
    "is_new_item",
    "affinity",
    "drift_event",
    "drift_phase",
    "invalid_action",
    "propensity",
)


@dataclass
class StepArrays:
    """Per-step arrays that do not fit a flat table, aligned with the rows of the step log.

    Shapes: (n_steps, K) for the candidate arrays; (n_steps, L) for ``slate_slots`` (the action's
    slots) and ``slate_items`` (catalog index of the item each position showed, -1 where it showed
    nothing); L = 1 for single-item steps. ``probabilities`` are the first position's.
    """

    NAMES: ClassVar[tuple[str, ...]] = (
        "candidate_items",
        "candidate_affinity",
        "mask",
        "scores",
        "probabilities",
        "slate_slots",
        "slate_items",
        "prefix_propensities",
        "position_propensities",
    )

    candidate_items: list[np.ndarray] = field(default_factory=list)
    candidate_affinity: list[np.ndarray] = field(default_factory=list)
    mask: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    probabilities: list[np.ndarray] = field(default_factory=list)
    slate_slots: list[np.ndarray] = field(default_factory=list)
    slate_items: list[np.ndarray] = field(default_factory=list)
    prefix_propensities: list[np.ndarray] = field(default_factory=list)
    position_propensities: list[np.ndarray] = field(default_factory=list)

    def stacked(self) -> dict[str, np.ndarray]:
        """The arrays stacked to (n_steps, K) or (n_steps, L) each (empty (0, 0) arrays when
        there are no steps)."""
        out = {}
        for name in self.NAMES:
            rows = getattr(self, name)
            out[name] = np.stack(rows) if rows else np.zeros((0, 0))
        return out

    def extend(self, other: StepArrays) -> None:
        """Append the steps of ``other``."""
        for name in self.NAMES:
            getattr(self, name).extend(getattr(other, name))

    def take(self, rows: Sequence[int] | np.ndarray) -> StepArrays:
        """The steps at positions ``rows``, in that order."""
        return StepArrays(**{n: [getattr(self, n)[int(i)] for i in rows] for n in self.NAMES})


def step_feedback(
    info: dict[str, Any], reward: float, terminated: bool, truncated: bool
) -> dict[str, Any]:
    """The step-log fields an env step determines (user, item, feedback, episode end).

    ``rating`` is NaN without a click; everything is a plain Python scalar. ``clicked_position``
    is the info's (slates), or 0 / -1 for a clicked / unclicked single-item step.
    """
    clicked = bool(info["clicked"])
    position = (
        int(info["clicked_position"]) if "clicked_position" in info else (0 if clicked else -1)
    )
    return {
        "step": int(info["step"]),
        "user_id": int(info["user_id"]),
        "is_new_user": bool(info["is_new_user"]),
        "item_index": int(info["item_index"]),
        "item_id": str(info.get("item_id", "")),
        "clicked": clicked,
        "clicked_position": position,
        "rating": float(info["rating"]) if info["clicked"] else float("nan"),
        "dwell": float(info["dwell"]),
        "reward": float(reward),
        "terminated": bool(terminated),
        "truncated": bool(truncated),
        "popularity_rank": int(info["popularity_rank"]),
        "is_new_item": bool(info["is_new_item"]),
        "affinity": float(info["affinity"]),
        "drift_event": bool(info.get("drift_event", False)),
        "drift_phase": float(info.get("drift_phase", 0.0)),
        "invalid_action": bool(info["invalid_action"]),
    }


def step_row(
    *,
    label: str,
    seed: int,
    episode: int,
    action: int,
    propensity: float,
    reward: float,
    terminated: bool,
    truncated: bool,
    info: dict[str, Any],
) -> tuple[Any, ...]:
    """One row of the step log, in ``STEP_FIELDS`` order."""
    values = step_feedback(info, reward, terminated, truncated)
    values.update(
        policy=label,
        seed=int(seed),
        episode=int(episode),
        action=int(action),
        propensity=float(propensity),
    )
    return tuple(values[k] for k in STEP_FIELDS)


def slate_record(action: Any, info: dict[str, Any]) -> tuple[int, np.ndarray, np.ndarray]:
    """``(slot, slate_slots, slate_items)`` of one step for the log.

    ``slot`` is the slot of the item the step's info describes (slates: the clicked position's
    slot, else the first position that showed an item, else position 0's); ``slate_slots`` (L,)
    the action's slots and ``slate_items`` (L,) the item each position showed (-1: nothing).
    A single-item step (no ``slate_items`` in the info) is a slate of one.
    """
    if "slate_items" in info:
        slots = np.asarray(info["slate_slots"], dtype=np.int64).reshape(-1)
        items = np.asarray(info["slate_items"], dtype=np.int64).reshape(-1)
        position = int(info["clicked_position"])
        if position < 0:
            shown = np.flatnonzero(items >= 0)
            position = int(shown[0]) if shown.size else 0
        return int(slots[position]), slots.copy(), items.copy()
    slot = int(action)
    item = -1 if bool(info["invalid_action"]) else int(info["item_index"])
    return slot, np.array([slot], dtype=np.int64), np.array([item], dtype=np.int64)


def policy_probabilities(
    policy: Any, obs: dict[str, np.ndarray], action: int, label: str = "policy"
) -> np.ndarray:
    """The policy's action probabilities (K,); a one-hot on ``action`` for deterministic policies.

    Raises:
        EvaluationError: ``action_probabilities`` returned something that is not numbers.
    """
    fn = getattr(policy, "action_probabilities", None)
    if callable(fn):
        got = fn(obs)
        try:
            return np.asarray(got, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise EvaluationError(
                f"policy {label!r}: action_probabilities returned {got!r:.60} (expected "
                f"{obs['action_mask'].shape[0]} probabilities, one per slot)"
            ) from None
    probs = np.zeros(obs["action_mask"].shape[0], dtype=np.float64)
    probs[action] = 1.0
    return probs


def policy_prefix_propensities(
    policy: Any,
    obs: dict[str, np.ndarray],
    slate: np.ndarray,
    first: np.ndarray | None = None,
) -> np.ndarray:
    """(L,) the policy's probability of ``slate``'s first 1, 2, ..., L slots; the last is the
    whole ordered slate's, the step's propensity.

    ``prefix_probabilities(obs, slate)`` when the policy has it. Otherwise a policy without
    ``action_probabilities`` is deterministic, as for single items (1.0 throughout); one with
    them gives the first prefix's, its first-position distribution's entry for ``slate[0]``
    (``first``, (K,), when the caller has it already), the whole slate's from
    ``slate_probability(obs, slate)`` when it has that, and the prefixes between are unknown
    (NaN), as is the whole slate's without ``slate_probability`` (a stochastic policy that does
    not say how likely its slates are).
    """
    fn = getattr(policy, "prefix_probabilities", None)
    if callable(fn):
        return np.asarray(fn(obs, slate), dtype=np.float64).reshape(-1)
    slate = np.asarray(slate).reshape(-1)
    out = np.full(slate.size, np.nan)
    probs_fn = getattr(policy, "action_probabilities", None)
    if not callable(probs_fn):
        out[:] = 1.0
        return out
    if first is None:
        first = np.asarray(probs_fn(obs), dtype=np.float64).reshape(-1)
    out[0] = float(first[int(slate[0])])
    whole = getattr(policy, "slate_probability", None)
    if callable(whole):
        out[-1] = float(whole(obs, slate))
    return out


def policy_conditional_propensities(
    policy: Any, obs: dict[str, np.ndarray], slate: np.ndarray
) -> np.ndarray:
    """(L, K) the policy's distribution of each position's slot given that the earlier positions
    hold ``slate``'s (:mod:`lmrecsim.agents.conditionals`).

    ``conditional_probabilities(obs, slate)`` when the policy has it; otherwise unknown (NaN). A
    policy without ``action_probabilities`` is deterministic, and its table is built from the
    slate it predicts (by the caller, which has that slate).
    """
    fn = getattr(policy, "conditional_probabilities", None)
    slate = np.asarray(slate).reshape(-1)
    if callable(fn):
        return np.asarray(fn(obs, slate), dtype=np.float64).reshape(slate.size, -1)
    return np.full((slate.size, np.asarray(obs["action_mask"]).shape[-1]), np.nan)


def policy_position_propensities(
    policy: Any, obs: dict[str, np.ndarray], slate: np.ndarray, prefix: np.ndarray
) -> np.ndarray:
    """(L,) the policy's probability that position l holds ``slate``'s slot l, each position on
    its own (the item-position marginals).

    ``position_probabilities(obs, slate)`` when the policy has it. Otherwise the first position's
    is the first prefix's (``prefix``, from :func:`policy_prefix_propensities`), the others are
    unknown (NaN), and a policy without ``action_probabilities`` is deterministic (1.0
    throughout), as for prefixes.
    """
    fn = getattr(policy, "position_probabilities", None)
    if callable(fn):
        return np.asarray(fn(obs, slate), dtype=np.float64).reshape(-1)
    out = np.full(np.asarray(slate).size, np.nan)
    out[0] = prefix[0]
    if not callable(getattr(policy, "action_probabilities", None)):
        out[:] = 1.0
    return out


def checked_outputs(
    label: str, k: int, probs: np.ndarray, scores: Any, chosen: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """A policy's ``action_probabilities`` (K,) and ``scores`` (K,) or None, checked; anything
    else is a one-line :class:`EvaluationError` naming the policy and the method (it used to
    surface later as numpy's shape errors or a ranking metric's NaN complaint). With ``chosen``
    (the slot its ``predict`` took, the first of a slate), that slot's probability must be
    positive: a logged propensity of 0 for the action taken made a log that off-policy
    evaluation can only refuse."""

    def refuse(method: str, what: str, expected: str) -> EvaluationError:
        return EvaluationError(f"policy {label!r}: {method} returned {what} (expected {expected})")

    if probs.shape != (k,):
        raise refuse("action_probabilities", f"shape {probs.shape}", f"({k},), one per slot")
    if not (np.isfinite(probs).all() and (probs >= 0).all() and abs(probs.sum() - 1.0) < 1e-6):
        shown = np.array2string(probs, precision=3, threshold=8)
        raise refuse("action_probabilities", shown, f"{k} probabilities >= 0 summing to 1")
    if chosen is not None and not probs[chosen] > 0:
        raise refuse(
            "action_probabilities",
            f"0 for slot {chosen}, which its predict chose",
            "a positive probability for the action the policy takes",
        )
    if scores is None:
        return probs, None
    try:
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise refuse("scores", repr(scores)[:60], f"{k} numbers, one per slot") from None
    if values.shape != (k,) or np.isnan(values).any():
        what = f"shape {values.shape}" if values.shape != (k,) else "NaN"
        raise refuse("scores", what, f"{k} numbers (-inf for masked slots), one per slot")
    return probs, values


def call_predict(
    policy: Any,
    obs: dict[str, np.ndarray],
    *,
    label: str,
    state: Any,
    episode_start: np.ndarray,
    deterministic: bool,
) -> tuple[Any, Any]:
    """``policy.predict(...)`` as ``(action, state)``, or a one-line error naming the policy when
    it returns anything else (a bare action: a 2-slot slate would be read as action and state)."""
    out = policy.predict(obs, state=state, episode_start=episode_start, deterministic=deterministic)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise EvaluationError(
            f"policy {label!r}: predict returned a {type(out).__name__}, not a pair (expected "
            "(action, state), the stable-baselines3 predict signature; state may be None)"
        )
    return out


def policy_slate(action: Any, label: str, k: int, size: int) -> np.ndarray:
    """The (L,) slate a policy's ``predict`` returned, or a one-line error naming the policy."""
    try:
        return check_slates(action, 1, k, size)[0]  # the env's own rule for a slate
    except ValueError:
        a = np.asarray(action)
        raise EvaluationError(
            f"policy {label!r}: predict returned action {a.tolist()!r} (expected a slate of {size} "
            f"integer candidate slots in [0, {k}), the scenario's candidates.slate_size)"
        ) from None


def policy_slot(action: Any, label: str, k: int) -> int:
    """The candidate slot a policy's ``predict`` returned, or a one-line error naming the policy."""
    try:
        return int(check_actions(action, 1, k)[0])  # the env's own rule for a slot
    except ValueError:
        a = np.asarray(action)
        shown = a.reshape(-1)[0] if a.size == 1 else a.tolist()
        raise EvaluationError(
            f"policy {label!r}: predict returned action {shown!r} (expected one integer candidate "
            f"slot in [0, {k}))"
        ) from None


def run_policy(
    world: World,
    policy: Policy,
    *,
    label: str,
    seeds: Sequence[int],
    episodes: int,
    deterministic: bool = True,
    on_step: Callable[[], None] | None = None,
    before_step: Callable[[RecommendationEnv, dict[str, np.ndarray]], None] | None = None,
) -> tuple[pd.DataFrame, StepArrays]:
    """Run ``policy`` for ``episodes`` episodes on each seed and record every step.

    Args:
        world: the scenario's world (shared with other runs so all policies see the same items).
        policy: anything with the SB3 ``predict`` signature.
        label: the policy's name in the log.
        seeds: evaluation seeds; the env is reset with each seed, then runs ``episodes`` episodes.
        episodes: episodes per seed.
        deterministic: passed to ``predict``.
        on_step: called after every step (progress bars).
        before_step: called with the env and observation before each decision (policies that read
            the simulator, such as the privileged oracle, use it).

    Returns:
        ``(steps, arrays)``: the step log with the columns of ``STEP_FIELDS`` and the aligned
        per-step candidate arrays. On a slate scenario ``predict`` must return (L,) slots (a
        wrong slate is a one-line :class:`EvaluationError` naming ``label``); the row describes
        the clicked (or first shown) item and ``propensity`` is ``slate_probability`` of the whole
        slate (see the module docstring).
    """
    env = RecommendationEnv(world=world)
    size = int(world.scenario.candidates.slate_size)
    rows: list[tuple[Any, ...]] = []
    arrays = StepArrays()
    binder = getattr(policy, "bind", None)
    if callable(binder):
        binder(env)
    for seed in seeds:
        for episode in range(episodes):
            obs, _ = env.reset(seed=int(seed) if episode == 0 else None)
            # A policy's own draws restart per episode, independent of the seeds' order.
            reseed_hook = getattr(policy, "reseed", None)
            if callable(reseed_hook):
                reseed_hook(int(seed), episode)
            reset_hook = getattr(policy, "reset", None)
            if callable(reset_hook):
                reset_hook()
            done = False
            episode_start = np.ones(1, dtype=bool)
            state = None
            while not done:
                if before_step is not None:
                    before_step(env, obs)
                fn = getattr(policy, "scores", None)
                scores = fn(obs) if callable(fn) else None
                action_arr, state = call_predict(
                    policy,
                    obs,
                    label=label,
                    state=state,
                    episode_start=episode_start,
                    deterministic=deterministic,
                )
                k = obs["action_mask"].shape[0]
                action: int | np.ndarray
                if size > 1:
                    action = policy_slate(action_arr, label, k, size)
                    probs = policy_probabilities(policy, obs, int(action[0]), label)
                    probs, scores = checked_outputs(label, k, probs, scores, int(action[0]))
                    prefix = policy_prefix_propensities(policy, obs, action, probs)
                    positions = policy_position_propensities(policy, obs, action, prefix)
                    propensity = float(prefix[-1])
                else:
                    action = policy_slot(action_arr, label, k)
                    probs = policy_probabilities(policy, obs, action, label)
                    probs, scores = checked_outputs(label, k, probs, scores, action)
                    propensity = float(probs[action])
                    prefix = positions = np.array([propensity])
                mask = obs["action_mask"].copy()
                next_obs, reward, terminated, truncated, inf = env.step(action)
                observe = getattr(policy, "observe", None)
                if callable(observe):
                    observe(obs, action, reward, inf)
                slot, slate_slots, slate_items = slate_record(action, inf)
                rows.append(
                    step_row(
                        label=label,
                        seed=int(seed),
                        episode=episode,
                        action=slot,
                        propensity=propensity,
                        reward=float(reward),
                        terminated=terminated,
                        truncated=truncated,
                        info=inf,
                    )
                )
                arrays.candidate_items.append(inf["candidate_items"])
                arrays.candidate_affinity.append(inf["candidate_affinity"])
                arrays.mask.append(mask)
                arrays.scores.append(scores if scores is not None else probs)
                arrays.probabilities.append(probs)
                arrays.slate_slots.append(slate_slots)
                arrays.slate_items.append(slate_items)
                arrays.prefix_propensities.append(prefix)
                arrays.position_propensities.append(positions)
                obs = next_obs
                episode_start = np.zeros(1, dtype=bool)
                done = terminated or truncated
                if on_step is not None:
                    on_step()
    steps = pd.DataFrame.from_records(rows, columns=list(STEP_FIELDS))
    return steps, arrays


def episode_returns(steps: pd.DataFrame) -> pd.DataFrame:
    """Return, clicks and length per (policy, seed, episode)."""
    g = steps.groupby(["policy", "seed", "episode"], sort=True)
    return g.agg(
        ret=("reward", "sum"), clicks=("clicked", "sum"), length=("step", "size")
    ).reset_index()
