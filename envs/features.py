"""Per-candidate features of the observation, computed from what a recommender can see.

Everything here is derived from the visible interaction history (which items were shown, clicked
or skipped, and when), the catalog's public metadata (popularity, topic, arrival) and the clock;
never from the hidden taste, patience or fatigue of the user.

The step computes them in one compiled pass (numba, :func:`candidate_features`); the whole-array
numpy form, :func:`candidate_features_reference`, is their readable definition and the test oracle.

Shapes: R rows (users), K candidates, W history window, F = :data:`N_FEATURES`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

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
    "session_clicks",
    "session_skips",
    "session_rating",
)
N_FEATURES = len(FEATURE_NAMES)
# Bounds of each feature, for the observation space.
FEATURE_LOW = np.array([-3, 0, 0, 0, 0, 0, -1, -1, 0, 0, -1, -1, -1, 0, 0, 0, -2], dtype=np.float32)
FEATURE_HIGH = np.array([3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2], dtype=np.float32)
# Recency weight per step of age for the topic exposure (a half-life of about three steps). With
# slates the history holds L events per step; the events of one step share its weight (divided
# by L for the exposure, which stays in [0, 1]).
EXPOSURE_DECAY = 0.8
# Recency weight per step of age for the short-term evidence (a half-life of one step). The pooled
# user state and the window means above move slowly, so after an interest change they keep
# pointing at the old taste for many steps; these features follow the last few events.
RECENT_DECAY = 0.5


def candidate_features_reference(users: UserBatch, idx: np.ndarray) -> np.ndarray:
    """The features of :func:`candidate_features` in whole-array numpy (the slow reference path).

    About forty numpy calls over (R, K, W) arrays; kept as the readable definition that the
    compiled kernel is tested against.
    """
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
    # the smoothed click rate of its recent recommendations: clicks / (times shown + 1), so one
    # click of one showing reads 0.5 and a topic not shown 0.
    # Recency is counted in steps: a slate of L items adds L events per step (weight / L each,
    # so the exposure stays in [0, 1]).
    win = hist.shape[1]
    age = np.arange(win - 1, -1, -1) // users.slate
    recency = (EXPOSURE_DECAY**age / users.slate).astype(np.float32)
    feats[..., 8] = (same * recency).sum(axis=2) * np.float32(1.0 - EXPOSURE_DECAY)
    feats[..., 9] = (same & clicked[:, None, :]).sum(axis=2) / (n_same + 1.0)

    # Short-term evidence on a second time scale: the same cosines, weighted by recency with a
    # half-life of one step, the cosine to the most recent click, and how much of the recent past
    # was skipped (a skip streak is the visible sign that the taste moved away).
    fast = (RECENT_DECAY**age).astype(np.float32)
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

    # The session so far, whatever the window holds: steps with a click and without one (every
    # step is one or the other), and the ratings given, each over the horizon. A user's patience
    # rises with satisfying clicks and falls with skips and disappointing ones, so these are its
    # visible trace.
    horizon = users.sc.episode.horizon
    feats[..., 14] = (users.session_clicks[idx] / horizon)[:, None]
    feats[..., 15] = ((users.t[idx] - users.session_clicks[idx]) / horizon)[:, None]
    feats[..., 16] = (users.session_rating[idx] / horizon)[:, None]
    return feats


def candidate_features(users: UserBatch, idx: np.ndarray) -> np.ndarray:
    """Features of the current candidates of rows ``idx``, (R, K, F) float32 in the given bounds.

    One compiled pass over the rows (``_features_kernel``); equal to
    :func:`candidate_features_reference` up to float32 rounding. Each row is computed on its own,
    so a user's features do not depend on which other rows are observed with it.
    """
    w = users.world
    rows = np.ascontiguousarray(idx, dtype=np.int64)
    out = np.empty((rows.size, users.k, N_FEATURES), dtype=np.float32)
    _features_kernel(
        rows,
        users.cand,
        users.hist_item,
        users.hist_click,
        users._has_state,
        users.t,
        users.session_clicks,
        users.session_rating,
        float(users.sc.episode.horizon),
        w.log_pop_rel,
        w.arrival,
        w.primary_topic,
        w.item_unit_proj,
        users.slate,
        out,
    )
    return out


@njit(cache=True, nogil=True)
def _features_kernel(
    rows: np.ndarray,
    cand: np.ndarray,
    hist: np.ndarray,
    hist_click: np.ndarray,
    has_state: np.ndarray,
    t: np.ndarray,
    session_clicks: np.ndarray,
    session_rating: np.ndarray,
    horizon: float,
    log_pop_rel: np.ndarray,
    arrival: np.ndarray,
    topic: np.ndarray,
    unit: np.ndarray,
    slate: int,
    out: np.ndarray,
) -> None:
    """Fill ``out`` (R, K, F) for users ``rows``; the history holds ``slate`` events per step.

    The history cosines enter the features only through weighted sums over the window, so each
    row first forms the weighted sums of its history vectors (clicks and skips, with flat and
    with fast-decaying weights, and the last click) and then needs five dot products per
    candidate instead of one per (candidate, history event).
    """
    n_rows = rows.size
    k_max = cand.shape[1]
    win = hist.shape[1]
    p = unit.shape[1]
    expo = np.empty(win)
    fast = np.empty(win)
    for j in range(win):
        age = (win - 1 - j) // slate
        expo[j] = EXPOSURE_DECAY**age / slate
        fast[j] = RECENT_DECAY**age
    # Per row: mean click vector, mean skip vector, fast-weighted click and skip vectors, last click.
    vec = np.empty((5, p))
    # The row's shown events, oldest first: item, its topic, its exposure weight, clicked.
    ev_item = np.empty(win, dtype=np.int64)
    ev_topic = np.empty(win, dtype=np.int64)
    ev_expo = np.empty(win)
    ev_click = np.empty(win, dtype=np.int64)
    for r in range(n_rows):
        u = rows[r]
        n_valid = 0
        n_click = 0
        n_skip = 0
        w_click = 0.0
        w_skip = 0.0
        last = -1
        vec[:] = 0.0
        for j in range(win):
            item = hist[u, j]
            if item < 0:
                continue
            ev_item[n_valid] = item
            ev_topic[n_valid] = topic[item]
            ev_expo[n_valid] = expo[j]
            ev_click[n_valid] = 1 if hist_click[u, j] else 0
            n_valid += 1
            if hist_click[u, j]:
                n_click += 1
                w_click += fast[j]
                last = item
                for d in range(p):
                    x = unit[item, d]
                    vec[0, d] += x
                    vec[2, d] += fast[j] * x
            else:
                n_skip += 1
                w_skip += fast[j]
                for d in range(p):
                    x = unit[item, d]
                    vec[1, d] += x
                    vec[3, d] += fast[j] * x
        if last >= 0:
            for d in range(p):
                vec[4, d] = unit[last, d]
        scale0 = 1.0 / max(n_click, 1)
        scale1 = 1.0 / max(n_skip, 1)
        scale2 = 1.0 / max(w_click, 1e-6)
        scale3 = 1.0 / max(w_skip, 1e-6)
        w_all = w_click + w_skip
        skip_share = w_skip / max(w_all, 1e-6) if w_all > 0 else 0.0
        no_state = 0.0 if has_state[u] else 1.0
        progress = t[u] / horizon
        s_clicks = session_clicks[u] / horizon
        s_skips = (t[u] - session_clicks[u]) / horizon
        s_rating = session_rating[u] / horizon
        inv_valid = 1.0 / max(n_valid, 1)
        for k in range(k_max):
            c = cand[u, k]
            tc = topic[c]
            shown = 0.0
            n_same = 0
            same_click = 0
            exposure = 0.0
            for j in range(n_valid):
                if ev_item[j] == c:
                    shown = 1.0
                if ev_topic[j] == tc:
                    n_same += 1
                    exposure += ev_expo[j]
                    same_click += ev_click[j]
            d0 = d1 = d2 = d3 = d4 = 0.0
            for d in range(p):
                x = unit[c, d]
                d0 += x * vec[0, d]
                d1 += x * vec[1, d]
                d2 += x * vec[2, d]
                d3 += x * vec[3, d]
                d4 += x * vec[4, d]
            o = out[r, k]
            o[0] = min(max(log_pop_rel[c] / 5.0, -3.0), 3.0)
            o[1] = 1.0 if arrival[c] > 0 else 0.0
            o[2] = shown
            o[3] = n_same * inv_valid
            o[4] = no_state
            o[5] = progress
            o[6] = min(max(d0 * scale0, -1.0), 1.0)
            o[7] = min(max(d1 * scale1, -1.0), 1.0)
            o[8] = exposure * (1.0 - EXPOSURE_DECAY)
            o[9] = same_click / (n_same + 1.0)
            o[10] = min(max(d2 * scale2, -1.0), 1.0)
            o[11] = min(max(d3 * scale3, -1.0), 1.0)
            o[12] = min(max(d4, -1.0), 1.0) if last >= 0 else 0.0
            o[13] = skip_share
            o[14] = s_clicks
            o[15] = s_skips
            o[16] = s_rating
