"""Learning-quality benchmark: do PPO and DQN learn every shipped scenario, and how well?

For each scenario: train PPO and DQN (candidate-scorer policy) for a fixed budget on several
training seeds, evaluate every trained model and the baselines (random, greedy, linucb and the
privileged oracle) on the scenario's evaluation seeds -- disjoint from the training seeds, so no
policy is evaluated on the users it was trained on -- and write ``RESULTS.md``: returns with 95%
bootstrap intervals, the fraction of the random-to-oracle gap each agent closes,
``(agent - random) / (oracle - random)``, and the mean session length, with a figure of the gaps
against the targets (``RESULTS_gap.png`` beside ``RESULTS.md``). On ``cold_start`` a PPO with the
plain MLP policy is trained too, to compare click-through on newly arrived items.

Run from the repository root::

    python -m benchmarks.learning                   # the full benchmark (hours on 2 cores)
    python -m benchmarks.learning --quick           # default scenario, 30k steps, one seed
    python benchmarks/learning.py --scenarios default clickbait --timesteps 100000 --seeds 0 1
    python -m benchmarks.learning --jobs 2          # two training runs at a time (one per core)
    python -m benchmarks.learning --jobs 2 --resume # after a stop: keep the runs that completed
    python -m benchmarks.learning --ray auto        # the training runs on a running Ray cluster

``lmrecsim bench --learning`` forwards its arguments to :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import sys
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lmrecsim.agents.baselines import SB3Policy
from lmrecsim.agents.build import load_model
from lmrecsim.agents.train import resolve_run, reuse_run, stopped_run, train
from lmrecsim.agents.train import resume as resume_run
from lmrecsim.agents.validation import check_validation_seeds
from lmrecsim.atomic import atomic_write
from lmrecsim.commands.common import (
    OneLineArgumentParser,
    int_at_least,
    prepare_output,
    remove_empty_folders,
)
from lmrecsim.envs.vec_env import sub_env_seeds
from lmrecsim.errors import UsageError
from lmrecsim.evaluation.bootstrap import gap_ci, gap_fraction
from lmrecsim.evaluation.runner import evaluate
from lmrecsim.scenarios import Scenario, load_scenario
from lmrecsim.scenarios.loader import scenario_from_dict, scenario_to_dict, shipped_scenario_names
from lmrecsim.scenarios.schema import (
    MAX_EVALUATION_EPISODES,
    MAX_EVALUATION_SEED,
    MAX_TORCH_THREADS,
    MAX_TRAINING_SEED,
    has_algorithm_sections,
)

BASELINES = ("random", "greedy", "linucb", "oracle")
MYOPIC = ("greedy", "linucb")
# Targets of the learning-quality issue.
GAP_TARGET = {"ppo": 0.70, "dqn": 0.50, "maskable_ppo": 0.70}
LONG_TERM_SCENARIO = "clickbait"
LONG_TERM_RATIO = 1.1
COLD_START_SCENARIO = "cold_start"
START_MARK = "<!-- learning-benchmark:start -->"
END_MARK = "<!-- learning-benchmark:end -->"
REPO = Path(__file__).resolve().parent.parent


@dataclass
class AgentRun:
    """One trained model."""

    label: str
    algo: str
    policy: str
    seed: int
    seconds: float
    steps: int
    #: With validation (``agent.validation.every`` > 0) the run's ``best_model.zip`` is evaluated
    #: under ``label`` and its last model under ``last_label``; ``best_steps`` is when the best was
    #: saved.
    best_steps: int | None = None
    last_label: str | None = None
    #: The run folder (``model.zip``, and ``best_model.zip`` with validation).
    folder: str = ""
    #: The checkpoint a stopped run was continued from (``--continue-stopped``), else 0.
    resumed_from: int = 0


@dataclass
class ScenarioResult:
    """Everything measured on one scenario.

    ``returns`` is (units, policies): the return of every policy on every evaluation episode
    (unit = (seed, episode), identical users and random numbers across policies); ``lengths`` the
    session length (steps before the user left or the horizon) in the same layout.
    """

    name: str
    runs: list[AgentRun]
    returns: pd.DataFrame
    new_item_ctr: dict[str, tuple[float, int]] = field(default_factory=dict)
    lengths: pd.DataFrame | None = None


def _scenario_for(sc: Scenario, algo: str) -> Scenario:
    """The scenario with plain ``agent.hyperparameters`` kept only when they belong to ``algo``.

    Per-algorithm sections need nothing: training picks the section of the algorithm it runs.
    """
    if sc.agent.algo == algo or has_algorithm_sections(sc.agent.hyperparameters):
        return sc
    data = scenario_to_dict(sc)
    data["agent"]["hyperparameters"] = {}
    out = scenario_from_dict(data, base_dir=sc._base_dir)
    out._source = sc._source
    return out


def check_seeds(sc: Scenario, train_seeds: Sequence[int], eval_seeds: Sequence[int] | None) -> None:
    """Refuse, before any training, training users that are evaluation or validation users."""
    eval_seeds = list(sc.evaluation.seeds if eval_seeds is None else eval_seeds)
    used = {u for s in train_seeds for u in sub_env_seeds(s, sc.agent.n_envs)}
    overlap = sorted(used & set(eval_seeds))
    if overlap:
        raise UsageError(
            f"--seeds {list(train_seeds)} (with n_envs={sc.agent.n_envs}) "
            f"reuse evaluation seed(s) {overlap}; expected training users disjoint from evaluation"
        )
    val = sc.agent.validation
    for seed in train_seeds:  # the check `train` makes, before any run starts
        problem = check_validation_seeds(val, seed, sc.agent.n_envs)
        if problem is not None:
            raise UsageError(f"{sc.name}: --seeds {seed}: {problem}")
    overlap = sorted(set(eval_seeds) & set(val.seeds)) if val.every > 0 else []
    if overlap:
        raise UsageError(
            f"--eval-seeds: evaluation seed(s) {overlap[:5]} are validation seeds of "
            f"{sc.name} (agent.validation: {val.seed}-{val.seed + val.users - 1}); "
            "expected them apart"
        )


def check_algos(name: str, sc: Scenario, algos: Sequence[str]) -> None:
    """Refuse, before any training, an algorithm the scenario cannot train (slates: PPO and
    DQN, which is SlateQ there)."""
    size = sc.candidates.slate_size
    other = [a for a in algos if a not in ("ppo", "dqn")]
    if size > 1 and other:
        raise UsageError(
            f"--algos {' '.join(other)} cannot train {name} "
            f"(candidates.slate_size {size}: slates are trained by ppo and dqn); pass --algos "
            "ppo dqn"
        )


def _algo_returns(returns: pd.DataFrame, runs: list[AgentRun], algo: str, policy: str) -> pd.Series:
    """Per-unit return of an algorithm, averaged over its training seeds."""
    labels = [r.label for r in runs if r.algo == algo and r.policy == policy]
    return returns[labels].mean(axis=1)


def _ci(values: np.ndarray, rng: np.random.Generator, n: int = 2000) -> tuple[float, float]:
    idx = rng.integers(values.size, size=(n, values.size))
    means = values[idx].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


def training_jobs(
    scenario_name: str, *, algos: Sequence[str], seeds: Sequence[int], compare_mlp: bool
) -> list[tuple[str, str, int]]:
    """The ``(algo, policy, seed)`` runs the benchmark trains on one scenario (its ``name:``),
    in order."""
    jobs = [(algo, "candidate_scorer") for algo in algos]
    if compare_mlp and scenario_name == COLD_START_SCENARIO and "ppo" in algos:
        jobs.append(("ppo", "mlp"))
    return [(algo, policy, seed) for algo, policy in jobs for seed in seeds]


def run_plan(
    name: str | Scenario, algo: str, policy: str, seed: int, *, timesteps: int, out: Path
) -> tuple[str, str, Path, Scenario]:
    """``(scenario name, run label, run folder out/<scenario>/<label>, the scenario the run
    trains)`` of one (algo, policy, seed) of the benchmark."""
    sc = load_scenario(name)
    # A scenario file path works too: run folders go under its scenario name.
    label = f"{algo}{'_mlp' if policy == 'mlp' else ''}_s{seed}"
    # What train() would resolve from these overrides; training the resolved scenario as it is
    # writes the same scenario.yaml, so a resumed run is compared with exactly what trains.
    run_sc = resolve_run(
        _scenario_for(sc, algo), algo=algo, policy=policy, timesteps=timesteps, seed=seed
    )
    return sc.name, label, out / sc.name / label, run_sc


def train_run(
    name: str | Scenario,
    algo: str,
    policy: str,
    seed: int,
    *,
    timesteps: int,
    out: Path,
    torch_threads: int = 1,
    resume: bool = False,
    continue_stopped: bool = False,
) -> AgentRun:
    """Train one (algo, policy, seed) on a scenario (a name, path or loaded scenario) into
    ``out/<scenario>/<label>``.

    With ``resume``, a folder that already holds a complete run of the same settings
    (:func:`lmrecsim.agents.train.finished_run`) is reused instead of trained again; a folder
    with a run that cannot be reused says why before it is trained again. With
    ``continue_stopped`` too, a stopped run of the same settings continues from its newest
    checkpoint (:func:`lmrecsim.agents.train.resume`) instead of training from the start.
    """
    sc_name, label, folder, run_sc = run_plan(
        name, algo, policy, seed, timesteps=timesteps, out=out
    )
    res, why = reuse_run(folder, run_sc, torch_threads) if resume else (None, "")
    stopped, _ = (
        stopped_run(folder, run_sc, torch_threads)
        if res is None and resume and continue_stopped
        else (False, "")
    )
    if res is not None:
        print(f"[{sc_name}] {label}: reusing the complete run in {folder}", flush=True)
    elif stopped:
        print(f"[{sc_name}] {label}: continuing the stopped run in {folder}", flush=True)
        res = resume_run(folder, progress=False, torch_threads=torch_threads)
    else:
        if why:
            print(f"[{sc_name}] {label}: not reusing {folder}: {why}", flush=True)
        print(f"[{sc_name}] training {label} for {timesteps} steps", flush=True)
        res = train(run_sc, out=folder, progress=False, torch_threads=torch_threads)
    run = AgentRun(
        label,
        algo,
        policy,
        seed,
        res.seconds,
        res.timesteps - res.resumed_from,
        folder=str(folder),
        resumed_from=res.resumed_from,
    )
    if res.validation is not None:
        run.best_steps = res.validation["best_timesteps"]
        run.last_label = f"{label}_last"
        print(f"[{sc_name}] {label}: best validation at {run.best_steps} steps", flush=True)
    print(f"[{sc_name}] {label}: {res.steps_per_second:.0f} steps/s", flush=True)
    return run


def evaluate_runs(
    name: str | Scenario,
    runs: Sequence[AgentRun],
    *,
    eval_seeds: Sequence[int] | None,
    episodes: int | None,
) -> ScenarioResult:
    """Evaluate trained runs (their saved models) and the baselines on one scenario (a name, path
    or loaded scenario)."""
    sc = load_scenario(name)
    ev_seeds = list(sc.evaluation.seeds if eval_seeds is None else eval_seeds)
    models: list[tuple[str, Any]] = []
    for run in runs:
        folder = Path(run.folder)
        last = SB3Policy(load_model(run.algo, folder / "model.zip"), run.algo, run_dir=folder)
        if run.last_label is None:
            models.append((run.label, last))
        else:
            best = load_model(run.algo, folder / "best_model.zip")
            models += [
                (run.label, SB3Policy(best, run.algo, run_dir=folder)),
                (run.last_label, last),
            ]
    print(f"[{sc.name}] evaluating on seeds {ev_seeds}", flush=True)
    result = evaluate(
        sc,
        [*models, *BASELINES],
        seeds=ev_seeds,
        episodes=episodes,
        progress=False,
        plots=False,
        n_resamples=500,
    )
    returns, lengths = (
        result.episodes.pivot_table(index=["seed", "episode"], columns="policy", values=value)
        .sort_index()
        .astype(np.float64)
        for value in ("return", "session_length")
    )
    new_ctr: dict[str, tuple[float, int]] = {}
    steps = result.steps
    for label in returns.columns:
        sel = steps[(steps["policy"] == label) & steps["is_new_item"].astype(bool)]
        new_ctr[str(label)] = (float(sel["clicked"].mean()) if len(sel) else float("nan"), len(sel))
    return ScenarioResult(sc.name, list(runs), returns, new_ctr, lengths)


def _fmt(x: float, digits: int = 2) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.{digits}f}"


def _agent_row(
    label: str,
    agent: np.ndarray,
    random: np.ndarray,
    oracle: np.ndarray,
    rng: np.random.Generator,
    per_seed: str,
    sps: str,
    length: float,
) -> tuple[str, float, tuple[float, float]]:
    """A trained agent's table row (return and gap closed, with intervals, and the mean session
    length), its gap and the gap's interval."""
    lo, hi = _ci(agent, rng)
    g = gap_fraction(agent, random, oracle)
    glo, ghi = gap_ci(agent, random, oracle, rng)
    # gap_ci's nan pair: too many resamples where the oracle does not beat random.
    gap_interval = (
        f"[{_fmt(100 * glo, 0)}%, {_fmt(100 * ghi, 0)}%]"
        if np.isfinite(glo) and np.isfinite(ghi)
        else "unbounded"
    )
    line = (
        f"| {label} | {agent.mean():.2f} | [{lo:.2f}, {hi:.2f}] | {_fmt(100 * g, 0)}% | "
        f"{gap_interval} | {_fmt(length, 1)} | {per_seed} |" + (f" {sps} |" if sps else " |")
    )
    return line, g, (glo, ghi)


def _mean_length(res: ScenarioResult, labels: Sequence[str]) -> float:
    """Mean session length of the policies ``labels`` over the evaluation episodes (nan when the
    result has no lengths)."""
    if res.lengths is None:
        return float("nan")
    return float(res.lengths[list(labels)].to_numpy().mean())


def scenario_markdown(
    res: ScenarioResult, seed: int = 0, gaps: list[dict[str, Any]] | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """The scenario's table and its target rows (``{"target", "value", "met"}``).

    ``gaps``, when given, receives one ``{"scenario", "policy", "gap", "low", "high"}`` per
    agent (its validated models) and baseline, as in the table (``low``/``high`` nan for the
    baselines), for :func:`gap_figure`.
    """
    rng = np.random.default_rng(seed)
    r = res.returns
    random, oracle = r["random"].to_numpy(), r["oracle"].to_numpy()
    lines = [
        f"### {res.name}",
        "",
        f"{len(r)} evaluation episodes (paired across policies).",
        "",
        "| policy | return | 95% CI | gap closed | 95% CI | session length | per training seed "
        "| train steps/s |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    targets: list[dict[str, Any]] = []
    keys = sorted({(run.algo, run.policy) for run in res.runs})
    means: dict[str, float] = {}
    for algo, policy in keys:
        label = algo if policy == "candidate_scorer" else f"{algo} ({policy})"
        agent = _algo_returns(r, res.runs, algo, policy).to_numpy()
        mine = [run for run in res.runs if run.algo == algo and run.policy == policy]
        per_seed = ", ".join(
            f"{r[run.label].mean():.2f}"
            + (f" (best at {run.best_steps:,})" if run.best_steps is not None else "")
            + (f" (continued at {run.resumed_from:,})" if run.resumed_from else "")
            for run in mine
        )
        sps = sum(run.steps for run in mine) / max(sum(run.seconds for run in mine), 1e-9)
        means[label] = float(agent.mean())
        length = _mean_length(res, [run.label for run in mine])
        line, g, (glo, ghi) = _agent_row(
            label, agent, random, oracle, rng, per_seed, f"{sps:.0f}", length
        )
        lines.append(line)
        if gaps is not None:
            gaps.append({"scenario": res.name, "policy": label, "gap": g, "low": glo, "high": ghi})
        lasts = [run.last_label for run in mine if run.last_label is not None]
        if lasts:  # with validation: the last models beside the validated ones
            per_last = ", ".join(f"{r[lb].mean():.2f}" for lb in lasts)
            last = r[lasts].mean(axis=1).to_numpy()
            last_length = _mean_length(res, lasts)
            lines.append(
                _agent_row(
                    f"{label}, last model", last, random, oracle, rng, per_last, "", last_length
                )[0]
            )
        if policy == "candidate_scorer" and algo in GAP_TARGET:
            targets.append(
                {
                    "target": f"{res.name}: {algo} closes >= {GAP_TARGET[algo]:.0%} of the gap",
                    "value": f"{_fmt(100 * g, 0)}%",
                    "met": bool(np.isfinite(g) and g >= GAP_TARGET[algo]),
                }
            )
    for name in BASELINES:
        v = r[name].to_numpy()
        lo, hi = _ci(v, rng)
        g = gap_fraction(v, random, oracle)
        tag = " (privileged)" if name == "oracle" else ""
        length = _fmt(_mean_length(res, [name]), 1)
        lines.append(
            f"| {name}{tag} | {v.mean():.2f} | [{lo:.2f}, {hi:.2f}] | {_fmt(100 * g, 0)}% | "
            f"| {length} | | |"
        )
        means[name] = float(v.mean())
        if gaps is not None and name not in ("random", "oracle"):
            nan = float("nan")
            gaps.append({"scenario": res.name, "policy": name, "gap": g, "low": nan, "high": nan})
    if res.name == LONG_TERM_SCENARIO and "ppo" in means:
        best = max(MYOPIC, key=lambda b: means[b])
        ratio = means["ppo"] / means[best] if means[best] > 0 else float("nan")
        targets.append(
            {
                "target": f"{res.name}: ppo return >= {LONG_TERM_RATIO}x best myopic ({best})",
                "value": f"{_fmt(ratio)}x",
                "met": bool(np.isfinite(ratio) and ratio >= LONG_TERM_RATIO),
            }
        )
    mlp = [run for run in res.runs if run.policy == "mlp"]
    if mlp:
        lines += ["", "Click-through on newly arrived items (clicks / times recommended):", ""]
        lines += ["| policy | new-item CTR | new items recommended |", "|---|---:|---:|"]
        ctrs: dict[str, float] = {}
        for policy in ("candidate_scorer", "mlp"):
            labels = [run.label for run in res.runs if run.algo == "ppo" and run.policy == policy]
            n = sum(res.new_item_ctr[lb][1] for lb in labels)
            clicks = sum(
                res.new_item_ctr[lb][0] * res.new_item_ctr[lb][1]
                for lb in labels
                if res.new_item_ctr[lb][1]
            )
            ctrs[policy] = clicks / n if n else float("nan")
            lines.append(f"| ppo ({policy}) | {_fmt(ctrs[policy], 3)} | {n} |")
        targets.append(
            {
                "target": f"{res.name}: candidate scorer beats mlp on new-item CTR",
                "value": f"{_fmt(ctrs['candidate_scorer'], 3)} vs {_fmt(ctrs['mlp'], 3)}",
                "met": bool(ctrs["candidate_scorer"] > ctrs["mlp"]),
            }
        )
    return "\n".join(lines) + "\n", targets


def figure_path(results_path: Path) -> Path:
    """Where :func:`write_results` puts the gap figure: ``RESULTS_gap.png`` beside ``RESULTS.md``."""
    return results_path.with_name(f"{results_path.stem}_gap.png")


def gap_figure(gaps: Sequence[dict[str, Any]]) -> bytes:
    """The share of the random-to-oracle gap each policy closes on each scenario, as a PNG.

    Horizontal bars grouped by scenario, the trained agents' 95% paired-bootstrap intervals as
    error bars, and the PPO and DQN targets as dashed lines. ``gaps`` as filled by
    :func:`scenario_markdown`.
    """
    from lmrecsim.evaluation import plots  # sets the non-interactive backend

    plt = plots.plt
    scenarios = list(dict.fromkeys(g["scenario"] for g in gaps))
    policies = list(dict.fromkeys(g["policy"] for g in gaps))
    colors = {p: plt.get_cmap("tab10")(i % 10) for i, p in enumerate(policies)}
    n_bars = len(gaps)
    fig, ax = plt.subplots(figsize=(8, 1.4 + 0.3 * n_bars + 0.3 * len(scenarios)))
    y, ticks, shown, rightmost = 0.0, [], set(), 100.0
    for scenario in scenarios:
        rows = [g for g in gaps if g["scenario"] == scenario]
        top = y
        for g in rows:
            value = 100 * g["gap"] if np.isfinite(g["gap"]) else 0.0
            err = None
            if np.isfinite(g["low"]) and np.isfinite(g["high"]):
                err = [[value - 100 * g["low"]], [100 * g["high"] - value]]
            label = None if g["policy"] in shown else g["policy"]
            shown.add(g["policy"])
            ax.barh(y, value, height=0.8, color=colors[g["policy"]], label=label)
            if err is not None:
                ax.errorbar(value, y, xerr=err, fmt="none", ecolor="black", lw=1, capsize=2)
            right = max(value, 0.0) if err is None else value + err[1][0]
            rightmost = max(rightmost, right)
            ax.annotate(
                f"{_fmt(100 * g['gap'], 0)}%",
                (right, y),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
            )
            y += 1
        ticks.append(((top + y - 1) / 2, scenario))
        y += 0.8
    for value, name in (
        (100 * GAP_TARGET["dqn"], "DQN target"),
        (100 * GAP_TARGET["ppo"], "PPO target"),
    ):
        ax.axvline(value, color="grey", ls="--", lw=1)
        ax.annotate(name, (value, -0.9), ha="center", fontsize=7, color="grey")
    ax.set_yticks([t for t, _ in ticks], [plots._literal(n) for _, n in ticks])
    ax.set_ylim(y - 0.3, -1.4)
    ax.set_xlabel("share of the random-to-oracle gap closed (%)")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlim(min(0.0, ax.get_xlim()[0]), rightmost + 12)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return plots._png(fig)


def results_text(path: Path) -> str:
    """The text of the ``--results`` file to update (a new one's first line when it does not
    exist yet).

    Raises:
        UsageError: a file that cannot be read as UTF-8 text (one line naming it).
    """
    if not path.exists():
        return "# Results\n\n"
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.reason if isinstance(exc, UnicodeDecodeError) else exc.strerror or str(exc)
        raise UsageError(
            f"--results: '{path}' cannot be read ({reason}; expected a UTF-8 text file, whose "
            "text outside the generated section is kept)"
        ) from None


def write_results(
    path: Path, results: list[ScenarioResult], command: str, settings: dict[str, Any]
) -> None:
    """Write the generated section of ``RESULTS.md`` (text outside the markers is kept) and its
    gap figure (:func:`figure_path`); the file is read first, so a figure is never written beside
    a results file that cannot be updated."""
    old = results_text(path)
    parts = [
        START_MARK,
        "## Learning benchmark (generated by `benchmarks/learning.py`)",
        "",
        f"Command: `{command}`  ",
        f"Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; "
        f"machine: {platform.machine()}, Python {platform.python_version()}, CPU (torch threads "
        f"{settings['torch_threads']}).  ",
        f"Budget: {settings['timesteps']:,} steps per run; training seeds {settings['seeds']}; "
        f"evaluation seeds {settings['eval_seeds']} x {settings['episodes']} episodes (disjoint "
        "from training users). Return intervals: 95% bootstrap over evaluation episodes (episode "
        "noise only; the per-seed means show training-seed spread). Gap closed = (agent - random) "
        "/ (oracle - random), interval by paired bootstrap.",
        "",
    ]
    if any(run.last_label for res in results for run in res.runs):
        parts += [
            "With `agent.validation` (validation on held-out users while training), an agent's "
            "row is its runs' `best_model.zip`, the model with the best mean return on the "
            "validation users (seeds apart from the training and evaluation users; per-seed "
            "column: when it was saved), and the `last model` row is their `model.zip`.",
            "",
        ]
    targets: list[dict[str, Any]] = []
    gaps: list[dict[str, Any]] = []
    tables = []
    for res in results:
        text, t = scenario_markdown(res, gaps=gaps)
        tables.append(text)
        targets += t
    if gaps:
        figure = figure_path(path)
        atomic_write(figure, gap_figure(gaps))
        parts += [
            f"![Share of the random-to-oracle gap closed per scenario and policy]({figure.name})",
            "",
            "The figure: the share of the random-to-oracle gap each policy closes, the trained "
            "agents' validated models with their 95% intervals, and the targets (dashed). Session "
            "length in the tables: mean steps before the user left or the horizon ended.",
            "",
        ]
    parts += tables
    parts += ["### Targets", "", "| target | measured | met |", "|---|---:|:---:|"]
    parts += [f"| {t['target']} | {t['value']} | {'yes' if t['met'] else 'no'} |" for t in targets]
    parts += ["", END_MARK, ""]
    generated = "\n".join(parts)
    if START_MARK in old and END_MARK in old:
        head, rest = old.split(START_MARK, 1)
        tail = rest.split(END_MARK, 1)[1].lstrip("\n")
        text = head + generated + tail
    else:
        text = old.rstrip("\n") + "\n\n" + generated
    atomic_write(path, text)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = OneLineArgumentParser(
        prog="benchmarks/learning.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="default scenario, 30k steps, seed 0, 10 evaluation episodes per seed",
    )
    ap.add_argument("--scenarios", nargs="+", default=None, help="default: every shipped scenario")
    ap.add_argument(
        "--algos", nargs="+", default=["ppo", "dqn"], choices=["ppo", "dqn", "maskable_ppo"]
    )
    ap.add_argument(
        "--timesteps", type=int_at_least(1), default=None, help="steps per run (default 200000)"
    )
    ap.add_argument(
        "--seeds",
        type=int_at_least(0, MAX_TRAINING_SEED),
        nargs="+",
        default=None,
        help="training seeds (default 0 10 20)",
    )
    ap.add_argument(
        "--eval-seeds",
        type=int_at_least(0, MAX_EVALUATION_SEED),
        nargs="+",
        default=None,
        help="default: the scenario's",
    )
    ap.add_argument(
        "--episodes",
        type=int_at_least(1, MAX_EVALUATION_EPISODES),
        default=None,
        help="per evaluation seed (default 100: with the scenarios' 20 the gap-closed figure "
        "moves by about ten points between evaluations)",
    )
    ap.add_argument("--no-mlp", action="store_true", help="skip the mlp comparison on cold_start")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "bench_learning")
    ap.add_argument("--results", type=Path, default=REPO / "RESULTS.md")
    ap.add_argument(
        "--threads",
        type=int_at_least(1, MAX_TORCH_THREADS),
        default=1,
        help="torch threads per process",
    )
    ap.add_argument(
        "--resume",
        action="store_true",
        help="reuse runs under --out that completed with the same settings, seed, budget and "
        "threads (a stopped benchmark goes on where it stopped; the code is not compared: after "
        "changing it, run without --resume)",
    )
    ap.add_argument(
        "--continue-stopped",
        action="store_true",
        help="with --resume: a stopped run of the same settings continues from its newest "
        "checkpoint (lmrecsim train --resume) instead of training again from the start; it is "
        "then not the run an uninterrupted benchmark trains, and RESULTS.md says 'continued at "
        "N' beside its return (not with --ray)",
    )
    ap.add_argument(
        "--jobs",
        type=int_at_least(1),
        default=None,
        help="training runs (and evaluations) at once, each in its own process; same results "
        "as one at a time (default 1; with --ray, the cluster's CPUs over --threads)",
    )
    ap.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="train the runs as Ray tasks: on a local Ray instance started for the benchmark "
        "(or the cluster RAY_ADDRESS names), or on the cluster at ADDRESS ('auto', "
        "'ray://HOST:10001'); run folders come back to --out, evaluations are Ray tasks too; "
        "same results as --jobs 1",
    )
    args = ap.parse_args(argv)

    def default(value: Any, fallback: Any) -> Any:  # None = not given (0 is an error above)
        return fallback if value is None else value

    if args.quick:
        args.scenarios = default(args.scenarios, ["default"])
        args.timesteps = default(args.timesteps, 30_000)
        args.seeds = default(args.seeds, [0])
        args.episodes = default(args.episodes, 10)
    args.scenarios = default(args.scenarios, shipped_scenario_names())
    args.timesteps = default(args.timesteps, 200_000)
    args.episodes = default(args.episodes, 100)
    # Training seeds 10 apart: sub-env i of seed s uses s + i, so runs never share users.
    args.seeds = default(args.seeds, [0, 10, 20])
    for flag, values in (
        ("--scenarios", args.scenarios),
        ("--algos", args.algos),
        ("--seeds", args.seeds),
        ("--eval-seeds", args.eval_seeds or []),
    ):
        repeated = sorted({v for v in values if values.count(v) > 1}, key=str)
        if repeated:  # a run trained twice (in one folder at once with --jobs), then refused
            ap.error(f"{flag}: {repeated[0]} is given twice (expected distinct values)")
    if args.continue_stopped and not args.resume:
        ap.error("--continue-stopped: needs --resume (it continues runs that --resume keeps)")
    if args.continue_stopped and args.ray is not None:
        ap.error(
            "--continue-stopped: not with --ray (Ray trains each run in a new folder on its node; "
            "expected --jobs N)"
        )
    if args.ray is None:
        args.jobs = default(args.jobs, 1)
    elif not args.ray.strip() and args.ray:
        ap.error("--ray: blank address (expected an address such as 'auto', or none at all)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the learning benchmark; ``argv`` as on the command line (None: ``sys.argv[1:]``)."""
    args = parse_args(argv)
    # Before hours of training: outputs that cannot be written are refused now, by name (a
    # UsageError: one line through report_user_errors).
    names: dict[str, str] = {}
    loaded: dict[str, Scenario] = {}
    for name in args.scenarios:
        sc = loaded[name] = load_scenario(name)
        check_algos(name, sc, args.algos)
        check_seeds(sc, args.seeds, args.eval_seeds)
        if sc.name in names:  # their run folders would be one: out/<name>/<label>
            raise UsageError(
                f"--scenarios {names[sc.name]} and {name} are both "
                f"named {sc.name!r}; expected one scenario per name"
            )
        names[sc.name] = name
    created: list[Path] = []
    try:
        created += prepare_output(str(args.results), "--results", folder=False)
        created += prepare_output(str(args.out), "--out")
        results_text(args.results)  # one that cannot be read fails now, not after the runs
        return _run(args, argv, loaded)
    except BaseException:
        remove_empty_folders(created)  # a refused or stopped run leaves no empty folder behind
        raise


def _run(args: argparse.Namespace, argv: Sequence[str] | None, loaded: dict[str, Scenario]) -> int:
    """The benchmark of :func:`main`, once its arguments and outputs are checked."""
    from lmrecsim.agents.train import set_torch_threads

    # train() sets the thread count of each run itself; this covers evaluation in between.
    set_torch_threads(args.threads)
    start = time.perf_counter()
    results: list[ScenarioResult] = []
    sc0 = loaded[args.scenarios[0]]
    settings = {
        "timesteps": args.timesteps,
        "seeds": list(args.seeds),
        "eval_seeds": list(args.eval_seeds or sc0.evaluation.seeds),
        "episodes": args.episodes,
        "torch_threads": args.threads,
    }
    shown = " ".join(sys.argv[1:]) if argv is None else " ".join(argv)
    command = f"python -m benchmarks.learning {shown}".strip()
    training = {
        "timesteps": args.timesteps,
        "out": args.out,
        "torch_threads": args.threads,
        "resume": args.resume,
        "continue_stopped": args.continue_stopped,
    }
    evaluation = {"eval_seeds": args.eval_seeds, "episodes": args.episodes}
    runs_of = {
        name: training_jobs(
            loaded[name].name, algos=args.algos, seeds=args.seeds, compare_mlp=not args.no_mlp
        )
        for name in args.scenarios
    }
    if args.ray is None and args.jobs == 1:
        for name in args.scenarios:
            runs = [train_run(name, *run, **training) for run in runs_of[name]]
            results.append(evaluate_runs(name, runs, **evaluation))
            # After every scenario, so a long run that is stopped still leaves its results.
            write_results(args.results, results, command, settings)
    else:
        # Every training run is seeded and uses its own torch threads, and evaluation reads the
        # saved models, so the results do not depend on which process ran what or what ran
        # beside it. Training runs of all scenarios share the processes (a scenario with few or
        # fast runs does not leave a core idle). At most --jobs tasks are submitted at a time,
        # and a scenario whose last run has finished is evaluated before the next training run
        # starts, so its results are written then, not after every scenario has trained.
        # Spawned workers: forking a process that has started torch's thread pools can deadlock.
        pool: Any
        if args.ray is not None:
            from benchmarks.ray_pool import RayPool

            pool = RayPool(args.ray or None, threads=args.threads, out=args.out, resume=args.resume)
            jobs = args.jobs or max(1, pool.cpus() // args.threads)
            print(f"Ray: {pool.cpus()} CPUs, up to {jobs} training runs at once", flush=True)
        else:
            jobs = args.jobs
            pool = ProcessPoolExecutor(
                max_workers=jobs,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=set_torch_threads,
                initargs=(args.threads,),
            )
        try:
            waiting = deque(
                (name, i, run) for name in args.scenarios for i, run in enumerate(runs_of[name])
            )
            to_evaluate: deque[str] = deque()
            pending: dict[Any, tuple[str, int]] = {}
            done_runs: dict[str, dict[int, AgentRun]] = {name: {} for name in args.scenarios}
            finished: dict[str, ScenarioResult] = {}

            def submit_next() -> None:
                """Fill the free processes: evaluations first, then training runs in order."""
                while len(pending) < jobs and (to_evaluate or waiting):
                    if to_evaluate:
                        name = to_evaluate.popleft()
                        runs = [done_runs[name][k] for k in range(len(runs_of[name]))]
                        task = pool.submit(evaluate_runs, name, runs, **evaluation)
                        pending[task] = (name, -1)
                    else:
                        name, i, run = waiting.popleft()
                        pending[pool.submit(train_run, name, *run, **training)] = (name, i)

            submit_next()
            while pending:
                ready, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in ready:
                    name, i = pending.pop(future)
                    if i < 0:  # an evaluation
                        finished[name] = future.result()
                        # Scenarios in the order given, not in the order they finished.
                        results = [finished[n] for n in args.scenarios if n in finished]
                        write_results(args.results, results, command, settings)
                        continue
                    done_runs[name][i] = future.result()
                    if len(done_runs[name]) == len(runs_of[name]):
                        to_evaluate.append(name)
                submit_next()
        except BaseException:
            # Stopped (Ctrl-C, SIGTERM to this process only): the pool's own exit would wait for
            # every queued job, for nothing. Cancel them and stop the running ones now; the
            # results of the finished scenarios are already written, and the completed training
            # runs are kept for --resume.
            # The executor has no public terminate(): its worker processes are in _processes.
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in processes:
                proc.terminate()
            raise
        pool.shutdown()
        results = [finished[name] for name in args.scenarios]
    args.out.mkdir(parents=True, exist_ok=True)
    raw = {
        res.name: {
            "returns": res.returns.reset_index().to_dict(orient="list"),
            "runs": [run.__dict__ for run in res.runs],
            "new_item_ctr": res.new_item_ctr,
            "session_lengths": (
                None if res.lengths is None else res.lengths.reset_index().to_dict(orient="list")
            ),
        }
        for res in results
    }
    atomic_write(args.out / "learning.json", json.dumps(raw, indent=1, default=float) + "\n")
    print(f"wrote {args.results} in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.insert(0, str(REPO))
    from lmrecsim.errors import report_user_errors

    raise SystemExit(report_user_errors("benchmarks/learning.py", main))
