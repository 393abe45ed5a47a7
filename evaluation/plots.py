"""The report's plots, rendered with matplotlib's Agg backend to PNG bytes.

Each ``plot_*`` function takes tables (no environment) and returns a :class:`Plot`, or None when
the data has nothing to show (no drift events, no new users, no learning curves).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .metrics import ctr_around_events, lorenz_curve, retention_curve  # noqa: E402

__all__ = [
    "Plot",
    "learning_curve",
    "plot_drift",
    "plot_learning_curves",
    "plot_lorenz",
    "plot_new_users",
    "plot_positions",
    "plot_return_ctr",
    "validation_curve",
]


@dataclass(frozen=True)
class Plot:
    """One rendered plot: file stem, title, one-sentence caption and the PNG bytes."""

    name: str
    title: str
    caption: str
    png: bytes


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _literal(text: str) -> str:
    """``text`` as matplotlib should draw it: as written. A ``$`` would start maths (and an odd
    one crash the parser), and a legend drops labels that start with ``_``."""
    text = text.replace("$", r"\$")
    return "\u200b" + text if text.startswith("_") else text


def _display(label: str, privileged: Mapping[str, bool]) -> str:
    shown = f"{label} (privileged)" if privileged.get(label, False) else label
    return _literal(shown)


def plot_return_ctr(summary: pd.DataFrame, privileged: Mapping[str, bool]) -> Plot:
    """Mean return and click-through per policy with their 95% bootstrap intervals.

    Args:
        summary: the summary table (``policy``, ``return``, ``return_low``, ... columns).
        privileged: label -> whether the policy reads hidden state.
    """
    labels = [_display(p, privileged) for p in summary["policy"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.5 * len(labels) + 2.0))
    y = np.arange(len(labels))
    for ax, metric, title in (
        (axes[0], "return", "return per episode"),
        (axes[1], "ctr", "click-through rate (mean over sessions)"),
    ):
        mid = summary[metric].to_numpy(float)
        err = np.vstack([mid - summary[f"{metric}_low"], summary[f"{metric}_high"] - mid])
        colors = ["#999999" if privileged.get(p, False) else "#3b6ea8" for p in summary["policy"]]
        ax.barh(y, mid, xerr=np.nan_to_num(err), color=colors, capsize=4)
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
    axes[1].set_yticklabels([])
    fig.tight_layout()
    return Plot(
        "return_ctr",
        "Return and click-through per policy",
        "Bars are means over episodes, whiskers 95% bootstrap intervals; grey bars are privileged.",
        _png(fig),
    )


def plot_lorenz(exposures: Mapping[str, np.ndarray], privileged: Mapping[str, bool]) -> Plot:
    """Exposure Lorenz curve per policy (items sorted from least to most recommended).

    Args:
        exposures: label -> (n_items,) recommendation counts.
        privileged: label -> whether the policy reads hidden state.
    """
    fig, (ax, top) = plt.subplots(1, 2, figsize=(11, 4.6))
    ax.plot([0, 1], [0, 1], color="black", lw=0.8, ls=":", label="equal exposure")
    for label, counts in exposures.items():
        style = {"label": _display(label, privileged), "ls": "--" if privileged.get(label) else "-"}
        x, y = lorenz_curve(counts)
        ax.plot(x, y, **style)
        # The same counts from the most exposed item down, on a log scale of items: with low
        # coverage every Lorenz curve hugs the right edge, and this panel tells them apart.
        ranked = np.sort(np.asarray(counts, dtype=float))[::-1]
        total = ranked.sum()
        if total > 0:
            share = np.arange(1, ranked.size + 1) / ranked.size
            top.plot(share, np.cumsum(ranked) / total, **style)
    ax.set_xlabel("share of catalog items (least exposed first)")
    ax.set_ylabel("share of recommendations")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    top.set_xscale("log")
    top.set_xlabel("share of catalog items (most exposed first, log scale)")
    top.set_ylabel("share of recommendations they took")
    top.set_ylim(0, 1.02)
    top.grid(alpha=0.3, which="both")
    return Plot(
        "lorenz",
        "Exposure Lorenz curves",
        "Left: the further a curve sags below the diagonal, the more a policy concentrates on few "
        "items (exposure Gini = twice the area between diagonal and curve). Right: the share of "
        "recommendations taken by the most exposed items, on a log scale of items, which separates "
        "policies that recommend only a small part of the catalog.",
        _png(fig),
    )


def plot_drift(steps: pd.DataFrame, window: int, privileged: Mapping[str, bool]) -> Plot | None:
    """Click-through at each step offset around interest-drift events, per policy."""
    if not steps["drift_event"].astype(bool).any():
        return None
    curve = ctr_around_events(steps, window)
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, part in curve.groupby("policy", sort=False):
        # An offset few events reach (users who left, events near a session's end) would draw a
        # click-through of one or two sessions, 0 or 1, as a point like the others.
        ok = part["n"] >= DRIFT_MIN_EVENTS
        ax.plot(
            part.loc[ok, "offset"],
            part.loc[ok, "ctr"],
            marker="o",
            ms=3,
            label=_display(str(label), privileged),
        )
    ax.axvline(0, color="black", lw=0.8, ls=":")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("steps relative to the drift event")
    ax.set_ylabel("click-through rate (events reaching the step)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return Plot(
        "drift",
        "Click-through around drift events",
        "Click-through at each step before and after a user's taste changed (offset 0), over the "
        "drift events whose session reached that step; steps fewer than "
        f"{DRIFT_MIN_EVENTS} events reached are left out.",
        _png(fig),
    )


#: Fewest drift events an offset of the drift plot needs to be drawn.
DRIFT_MIN_EVENTS = 5


#: Fewest sessions a step of the retention plot's right panel needs (and 5% of the episodes).
RETENTION_MIN_SESSIONS = 5
#: Steps the retention plot's right panel pools (centred) for each point.
RETENTION_SMOOTH = 5


def plot_retention(steps: pd.DataFrame, privileged: Mapping[str, bool]) -> Plot | None:
    """Sessions still going by step, and the reward per step of those sessions, per policy."""
    curve = retention_curve(steps)
    if curve.empty:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for label, part in curve.groupby("policy", sort=False):
        name = _display(str(label), privileged)
        (line,) = left.plot(part["step"], part["still_there"], drawstyle="steps-post", label=name)
        busiest = part["sessions"].idxmax()  # a step some session reached: still_there > 0
        n_episodes = part.at[busiest, "sessions"] / part.at[busiest, "still_there"]
        enough = part["sessions"] >= max(RETENTION_MIN_SESSIONS, 0.05 * n_episodes)
        # Pooled over RETENTION_SMOOTH steps: sum of rewards over sum of sessions in the window.
        total = (part["reward_per_session"].fillna(0.0) * part["sessions"]).rolling(
            RETENTION_SMOOTH, center=True, min_periods=1
        )
        count = part["sessions"].rolling(RETENTION_SMOOTH, center=True, min_periods=1)
        pooled = total.sum() / count.sum()
        right.plot(
            part.loc[enough, "step"],
            pooled[enough],
            color=line.get_color(),
            lw=1.2,
            label=name,
        )
    left.set_xlabel("step of the session")
    left.set_ylabel("share of sessions still going")
    left.set_ylim(0, 1.02)
    right.set_xlabel("step of the session")
    right.set_ylabel(f"reward per session still going ({RETENTION_SMOOTH}-step mean)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    fig.tight_layout()
    return Plot(
        "retention",
        "Keeping users and the reward per step of those kept",
        "Left: the share of sessions still going at each step (a user who leaves is gone for the "
        "rest of the session). Right: the mean reward per step of the sessions still going, "
        f"pooled over {RETENTION_SMOOTH} steps around each point (steps with fewer than "
        f"{RETENTION_MIN_SESSIONS} sessions or 5% of the episodes left out). A policy's mean "
        "return is the sum over the steps of left times right, so the two panels tell whether it "
        "earns its return by keeping users or by what each step pays.",
        _png(fig),
    )


def plot_new_users(steps: pd.DataFrame, k: int, privileged: Mapping[str, bool]) -> Plot | None:
    """Mean cumulative return over the first ``k`` steps of new users' sessions, per policy."""
    keys = ["policy", "seed", "episode"]
    first = steps.sort_values([*keys, "step"]).groupby(keys, sort=False)["is_new_user"].first()
    new_eps = first[first.astype(bool)].reset_index()[keys]
    if new_eps.empty:
        return None
    part = steps.merge(new_eps, on=keys)
    part = part[part["step"] < k]
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, rows in part.groupby("policy", sort=False):
        n_eps = len(new_eps[new_eps["policy"] == label])
        per_step = rows.groupby("step")["reward"].sum() / max(n_eps, 1)
        ax.plot(
            per_step.index + 1,
            per_step.cumsum().to_numpy(),
            marker="o",
            ms=3,
            label=_display(str(label), privileged),
        )
    ax.set_xlabel("step of a new user's session")
    ax.set_ylabel("mean cumulative return")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return Plot(
        "new_users",
        "Return over the first steps of new users",
        f"Mean cumulative reward over the first {k} steps of sessions of users with no history "
        "(sessions that ended early contribute 0 after their end).",
        _png(fig),
    )


def learning_curve(run_dir: Path | None, *, until: int | None = None) -> pd.DataFrame | None:
    """``(timesteps, mean_episode_reward)`` from a run folder's SB3 ``progress.csv``, or None.

    Args:
        run_dir: the training run folder.
        until: keep the rows logged at or before this many steps (the evaluated model's own
            training steps, so a checkpoint's curve ends where the checkpoint was saved).
    """
    if run_dir is None:
        return None
    path = Path(run_dir) / "progress.csv"
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    x, y = "time/total_timesteps", "rollout/ep_rew_mean"
    if x not in frame.columns or y not in frame.columns:
        return None
    # A damaged row (text where a number belongs, inf) is left out, as an unreadable file is.
    frame = frame[[x, y]].apply(pd.to_numeric, errors="coerce")
    frame = frame[np.isfinite(frame.to_numpy(dtype=np.float64)).all(axis=1)]
    frame = frame.astype({x: np.int64})
    if until is not None:
        frame = frame[frame[x] <= until]
    if frame.empty:
        return None
    return frame.rename(columns={x: "timesteps", y: "mean_episode_reward"})


def validation_curve(run_dir: Path | None, *, until: int | None = None) -> pd.DataFrame | None:
    """``(timesteps, mean_return, best)`` from a run folder's ``validation.csv``, or None.

    Args:
        run_dir: the training run folder.
        until: keep the validations at or before this many steps (as :func:`learning_curve`).
    """
    if run_dir is None:
        return None
    from ..agents.validation import read_validation

    frame = read_validation(run_dir)
    if frame is None:
        return None
    if until is not None:
        frame = frame[frame["timesteps"] <= until]
    return None if frame.empty else frame[["timesteps", "mean_return", "best"]]


def curve_file_problems(run_dir: Path | None, label: str) -> list[str]:
    """Warnings for a run folder's ``progress.csv`` and ``validation.csv`` that are there but
    cannot be read, so the report leaves their curves out (an empty file, or one with no rows
    yet, is no problem: a run stopped before its first rollout or validation writes those).
    """
    if run_dir is None:
        return []
    from ..agents.validation import validation_file_problem

    problems = []
    path = Path(run_dir) / "progress.csv"
    if path.is_file() and path.stat().st_size > 0:
        try:
            columns = set(pd.read_csv(path, nrows=0).columns)
        except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError):
            columns = set()
        if not {"time/total_timesteps", "rollout/ep_rew_mean"} <= columns:
            problems.append(
                f"{path}: unreadable (expected SB3's CSV log with time/total_timesteps and "
                f"rollout/ep_rew_mean); the report leaves out the training curve of {label!r}"
            )
    path = Path(run_dir) / "validation.csv"
    problem = validation_file_problem(run_dir) if path.is_file() and path.stat().st_size else None
    if problem is not None:
        problems.append(f"{problem}; the report leaves out the validation curve of {label!r}")
    return problems


def plot_learning_curves(
    curves: Mapping[str, pd.DataFrame],
    validation: Mapping[str, pd.DataFrame] | None = None,
) -> Plot | None:
    """Training curves (mean episode reward against timesteps) of trained policies, with their
    runs' validation returns (dashed, the best model's validation circled) where they have them."""
    validation = validation or {}
    if not curves and not validation:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for label in dict.fromkeys([*curves, *validation]):
        color = None
        if label in curves:
            frame = curves[label]
            # Markers: a curve of one logged rollout is a single point, invisible as a bare line.
            (line,) = ax.plot(
                frame["timesteps"],
                frame["mean_episode_reward"],
                marker="o",
                markersize=3,
                label=_literal(f"{label} (training)"),
            )
            color = line.get_color()
        if label in validation:
            frame = validation[label]
            (line,) = ax.plot(
                frame["timesteps"],
                frame["mean_return"],
                linestyle="--",
                marker="s",
                markersize=3,
                color=color,
                label=_literal(f"{label} (validation, greedy)"),
            )
            best = frame[frame["best"].astype(bool)]
            if not best.empty:
                ax.plot(
                    best["timesteps"].iloc[-1:],
                    best["mean_return"].iloc[-1:],
                    marker="o",
                    markersize=10,
                    markerfacecolor="none",
                    color=line.get_color(),
                    linestyle="none",
                )
    ax.set_xlabel("training timesteps")
    ax.set_ylabel("mean episode return")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return Plot(
        "learning_curves",
        "Learning curves",
        "Mean episode reward during training (the acting policy, exploration included), from each "
        "run folder's progress.csv, and, for runs that validated, the greedy policy's mean return "
        "on the held-out validation users (validation.csv; circled: the best validation up to the "
        "evaluated model, for a run's best_model.zip its own); both up to the training steps of "
        "the evaluated model (a checkpoint's curve ends at the checkpoint).",
        _png(fig),
    )


#: The name of every plot :func:`all_plots` can make (``NAME.png`` in a report folder).
PLOT_NAMES = ("return_ctr", "lorenz", "retention", "drift", "new_users", "learning_curves")


def plot_positions(positions: pd.DataFrame | None, privileged: Mapping[str, bool]) -> Plot | None:
    """Click-through at each slate position per policy (None without slates).

    Args:
        positions: :func:`~lmrecsim.evaluation.metrics.position_clicks`'s table.
        privileged: label -> whether the policy reads hidden state.
    """
    if positions is None or positions.empty:
        return None
    policies = list(dict.fromkeys(positions["policy"]))
    n_pos = int(positions["position"].max()) + 1
    width = 0.8 / len(policies)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * n_pos + 2.0), 3.6))
    for i, policy in enumerate(policies):
        rows = positions[positions["policy"] == policy].sort_values("position")
        x = rows["position"].to_numpy() + (i - (len(policies) - 1) / 2) * width
        ax.bar(x, rows["ctr"].to_numpy(float), width, label=_display(policy, privileged))
    ax.set_xticks(range(n_pos), [f"position {j}" for j in range(n_pos)])
    ax.set_xlabel("slate position (0 = top, as in positions.csv)")
    ax.set_ylabel("click-through when shown")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return Plot(
        "positions",
        "Click-through by slate position",
        "Clicks at each position over the steps where it showed an item (positions.csv has the "
        "counts and each position's share of the clicks).",
        _png(fig),
    )


def all_plots(
    summary: pd.DataFrame,
    steps: pd.DataFrame,
    exposures: Mapping[str, np.ndarray],
    privileged: Mapping[str, bool],
    *,
    drift_window: int,
    new_user_k: int,
    curves: Mapping[str, pd.DataFrame],
    validation: Mapping[str, pd.DataFrame] | None = None,
    positions: pd.DataFrame | None = None,
) -> list[Plot]:
    """Every plot that has data, in report order."""
    made: Sequence[Plot | None] = (
        plot_return_ctr(summary, privileged),
        plot_positions(positions, privileged),
        plot_lorenz(exposures, privileged),
        plot_retention(steps, privileged),
        plot_drift(steps, drift_window, privileged),
        plot_new_users(steps, new_user_k, privileged),
        plot_learning_curves(curves, validation),
    )
    return [p for p in made if p is not None]
