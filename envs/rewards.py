"""Named reward functions of the per-step feedback.

Each reward is a plain function ``f(feedback, cfg) -> (N,) float64`` registered in ``REWARDS``; the
scenario's ``reward.name`` picks one. Add your own with :func:`register_reward`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..scenarios.schema import SHIPPED_REWARDS, Scenario, allow_reward_name


@dataclass(frozen=True)
class Feedback:
    """What the users did at one step; every field has shape (N,)."""

    clicked: np.ndarray  # bool
    rating: np.ndarray  # float, 0 when not clicked
    dwell: np.ndarray  # seconds, 0 when not clicked
    affinity: np.ndarray  # hidden cos(theta, item)
    left: np.ndarray  # bool, the user churned at this step
    shown: np.ndarray  # bool, a valid item was shown


RewardFn = Callable[[Feedback, Scenario], np.ndarray]


def click_reward(fb: Feedback, sc: Scenario) -> np.ndarray:
    """1 per click."""
    return fb.clicked.astype(np.float64)


def rating_reward(fb: Feedback, sc: Scenario) -> np.ndarray:
    """rating / 5 on a click, else 0."""
    return np.where(fb.clicked, fb.rating / 5.0, 0.0)


def dwell_reward(fb: Feedback, sc: Scenario) -> np.ndarray:
    """dwell / dwell_scale (0 without a click)."""
    return fb.dwell / sc.response.dwell_scale


def engagement_reward(fb: Feedback, sc: Scenario) -> np.ndarray:
    """w_click*click + w_rating*rating/5 + w_dwell*dwell/dwell_scale + w_leave*left."""
    w = sc.reward
    return (
        w.click * click_reward(fb, sc)
        + w.rating * rating_reward(fb, sc)
        + w.dwell * dwell_reward(fb, sc)
        + w.leave * fb.left.astype(np.float64)
    )


def cosine_reward(fb: Feedback, sc: Scenario) -> np.ndarray:
    """relu(cos(theta_u, e_item) + 1) for the shown item, clicked or not (0 for an invalid action)."""
    return np.where(fb.shown, np.maximum(fb.affinity + 1.0, 0.0), 0.0)


REWARDS: dict[str, RewardFn] = {
    "click": click_reward,
    "rating": rating_reward,
    "dwell": dwell_reward,
    "engagement": engagement_reward,
    "cosine": cosine_reward,
}


def register_reward(name: str, fn: RewardFn) -> None:
    """Make ``fn`` the reward of scenarios with ``reward.name: NAME``.

    Register before loading such a scenario, in every process that loads it (a scenario or a log
    that names an unregistered reward fails validation with the list of known names).

    Args:
        name: a new name (a shipped reward cannot be replaced: scenarios naming it would change
            meaning without a word).
        fn: ``fn(feedback, scenario) -> (N,) float64``, from :class:`Feedback` (every field (N,)).

    Raises:
        ValueError: an empty or shipped ``name``, or a ``fn`` that is not callable.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"register_reward: name {name!r} (expected a non-empty string)")
    if name in SHIPPED_REWARDS:
        raise ValueError(f"register_reward: {name!r} is a shipped reward (expected a new name)")
    if not callable(fn):
        raise ValueError(f"register_reward: {name!r}: fn is not callable")
    REWARDS[name] = fn
    allow_reward_name(name)


def compute_reward(fb: Feedback, sc: Scenario) -> np.ndarray:
    """The scenario's reward, shape (N,).

    Raises:
        ValueError: a registered reward returned something other than N finite numbers (a
            scalar used to pass through the batched VecEnv, which SB3 then spread to every user).
    """
    name = sc.reward.name
    out = REWARDS[name](fb, sc)
    if name in SHIPPED_REWARDS:
        return out
    n = fb.clicked.shape[0]
    try:
        values = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"reward {name!r}: returned {type(out).__name__} (expected an ({n},) float array, "
            "one reward per user)"
        ) from None
    if values.shape != (n,):
        raise ValueError(
            f"reward {name!r}: returned shape {values.shape} (expected ({n},), one reward per user)"
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"reward {name!r}: returned a non-finite value (expected finite rewards)")
    return values
