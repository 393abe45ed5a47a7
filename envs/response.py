"""The user response model as plain functions of arrays (RecSim's decomposition, no classes).

All functions are elementwise over users: arrays of shape (N,).
"""

from __future__ import annotations

import numpy as np

from ..scenarios.schema import ResponseConfig


def click_logit(
    cfg: ResponseConfig,
    affinity: np.ndarray,
    log_pop_rel: np.ndarray,
    appeal: np.ndarray,
    fatigue: np.ndarray,
) -> np.ndarray:
    """Click logit ``beta*(s - center) + gamma*log_pop_rel + appeal_weight*appeal - fatigue + bias``.

    Args:
        affinity: (N,) hidden affinity s = cos(theta_u, e_i).
        log_pop_rel: (N,) log of the item's popularity relative to uniform (0 = average item).
        appeal: (N,) click-bait appeal of the item.
        fatigue: (N,) the user's fatigue for the item's primary topic.
    """
    return (
        cfg.beta * (affinity - cfg.affinity_center)
        + cfg.gamma * log_pop_rel
        + cfg.appeal_weight * appeal
        - fatigue
        + cfg.bias
    )


def click_probability(cfg: ResponseConfig, *args: np.ndarray) -> np.ndarray:
    """sigmoid(:func:`click_logit`), shape (N,)."""
    # exp overflows to inf for a logit below about -709 (a huge fatigue or bias), and 1 / inf is
    # the right 0: only numpy's warning line is silenced, no value changes.
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-click_logit(cfg, *args)))


def satisfaction(
    cfg: ResponseConfig, affinity: np.ndarray, quality: np.ndarray, noise: np.ndarray
) -> np.ndarray:
    """Satisfaction after consuming an item: ``scale*(s - center) + quality + noise_std*z``.

    Click-bait appeal does not enter: it wins the click, not the satisfaction.
    """
    return (
        cfg.satisfaction_scale * (affinity - cfg.affinity_center)
        + quality
        + cfg.satisfaction_noise * noise
    )


def rating_from_satisfaction(sat: np.ndarray) -> np.ndarray:
    """Rating 1-5: ``clip(round(3 + satisfaction), 1, 5)`` as float64."""
    return np.clip(np.rint(3.0 + sat), 1.0, 5.0)


def dwell_from_satisfaction(cfg: ResponseConfig, sat: np.ndarray) -> np.ndarray:
    """Dwell seconds: ``dwell_scale * exp(clip(satisfaction / 2, -4, 3))``."""
    return cfg.dwell_scale * np.exp(np.clip(0.5 * sat, -4.0, 3.0))
