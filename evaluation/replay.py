"""Scenario replay: re-simulate a step log exactly, or run another policy on the same users.

Every random number a simulated user draws is keyed by its episode key, and the episode key of
(seed, episode) is the ``episode``-th draw of an env reset with ``seed`` (see
``lmrecsim.envs.rng``). Feeding the logged actions back into a fresh env therefore reproduces the
logged candidates, feedback and rewards bit for bit, and another policy run on the same seeds meets
the same users and the same random streams (a paired comparison). On a slate scenario the logged
action is the row's ``slate_slots`` (the whole slate); ``action`` is the slot of the item the
feedback is about.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import atomic_write, output_folder_problem, staged_folder
from ..envs.env import RecommendationEnv
from ..envs.simulator import check_slates
from ..envs.world import World
from .errors import EvaluationError
from .logs import V5_COLUMNS, LogError, StepLog, read_step_log
from .rollout import step_feedback

# Logged columns a re-simulation must reproduce, compared after each step (exactly; NaN == NaN).
STEP_CHECKS = (
    "user_id",
    "is_new_user",
    "item_id",
    "invalid_action",
    "clicked",
    "clicked_position",
    "rating",
    "dwell",
    "reward",
    "terminated",
    "truncated",
    "is_new_item",
    "popularity_rank",
    "affinity",
    "drift_event",
    "drift_phase",
)

#: Called before each replayed step with (row position in the frame, env, observation).
Visitor = Callable[[int, RecommendationEnv, dict[str, np.ndarray]], None]


@dataclass(frozen=True)
class Difference:
    """The first place a re-simulation departs from the log."""

    policy: str
    seed: int
    episode: int
    step: int
    column: str
    logged: str
    replayed: str

    def describe(self) -> str:
        """One line: where and what differs."""
        where = f"policy {self.policy!r} seed {self.seed} episode {self.episode} step {self.step}"
        if self.column == "step":  # the episode's length differs, not a value
            return f"{where}: the log {self.logged}, the replay {self.replayed}"
        return f"{where}: {self.column} logged {self.logged}, replayed {self.replayed}"


@dataclass
class ReplayResult:
    """Outcome of :func:`replay` or :func:`replay_with_policy`.

    Attributes:
        log_path: the log replayed.
        out_dir: where the outputs were written.
        n_episodes: logged episodes re-simulated.
        n_steps: logged steps re-simulated.
        reproduced: every logged step was reproduced exactly (exact replay only).
        first_difference: the first differing step, if any.
        policy: label of the policy run on the logged users (``replay_with_policy`` only).
        logged_policy: label of the logged policy compared against.
        return_difference: ``(mean, ci_low, ci_high)`` of (policy return - logged return) per
            episode, 95% paired bootstrap interval.
        files: paths written.
        warnings: lines for the user (an interval of one episode).
    """

    log_path: Path
    out_dir: Path
    n_episodes: int
    n_steps: int
    reproduced: bool | None = None
    first_difference: Difference | None = None
    policy: str | None = None
    logged_policy: str | None = None
    return_difference: tuple[float, float, float] | None = None
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines for the terminal."""
        lines = [f"log: {self.log_path} ({self.n_episodes} episodes, {self.n_steps} steps)"]
        if self.reproduced is not None:
            if self.reproduced:
                lines.append("replay: reproduced exactly")
            else:
                assert self.first_difference is not None
                lines.append(f"replay: DIVERGES at {self.first_difference.describe()}")
        if self.return_difference is not None:
            est, lo, hi = self.return_difference
            lines.append(
                f"return per episode, {self.policy} - {self.logged_policy}: "
                f"{est:+.4f} (95% CI {lo:+.4f} to {hi:+.4f})"
            )
        lines.extend(f"wrote {p}" for p in self.files)
        return "\n".join(lines)


def precheck_policy(spec: Any) -> None:
    """For a spec string, the errors :func:`resolve_policy` would give whatever the world
    (:func:`~lmrecsim.agents.baselines.check_policy_spec`, and a label that is another
    baseline's name), before the world, and its language model, are loaded."""
    if isinstance(spec, str):
        from ..agents.baselines import check_policy_spec
        from .runner import refuse_shadowed_baseline

        refuse_shadowed_baseline(spec, check_policy_spec(spec))


def resolve_policy(spec: Any, world: World) -> tuple[str, Any]:
    """A ``(label, policy)`` pair from a spec string (``make_policy``), a pair, or a policy object."""
    if isinstance(spec, str):
        from ..agents.baselines import make_policy
        from .runner import refuse_shadowed_baseline

        label, policy = make_policy(spec, world)
        refuse_shadowed_baseline(spec, label)  # "random - random: +11" said replay and ope
        return label, policy
    label, policy = (
        (spec[0], spec[1])
        if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str)
        else (type(spec).__name__, spec)
    )
    if not callable(getattr(policy, "predict", None)):  # it would fail at the first step
        raise EvaluationError(
            f"policy: {spec!r} is invalid (expected a spec string, a policy with the SB3 predict "
            "method, or a (label, policy) pair of one)"
        )
    return label, policy


def trained_elsewhere(label: str, policy: Any, log: StepLog) -> list[str]:
    """A warning line when ``policy`` is a saved model whose run trained on a scenario of another
    name than the log's (as ``lmrecsim evaluate`` warns for its ``--scenario``): its figures then
    describe users it was not trained for. Empty otherwise."""
    from ..agents.baselines import SB3Policy
    from .runner import PolicyInfo, scenario_warnings

    if not isinstance(policy, SB3Policy) or policy.run_dir is None:
        return []
    info = PolicyInfo(label, label, False, policy.run_dir)
    return scenario_warnings([info], log.scenario(), log=log.path)


def load_world(log: StepLog) -> World:
    """The world of a log's scenario (memoised per process)."""
    from ..envs.world import build_world

    return build_world(log.scenario())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        fa, fb = float(a), float(b)
        return (math.isnan(fa) and math.isnan(fb)) or fa == fb
    return bool(a == b)


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def resimulate(
    world: World,
    rows: pd.DataFrame,
    *,
    visit: Visitor | None = None,
    stop_at_difference: bool = True,
) -> Difference | None:
    """Feed the logged actions of one policy's rows back into a fresh env and compare.

    Args:
        world: the logged scenario's world.
        rows: one policy's log rows (columns of ``logs.COLUMNS``), in log order.
        visit: called before each step with (row position, env, observation) -- used by
            off-policy evaluation to read the observation the logged action was taken on.
        stop_at_difference: stop at the first difference (replay); off-policy evaluation
            needs the log to be reproducible too, so it keeps the default.

    Returns:
        The first :class:`Difference`, or None when every step was reproduced exactly.
    """
    env = RecommendationEnv(world=world)
    size = world.scenario.candidates.slate_size
    slates = size > 1
    ids = np.asarray(world.catalog.item_ids).astype(str)
    seeds = list(dict.fromkeys(int(s) for s in rows["seed"]))
    policy_label = str(rows["policy"].iloc[0]) if len(rows) else ""
    first: Difference | None = None
    records = rows.to_dict("records")
    step_col = rows["step"].to_numpy()
    groups = {
        (int(k[0]), int(k[1])): v
        for k, v in rows.groupby(["seed", "episode"], sort=False).indices.items()
    }
    obs: dict[str, np.ndarray] = {}
    for seed in seeds:
        episodes = sorted(e for s, e in groups if s == seed)
        # Episode e of a seed is the e-th reset after reset(seed): unlogged episodes are skipped
        # by resetting through them (each reset draws the next episode key).
        current = -1
        for episode in episodes:
            while current < episode:
                obs, _ = env.reset(seed=seed if current == -1 else None)
                current += 1
            ep_pos = groups[(seed, episode)]
            ep_pos = ep_pos[np.argsort(step_col[ep_pos], kind="stable")]
            done = False
            taken = 0  # steps the replay has taken in this episode: the step it is at
            for pos in ep_pos:
                row = records[pos]
                step = int(row["step"])
                where = dict(policy=policy_label, seed=seed, episode=episode, step=step)
                diff: Difference | None = None
                if done:
                    diff = Difference(
                        **where, column="step", logged="has this step", replayed="had ended"
                    )
                elif step != taken:
                    # A missing or repeated row: comparing it with the replay's step would
                    # blame the candidates (or the feedback) for the log's gap.
                    diff = Difference(
                        **where,
                        column="step",
                        logged=f"{'repeats' if step < taken else 'is at'} step {step}",
                        replayed=f"at step {taken}",
                    )
                else:
                    cands = ids[env.users.cand[0]].tolist()
                    mask = obs["action_mask"].astype(bool).tolist()
                    logged_cands = [str(c) for c in row["candidate_item_ids"]]
                    logged_mask = [bool(m) for m in row["candidate_mask"]]
                    if cands != logged_cands:
                        diff = Difference(
                            **where,
                            column="candidate_item_ids",
                            logged=_fmt(logged_cands),
                            replayed=_fmt(cands),
                        )
                    elif mask != logged_mask:
                        diff = Difference(
                            **where,
                            column="candidate_mask",
                            logged=_fmt(logged_mask),
                            replayed=_fmt(mask),
                        )
                    elif not 0 <= int(row["action"]) < len(mask):
                        diff = Difference(
                            **where,
                            column="action",
                            logged=str(int(row["action"])),
                            replayed=f"has slots 0..{len(mask) - 1} only",
                        )
                    elif slates and not _is_slate(row["slate_slots"], len(mask), size):
                        diff = Difference(
                            **where,
                            column="slate_slots",
                            logged=_fmt(list(row["slate_slots"])),
                            replayed=f"takes {size} slots in 0..{len(mask) - 1}",
                        )
                if diff is None:
                    if visit is not None:
                        visit(int(pos), env, obs)
                    action: int | np.ndarray = (
                        np.asarray(row["slate_slots"], dtype=np.int64)
                        if slates
                        else int(row["action"])
                    )
                    obs, reward, terminated, truncated, info = env.step(action)
                    taken += 1
                    done = terminated or truncated
                    got = step_feedback(info, reward, terminated, truncated)
                    got_step = int(info["step"])
                    if got_step != step:
                        diff = Difference(
                            **where,
                            column="step",
                            logged=f"is at step {step}",
                            replayed=f"at step {got_step}",
                        )
                    else:
                        for col in STEP_CHECKS:
                            logged_value = row[col]
                            if col in V5_COLUMNS and pd.isna(logged_value):
                                continue  # a log before schema version 5 did not record it
                            if isinstance(logged_value, np.generic):
                                logged_value = logged_value.item()
                            if not _same(logged_value, got[col]):
                                diff = Difference(
                                    **where,
                                    column=col,
                                    logged=_fmt(logged_value),
                                    replayed=_fmt(got[col]),
                                )
                                break
                if diff is not None:
                    if first is None:
                        first = diff
                    if stop_at_difference:
                        return first
            if ep_pos.size and not done:
                last = records[ep_pos[-1]]
                diff = Difference(
                    policy=policy_label,
                    seed=seed,
                    episode=episode,
                    step=int(last["step"]) + 1,
                    column="step",
                    logged="ends before it",
                    replayed="continues",
                )
                if first is None:
                    first = diff
                if stop_at_difference:
                    return first
    return first


def _is_slate(slots: Any, k: int, size: int) -> bool:
    """``slots`` is one slate the env takes (:func:`~lmrecsim.envs.simulator.check_slates`)."""
    try:
        check_slates(np.asarray(slots), 1, k, size)
    except ValueError:
        return False
    return True


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(data, indent=2, default=str) + "\n")


def check_out(
    out_dir: str | os.PathLike[str], name: str = "out_dir", files: tuple[str, ...] = ()
) -> None:
    """Refuse, before any work (LogError), an output folder that cannot be one (a file in the
    way) or where a folder stands in the way of one of the ``files`` the command writes there."""
    problem = output_folder_problem(out_dir)
    if problem is not None:
        raise LogError(f"{name}: {problem}")
    for file in files:
        if (Path(out_dir) / file).is_dir():
            raise LogError(
                f"{name}: '{Path(out_dir) / file}' is a folder (expected the {file} this command "
                "writes, or nothing)"
            )


def replay(
    log_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    logged_policy: str | None = None,
) -> ReplayResult:
    """Re-simulate every logged episode from its scenario and seed and check it matches the log.

    Each policy in the log (or only ``logged_policy``) is replayed with its logged actions;
    candidates, masks, feedback, rewards and episode ends must be reproduced exactly. Writes
    ``out_dir/replay.json``.

    Args:
        log_path: a step log (``episodes.parquet``).
        out_dir: output folder (created).

    Returns:
        A :class:`ReplayResult` with ``reproduced`` and the first differing step, if any.

    Raises:
        LogError: the log cannot be read, holds no steps, or does not hold ``logged_policy``.
    """
    check_out(out_dir, files=("replay.json",))
    log = read_step_log(log_path)
    log.require_steps()
    labels = log.policies if logged_policy is None else [logged_policy]
    parts = [log.for_policy(label) for label in labels]  # LogError for an unknown label
    world = load_world(log)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    first: Difference | None = None
    for rows in parts:
        first = resimulate(world, rows)
        if first is not None:
            break
    steps = pd.concat(parts, ignore_index=True)
    result = ReplayResult(
        log_path=Path(log_path),
        out_dir=out,
        n_episodes=int(steps.groupby(["policy", "seed", "episode"]).ngroups),
        n_steps=len(steps),
        reproduced=first is None,
        first_difference=first,
    )
    path = out / "replay.json"
    had_replay = path.is_file()  # a replay wrote this folder before
    _write_json(
        path,
        {
            "log": str(result.log_path),
            "scenario": log.scenario().name,
            "scenario_hash": log.scenario_hash,
            "n_episodes": result.n_episodes,
            "n_steps": result.n_steps,
            "reproduced": result.reproduced,
            "first_difference": asdict(first) if first is not None else None,
        },
    )
    result.files.append(path)
    # A side-by-side replay into this folder earlier left files that describe another run; next
    # to this replay.json they would read as its own.
    for name in SIDE_BY_SIDE_FILES if had_replay else ():
        (out / name).unlink(missing_ok=True)
    return result


#: The files a side-by-side replay writes beside its replay.json.
SIDE_BY_SIDE_FILES = ("side_by_side.csv", "side_by_side.html")

# Per-step columns shown side by side (logged vs the other policy).
SIDE_COLUMNS = ("item_id", "action", "clicked", "rating", "reward")


# Per-step slate columns shown side by side when both sides have them (slate scenarios).
SLATE_SIDE_COLUMNS = ("slate_slots", "clicked_position")


def _same_item_line(comparison: pd.DataFrame) -> str:
    """How often both policies chose the same item, over the steps both sessions reached (the
    side-by-side table also has the steps only one reached, where the other had ended)."""
    both = comparison["logged_item_id"].notna() & comparison["policy_item_id"].notna()
    share = comparison.loc[both, "same_item"].mean() if both.any() else float("nan")
    return f"same item chosen at {share:.1%} of the {int(both.sum())} steps both sessions reached"


def side_by_side(logged: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """Per-step comparison keyed by (seed, episode, step); a step only one side reached is blank.

    Columns: seed, episode, step, user_id, ``logged_<c>`` and ``policy_<c>`` for ``SIDE_COLUMNS``
    (and for ``SLATE_SIDE_COLUMNS`` when both frames have a ``slate_slots`` column: slates, the
    slots written as ``"3 7 1"``), and ``same_item`` (the item the feedback is about: for slates, the clicked or
    first shown one).
    """
    keys = ["seed", "episode", "step"]
    slates = "slate_slots" in logged.columns and "slate_slots" in other.columns
    columns = list(SIDE_COLUMNS) + (list(SLATE_SIDE_COLUMNS) if slates else [])

    def side(frame: pd.DataFrame) -> pd.DataFrame:
        part = frame[keys + ["user_id", *columns]].copy()
        if "slate_slots" in columns:
            part["slate_slots"] = [
                " ".join(str(int(v)) for v in np.asarray(x).reshape(-1))
                for x in part["slate_slots"]
            ]
        return part

    left = side(logged).rename(columns={c: f"logged_{c}" for c in columns})
    right = side(other).rename(
        columns={c: f"policy_{c}" for c in columns} | {"user_id": "policy_user_id"}
    )
    merged = left.merge(right, on=keys, how="outer", sort=True)
    merged["user_id"] = merged["user_id"].fillna(merged.pop("policy_user_id"))
    # A step only one side reached is blank on the other: nullable integers stay integers.
    for column in ("user_id", "logged_action", "policy_action"):
        merged[column] = merged[column].astype("Int64")
    for column in ("logged_clicked_position", "policy_clicked_position"):
        if column in merged.columns:
            merged[column] = merged[column].astype("Int64")
    merged["same_item"] = merged["logged_item_id"] == merged["policy_item_id"]
    return merged


def _html_page(
    title: str,
    summary_lines: list[str],
    returns: pd.DataFrame,
    steps: pd.DataFrame,
    *,
    max_rows: int = 2000,
) -> str:
    def table(frame: pd.DataFrame) -> str:
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
        body = []
        for row in frame.itertuples(index=False):
            cells = "".join(
                f"<td>{html.escape('' if (isinstance(v, float) and math.isnan(v)) else str(v))}</td>"
                for v in row
            )
            body.append(f"<tr>{cells}</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    shown = steps.head(max_rows)
    note = (
        f"<p>Showing the first {max_rows} of {len(steps)} steps; side_by_side.csv has all.</p>"
        if len(steps) > max_rows
        else ""
    )
    items = "".join(f"<li>{html.escape(line)}</li>" for line in summary_lines)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><ul>{items}</ul>"
        f"<h2>Return per episode</h2>{table(returns)}"
        f"<h2>Steps</h2>{note}{table(shown)}</body></html>\n"
    )


def replay_with_policy(
    log_path: str | os.PathLike[str],
    policy_spec: Any,
    out_dir: str | os.PathLike[str],
    *,
    logged_policy: str | None = None,
    deterministic: bool = True,
    n_resamples: int = 2000,
) -> ReplayResult:
    """Run another policy on exactly the logged users and random streams, side by side.

    Writes ``out_dir/side_by_side.csv`` (per step), ``out_dir/side_by_side.html`` and
    ``out_dir/replay.json`` with the paired difference in return per episode and its 95%
    bootstrap interval (:func:`lmrecsim.evaluation.bootstrap.paired_difference_ci`).

    Args:
        log_path: a step log.
        policy_spec: a policy spec for ``make_policy`` (``"greedy"``, ``"ppo:PATH"``, ...), a
            ``(label, policy)`` pair, or a policy object.
        out_dir: output folder (created).
        logged_policy: which logged policy to compare with (required when the log holds several).
        deterministic: passed to the policy's ``predict``.
        n_resamples: bootstrap resamples for the interval.
    """
    from .bootstrap import paired_difference_ci
    from .rollout import run_policy
    from .runner import _is_integer, sample_warnings

    if not _is_integer(n_resamples) or n_resamples < 1:
        raise EvaluationError(f"n_resamples: {n_resamples!r} (expected an integer >= 1)")

    check_out(out_dir)
    log = read_step_log(log_path)
    log.require_steps()
    logged = log.for_policy(logged_policy)
    logged_label = str(logged["policy"].iloc[0])
    precheck_policy(policy_spec)
    world = load_world(log)
    label, policy = resolve_policy(policy_spec, world)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    pairs = logged[["seed", "episode"]].drop_duplicates()
    seeds = list(dict.fromkeys(int(s) for s in pairs["seed"]))
    episodes = int(pairs["episode"].max()) + 1
    other, other_arrays = run_policy(
        world, policy, label=label, seeds=seeds, episodes=episodes, deterministic=deterministic
    )
    if world.scenario.candidates.slate_size > 1:
        other["slate_slots"] = pd.Series(list(other_arrays.slate_slots), index=other.index)
    else:
        logged = logged.drop(columns=["slate_slots"], errors="ignore")
    keep = other.merge(pairs, on=["seed", "episode"], how="inner")

    keys = ["seed", "episode"]
    ret_logged = logged.groupby(keys)["reward"].sum().rename("logged_return")
    ret_other = keep.groupby(keys)["reward"].sum().rename("policy_return")
    returns = pd.concat([ret_logged, ret_other], axis=1).fillna(0.0).reset_index()
    returns["difference"] = returns["policy_return"] - returns["logged_return"]
    diff = paired_difference_ci(
        returns["policy_return"].to_numpy(),
        returns["logged_return"].to_numpy(),
        n_resamples=n_resamples,
    )
    comparison = side_by_side(logged, keep)

    result = ReplayResult(
        log_path=Path(log_path),
        out_dir=out,
        n_episodes=len(returns),
        n_steps=len(logged),
        policy=label,
        logged_policy=logged_label,
        return_difference=(float(diff[0]), float(diff[1]), float(diff[2])),
        warnings=trained_elsewhere(label, policy, log) + sample_warnings(len(returns)),
    )
    lines = [
        f"scenario {log.scenario().name} ({log.scenario_hash[:12]}), log {result.log_path}",
        f"logged policy: {logged_label}; replayed policy: {label}",
        f"{result.n_episodes} paired episodes (same users and random streams)",
        f"mean return: logged {returns['logged_return'].mean():.4f}, {label} {returns['policy_return'].mean():.4f}",
        f"difference ({label} - {logged_label}): {diff[0]:+.4f}, 95% CI [{diff[1]:+.4f}, {diff[2]:+.4f}]",
        _same_item_line(comparison),
        *(f"warning: {w}" for w in result.warnings),
    ]
    summary = {
        "log": str(result.log_path),
        "logged_policy": logged_label,
        "policy": label,
        "n_episodes": result.n_episodes,
        "mean_return_logged": float(returns["logged_return"].mean()),
        "mean_return_policy": float(returns["policy_return"].mean()),
        "return_difference": {"estimate": diff[0], "ci_low": diff[1], "ci_high": diff[2]},
    }
    # All three files or none (an earlier replay's stay whole if this one is stopped). Not
    # comparison.csv: an evaluate report folder holds a file of that name.
    with staged_folder(out) as staged:
        staged.write("side_by_side.csv", comparison.to_csv(index=False))
        page = _html_page(f"{label} vs {logged_label}", lines, returns, comparison)
        staged.write("side_by_side.html", page)
        staged.write("replay.json", json.dumps(summary, indent=2, default=str) + "\n")
    result.files.extend(staged.files())
    return result
