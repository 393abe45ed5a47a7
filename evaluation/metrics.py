"""Pure metric functions over the simulator's per-step log.

Everything here depends only on numpy, pandas and scipy, so it can be used on logs that were
written by an earlier run (or by hand, in tests) without building an environment.

The per-step log (``steps``) is a :class:`pandas.DataFrame` with one row per environment step and
at least the columns listed in :data:`STEP_COLUMNS`. Episodes are identified by
``(policy, seed, episode)``; within an episode ``step`` is 0-based.

Slates: a step may show several items (``candidates.slate_size`` L > 1). The item metrics
(``long_tail_share``, ``novelty``, ``intra_list_diversity``, ``new_item_share``, exposure, coverage,
Gini) count every item shown, which :func:`episode_table` takes as a separate ``shown`` frame (one
row per item shown, see :data:`SHOWN_COLUMNS`); the step metrics (return, click-through, rating,
dwell, session length, churn, cold start, drift) stay per step.

Groups of functions:

- episode level: :func:`episode_table` (one row per episode);
- aggregate, per policy: :func:`exposure_counts`, :func:`catalog_coverage`, :func:`gini`,
  :func:`lorenz_curve`, :func:`churn_rate`, :func:`retention_curve`;
- ranking against the hidden truth: :func:`precision_at_k`, :func:`recall_at_k`,
  :func:`ndcg_at_k`;
- interest drift: :func:`ctr_around_events`, :func:`drift_recovery`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import sparse

from lmrecsim.exceptions import LmrecsimError

__all__ = [
    "EPISODE_KEYS",
    "MetricInputError",
    "SHOWN_COLUMNS",
    "STEP_COLUMNS",
    "catalog_coverage",
    "churn_rate",
    "ctr_around_events",
    "drift_recovery",
    "episode_table",
    "exposure_counts",
    "gini",
    "lorenz_curve",
    "ndcg_at_k",
    "precision_at_k",
    "recall_at_k",
    "retention_curve",
]


class MetricInputError(LmrecsimError, ValueError):
    """Bad input to an evaluation metric.

    The message is one line naming the function, the offending argument or column and what
    was expected. It subclasses ValueError so callers that catch that keep working.
    """


#: Columns of the ``shown`` frame of :func:`episode_table`: one row per item shown (every
#: position of a slate that showed an item; the one item of a valid single-item step).
SHOWN_COLUMNS: tuple[str, ...] = (
    "policy",
    "seed",
    "episode",
    "step",
    "item_index",
    "popularity_rank",
    "is_new_item",
)

#: Columns that identify one episode in the per-step log.
EPISODE_KEYS: tuple[str, ...] = ("policy", "seed", "episode")

#: Columns the per-step log is expected to carry (more are allowed).
STEP_COLUMNS: tuple[str, ...] = (
    "policy",
    "seed",
    "episode",
    "step",
    "user_id",
    "is_new_user",
    "item_index",
    "clicked",
    "rating",
    "dwell",
    "reward",
    "terminated",
    "truncated",
    "popularity_rank",
    "is_new_item",
    "affinity",
    "drift_event",
)


def _require_columns(frame: pd.DataFrame, columns: Iterable[str], where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MetricInputError(
            f"{where}: steps is missing columns {missing}; expected the per-step log"
        )


def _item_rows(item_index: np.ndarray, n_items: int, where: str) -> np.ndarray:
    idx = np.asarray(item_index)
    if idx.size and (not np.issubdtype(idx.dtype, np.integer)):
        raise MetricInputError(f"{where}: item_index must be integers, got dtype {idx.dtype}")
    idx = idx.astype(np.int64, copy=False)
    if idx.size and (idx.min() < 0 or idx.max() >= n_items):
        raise MetricInputError(
            f"{where}: item_index must lie in [0, {n_items}), got [{idx.min()}, {idx.max()}]"
        )
    return idx


# --------------------------------------------------------------------------------------------
# Episode level
# --------------------------------------------------------------------------------------------


def episode_table(
    steps: pd.DataFrame,
    *,
    new_user_k: int = 10,
    head_rank: int | None = None,
    popularity: np.ndarray | None = None,
    item_embeddings: np.ndarray | None = None,
    shown: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Summarise the per-step log into one row per episode ``(policy, seed, episode)``.

    Steps are ordered by ``step`` inside each episode before anything is computed. With
    ``T`` the number of steps of an episode, ``r_t`` the reward, ``c_t`` the click indicator,
    ``i_t`` the recommended item:

    ==========================  ==============================================================
    column                      definition
    ==========================  ==============================================================
    ``return``                  ``sum_t r_t``
    ``ctr``                     ``mean_t c_t``
    ``mean_rating``             mean of ``rating`` over clicked steps; NaN if nothing clicked
    ``mean_dwell``              ``mean_t dwell_t`` over all steps (dwell is 0 without a click)
    ``session_length``          ``T``
    ``churned``                 ``terminated`` of the last step (the user left)
    ``new_user``                ``is_new_user`` of the first step
    ``new_user_return_k``       ``sum_{t < k} r_t`` over the first ``min(k, T)`` steps for new
                                users, NaN for returning users (``k = new_user_k``)
    ``new_user_ctr_k``          ``mean_{t < k} c_t`` likewise
    ``new_item_share``          ``mean_t is_new_item_t``
    ``long_tail_share``         ``mean_t [popularity_rank_t >= head_rank]``: share of
                                recommendations outside the ``head_rank`` most popular items
    ``novelty``                 ``mean_t -log2 p(i_t)`` with ``p = popularity / popularity.sum()``
    ``intra_list_diversity``    mean over pairs ``s < t`` of ``1 - cos(e_{i_s}, e_{i_t})``;
                                NaN when ``T < 2``
    ==========================  ==============================================================

    The last three columns need optional inputs; when an input is not given its column is
    present and all NaN, so tables from different calls always share one schema.

    The item columns (``new_item_share``, ``long_tail_share``, ``novelty``,
    ``intra_list_diversity``) average over the items shown, ``i_t`` running over every item of
    the ``shown`` frame of the episode: for slates, all the items of every slate (the share of
    shown items that were new, the mean surprisal of the shown items, the diversity of all the
    session's shown items, pairs within and across slates). Without ``shown``, each step shows its
    own ``item_index`` unless its ``invalid_action`` is True (a masked slot showed nothing). An
    episode that showed nothing has NaN item columns.

    Intra-list diversity is computed without a pairwise loop: for unit vectors with episode sum
    ``S = sum_t e_{i_t}``, ``sum_{s != t} cos = ||S||^2 - T``, so the mean pairwise cosine is
    ``(||S||^2 - T) / (T (T - 1))``. Repeated items count as pairs at distance 0.

    Args:
        steps: per-step log, one row per step, with at least the columns of
            :data:`STEP_COLUMNS` that the requested metrics use.
        new_user_k: number of leading steps the ``new_user_*_k`` columns look at (>= 1).
        head_rank: number of items in the popularity head; ``popularity_rank`` is 0 for the
            most popular item. ``None`` leaves ``long_tail_share`` NaN.
        popularity: shape ``(n_items,)``, non-negative popularity of every catalog item
            (counts or shares; normalised to sum 1), indexed by ``item_index``. Every
            recommended item must have positive popularity. ``None`` leaves ``novelty`` NaN.
        item_embeddings: shape ``(n_items, d)``, item embeddings (normalised here, so unit norm
            is not required, but no recommended item may be the zero vector). ``None`` leaves
            ``intra_list_diversity`` NaN.
        shown: one row per item shown, with the columns of :data:`SHOWN_COLUMNS` (episode keys,
            ``step``, ``item_index``, ``popularity_rank``, ``is_new_item``); ``None`` derives
            it from ``steps`` (single-item steps).

    Returns:
        DataFrame with one row per episode, sorted by ``(policy, seed, episode)``: the key
        columns followed by the columns of the table above.
    """
    where = "episode_table"
    if new_user_k < 1:
        raise MetricInputError(f"{where}: new_user_k must be >= 1, got {new_user_k}")
    needed = [
        *EPISODE_KEYS,
        "step",
        "is_new_user",
        "clicked",
        "rating",
        "dwell",
        "reward",
        "terminated",
        "is_new_item",
    ]
    if head_rank is not None:
        needed.append("popularity_rank")
    if shown is None and (popularity is not None or item_embeddings is not None):
        needed.append("item_index")
    _require_columns(steps, needed, where)
    if shown is not None:
        _require_columns(shown, SHOWN_COLUMNS, f"{where} (shown)")

    keys = list(EPISODE_KEYS)
    df = steps.sort_values([*keys, "step"], kind="stable").reset_index(drop=True)
    clicked = df["clicked"].astype(bool)
    # A step whose action picked a masked slot showed nothing: it is a step (a skip) but not a
    # recommendation, so the item metrics leave it out (its item_index is the slot's filler).
    valid = (
        ~df["invalid_action"].astype(bool)
        if "invalid_action" in df.columns
        else pd.Series(True, index=df.index)
    )
    if shown is None:
        cols = [c for c in ("item_index", "popularity_rank", "is_new_item") if c in df.columns]
        items = df.loc[valid.to_numpy(), [*keys, "step", *cols]].reset_index(drop=True)
    else:
        items = shown.sort_values([*keys, "step"], kind="stable").reset_index(drop=True)
    position = df.groupby(keys, sort=False).cumcount().to_numpy()
    in_k = position < new_user_k

    work = pd.DataFrame(
        {
            **{k: df[k] for k in keys},
            "reward": df["reward"].astype(float),
            "clicked": clicked.astype(float),
            "rating_clicked": df["rating"].astype(float).where(clicked),
            "dwell": df["dwell"].astype(float),
            "terminated": df["terminated"].astype(bool),
            "is_new_user": df["is_new_user"].astype(bool),
            "reward_k": df["reward"].astype(float).where(in_k, 0.0),
            "clicked_k": clicked.astype(float).where(in_k, 0.0),
            "in_k": in_k.astype(float),
        }
    )
    grouped = work.groupby(keys, sort=True)
    table = grouped.agg(
        **{
            "return": ("reward", "sum"),
            "ctr": ("clicked", "mean"),
            "mean_rating": ("rating_clicked", "mean"),
            "mean_dwell": ("dwell", "mean"),
            "session_length": ("reward", "size"),
            "churned": ("terminated", "last"),
            "new_user": ("is_new_user", "first"),
            "new_user_return_k": ("reward_k", "sum"),
            "clicked_k": ("clicked_k", "sum"),
            "n_k": ("in_k", "sum"),
        }
    )
    groups = [items[k] for k in keys]
    table["new_item_share"] = items["is_new_item"].astype(float).groupby(groups).mean()
    new_user = table["new_user"].to_numpy(dtype=bool)
    table["new_user_return_k"] = np.where(new_user, table["new_user_return_k"], np.nan)
    table["new_user_ctr_k"] = np.where(new_user, table["clicked_k"] / table["n_k"], np.nan)
    table = table.drop(columns=["clicked_k", "n_k"])

    # Item quantities are means over the shown items, grouped by episode and aligned on the
    # table's index (an episode that showed nothing gets NaN).
    if head_rank is not None:
        if head_rank < 0:
            raise MetricInputError(f"{where}: head_rank must be >= 0, got {head_rank}")
        tail = pd.Series((items["popularity_rank"].to_numpy() >= head_rank).astype(float))
        table["long_tail_share"] = tail.groupby(groups).mean()
    else:
        table["long_tail_share"] = np.nan

    if popularity is not None:
        table["novelty"] = _episode_novelty(items, items, keys, popularity)
    else:
        table["novelty"] = np.nan

    if item_embeddings is not None:
        item_groups = items.groupby(keys, sort=True)
        diversity = _episode_diversity(items, item_groups, item_embeddings)
        table["intra_list_diversity"] = pd.Series(diversity, index=item_groups.size().index)
    else:
        table["intra_list_diversity"] = np.nan

    table["session_length"] = table["session_length"].astype(np.int64)
    table["churned"] = table["churned"].astype(bool)
    table["new_user"] = table["new_user"].astype(bool)
    return table.reset_index()


def _episode_novelty(
    df: pd.DataFrame, work: pd.DataFrame, keys: list[str], popularity: np.ndarray
) -> pd.Series:
    where = "episode_table"
    pop = np.asarray(popularity, dtype=float)
    if pop.ndim != 1 or not np.all(np.isfinite(pop)) or np.any(pop < 0) or pop.sum() <= 0:
        raise MetricInputError(
            f"{where}: popularity must be a 1-D finite non-negative array with a positive sum"
        )
    idx = _item_rows(df["item_index"].to_numpy(), pop.shape[0], where)
    share = pop[idx] / pop.sum()
    if np.any(share <= 0):
        raise MetricInputError(
            f"{where}: popularity is 0 for a recommended item; novelty is infinite"
        )
    surprisal = pd.Series(-np.log2(share), index=work.index)
    return surprisal.groupby([work[k] for k in keys]).mean()


def _episode_diversity(
    df: pd.DataFrame, grouped: pd.api.typing.DataFrameGroupBy, item_embeddings: np.ndarray
) -> np.ndarray:
    where = "episode_table"
    emb = np.asarray(item_embeddings, dtype=float)
    if emb.ndim != 2:
        raise MetricInputError(
            f"{where}: item_embeddings must have shape (n_items, d), got {emb.shape}"
        )
    idx = _item_rows(df["item_index"].to_numpy(), emb.shape[0], where)
    norms = np.linalg.norm(emb, axis=1)
    if np.any(norms[np.unique(idx)] == 0):
        raise MetricInputError(f"{where}: item_embeddings has a zero vector for a recommended item")
    unit = emb / np.where(norms > 0, norms, 1.0)[:, None]
    # An (episodes x items) count matrix times the embeddings gives each episode's sum of
    # recommended embeddings without materialising one d-vector per step.
    episode_code = grouped.ngroup().to_numpy()
    n_episodes = grouped.ngroups
    counts = sparse.csr_matrix(
        (np.ones(idx.shape[0]), (episode_code, idx)), shape=(n_episodes, emb.shape[0])
    )
    sums = np.asarray(counts @ unit)
    length = np.bincount(episode_code, minlength=n_episodes).astype(float)
    pairs = length * (length - 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_cos = (np.einsum("ij,ij->i", sums, sums) - length) / pairs
    # The shortcut formula rounds: a session of one repeated item gave -6.7e-16, not 0. The
    # metric is a cosine distance, so it is kept in its range [0, 2].
    return np.where(length >= 2, np.clip(1.0 - mean_cos, 0.0, 2.0), np.nan)


# --------------------------------------------------------------------------------------------
# Aggregate, per policy
# --------------------------------------------------------------------------------------------


def exposure_counts(item_index: np.ndarray, n_items: int) -> np.ndarray:
    """Count how often each catalog item was recommended.

    Args:
        item_index: shape ``(n_steps,)``, catalog rows of the recommended items.
        n_items: catalog size.

    Returns:
        shape ``(n_items,)`` int64 counts, zeros for items never recommended.
    """
    idx = _item_rows(np.asarray(item_index).ravel(), n_items, "exposure_counts")
    return np.bincount(idx, minlength=n_items).astype(np.int64)


def catalog_coverage(item_index: np.ndarray, n_items: int) -> float:
    """Share of the catalog that was recommended at least once.

    ``coverage = |{distinct item_index}| / n_items``.

    Args:
        item_index: shape ``(n_steps,)``, catalog rows of the recommended items.
        n_items: catalog size (> 0).

    Returns:
        coverage in ``[0, 1]``.
    """
    if n_items <= 0:
        raise MetricInputError(f"catalog_coverage: n_items must be > 0, got {n_items}")
    idx = _item_rows(np.asarray(item_index).ravel(), n_items, "catalog_coverage")
    return float(np.unique(idx).size / n_items)


def _sorted_counts(counts: np.ndarray, where: str) -> np.ndarray:
    x = np.asarray(counts, dtype=float).ravel()
    if x.size == 0 or not np.all(np.isfinite(x)) or np.any(x < 0):
        raise MetricInputError(f"{where}: counts must be a non-empty finite non-negative array")
    return np.sort(x)


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of exposure over the whole catalog.

    With the counts sorted ascending, ``x_(1) <= ... <= x_(n)``, over ALL ``n`` catalog items
    (items never shown included, as zeros)::

        G = sum_{i=1..n} (2 i - n - 1) x_(i) / (n * sum_i x_(i))

    0 means every item got the same exposure; one item taking everything gives ``1 - 1/n``
    (e.g. ``gini([0, 0, 0, 10]) = 0.75``).

    Args:
        counts: shape ``(n_items,)``, exposure per catalog item (see :func:`exposure_counts`).

    Returns:
        G in ``[0, 1)``; NaN when every count is 0 (no exposure to distribute).
    """
    x = _sorted_counts(counts, "gini")
    total = x.sum()
    if total == 0:
        return float("nan")
    n = x.size
    weights = 2.0 * np.arange(1, n + 1) - n - 1.0
    return float(weights @ x / (n * total))


def position_clicks(shown: pd.DataFrame, steps: pd.DataFrame, slate_size: int) -> pd.DataFrame:
    """Clicks by slate position, per policy.

    Args:
        shown: one row per item shown (``policy``, ``position``), as the evaluation builds it.
        steps: the step log (``policy``, ``clicked_position``: -1 without a click).
        slate_size: L, the positions of a slate.

    Returns:
        One row per (policy, position), policies in order of first appearance in ``steps`` and
        positions 0..L-1: ``shown`` (steps where the position showed an item), ``clicks``,
        ``ctr`` (clicks / shown, nan where nothing was shown) and ``click_share`` (the
        position's share of the policy's clicks, nan without clicks).
    """
    policies = list(dict.fromkeys(steps["policy"]))
    index = pd.MultiIndex.from_product([policies, range(slate_size)], names=["policy", "position"])
    n_shown = shown.groupby(["policy", "position"]).size().reindex(index, fill_value=0)
    clicked = steps[steps["clicked_position"] >= 0]
    n_clicks = (
        clicked.groupby([clicked["policy"], clicked["clicked_position"].rename("position")])
        .size()
        .reindex(index, fill_value=0)
    )
    out = pd.DataFrame({"shown": n_shown, "clicks": n_clicks}).reset_index()
    out["shown"] = out["shown"].astype(np.int64)
    out["clicks"] = out["clicks"].astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ctr"] = np.where(out["shown"] > 0, out["clicks"] / out["shown"], np.nan)
        total = out.groupby("policy", sort=False)["clicks"].transform("sum")
        out["click_share"] = np.where(total > 0, out["clicks"] / total, np.nan)
    return out


def lorenz_curve(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lorenz curve of exposure: the poorest share of items against their share of exposure.

    With counts sorted ascending, point ``j`` (``j = 0..n``) is
    ``(j / n, sum_{i <= j} x_(i) / sum_i x_(i))``. The curve is the diagonal under equal
    exposure, and twice the area between diagonal and curve is :func:`gini`.

    Args:
        counts: shape ``(n_items,)``, exposure per catalog item.

    Returns:
        ``(population_share, exposure_share)``, each of shape ``(n_items + 1,)``, both starting
        at 0 and ending at 1. With zero total exposure the exposure share is taken as equal
        (the diagonal), so the endpoints still hold.
    """
    x = _sorted_counts(counts, "lorenz_curve")
    n = x.size
    population = np.arange(n + 1, dtype=float) / n
    total = x.sum()
    if total == 0:
        return population, population.copy()
    exposure = np.concatenate([[0.0], np.cumsum(x) / total])
    exposure[-1] = 1.0  # guard against rounding in the cumulative sum
    return population, exposure


def churn_rate(episodes: pd.DataFrame) -> float:
    """Share of episodes that ended with the user leaving.

    ``churn_rate = mean_e churned_e`` over the rows of an :func:`episode_table` (filter it to
    one policy first, or use ``groupby("policy")``).

    Args:
        episodes: episode table with a boolean ``churned`` column.

    Returns:
        churn rate in ``[0, 1]``; NaN for an empty table.
    """
    if "churned" not in episodes.columns:
        raise MetricInputError(
            "churn_rate: episodes is missing column 'churned'; expected episode_table"
        )
    if len(episodes) == 0:
        return float("nan")
    return float(episodes["churned"].astype(bool).mean())


def retention_curve(steps: pd.DataFrame) -> pd.DataFrame:
    """Share of sessions still going at each step, and the reward per session still going.

    For a policy with ``E`` episodes, ``n(t)`` of which have a row at step ``t`` (a user who left
    has no rows after leaving), and ``R(t)`` the sum of those rows' rewards::

        still_there(t)        = n(t) / E
        reward_per_session(t) = R(t) / n(t)        (NaN where n(t) = 0)

    so a policy's mean return is ``sum_t still_there(t) * reward_per_session(t)``: the return
    split into keeping users and the reward per step of the users kept.

    Args:
        steps: per-step log with ``policy, seed, episode, step, reward``; one row per
            (policy, seed, episode, step).

    Returns:
        DataFrame with columns ``policy, step, sessions, still_there, reward_per_session``:
        for every policy, one row per step from 0 to its longest episode's last step, policies
        in order of first appearance.

    Raises:
        MetricInputError: a missing column, a negative step or repeated rows.
    """
    where = "retention_curve"
    _require_columns(steps, [*EPISODE_KEYS, "step", "reward"], where)
    keys = [*EPISODE_KEYS, "step"]
    if steps.duplicated(keys).any():
        raise MetricInputError(f"{where}: steps has repeated (policy, seed, episode, step) rows")
    if len(steps) and int(steps["step"].min()) < 0:
        raise MetricInputError(f"{where}: steps has a negative step (expected steps from 0)")
    columns = ["policy", "step", "sessions", "still_there", "reward_per_session"]
    parts = []
    for policy in pd.unique(steps["policy"]):
        rows = steps[steps["policy"] == policy]
        n_episodes = len(rows[list(EPISODE_KEYS)].drop_duplicates())
        per_step = rows.groupby("step")["reward"].agg(["size", "sum"])
        per_step = per_step.reindex(np.arange(int(rows["step"].max()) + 1))
        sessions = per_step["size"].fillna(0).astype(np.int64).to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            reward = np.where(sessions > 0, per_step["sum"].to_numpy() / sessions, np.nan)
        parts.append(
            pd.DataFrame(
                {
                    "policy": policy,
                    "step": per_step.index.to_numpy(dtype=np.int64),
                    "sessions": sessions,
                    "still_there": sessions / n_episodes,
                    "reward_per_session": reward,
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


# --------------------------------------------------------------------------------------------
# Ranking against the hidden truth
# --------------------------------------------------------------------------------------------


def _ranking_inputs(
    scores: np.ndarray, truth: np.ndarray, mask: np.ndarray | None, k: int, where: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float)
    t = np.asarray(truth, dtype=float)
    if s.ndim != 2 or s.shape != t.shape:
        raise MetricInputError(
            f"{where}: scores and truth must both have shape (n, K), got {s.shape} and {t.shape}"
        )
    m = np.ones(s.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != s.shape:
        raise MetricInputError(f"{where}: mask must have shape {s.shape}, got {m.shape}")
    if int(k) < 1:
        raise MetricInputError(f"{where}: k must be >= 1, got {k}")
    if np.any(np.isnan(s[m])) or np.any(np.isnan(t[m])):
        raise MetricInputError(
            f"{where}: scores and truth must not be NaN at valid (mask) candidates"
        )
    return s, t, m


def _rank_positions(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order candidates by ``values`` descending, ties by index, invalid ones last.

    Returns ``(order, rank)``, both ``(n, K)``: ``order[r, j]`` is the candidate at position
    ``j`` of row ``r`` and ``rank[r, c]`` the position of candidate ``c``.
    """
    # lexsort is stable, so equal keys keep ascending candidate index; the last key is primary.
    order = np.lexsort((-values, ~mask), axis=-1)
    rank = np.empty_like(order)
    rows = np.arange(order.shape[0])[:, None]
    rank[rows, order] = np.arange(order.shape[1])[None, :]
    return order, rank


def _topk_hits(
    scores: np.ndarray,
    truth: np.ndarray,
    mask: np.ndarray | None,
    k: int,
    n_relevant: int | None,
    where: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s, t, m = _ranking_inputs(scores, truth, mask, k, where)
    n_rel = int(k) if n_relevant is None else int(n_relevant)
    if n_rel < 1:
        raise MetricInputError(f"{where}: n_relevant must be >= 1, got {n_relevant}")
    n_valid = m.sum(axis=1)
    k_eff = np.minimum(int(k), n_valid)
    rel_eff = np.minimum(n_rel, n_valid)
    _, policy_rank = _rank_positions(s, m)
    _, truth_rank = _rank_positions(t, m)
    # Valid candidates occupy positions 0..n_valid-1, so a position test also excludes invalid.
    shown = policy_rank < k_eff[:, None]
    relevant = truth_rank < rel_eff[:, None]
    hits = np.sum(shown & relevant, axis=1).astype(float)
    return hits, k_eff.astype(float), rel_eff.astype(float)


def precision_at_k(
    scores: np.ndarray,
    truth: np.ndarray,
    mask: np.ndarray | None,
    k: int,
    *,
    n_relevant: int | None = None,
) -> np.ndarray:
    """Precision@k of the policy's ranking against the hidden true affinities, per row.

    For each row (one decision over ``K`` candidates), among the valid candidates only
    (``mask`` True):

    - the policy's list ``P`` = the first ``min(k, n_valid)`` candidates sorted by ``scores``
      descending, ties broken by lower candidate index;
    - the relevant set ``R`` = the ``min(n_relevant, n_valid)`` candidates with the highest
      ``truth`` (same tie rule); ``n_relevant`` defaults to ``k``;
    - ``precision = |P & R| / |P|``.

    Invalid candidates are never ranked and never relevant. With the default
    ``n_relevant = k``, ``|P| = |R|`` so precision and recall coincide (both are the top-k
    overlap); pass ``n_relevant`` to tell them apart.

    Args:
        scores: shape ``(n, K)``, the policy's scores of the candidates.
        truth: shape ``(n, K)``, true affinities ``cos(theta_u, e_item)`` of the candidates.
        mask: shape ``(n, K)`` bool, valid candidates; ``None`` means all valid.
        k: list length (>= 1).
        n_relevant: size of the relevant set (>= 1); ``None`` means ``k``.

    Returns:
        shape ``(n,)``, precision per row in ``[0, 1]``; NaN for rows without valid candidates.
    """
    hits, k_eff, _ = _topk_hits(scores, truth, mask, k, n_relevant, "precision_at_k")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(k_eff > 0, hits / k_eff, np.nan)


def recall_at_k(
    scores: np.ndarray,
    truth: np.ndarray,
    mask: np.ndarray | None,
    k: int,
    *,
    n_relevant: int | None = None,
) -> np.ndarray:
    """Recall@k of the policy's ranking against the hidden true affinities, per row.

    Same ``P`` and ``R`` as :func:`precision_at_k`; ``recall = |P & R| / |R|``.

    Args:
        scores: shape ``(n, K)``, the policy's scores of the candidates.
        truth: shape ``(n, K)``, true affinities of the candidates.
        mask: shape ``(n, K)`` bool, valid candidates; ``None`` means all valid.
        k: list length (>= 1).
        n_relevant: size of the relevant set (>= 1); ``None`` means ``k``.

    Returns:
        shape ``(n,)``, recall per row in ``[0, 1]``; NaN for rows without valid candidates.
    """
    hits, _, rel_eff = _topk_hits(scores, truth, mask, k, n_relevant, "recall_at_k")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(rel_eff > 0, hits / rel_eff, np.nan)


def ndcg_at_k(
    scores: np.ndarray,
    truth: np.ndarray,
    mask: np.ndarray | None,
    k: int,
) -> np.ndarray:
    """NDCG@k with graded relevance from the hidden true affinities, per row.

    Relevance of a candidate is its true affinity clipped at 0, ``g_c = max(truth_c, 0)``
    (a disliked item is as useless as an indifferent one); gains are linear, not
    ``2^g - 1``. With ``k' = min(k, n_valid)`` and positions ``j = 0..k'-1``::

        DCG  = sum_j g_{P_j} / log2(j + 2)   # P: valid candidates by scores desc, ties by index
        IDCG = sum_j g_{T_j} / log2(j + 2)   # T: valid candidates by truth desc
        NDCG = DCG / IDCG

    Every valid candidate carries its gain (not only the top-k by truth), so a list that puts
    the second-best item first still earns most of the credit.

    Args:
        scores: shape ``(n, K)``, the policy's scores of the candidates.
        truth: shape ``(n, K)``, true affinities of the candidates.
        mask: shape ``(n, K)`` bool, valid candidates; ``None`` means all valid.
        k: list length (>= 1).

    Returns:
        shape ``(n,)``, NDCG per row in ``[0, 1]``; NaN for rows without valid candidates or
        whose valid candidates all have affinity <= 0 (IDCG = 0).
    """
    s, t, m = _ranking_inputs(scores, truth, mask, k, "ndcg_at_k")
    n, n_cand = s.shape
    k_eff = np.minimum(int(k), m.sum(axis=1))
    gain = np.where(m, np.clip(t, 0.0, None), 0.0)
    positions = np.arange(n_cand)
    discount = np.where(positions[None, :] < k_eff[:, None], 1.0 / np.log2(positions + 2.0), 0.0)
    rows = np.arange(n)[:, None]
    policy_order, _ = _rank_positions(s, m)
    truth_order, _ = _rank_positions(t, m)
    dcg = np.sum(gain[rows, policy_order] * discount, axis=1)
    idcg = np.sum(gain[rows, truth_order] * discount, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(idcg > 0, dcg / idcg, np.nan)


# --------------------------------------------------------------------------------------------
# Interest drift
# --------------------------------------------------------------------------------------------

_USER_KEYS = [*EPISODE_KEYS, "user_id"]


def ctr_around_events(steps: pd.DataFrame, window: int) -> pd.DataFrame:
    """Click-through rate at each offset around drift events, per policy.

    For every row with ``drift_event`` True at step ``s0``, the steps of the same user in the
    same episode (``policy, seed, episode, user_id``) at ``step = s0 + o`` for
    ``o = -window..window`` are collected, when they exist (events near an episode's start or
    end contribute fewer offsets, and a user who churned contributes nothing after leaving).
    Then, per policy and offset::

        ctr(o) = mean of clicked over all collected (event, o) steps,  n(o) = their number

    Offset 0 is the step at which the event happened. Overlapping windows of nearby events
    are each counted, once per event.

    Args:
        steps: per-step log with ``policy, seed, episode, step, user_id, clicked, drift_event``.
        window: number of steps each side (>= 0).

    Returns:
        DataFrame with columns ``policy, offset, ctr, n``: ``2 * window + 1`` rows for every
        policy in ``steps``, sorted by policy then offset; ``ctr`` is NaN where ``n`` is 0.
    """
    where = "ctr_around_events"
    if window < 0:
        raise MetricInputError(f"{where}: window must be >= 0, got {window}")
    _require_columns(steps, [*_USER_KEYS, "step", "clicked", "drift_event"], where)
    unknown = int(steps["drift_event"].isna().sum())
    if unknown:
        raise MetricInputError(
            f"{where}: drift_event is missing in {unknown} of {len(steps)} rows (expected True or "
            "False in every row; step logs before schema version 5 did not record drift events)"
        )
    log = steps[[*_USER_KEYS, "step", "clicked"]].copy()
    log["clicked"] = log["clicked"].astype(float)
    if log.duplicated([*_USER_KEYS, "step"]).any():
        raise MetricInputError(
            f"{where}: steps has repeated (policy, seed, episode, user_id, step) rows"
        )

    events = steps.loc[steps["drift_event"].astype(bool), [*_USER_KEYS, "step"]]
    offsets = pd.DataFrame({"offset": np.arange(-window, window + 1)})
    around = events.rename(columns={"step": "event_step"}).merge(offsets, how="cross")
    around["step"] = around["event_step"] + around["offset"]
    joined = around.merge(log, on=[*_USER_KEYS, "step"], how="inner")
    stats = joined.groupby(["policy", "offset"])["clicked"].agg(ctr="mean", n="size")

    policies = pd.unique(steps["policy"])
    full = pd.MultiIndex.from_product(
        [sorted(policies), offsets["offset"].to_numpy()], names=["policy", "offset"]
    )
    out = stats.reindex(full)
    out["n"] = out["n"].fillna(0).astype(np.int64)
    return out.reset_index()


#: Width of the forward window that smooths click-through after a drift event before the
#: recovery rule reads it (:func:`drift_recovery`; ``lmrecsim evaluate``'s ``drift_smooth``).
DRIFT_SMOOTH = 3


def drift_recovery(
    steps: pd.DataFrame, window: int, tolerance: float, *, smooth: int = DRIFT_SMOOTH
) -> pd.DataFrame:
    """How far click-through falls after drift events and how fast it comes back, per policy.

    Built on :func:`ctr_around_events` (``ctr(o)``, ``n(o)`` for ``o = -window..window``)::

        ctr_before = sum_{o<0} n(o) ctr(o) / sum_{o<0} n(o)    # offsets -window..-1
        ctr_after  = sum_{o>=0} n(o) ctr(o) / sum_{o>=0} n(o)  # offsets 0..window
        smoothed(o) = mean(ctr(o), ..., ctr(o + smooth - 1))   # forward window, o >= 0
        recovery_steps = min { o >= 0 : smoothed(o) >= ctr_before - tolerance }

    The smoothing window looks forward so that ``recovery_steps = o`` reads "from offset ``o``
    on, click-through is back", 0 meaning no lasting dip, and so that pre-event offsets never
    leak into it. Being above ``ctr_before`` by more than ``tolerance`` counts as recovered
    (the policy is doing at least as well as before). When no smoothing window qualifies (no
    complete window, ``o + smooth - 1 <= window`` with no NaN ctr inside, is back), the policy did
    not recover within the window and ``recovery_steps`` is ``window + 1``, censored: it ranks
    last rather than reading as missing. It is NaN only without events (or without pre-event
    steps to compare with).

    Args:
        steps: per-step log (see :func:`ctr_around_events`).
        window: number of offsets each side of an event (>= 1).
        tolerance: allowed shortfall below ``ctr_before`` (>= 0).
        smooth: width of the smoothing window (1..window + 1).

    Returns:
        DataFrame with columns ``policy, ctr_before, ctr_after, recovery_steps, n_events``,
        one row per policy in ``steps``.
    """
    where = "drift_recovery"
    if window < 1:
        raise MetricInputError(f"{where}: window must be >= 1, got {window}")
    if not tolerance >= 0:
        raise MetricInputError(f"{where}: tolerance must be >= 0, got {tolerance}")
    if not 1 <= smooth <= window + 1:
        raise MetricInputError(
            f"{where}: smooth must lie in [1, window + 1 = {window + 1}], got {smooth}"
        )
    curve = ctr_around_events(steps, window)
    n_events = steps.loc[steps["drift_event"].astype(bool)].groupby("policy").size()

    rows = []
    for policy, part in curve.groupby("policy", sort=True):
        offset = part["offset"].to_numpy()
        ctr = part["ctr"].to_numpy(dtype=float)
        n = part["n"].to_numpy(dtype=float)
        clicks = np.nan_to_num(ctr) * n
        before, after = offset < 0, offset >= 0
        ctr_before = _ratio(clicks[before].sum(), n[before].sum())
        ctr_after = _ratio(clicks[after].sum(), n[after].sum())
        post = ctr[after]
        recovery = float("nan")
        if np.isfinite(ctr_before) and post.size >= smooth:
            # Forward mean: entry o averages post[o : o + smooth]; NaN inside makes it NaN.
            windows = np.lib.stride_tricks.sliding_window_view(post, smooth)
            smoothed = windows.mean(axis=1)
            ok = np.flatnonzero(smoothed >= ctr_before - tolerance)
            recovery = float(ok[0]) if ok.size else float(window + 1)
        rows.append(
            {
                "policy": policy,
                "ctr_before": ctr_before,
                "ctr_after": ctr_after,
                "recovery_steps": recovery,
                "n_events": int(n_events.get(policy, 0)),
            }
        )
    return pd.DataFrame(
        rows, columns=["policy", "ctr_before", "ctr_after", "recovery_steps", "n_events"]
    )


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else float("nan")
