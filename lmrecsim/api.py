"""The Python API behind the command line (training, the demo)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from lmrecsim.agents.baselines import SB3Policy
from lmrecsim.agents.train import TrainResult, train, write_text_atomic
from lmrecsim.atomic import output_folder_problem
from lmrecsim.envs.vec_env import sub_env_seeds
from lmrecsim.evaluation.bootstrap import gap_text
from lmrecsim.evaluation.errors import EvaluationError
from lmrecsim.evaluation.runner import check_episodes, evaluate
from lmrecsim.scenarios import ScenarioError, ScenarioRef, load_scenario

# The baselines the demo evaluates beside PPO, in the summary's order; random is the reference.
DEMO_BASELINES = ("greedy", "random", "oracle")


def _gap_lines(gap: pd.DataFrame) -> list[str]:
    """The demo's line on the share of the random-to-oracle gap PPO and greedy close (``gap``:
    :meth:`EvaluationResult.gap_shares`)."""
    table = gap.set_index("policy")
    parts = []
    for name in ("ppo", "greedy"):
        text = gap_text(*table.loc[name, ["gap_closed", "low", "high"]])
        if text is None:
            return ["(no random-to-oracle gap on these users: the oracle did not beat random)"]
        parts.append(f"{name} {text}")
    return [f"share of the random-to-oracle gap closed (95% CI): {'; '.join(parts)}"]


def ratio_text(ppo: float, random: float) -> str:
    """The demo's ppo/random ratio of mean returns, ``n/a`` unless random's is positive (a reward
    with a leave penalty can make it negative, where a ratio means nothing; one of 0 read 1e10)."""
    if random > 0:
        return f"{ppo / random:.2f}"
    return f"n/a (random's mean return is {random:.2f}, not positive)"


def _validation_lines(result: TrainResult) -> list[str]:
    """The demo's line about the run's validation (none when it did not validate)."""
    val = result.validation
    if val is None or val["best_timesteps"] is None:
        return []
    last = val["users"] + val["seed"] - 1
    # A budget below the validation interval is validated once, at the end of training.
    when = (
        f"every {val['every']} steps"
        if val["every"] < result.timesteps
        else "at the end of training"
    )
    return [
        f"validated {when} on {val['users']} held-out users (seeds "
        f"{val['seed']}..{last}): best greedy return {val['best_mean_return']:.2f} at "
        f"{val['best_timesteps']} steps (best_model.zip), last {val['last_mean_return']:.2f} "
        "(model.zip, evaluated below)"
    ]


def demo(
    scenario: ScenarioRef = "default",
    *,
    out: str | os.PathLike[str] = "runs/demo",
    timesteps: int = 100_000,
    episodes: int = 20,
    progress: bool = True,
) -> str:
    """Train PPO on a scenario and evaluate it on the held-out evaluation seeds.

    PPO is compared with the baselines of :data:`DEMO_BASELINES` (random, greedy, and the oracle
    that reads the hidden taste) on the same users. Writes the run folder of
    :func:`lmrecsim.agents.train.train`, the evaluation report of
    :func:`lmrecsim.evaluation.runner.evaluate` in its ``report/`` folder (``report.html`` with the
    plots, ``report.md``, the tables and the step log) and ``summary.txt``; returns the summary
    text.
    """
    check_episodes(episodes)  # before training, not after it
    report_dir = Path(out) / "report"
    problem = output_folder_problem(report_dir)
    if problem is not None:  # before training, not after it
        raise EvaluationError(f"out: {problem}")
    sc = load_scenario(scenario)
    seeds = list(sc.evaluation.seeds)
    # Sub-env i trains on seed agent.seed + i; evaluating on one of those would meet training users.
    training_seeds = sub_env_seeds(sc.agent.seed, sc.agent.n_envs)
    overlap = sorted(set(seeds) & set(training_seeds))
    if overlap:
        raise ScenarioError(
            f"{sc.source}: evaluation.seeds: {overlap} overlap the training seeds "
            f"{training_seeds.start}..{training_seeds.stop - 1} (agent.seed + sub-env index); "
            "expected held-out seeds"
        )
    result = train(sc, out=out, algo="ppo", timesteps=timesteps, progress=progress)
    # The evaluation command's own runner: the same figures `lmrecsim evaluate` gives this model.
    model_path = result.out_dir / "model.zip"
    ppo = SB3Policy(result.model, "ppo", run_dir=result.out_dir, model_path=model_path)
    evaluation = evaluate(
        result.scenario,
        [("ppo", ppo), *DEMO_BASELINES],
        seeds=seeds,
        episodes=episodes,
        reference="random",
        out=report_dir,
        progress=progress,
    )
    summary = evaluation.summary.set_index("policy")
    network = {"candidate_scorer": "candidate scorer", "mlp": "MLP"}.get(
        result.scenario.agent.policy, result.scenario.agent.policy
    )
    lines = [
        f"lmrecsim demo: PPO ({network}) on scenario '{result.scenario.name}'",
        f"trained for {result.timesteps} steps in {result.seconds:.1f} s "
        f"({result.steps_per_second:.0f} steps/s) with training seeds "
        f"{result.scenario.agent.seed}..{result.scenario.agent.seed + result.scenario.agent.n_envs - 1}",
        *_validation_lines(result),
        f"evaluated on held-out seeds {seeds} x {episodes} episodes (same users for every policy)",
        "",
        f"{'policy':<8} {'return (95% CI)':<24} {'click-through':>13} {'session length':>15}",
    ]
    for name in ("ppo", *DEMO_BASELINES):
        row = summary.loc[name]
        m, lo, hi = row["return"], row["return_low"], row["return_high"]
        note = "  (reads the hidden taste: the ceiling)" if name == "oracle" else ""
        lines.append(
            f"{name:<8} {m:6.2f} [{lo:5.2f}, {hi:5.2f}]{'':<6} {row['ctr']:13.3f} "
            f"{row['session_length']:15.1f}{note}"
        )
    cmp = evaluation.comparison.set_index(["policy", "metric"]).loc[("ppo", "return")]
    ratio = ratio_text(float(summary.loc["ppo", "return"]), float(summary.loc["random", "return"]))
    lines += [
        "",
        f"paired difference in return (ppo - random): {cmp['difference']:+.2f} "
        f"[{cmp['low']:+.2f}, {cmp['high']:+.2f}]",
        f"ppo/random return ratio: {ratio}",
        *_gap_lines(evaluation.gap_shares()),
        "(the figures `lmrecsim evaluate` reports for this model on these seeds and episodes)",
        f"report with plots: {report_dir / 'report.html'}",
    ]
    text = "\n".join(lines) + "\n"
    write_text_atomic(Path(out) / "summary.txt", text)
    return text
