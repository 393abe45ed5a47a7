"""Per-candidate features of the observation, computed from what a recommender can see.

Everything here is derived from the visible interaction history (which items were shown, clicked
or skipped, and when), the catalog's public metadata (popularity, topic, arrival) and the clock;
never from the hidden taste, patience or fatigue of the user.

Shapes: R rows (users), K candidates, W history window, F = :data:`N_FEATURES`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .simulator import UserBatch

FEATURE_NAMES = (
    "log_popularity",
    "is_new_item",
    "recently_shown",
    "topic_share_recent",
    "user_has_no_state",
    "session_progress",
    "click_similarity",
    "skip_similarity",
    "topic_exposure",
    "topic_click_rate",
    "recent_click_similarity",
    "recent_skip_similarity",
    "last_click_similarity",
    "recent_skip_share",
)
N_FEATURES = len(FEATURE_NAMES)
# Bounds of each feature, for the observation space.
FEATURE_LOW = np.array([-3, 0, 0, 0, 0, 0, -1, -1, 0, 0, -1, -1, -1, 0], dtype=np.float32)
FEATURE_HIGH = np.array([3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], dtype=np.float32)
# Recency weight per step of age for the topic exposure (a half-life of about three steps).
EXPOSURE_DECAY = 0.8
# Recency weight per step of age for the short-term evidence (a half-life of one step). The pooled
# user state and the window means above move slowly, so after an interest change they keep
# pointing at the old taste for many steps; these features follow the last few events.
RECENT_DECAY = 0.5


def candidate_features(users: UserBatch, idx: np.ndarray) -> np.ndarray:
    """Features of the current candidates of rows ``idx``, (R, K, F) float32 in the given bounds."""
    w = users.world
    cand = users.cand[idx]
    hist = users.hist_item[idx]
    hist_valid = hist >= 0
    feats = np.empty((idx.size, users.k, N_FEATURES), dtype=np.float32)
    feats[..., 0] = np.clip(w.log_pop_rel[cand] / 5.0, -3.0, 3.0)
    feats[..., 1] = w.arrival[cand] > 0
    feats[..., 2] = ((cand[:, :, None] == hist[:, None, :]) & hist_valid[:, None, :]).any(axis=2)
    hist_topic = np.where(hist_valid, w.primary_topic[np.maximum(hist, 0)], -1)
    cand_topic = w.primary_topic[cand]
    same = cand_topic[:, :, None] == hist_topic[:, None, :]  # (R, K, W): same topic as a shown item
    n_same = same.sum(axis=2)
    n_hist = np.maximum(hist_valid.sum(axis=1), 1)[:, None]
    feats[..., 3] = n_same / n_hist
    feats[..., 4] = (~users._has_state[idx])[:, None]
    feats[..., 5] = (users.t[idx] / users.sc.episode.horizon)[:, None]

    # Evidence from feedback: how much a candidate resembles what this user clicked, and what
    # they skipped, in the window (cosines of the projected item vectors).
    clicked = hist_valid & users.hist_click[idx]
    skipped = hist_valid & ~users.hist_click[idx]
    unit = w.item_unit_proj
    sim = np.einsum("rkp,rwp->rkw", unit[cand], unit[np.maximum(hist, 0)])
    n_click = clicked.sum(axis=1)[:, None]
    n_skip = skipped.sum(axis=1)[:, None]
    # Clipped: float32 cosines of an item with itself can exceed 1 in the last bit.
    feats[..., 6] = np.clip((sim * clicked[:, None, :]).sum(axis=2) / np.maximum(n_click, 1), -1, 1)
    feats[..., 7] = np.clip((sim * skipped[:, None, :]).sum(axis=2) / np.maximum(n_skip, 1), -1, 1)
    # The topic's recent exposure (recency weighted, newest weight 1, scaled into [0, 1]) and
    # the share of this topic's recent recommendations that were clicked.
    win = hist.shape[1]
    recency = (EXPOSURE_DECAY ** np.arange(win - 1, -1, -1)).astype(np.float32)
    feats[..., 8] = (same * recency).sum(axis=2) * np.float32(1.0 - EXPOSURE_DECAY)
    feats[..., 9] = (same & clicked[:, None, :]).sum(axis=2) / (n_same + 1.0)

    # Short-term evidence on a second time scale: the same cosines, weighted by recency with a
    # half-life of one step, the cosine to the most recent click, and how much of the recent past
    # was skipped (a skip streak is the visible sign that the taste moved away).
    fast = (RECENT_DECAY ** np.arange(win - 1, -1, -1)).astype(np.float32)
    w_click = clicked * fast
    w_skip = skipped * fast
    w_click_sum = w_click.sum(axis=1)[:, None]
    w_skip_sum = w_skip.sum(axis=1)[:, None]
    feats[..., 10] = np.clip(
        np.matmul(sim, w_click[:, :, None])[..., 0] / np.maximum(w_click_sum, 1e-6), -1, 1
    )
    feats[..., 11] = np.clip(
        np.matmul(sim, w_skip[:, :, None])[..., 0] / np.maximum(w_skip_sum, 1e-6), -1, 1
    )
    last = np.where(clicked, np.arange(win), -1).max(axis=1)
    last_sim = np.take_along_axis(sim, np.maximum(last, 0)[:, None, None], axis=2)[..., 0]
    feats[..., 12] = np.where(last[:, None] >= 0, np.clip(last_sim, -1, 1), 0.0)
    w_all = w_click_sum + w_skip_sum
    feats[..., 13] = np.where(w_all > 0, w_skip_sum / np.maximum(w_all, 1e-6), 0.0)
    return feats
