"""The simulator core: N users stepped together with array operations.

``UserBatch`` holds every user's hidden and visible state in numpy arrays. The single Gymnasium env
is a batch of one; the batched VecEnv is a batch of N. Because every random number comes from the
counter-based generator in :mod:`.rng`, keyed by the user's episode key, a user's trajectory does
not depend on the batch it is stepped in.

Shapes: N users, K candidates, n items, d embedding dims, p projected dims, T topics,
W history window, H consumed-items capacity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import njit

from ..encoders import LRUEncoder
from . import rng as crng
from .blas import one_blas_thread
from .candidates import (
    CandidateGenerator,
    candidate_streams,
    first_occurrence,
    first_true_columns,
)
from .features import candidate_features
from .response import (
    click_logit,
    click_probability,
    dwell_from_satisfaction,
    rating_from_satisfaction,
    satisfaction,
)
from .rewards import Feedback, compute_reward
from .world import World, persona_indices

_HISTORY_POOL = 256
# Most history vectors one batch of users keeps in 'text' mode: 256 per user, at most 200,000
# (an entry, 384 floats and a text of a few hundred characters, takes about 2 KB). Most hits are
# a user's own text of the step before (it changes only on a click), so a few per user would do.
TEXT_LRU_PER_USER = 256
TEXT_LRU_SIZE = 200_000
_DENSE_MASK_LIMIT = 1 << 26


def _normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.where(norm > 0, norm, 1.0)).astype(np.float32)


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _gathered_dots_kernel(
    theta: np.ndarray, emb: np.ndarray, items: np.ndarray, out: np.ndarray
) -> None:
    """``out[r, j] = theta[r] . emb[items[r, j]]``, summed in float64, one row at a time."""
    d = theta.shape[1]
    for r in range(items.shape[0]):
        t = theta[r]
        for j in range(items.shape[1]):
            e = emb[items[r, j]]
            acc = 0.0
            for k in range(d):
                acc += np.float64(t[k]) * np.float64(e[k])
            out[r, j] = acc


def _gathered_dots(theta: np.ndarray, emb: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``theta[r] . emb[items[r, j]]`` for every (r, j), without gathering ``emb[items]``.

    A compiled loop reads the item rows in place (the (R, M, d) gather of the numpy form is
    100 MB for 256 users x 256 items x 384 dims) and sums each dot product in float64, so every
    element is within float32 rounding of the exact value and does not depend on the other rows.
    The numpy form is :func:`gathered_dots_reference`.

    Args:
        theta: (R, d) float32; emb: (n, d) float32; items: (R, M) indices into ``emb``.

    Returns:
        (R, M) float32.
    """
    out = np.empty(items.shape, dtype=np.float32)
    _gathered_dots_kernel(
        np.ascontiguousarray(theta, dtype=np.float32),
        np.ascontiguousarray(emb, dtype=np.float32),
        np.ascontiguousarray(items, dtype=np.int64),
        out,
    )
    return out


def gathered_dots_reference(theta: np.ndarray, emb: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The numpy reference of :func:`_gathered_dots`: ``einsum("nd,nmd->nm", theta, emb[items])``."""
    return np.einsum("nd,nmd->nm", theta, emb[items])


def check_count(value: Any, name: str) -> int:
    """``value`` as a number of sub-environments (an integer >= 1), or a one-line ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: {value!r} (expected an integer >= 1)")
    return int(value)


def check_actions(actions: Any, n: int, k: int) -> np.ndarray:
    """``actions`` as an (n,) int64 array of candidate slots, refusing anything else.

    Each action must be an integer slot in ``[0, k)`` (a ``Discrete(k)`` action; booleans and
    integral floats are not slots). An out-of-range slot used to be clamped to the nearest valid
    one, so an off-by-one agent recommended slot 0 or K-1 without anyone noticing.

    Raises:
        ValueError: a wrong count, a non-integer dtype or a slot outside ``[0, k)``.
    """
    a = np.asarray(actions)
    if a.size != n:
        raise ValueError(f"actions: {a.size} values (expected {n}, one candidate slot per user)")
    if a.dtype.kind not in "iu":
        raise ValueError(f"actions: dtype {a.dtype} (expected integer candidate slots in [0, {k}))")
    a = a.astype(np.int64, copy=False).reshape(n)
    if n and (int(a.min()) < 0 or int(a.max()) >= k):
        bad = a[(a < 0) | (a >= k)]
        raise ValueError(
            f"action {int(bad[0])} is not a candidate slot (expected an integer in [0, {k}), "
            "the env's Discrete action space)"
        )
    return a


def check_slates(actions: Any, n: int, k: int, size: int) -> np.ndarray:
    """``actions`` as an (n, size) int64 array of slates (candidate slots), refusing anything else.

    A slate is ``size`` integer slots in ``[0, k)`` (a ``MultiDiscrete([k] * size)`` action);
    ``n`` slates come as an (n, size) array or, for one user, as a (size,) one. Any other shape
    is refused, even with the right number of values (a transposed array).

    Raises:
        ValueError: a wrong shape, a non-integer dtype or a slot outside ``[0, k)``.
    """
    a = np.asarray(actions)
    if a.shape != (n, size) and not (n == 1 and a.shape == (size,)):
        # Only these shapes: a transposed (size, n) array has the right count and would be
        # silently read as other slates.
        one = f" or ({size},)" if n == 1 else ""
        raise ValueError(
            f"actions: shape {a.shape} (expected ({n}, {size}){one}: one slate of {size} "
            "candidate slots per user)"
        )
    if a.dtype.kind not in "iu":
        raise ValueError(f"actions: dtype {a.dtype} (expected integer candidate slots in [0, {k}))")
    # A copy: the step's info hands the slate out, and callers reuse their action buffers.
    a = a.astype(np.int64).reshape(n, size)
    if n and (int(a.min()) < 0 or int(a.max()) >= k):
        bad = a[(a < 0) | (a >= k)]
        raise ValueError(
            f"slate slot {int(bad[0])} is not a candidate slot (expected integers in [0, {k}), "
            f"the env's MultiDiscrete([{k}] * {size}) action space)"
        )
    return a


def slate_shown(slots: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Which positions of (N, L) ``slots`` show an item: the slot is valid in the (N, K) ``mask``
    and no earlier position of the same slate holds the same slot (a repeat shows nothing)."""
    rows = np.arange(slots.shape[0])[:, None]
    valid = mask[rows, slots]
    repeat = np.zeros_like(valid)
    for j in range(1, slots.shape[1]):
        repeat[:, j] = (slots[:, :j] == slots[:, j : j + 1]).any(axis=1)
    return valid & ~repeat


def render_history(
    titles: list[str],
    items: np.ndarray,
    clicked: np.ndarray,
    ratings: np.ndarray,
    onboarding: str | None,
) -> str:
    """Render one user's history as text, oldest first.

    Args:
        titles: catalog titles.
        items: (W,) item indices, -1 for empty slots (oldest first).
        clicked: (W,) bool; ratings: (W,) ratings (0 when not clicked).
        onboarding: the user's sign-up text, or None.
    """
    parts = []
    if onboarding:
        parts.append(onboarding_event_text(onboarding))
    for item, c, r in zip(items.tolist(), clicked.tolist(), ratings.tolist(), strict=True):
        if item < 0:
            continue
        parts.append(click_event_text(titles[item], int(r)) if c else skip_event_text(titles[item]))
    return " ".join(parts)


def event_table_rows(text_events: str) -> int:
    """Rows of the events table: one per click rating 1-5, plus one for skips with ``all``."""
    return 6 if text_events == "all" else 5


# One rendered event each; the history text is these joined by spaces (``state.mode: events``
# encodes each of them once and pools the encodings).
def click_event_text(title: str, rating: int) -> str:
    """The history text's sentence for a click with a rating (1-5)."""
    return f"Clicked '{title}' (rated {rating}/5)."


def skip_event_text(title: str) -> str:
    """The history text's sentence for a skipped item (``text_events: all``)."""
    return f"Skipped '{title}'."


def onboarding_event_text(onboarding: str) -> str:
    """The history text's sentence for a new user's sign-up text."""
    return f"At sign-up said: {onboarding}"


def event_sentences(titles: Sequence[str], text_events: str) -> list[str]:
    """Every sentence a history text can hold about an item, in the event tables' layout: the
    click sentences for ratings 1-5 (all titles each), then with ``all`` the skip sentences."""
    texts = [click_event_text(t, r) for r in range(1, 6) for t in titles]
    if event_table_rows(text_events) == 6:
        texts += [skip_event_text(t) for t in titles]
    return texts


def fit_history(
    tokens: np.ndarray,
    valid: np.ndarray,
    onboarding_tokens: np.ndarray,
    onboarding: np.ndarray,
    limit: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The part of each history text that fits in the encoder's ``limit`` tokens: the newest.

    A history text is the sign-up sentence (where shown) followed by the events, oldest first.
    Going back from the newest, a sentence is kept while it and every newer one fit together, so
    a long history loses its oldest events whole rather than the encoder cutting off its newest.
    The newest sentence is always kept (the encoder cuts it if it alone is too long).

    Args:
        tokens: (R, W) tokens of each event's sentence (any value where not ``valid``).
        valid: (R, W) bool, the events the text shows.
        onboarding_tokens: (R,) tokens of the sign-up sentence; onboarding: (R,) bool, shown.
        limit: tokens of text the encoder embeds (``text_token_limit``).

    Returns:
        ``(keep, keep_onboarding)``: (R, W) bool (a subset of ``valid``) and (R,) bool.
    """
    w = valid.shape[1]
    if w == 0:
        return valid.copy(), onboarding.copy()
    t = np.where(valid, tokens, 0)
    # Tokens from each event to the newest one.
    suffix = np.cumsum(t[:, ::-1], axis=1)[:, ::-1]
    newest = w - 1 - np.argmax(valid[:, ::-1], axis=1)
    keep = valid & ((suffix <= limit) | (np.arange(w)[None, :] == newest[:, None]))
    any_event = valid.any(axis=1)
    keep_onboarding = onboarding & (~any_event | (suffix[:, 0] + onboarding_tokens <= limit))
    return keep, keep_onboarding


class UserBatch:
    """State and dynamics of N simulated users.

    Args:
        world: the scenario's world (catalog, embeddings, personas).
        n_users: batch size N.
        rich_info: also compute per-candidate hidden affinities each step (for ranking metrics);
            costs (N, K, d) work per step.
    """

    # Every per-user array (leading dimension N): what copy_rows copies.
    ROW_STATE = (
        "keys",
        "t",
        "persona",
        "target",
        "drifting",
        "drift_phase",
        "drift_pending",
        "new_user",
        "user_id",
        "theta",
        "theta_home",
        "theta_away",
        "patience",
        "session_clicks",
        "session_rating",
        "fatigue",
        "vis_sum",
        "vis_c",
        "show_onboarding",
        "hist_item",
        "hist_click",
        "hist_rating",
        "consumed",
        "consumed_rating",
        "consumed_mask",
        "n_consumed",
        "cand",
        "mask",
        "_user_proj",
        "_has_state",
        "_u_click",
        "_z_sat",
    )

    def __init__(self, world: World, n_users: int, *, rich_info: bool = False) -> None:
        self.world = world
        self._text_lru: LRUEncoder | None = None
        self.sc = world.scenario
        self.n = n_users
        self.rich_info = rich_info
        sc = self.sc
        d, p, k = world.dim, world.project_dim, sc.candidates.k
        self.k = k
        self.slate = sc.candidates.slate_size
        # Events kept for the features and the history text: each step adds one event per slate
        # position, so the window covers the same number of steps whatever the slate size.
        self.window = max(sc.state.history_window, 10) * self.slate
        self.capacity = sc.episode.horizon + sc.users.history_max + 1
        n = n_users
        self.keys = np.zeros(n, dtype=np.uint64)
        self.t = np.zeros(n, dtype=np.int64)
        self.persona = np.zeros(n, dtype=np.int64)
        self.target = np.zeros(n, dtype=np.int64)
        self.drifting = np.zeros(n, dtype=bool)
        self.drift_phase = np.zeros(n, dtype=np.float64)
        # The taste changed at the end of the last step: the next step's info reports the event.
        self.drift_pending = np.zeros(n, dtype=bool)
        self.new_user = np.zeros(n, dtype=bool)
        self.user_id = np.zeros(n, dtype=np.int64)
        self.theta = np.zeros((n, d), dtype=np.float32)
        self.theta_home = np.zeros((n, d), dtype=np.float32)
        self.theta_away = np.zeros((n, d), dtype=np.float32)
        self.patience = np.zeros(n, dtype=np.float64)
        # What the recommender saw of this session so far (the session features): steps with a
        # click, and the sum of (rating - 3) over the clicks; the steps without one are
        # t - session_clicks.
        self.session_clicks = np.zeros(n, dtype=np.int64)
        self.session_rating = np.zeros(n, dtype=np.float64)
        self.fatigue = np.zeros((n, world.n_topics), dtype=np.float32)
        self.vis_sum = np.zeros((n, d), dtype=np.float32)
        # The pooled state is linear in item embeddings, so its PCA coordinates can be carried
        # along in O(p) per step instead of projecting (N, d) -> (N, p) every step; see
        # :meth:`_pooled_projection` and its reference :meth:`pooled_projection_reference`.
        self.vis_c = np.zeros((n, p), dtype=np.float32)
        proj = world.projection
        with one_blas_thread():  # results independent of the thread settings (envs/blas.py)
            self._item_c = np.ascontiguousarray(world.item_emb @ proj.components, dtype=np.float32)
            self._onboarding_c = (world.onboarding_emb @ proj.components).astype(np.float32)
            self._mean_c = (proj.mean @ proj.components).astype(np.float32)
        self._scale = np.float32(proj.scale)
        self.show_onboarding = np.zeros(n, dtype=bool)
        # A persona without a sign-up text (onboarding is optional) shows nothing: its new users
        # are zeros with the no-state flag, in every state mode (pooled used to encode "").
        self._has_onboarding = np.array([bool(p.onboarding.strip()) for p in world.personas])
        self.hist_item = np.full((n, self.window), -1, dtype=np.int64)
        self.hist_click = np.zeros((n, self.window), dtype=bool)
        self.hist_rating = np.zeros((n, self.window), dtype=np.float64)
        self.consumed = np.full((n, self.capacity), -1, dtype=np.int64)
        # The rating of each consumed item (what the history text in 'clicks' mode shows).
        self.consumed_rating = np.zeros((n, self.capacity), dtype=np.float64)
        # The same sets as a dense (N, n) bitmap, when small enough: membership by one gather.
        self.consumed_mask: np.ndarray | None = (
            np.zeros((n, world.n_items), dtype=bool)
            if n * world.n_items <= _DENSE_MASK_LIMIT
            else None
        )
        self.n_consumed = np.zeros(n, dtype=np.int64)
        self.cand = np.zeros((n, k), dtype=np.int64)
        self.mask = np.zeros((n, k), dtype=bool)
        self._user_proj = np.zeros((n, p), dtype=np.float32)
        self._has_state = np.zeros(n, dtype=bool)
        # In text and events modes the nearest source can match the pooled history instead of the
        # visible state (``candidates.nearest_to: pooled``); in pooled mode they are one vector.
        self._retrieve_pooled = sc.state.mode != "pooled" and sc.candidates.nearest_to == "pooled"
        if sc.state.mode == "events":
            # The event tables' PCA coordinates, so the state is projected in O(W p) per user.
            self._event_c, self._event_onb_c = world.event_coords
        self._event_slots = np.arange(sc.state.history_window)[None, :]
        # The history text shows a sign-up sentence only for a non-empty onboarding text.
        self._has_onboarding_text = np.array([bool(p.onboarding) for p in world.personas])
        self._drift_targets = self._resolve_drift_target()
        self._candidates = CandidateGenerator(
            sc.candidates,
            item_proj=world.item_proj,
            pop_cdf=world.pop_cdf,
            arrival=world.arrival,
            new_order=world.new_order,
            new_arrival_sorted=world.new_arrival_sorted,
            index=world.nearest_index,
        )
        # Every draw of a step in one pass: the click and satisfaction draws of step t are made
        # when the candidates of step t are drawn (same key and step, so the same numbers).
        self._step_plan = crng.StreamPlan(
            ((crng.STREAM_CLICK, 1), (crng.STREAM_SATISFACTION, 2))
            + candidate_streams(sc.candidates)
        )
        self._step_plan.cache_steps(sc.episode.horizon + 2)
        self._u_click = np.zeros(n, dtype=np.float64)
        self._rows = np.arange(n)
        # float64 copies of per-item float32 columns: one gather per step instead of gather + cast.
        self._log_pop_rel64 = world.log_pop_rel.astype(np.float64)
        self._appeal64 = world.catalog.appeal.astype(np.float64)
        self._quality64 = world.catalog.quality.astype(np.float64)
        self._z_sat = np.zeros(n, dtype=np.float64)
        self._pool_n = min(_HISTORY_POOL, world.n_items)
        h_max = sc.users.history_max
        self._hist_slots = np.arange(h_max)[None, :]
        # Recency weights of a warm history, oldest first (newest weight 1).
        self._hist_decay = (sc.state.recency_decay ** np.arange(h_max - 1, -1, -1))[None, :]
        self._arrival_max = int(world.arrival.max(initial=0))
        self._reset_plan = crng.StreamPlan(
            (
                (crng.STREAM_PERSONA, 2),
                (crng.STREAM_NOISE, 2 * ((d + 1) // 2)),
                (crng.STREAM_DRIFT, 2),
                (crng.STREAM_PATIENCE, 2),
                (crng.STREAM_NEW_USER, 1),
                (crng.STREAM_HISTORY, self._pool_n),
                (crng.STREAM_HISTORY + 100, self._pool_n + 1),
            )
        )

    # ------------------------------------------------------------------ setup
    def _resolve_drift_target(self) -> np.ndarray | None:
        target = self.sc.users.drift.target
        if self.sc.users.drift.kind == "none" or target == "random":
            return None
        return persona_indices(self.world, [target])

    def reset_users(self, idx: np.ndarray, keys: np.ndarray) -> None:
        """Start a new episode (a new user) in rows ``idx`` with episode ``keys`` (uint64)."""
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size == 0:
            return
        w, sc = self.world, self.sc
        keys = np.asarray(keys, dtype=np.uint64)
        n_personas = len(w.personas)
        # All draws of a reset at once (step 0); the history columns serve returning users only.
        u_all = self._reset_plan.uniform(keys, 0)
        s_persona, s_noise, s_drift, s_patience, s_new, s_pool, s_hist = self._reset_plan.slices
        self.keys[idx] = keys
        self.t[idx] = 0
        self.user_id[idx] = (keys >> np.uint64(33)).astype(np.int64)
        persona = crng.uniform_to_integers(u_all[:, s_persona], n_personas)
        self.persona[idx] = persona[:, 0]
        # Idiosyncratic taste: the persona plus a random direction, shared by home and away tastes.
        g = crng.uniform_to_normal(u_all[:, s_noise], w.dim).astype(np.float32)
        g = _normalise(g) * np.float32(sc.users.persona_noise)
        home = _normalise(w.persona_emb[persona[:, 0]] + g)
        self.theta[idx] = home
        self.theta_home[idx] = home

        drift = sc.users.drift
        u_drift = u_all[:, s_drift]
        if self._drift_targets is not None:
            target = np.full(idx.size, self._drift_targets[0], dtype=np.int64)
        else:
            # A different persona than the user's own.
            shift = 1 + np.floor(u_drift[:, 1] * max(n_personas - 1, 1)).astype(np.int64)
            target = (persona[:, 0] + shift) % n_personas
        self.target[idx] = target
        away = _normalise(w.persona_emb[target] + g)
        if drift.strength < 1.0:
            # A partial switch: the new interest takes over `strength` of the taste.
            s = np.float32(drift.strength)
            away = _normalise(s * away + (np.float32(1.0) - s) * home)
        self.theta_away[idx] = away
        self.drifting[idx] = (drift.kind != "none") & (
            (drift.kind == "gradual") | (u_drift[:, 0] < drift.fraction)
        )
        self.drift_phase[idx] = 0.0
        self.drift_pending[idx] = False

        u_misc = u_all[:, s_patience]
        pc = sc.users.patience
        self.patience[idx] = pc.initial_low + (pc.initial_high - pc.initial_low) * u_misc[:, 0]
        self.session_clicks[idx] = 0
        self.session_rating[idx] = 0.0
        new = u_all[:, s_new.start] < sc.users.new_user_fraction
        self.new_user[idx] = new
        self.fatigue[idx] = 0.0
        self.consumed[idx] = -1
        self.consumed_rating[idx] = 0.0
        self.n_consumed[idx] = 0
        if self.consumed_mask is not None:
            self.consumed_mask[idx] = False
        self.hist_item[idx] = -1
        self.hist_click[idx] = False
        self.hist_rating[idx] = 0.0
        self.vis_sum[idx] = 0.0
        self.vis_c[idx] = 0.0
        onboard = new & (sc.users.onboarding == "text") & self._has_onboarding[persona[:, 0]]
        self.show_onboarding[idx] = onboard
        if onboard.any():
            ow = np.float32(sc.state.onboarding_weight)
            self.vis_sum[idx[onboard]] = ow * w.onboarding_emb[persona[onboard, 0]]
            self.vis_c[idx[onboard]] = ow * self._onboarding_c[persona[onboard, 0]]
        old = ~new
        self._warm_history(idx[old], u_all[old, s_pool], u_all[old, s_hist])
        self._refresh_visible(idx)
        self._draw_candidates(idx)

    def copy_rows(self, other: UserBatch, dst: np.ndarray, src: np.ndarray) -> None:
        """Overwrite rows ``dst`` with rows ``src`` of ``other`` (a batch over the same world).

        Copying a user started in another batch equals starting it here (a user's state depends
        only on its key and the world), so users can be prepared ahead, several at once. The
        per-user arrays are listed in ``ROW_STATE`` (a test checks that the list is complete).
        """
        if other.world is not self.world:
            raise ValueError("copy_rows: other must be a batch over the same world")
        for name in self.ROW_STATE:
            value = getattr(self, name)
            if value is not None:
                value[dst] = getattr(other, name)[src]

    def _warm_history(self, idx: np.ndarray, u_pool: np.ndarray, u: np.ndarray) -> None:
        """Give returning users a past: items they liked, drawn by their taste and popularity.

        Args:
            idx: (R,) rows; u_pool: (R, pool) uniforms of ``STREAM_HISTORY`` (which items are in
                the pool); u: (R, pool + 1) uniforms of ``STREAM_HISTORY + 100`` (Gumbel noise and
                the history length).
        """
        if idx.size == 0:
            return
        w, sc = self.world, self.sc
        h_min, h_max = sc.users.history_min, sc.users.history_max
        if h_max == 0:
            return
        pool_n = self._pool_n
        rows = np.arange(idx.size)[:, None]
        pool = crng.uniform_to_integers(u_pool, w.n_items)
        theta = self.theta[idx]
        aff = _gathered_dots(theta, w.item_emb, pool)
        logits = sc.response.beta * aff + sc.response.gamma * w.log_pop_rel[pool]
        score = logits + (-np.log(-np.log(np.clip(u[:, :pool_n], 1e-12, 1 - 1e-12))))
        # Items still to arrive are not part of anyone's past (the only non-finite scores).
        later = self._arrival_max > 0
        if later:
            score[w.arrival[pool] != 0] = -np.inf
        # Repeated pool entries must not become repeated history items.
        order = np.argsort(-score, axis=1, kind="stable")
        ranked = pool[rows, order]
        if later:
            ranked[~np.isfinite(score[rows, order])] = -1
        keep = first_occurrence(ranked)
        # A past holds at most as many distinct items as the pool (the catalog, when smaller).
        width = min(h_max, pool_n)
        pos = first_true_columns(keep, width)
        items = np.full((idx.size, h_max), -1, dtype=np.int64)
        items[:, :width] = np.where(keep[rows, pos], ranked[rows, pos], -1)
        length = h_min + np.floor(u[:, pool_n] * (h_max - h_min + 1)).astype(np.int64)
        items[self._hist_slots >= length[:, None]] = -1
        # Chronological order: the best-liked item is the most recent one.
        items = items[:, ::-1]
        safe = np.maximum(items, 0)
        emb = w.item_emb[safe]
        aff_items = _gathered_dots(theta, w.item_emb, safe)
        ratings = rating_from_satisfaction(
            sc.response.satisfaction_scale * (aff_items - sc.response.affinity_center)
            + w.catalog.quality[safe]
        )
        valid = items >= 0
        # Pooled state: recency-weighted sum, newest weight 1.
        weights = self._hist_decay * (
            sc.state.click_weight + sc.state.rating_weight * (ratings - 3.0)
        )
        weights = np.where(valid, np.maximum(weights, 0.0), 0.0).astype(np.float32)
        self.vis_sum[idx] = np.einsum("nm,nmd->nd", weights, emb)
        self.vis_c[idx] = np.einsum("nm,nmp->np", weights, self._item_c[safe])
        win = self.window
        tail = (
            items[:, -win:]
            if h_max >= win
            else np.pad(items, ((0, 0), (win - h_max, 0)), constant_values=-1)
        )
        tail_r = ratings[:, -win:] if h_max >= win else np.pad(ratings, ((0, 0), (win - h_max, 0)))
        self.hist_item[idx] = tail
        self.hist_click[idx] = tail >= 0
        self.hist_rating[idx] = np.where(tail >= 0, tail_r, 0.0)
        # Compact the valid items to the front of the consumed list.
        first = first_true_columns(valid, h_max)
        self.consumed[idx, :h_max] = items[rows, first]
        self.consumed_rating[idx, :h_max] = np.where(valid[rows, first], ratings[rows, first], 0.0)
        self.n_consumed[idx] = valid.sum(axis=1)
        if self.consumed_mask is not None:
            r, c = np.nonzero(valid)
            self.consumed_mask[idx[r], items[r, c]] = True

    # ------------------------------------------------------------- visibility
    def _refresh_visible(self, idx: np.ndarray | None) -> None:
        """Recompute the projected visible state of rows ``idx`` (all rows: None)."""
        mode = self.sc.state.mode
        if mode == "text":
            vecs, has = self.text_states(self._rows if idx is None else idx)
            proj = self.world.projection.project(_normalise(vecs))
            proj[~has] = 0.0
        elif mode == "events":
            proj, has = self._events_projection(idx)
        else:
            proj, has = self._pooled_projection(idx)
        if idx is None:
            self._user_proj, self._has_state = proj, has
        else:
            self._user_proj[idx] = proj
            self._has_state[idx] = has

    def text_states(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Language-model encodings of the rendered histories of rows ``idx``.

        All rows go to the LRU-cached encoder in one call, so a step of N users costs one batched
        forward pass over the histories not seen before (repeats within the batch and across steps
        are free).

        Returns:
            ``(vecs, has)``: (rows, d) float32 unit vectors (zero rows where the user has shown
            nothing) and (rows,) bool.
        """
        texts = [self.history_text(int(i)) for i in idx]
        has = np.fromiter((bool(t) for t in texts), dtype=bool, count=len(texts))
        vecs = np.zeros((len(texts), self.world.dim), dtype=np.float32)
        if has.any():
            vecs[has] = self.text_encoder().encode([t for t in texts if t])
        return vecs, has

    def text_encoder(self) -> LRUEncoder:
        """The encoder of these users' rendered histories ('text' state mode): an LRU cache over
        the world's model, made on first use.

        It belongs to this batch of users, not to the world that every env of the scenario in
        this process shares: a vector's last bits depend on the batch the text was encoded in
        (:meth:`~lmrecsim.encoders.TransformerEncoder.encode`), so a shared cache would hand an
        env the bits of another env's batch, and its observations would depend on what else had
        run in the process. With its own cache, an env's observations depend on its seeds and
        actions alone.
        """
        if self._text_lru is None:
            size = min(TEXT_LRU_SIZE, TEXT_LRU_PER_USER * self.n)
            self._text_lru = LRUEncoder(self.world.encoder, maxsize=size)
        return self._text_lru

    def _pooled_projection(self, idx: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """PCA coordinates of the normalised pooled state, from the carried ``vis_c``.

        ``project(v / |v|) = (v @ C / |v| - mean @ C) * scale``; the row norms come from the
        d-dimensional sum with an elementwise reduction, so no product here depends on the batch.
        Rows ``idx`` (all rows: None); returns fresh (rows, p) float32 and (rows,) bool arrays.
        """
        v = self.vis_sum if idx is None else self.vis_sum[idx]
        vis_c = self.vis_c if idx is None else self.vis_c[idx]
        return self._coords_of_sum(v, vis_c)

    def _coords_of_sum(
        self, v: np.ndarray, c: np.ndarray, has: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``project(v / |v|)`` from a (rows, d) sum ``v`` and its carried coordinates ``c = v @
        C`` (rows, p): fresh (rows, p) float32 and the (rows,) bool ``has`` (default ``|v| > 0``);
        rows without a state are zero."""
        norm = np.sqrt(np.einsum("nd,nd->n", v, v))
        if has is None:
            has = norm > 0
        if has.all():
            proj = c * (1.0 / norm)[:, None]
        else:
            inv = 1.0 / np.where(has, norm, 1.0)
            inv[~has] = 0.0
            proj = c * inv[:, None]
        proj -= self._mean_c
        proj *= self._scale
        if not has.all():
            proj[~has] = 0.0
        return proj, has

    def _event_window(
        self, idx: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The events the history texts of rows ``idx`` show, as rows of the event tables.

        Vectorised :meth:`history_events`: (rows, W) table row (rating - 1 for a click, 5 for a
        skip), item index (0 where empty) and bool validity, oldest first; and (rows,) bool,
        whether the text starts with the sign-up sentence. Cut to what fits in the encoder's
        tokens (:func:`fit_history`).
        """
        st = self.sc.state
        w = st.history_window
        if st.text_events == "clicks":
            n_con = self.n_consumed if idx is None else self.n_consumed[idx]
            pos = n_con[:, None] - w + self._event_slots
            valid = pos >= 0
            rows = np.arange(n_con.size)[:, None] if idx is None else np.asarray(idx)[:, None]
            pos = np.maximum(pos, 0)
            items = self.consumed[rows, pos]
            ratings = self.consumed_rating[rows, pos]
            clicked: np.ndarray | bool = True
        else:
            start = self.window - w
            items = self.hist_item[:, start:] if idx is None else self.hist_item[idx, start:]
            clicked = self.hist_click[:, start:] if idx is None else self.hist_click[idx, start:]
            ratings = self.hist_rating[:, start:] if idx is None else self.hist_rating[idx, start:]
            valid = items >= 0
        kind = self._event_kinds(clicked, ratings, valid)
        items = np.where(valid, items, 0)
        persona = self.persona if idx is None else self.persona[idx]
        shown = self.show_onboarding if idx is None else self.show_onboarding[idx]
        shown = shown & self._has_onboarding_text[persona]
        valid, shown = self._fit_to_tokens(kind, items, valid, persona, shown)
        return kind, items, valid, shown

    def _event_kinds(
        self, clicked: np.ndarray | bool, ratings: np.ndarray, valid: np.ndarray
    ) -> np.ndarray:
        """Event-table rows of events: rating - 1 for a click, 5 for a skip (0 where not valid)."""
        n_rows = event_table_rows(self.sc.state.text_events)
        kind = np.where(clicked, ratings.astype(np.int64) - 1, 5)
        return np.where(valid, np.clip(kind, 0, n_rows - 1), 0)

    def _fit_to_tokens(
        self,
        kind: np.ndarray,
        items: np.ndarray,
        valid: np.ndarray,
        persona: np.ndarray,
        shown: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`fit_history` with the world's sentence lengths: the (rows, W) events and the
        (rows,) sign-up sentences a text keeps (all of them without a token budget)."""
        budget = self.world.event_tokens
        if budget is None:
            return valid, shown
        table, onboarding, limit = budget
        return fit_history(table[kind, items], valid, onboarding[persona], shown, limit)

    def _events_sums(
        self,
        idx: np.ndarray | None,
        window: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
        table: np.ndarray,
        onboarding: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sum of the rows of ``table`` (E, n, q) over each user's ``window`` (from
        :meth:`_event_window`), plus the sign-up sentence's row of ``onboarding`` (P, q) where the
        text shows it; returns (rows, q) float32 and (rows,) bool: whether the text is non-empty."""
        kind, items, valid, shown = window
        vecs = table[kind, items]
        vecs[~valid] = 0.0
        total = vecs.sum(axis=1)
        persona = self.persona if idx is None else self.persona[idx]
        if shown.any():
            total[shown] += onboarding[persona[shown]]
        return total, valid.any(axis=1) | shown

    def events_states(
        self, idx: np.ndarray | None = None, *, tables: World | None = None
    ) -> np.ndarray:
        """``state.mode: events`` states of rows ``idx`` in full d: unit rows (zero when empty).

        ``tables``: a world over the same catalog and personas whose event tables to use (to
        compare the events state with another mode's on that mode's own users); default this
        batch's world.
        """
        w = self.world if tables is None else tables
        if w.event_emb is None or w.event_onboarding_emb is None:
            raise ValueError("events_states needs a world built with state.mode 'events'")
        window = self._event_window(idx)
        total, _ = self._events_sums(idx, window, w.event_emb, w.event_onboarding_emb)
        return _normalise(total)

    def _events_projection(self, idx: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """PCA coordinates of the normalised events state (see :meth:`_pooled_projection`)."""
        w = self.world
        assert w.event_emb is not None and w.event_onboarding_emb is not None
        window = self._event_window(idx)
        v, has = self._events_sums(idx, window, w.event_emb, w.event_onboarding_emb)
        c, _ = self._events_sums(idx, window, self._event_c, self._event_onb_c)
        return self._coords_of_sum(v, c, has)

    def pooled_states(self, idx: np.ndarray | None = None) -> np.ndarray:
        """The d-dimensional pooled states of rows ``idx``, unit rows (zero when empty), (rows, d)."""
        if idx is None:
            idx = np.arange(self.n)
        return _normalise(self.vis_sum[idx])

    def pooled_projection_reference(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Slow reference of the pooled visible state: normalise the d-dim sum, then project."""
        if idx is None:
            idx = np.arange(self.n)
        vecs = self.vis_sum[idx]
        proj = self.world.projection.project(_normalise(vecs))
        proj[np.linalg.norm(vecs, axis=1) == 0] = 0.0
        return proj

    def history_events(self, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The events the history text of user ``row`` shows, oldest first.

        ``state.text_events: clicks``: the last ``history_window`` consumed items (the warm
        history, then this session's clicks); ``all``: the last ``history_window`` events, clicked
        or skipped (-1 where nothing was shown; one event per step, or per slate position). When
        the encoder embeds a limited number of tokens, only the newest events that fit are shown
        (:func:`fit_history`): with ``clicks`` the older ones are left out, with ``all`` they
        become -1.

        Returns:
            ``(items, clicked, ratings)``: (E,) int64, bool and float64.
        """
        return self._history_parts(row)[1:]

    def history_text(self, row: int) -> str:
        """The rendered history of user ``row`` ('' when the user has shown nothing)."""
        onboarding, items, clicked, ratings = self._history_parts(row)
        return render_history(self.world.catalog.titles, items, clicked, ratings, onboarding)

    def _history_parts(self, row: int) -> tuple[str | None, np.ndarray, np.ndarray, np.ndarray]:
        """The sign-up text the history of ``row`` shows (None: none) and its events."""
        st, w = self.sc.state, self.world
        onboarding = w.personas[self.persona[row]].onboarding if self.show_onboarding[row] else None
        if st.text_events == "clicks":
            n = int(self.n_consumed[row])
            lo = max(n - st.history_window, 0)
            items = self.consumed[row, lo:n]
            clicked = np.ones(items.size, dtype=bool)
            ratings = self.consumed_rating[row, lo:n]
        else:
            start = self.window - st.history_window
            items = self.hist_item[row, start:]
            clicked = self.hist_click[row, start:]
            ratings = self.hist_rating[row, start:]
        valid = items >= 0
        keep, keep_onboarding = self._fit_to_tokens(
            self._event_kinds(clicked, ratings, valid)[None],
            np.maximum(items, 0)[None],
            valid[None],
            self.persona[row : row + 1],
            np.array([bool(onboarding)]),
        )
        keep = keep[0]
        if not keep_onboarding[0]:
            onboarding = None
        if st.text_events == "clicks":
            return onboarding, items[keep], clicked[keep], ratings[keep]
        return (
            onboarding,
            np.where(keep, items, -1),
            clicked & keep,
            np.where(keep, ratings, 0.0),
        )

    def _draw_candidates(self, idx: np.ndarray | None = None) -> None:
        """Draw the candidates of rows ``idx`` (all rows: None) for their current step, and the
        click and satisfaction draws that step will use."""
        if idx is None:
            keys, steps, n_con = self.keys, self.t, self.n_consumed
            cmask = self.consumed_mask
        else:
            keys, steps, n_con = self.keys[idx], self.t[idx], self.n_consumed[idx]
            cmask = None if self.consumed_mask is None else self.consumed_mask[idx]
        if self._retrieve_pooled:
            # The nearest source matches the pooled history, not the state the policy sees.
            user_proj, has_state = self._pooled_projection(idx)
        elif idx is None:
            user_proj, has_state = self._user_proj, self._has_state
        else:
            user_proj, has_state = self._user_proj[idx], self._has_state[idx]
        # Only the filled prefix of the consumed lists: the rest is -1 and matches nothing.
        width = max(int(n_con.max(initial=0)), 1)
        consumed = self.consumed[:, :width] if idx is None else self.consumed[idx, :width]
        u = self._step_plan.uniform(keys, steps)
        items, valid = self._candidates(
            keys=keys,
            steps=steps,
            user_proj=user_proj,
            has_state=has_state,
            consumed=consumed,
            consumed_mask=cmask,
            uniforms=u[:, 3:],
        )
        z = crng.uniform_to_normal(u[:, 1:3], 1)[:, 0]
        if idx is None:
            # Fresh arrays rather than writes into the old ones: step() hands the old candidates
            # out in its info.
            self._u_click, self._z_sat, self.cand, self.mask = u[:, 0], z, items, valid
        else:
            self._u_click[idx] = u[:, 0]
            self._z_sat[idx] = z
            self.cand[idx] = items
            self.mask[idx] = valid

    # ------------------------------------------------------------ observation
    def observe(self, idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Observations of rows ``idx`` (all rows by default), batched: leading dim = rows."""
        if idx is None:
            idx = np.arange(self.n)
        w = self.world
        cand = self.cand[idx]
        feats = candidate_features(self, idx)
        return {
            "user": self._user_proj[idx].copy(),
            "candidates": w.item_proj[cand],
            "candidate_features": feats,
            "action_mask": self.mask[idx].astype(np.int8),
        }

    def observe_into(
        self, idx: np.ndarray, out: dict[str, np.ndarray] | None
    ) -> dict[str, np.ndarray]:
        """Observe rows ``idx`` into rows ``idx`` of ``out`` (arrays with leading dim ``n``,
        allocated when ``out`` is None) and return ``out``."""
        obs = self.observe(idx)
        if out is None:
            out = {
                key: np.empty((self.n, *value.shape[1:]), dtype=value.dtype)
                for key, value in obs.items()
            }
        for key, value in obs.items():
            out[key][idx] = value
        return out

    def candidate_affinity(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Hidden affinities cos(theta_u, e_c) of the current candidates, (rows, K)."""
        theta = self.theta if idx is None else self.theta[idx]
        return _gathered_dots(
            theta, self.world.item_emb, self.cand if idx is None else self.cand[idx]
        )

    # ------------------------------------------------------------------- step
    def step(
        self, actions: np.ndarray, *, info: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Advance every user by one recommendation (one item, or a slate: :meth:`step_slates`).

        Args:
            actions: (N,) candidate slot chosen for each user. A masked slot is an invalid action:
                nothing is shown, the user skips (patience cost) and the reward is 0. With
                ``candidates.slate_size`` above 1, (N, L) slates (see :meth:`step_slates`).
            info: build the info dict (False: return an empty dict; the dynamics are the same).

        Returns:
            ``(reward, terminated, truncated, info)``; every array has shape (N,) and ``info`` is a
            dict of (N,)-shaped arrays (plus (N, K) ``candidate_items``/``candidate_affinity``).
            Candidates for the next step are drawn; finished users keep their final state until
            :meth:`reset_users`.
        """
        if self.slate > 1:
            return self.step_slates(actions, info=info)
        w, sc = self.world, self.sc
        rows = self._rows
        a = check_actions(actions, self.n, self.k)
        item = self.cand[rows, a]
        shown = self.mask[rows, a]
        # The next candidates go into a fresh array (see _draw_candidates), so this one can be
        # handed out in the info without a copy.
        cand_items = self.cand
        cand_aff = self.candidate_affinity() if self.rich_info and info else None
        e = w.item_emb[item]
        s = np.einsum("nd,nd->n", self.theta, e).astype(np.float64)
        topic = w.primary_topic[item]
        p_click = click_probability(
            sc.response,
            s,
            self._log_pop_rel64[item],
            self._appeal64[item],
            self.fatigue[rows, topic].astype(np.float64),
        )
        clicked = (self._u_click < p_click) & shown
        sat, rating, dwell, terminated = self._respond(item, s, clicked)

        fc = sc.users.fatigue
        self.fatigue *= np.float32(fc.decay)
        if shown.all():
            self.fatigue[rows, topic] += np.float32(fc.gain)
        else:
            self.fatigue[rows[shown], topic[shown]] += np.float32(fc.gain)
        self._drift_toward(clicked, e)

        # History, consumed items and the visible state.
        self._push_events(np.where(shown, item, -1)[:, None], clicked[:, None], rating[:, None])
        self._consume(item, clicked, rating)
        weight = self._event_weights(clicked, rating, shown)
        self._decay_state()
        self.vis_sum += weight[:, None] * e
        self.vis_c += weight[:, None] * self._item_c[item]
        return self._end_step(
            info=info,
            item=item,
            shown=shown,
            clicked=clicked,
            rating=rating,
            dwell=dwell,
            sat=sat,
            affinity=s,
            p_click=np.where(shown, p_click, 0.0),
            terminated=terminated,
            cand_items=cand_items,
            cand_aff=cand_aff,
        )

    def step_slates(
        self, actions: np.ndarray, *, info: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Advance every user by one slate of L = ``candidates.slate_size`` items.

        The user sees the slate's items and picks at most one by a multinomial logit with a
        no-click option of logit 0: item j with probability ``exp(z_j) / (1 + sum_k exp(z_k))``,
        z the click logit of :func:`~.response.click_logit` (with one item, the single-item click
        probability) minus ``response.position_bias * j`` for position j (0 = first). The one
        click draw of the step picks the outcome: slate positions in order, then no click. A masked slot, or a slot repeated at a later position, shows nothing; a
        slate that shows nothing is an invalid action (a skip, reward 0).

        The clicked item is consumed, rated and dwelt on as in :meth:`step`; patience gains by its
        satisfaction, or pays one skip cost when nothing is clicked. Fatigue grows for the topic of
        every item shown. The history gains one event per position, in slate order (an unclicked
        item as a skip, an empty position as nothing), and the pooled state adds each with its
        click or skip weight.

        Args:
            actions: (N, L) candidate slots (or (L,) for a batch of one).
            info: build the info dict (False: a dict of ``clicked_position`` only; the dynamics
                are the same).

        Returns:
            As :meth:`step`. The info's per-item entries (``item_index``, ``affinity``,
            ``is_new_item``, ``popularity_rank``, ``satisfaction``) describe the clicked item, or
            the first item shown when nothing was clicked; ``click_probability`` is the chance of
            any click. It adds ``slate_items`` (N, L) item indices (-1 where a position showed
            nothing), ``slate_slots`` (N, L) the slots as given, ``clicked_position`` (N,) (-1:
            no click) and ``slate_click_probability`` (N, L).
        """
        w, sc = self.world, self.sc
        rows = self._rows
        slots = check_slates(actions, self.n, self.k, self.slate)
        items = self.cand[rows[:, None], slots]
        shown_pos = slate_shown(slots, self.mask)
        cand_items = self.cand
        cand_aff = self.candidate_affinity() if self.rich_info and info else None
        aff = _gathered_dots(self.theta, w.item_emb, items).astype(np.float64)
        topics = w.primary_topic[items]
        logit = click_logit(
            sc.response,
            aff,
            self._log_pop_rel64[items],
            self._appeal64[items],
            self.fatigue[rows[:, None], topics].astype(np.float64),
        )
        if sc.response.position_bias > 0:
            logit = logit - sc.response.position_bias * np.arange(self.slate)[None, :]
        # exp(z - m) / (exp(-m) + sum exp(z - m)) with m = max(0, z): no overflow for any logit.
        top = np.maximum(np.where(shown_pos, logit, -np.inf).max(axis=1), 0.0)
        weights = np.where(shown_pos, np.exp(logit - top[:, None]), 0.0)
        p_pos = weights / (np.exp(-top) + weights.sum(axis=1))[:, None]
        cum = np.cumsum(p_pos, axis=1)
        below = (self._u_click[:, None] < cum) & shown_pos
        clicked = below.any(axis=1)
        position = np.where(clicked, below.argmax(axis=1), -1)
        shown = shown_pos.any(axis=1)
        lead = np.where(clicked, position, shown_pos.argmax(axis=1))
        item = items[rows, lead]
        s = aff[rows, lead]
        e = w.item_emb[item]
        sat, rating, dwell, terminated = self._respond(item, s, clicked)

        fc = sc.users.fatigue
        self.fatigue *= np.float32(fc.decay)
        r, j = np.nonzero(shown_pos)
        np.add.at(self.fatigue, (r, topics[r, j]), np.float32(fc.gain))
        self._drift_toward(clicked, e)

        # One event per position, in slate order; the clicked position carries the click.
        hit = (np.arange(self.slate)[None, :] == position[:, None]) & clicked[:, None]
        ev_items = np.where(shown_pos, items, -1)
        ev_rating = np.where(hit, rating[:, None], 0.0)
        self._push_events(ev_items, hit, ev_rating)
        self._consume(item, clicked, rating)
        weight = self._event_weights(hit, ev_rating, shown_pos)
        safe = np.maximum(ev_items, 0)
        self._decay_state()
        self.vis_sum += np.einsum("nl,nld->nd", weight, w.item_emb[safe])
        self.vis_c += np.einsum("nl,nlp->np", weight, self._item_c[safe])
        reward, terminated, truncated, out = self._end_step(
            info=info,
            item=item,
            shown=shown,
            clicked=clicked,
            rating=rating,
            dwell=dwell,
            sat=sat,
            affinity=s,
            p_click=p_pos.sum(axis=1),
            terminated=terminated,
            cand_items=cand_items,
            cand_aff=cand_aff,
        )
        # The clicked position is returned even without the info: SlateQ learns from it.
        out["clicked_position"] = position
        if info:
            out["slate_items"] = ev_items
            out["slate_slots"] = slots
            out["slate_click_probability"] = p_pos
        return reward, terminated, truncated, out

    def _push_events(self, items: np.ndarray, clicked: np.ndarray, rating: np.ndarray) -> None:
        """Append m events per user to the history window, oldest first: (N, m) item indices (-1:
        nothing shown), clicks and ratings; the m oldest events leave the window."""
        m = items.shape[1]
        for hist, new in (
            (self.hist_item, items),
            (self.hist_click, clicked),
            (self.hist_rating, rating),
        ):
            hist[:, :-m] = hist[:, m:]
            hist[:, -m:] = new

    def _event_weights(
        self, clicked: np.ndarray, rating: np.ndarray, shown: np.ndarray
    ) -> np.ndarray:
        """Weight of each event in the pooled state (any shape): the click weight plus the rating
        weight times (rating - 3) for a click, the skip weight otherwise, 0 where nothing was
        shown; float32, never negative."""
        st = self.sc.state
        weight = np.where(
            clicked, st.click_weight + st.rating_weight * (rating - 3.0), st.skip_weight
        )
        return np.where(shown, np.maximum(weight, 0.0), 0.0).astype(np.float32)

    def _decay_state(self) -> None:
        """Age the pooled state (and its carried coordinates) by one step of recency decay."""
        decay = np.float32(self.sc.state.recency_decay)
        self.vis_sum *= decay
        self.vis_c *= decay

    def _respond(
        self, item: np.ndarray, s: np.ndarray, clicked: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Satisfaction, rating and dwell of each user's ``item`` (affinity ``s``; rating and
        dwell 0 without a click), the patience update and the session counts; returns ``(sat,
        rating, dwell, terminated)``, each (N,)."""
        sc = self.sc
        sat = satisfaction(sc.response, s, self._quality64[item], self._z_sat)
        rating = np.where(clicked, rating_from_satisfaction(sat), 0.0)
        dwell = np.where(clicked, dwell_from_satisfaction(sc.response, sat), 0.0)
        pc = sc.users.patience
        gain = pc.satisfaction_gain * (sat - pc.satisfaction_threshold)
        gain = gain - pc.clickbait_cost * self.world.catalog.appeal[item]
        self.patience = np.minimum(
            np.where(clicked, self.patience + gain, self.patience - pc.skip_cost), pc.max_patience
        )
        self.session_clicks += clicked
        self.session_rating += np.where(clicked, rating - 3.0, 0.0)
        return sat, rating, dwell, self.patience <= 0.0

    def _drift_toward(self, clicked: np.ndarray, e: np.ndarray) -> None:
        """Exposure-driven drift: consuming an item (embeddings ``e``, (N, d)) pulls the taste."""
        if self.sc.users.exposure_drift > 0 and clicked.any():
            r = self.sc.users.exposure_drift
            c = self._rows[clicked]
            self.theta[c] = _normalise(self.theta[c] + r * (e[c] - self.theta[c]))

    def _consume(self, item: np.ndarray, clicked: np.ndarray, rating: np.ndarray) -> None:
        """Append each clicked ``item`` and its rating to the user's consumed list."""
        if not clicked.any():
            return
        c = self._rows[clicked & (self.n_consumed < self.capacity)]
        self.consumed[c, self.n_consumed[c]] = item[c]
        self.consumed_rating[c, self.n_consumed[c]] = rating[c]
        self.n_consumed[c] += 1
        if self.consumed_mask is not None:
            self.consumed_mask[c, item[c]] = True

    def _end_step(
        self,
        *,
        info: bool,
        item: np.ndarray,
        shown: np.ndarray,
        clicked: np.ndarray,
        rating: np.ndarray,
        dwell: np.ndarray,
        sat: np.ndarray,
        affinity: np.ndarray,
        p_click: np.ndarray,
        terminated: np.ndarray,
        cand_items: np.ndarray,
        cand_aff: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Advance the clock and the drift, compute the reward, draw the next candidates and
        build the info (the common end of :meth:`step` and :meth:`step_slates`)."""
        w, sc = self.world, self.sc
        # The info describes the taste that served this step: the drift event is reported on the
        # first step served by a changed taste, with the phase that step had.
        drift_event, drift_phase = self.drift_pending.copy(), self.drift_phase.copy()
        self.t += 1
        self.drift_pending = self._apply_drift()
        truncated = (self.t >= sc.episode.horizon) & ~terminated

        fb = Feedback(
            clicked=clicked,
            rating=rating,
            dwell=dwell,
            affinity=affinity,
            left=terminated,
            shown=shown,
        )
        reward = compute_reward(fb, sc)
        self._refresh_visible(None)
        self._draw_candidates()
        if not info:
            return reward, terminated, truncated, {}
        out: dict[str, Any] = {
            "item_index": item,
            "clicked": clicked,
            "rating": rating,
            "dwell": dwell,
            "satisfaction": sat,
            "affinity": affinity,
            "click_probability": p_click,
            "is_new_user": self.new_user.copy(),
            "is_new_item": w.arrival[item] > 0,
            "popularity_rank": w.pop_rank[item],
            "drift_event": drift_event,
            "drift_phase": drift_phase,
            "patience": self.patience.copy(),
            "invalid_action": ~shown,
            "user_id": self.user_id.copy(),
            "step": self.t - 1,
            "candidate_items": cand_items,
        }
        if cand_aff is not None:
            out["candidate_affinity"] = cand_aff
        return reward, terminated, truncated, out

    def _apply_drift(self) -> np.ndarray:
        """Scenario-driven interest drift after the step counter advanced; returns event flags."""
        drift = self.sc.users.drift
        event = np.zeros(self.n, dtype=bool)
        if drift.kind == "none" or not self.drifting.any():
            return event
        d = self.drifting
        if drift.kind == "gradual":
            r = np.float32(drift.rate)
            self.theta[d] = _normalise(self.theta[d] + r * (self.theta_away[d] - self.theta[d]))
            self.drift_phase[d] = 1.0 - (1.0 - drift.rate) ** self.t[d]
        elif drift.kind == "abrupt":
            event = d & (self.t == drift.step)
            self.theta[event] = self.theta_away[event]
            self.drift_phase[d & (self.t >= drift.step)] = 1.0
        else:  # periodic
            event = d & (self.t % drift.period == 0)
            phase = (self.t // drift.period) % 2
            away = event & (phase == 1)
            home = event & (phase == 0)
            self.theta[away] = self.theta_away[away]
            self.theta[home] = self.theta_home[home]
            self.drift_phase[d] = phase[d].astype(np.float64)
        return event
