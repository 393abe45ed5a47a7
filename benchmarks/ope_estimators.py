"""How well do the off-policy estimators recover a target's value? Many logs, one known truth.

Each run logs ``--logs`` independent logs with a stochastic logging policy, evaluates a target on
each with ``lmrecsim.evaluation.ope.evaluate_off_policy`` (ground truth included: the target run
on the same users), and prints per estimator the mean estimate, its spread over the logs, bias,
RMSE, how many 95% intervals missed the pooled truth, and the mean effective sample size. The
figures of docs/logs.md come from these commands:

    python -m benchmarks.ope_estimators slates --k 5 --slate 2 --logger egreedy
    python -m benchmarks.ope_estimators slates --k 8 --slate 3 --logger uniform
    python -m benchmarks.ope_estimators episodes --horizon 3
    python -m benchmarks.ope_estimators episodes --horizon 10
    python -m benchmarks.ope_estimators episodes --horizon 3 --slate 2
    python -m benchmarks.ope_estimators episodes --horizon 5 --slate 3
    python -m benchmarks.ope_estimators loggers --target greedy --episodes 400
    python -m benchmarks.ope_estimators loggers --target popular --episodes 400

``slates``: one-step episodes (a slate bandit, where every per-step estimator's truth is exact)
on the default scenario with a small catalog, slates of ``--slate`` among ``--k`` candidates, an
epsilon-greedy (epsilon 0.5) or uniform logger, and the greedy target; all eight slate
estimators. ``episodes``: sessions of at most ``--horizon`` steps among 5 candidates, a logger
that is epsilon-greedy (epsilon 0.7) on the popularity feature, and a uniform target; the
per-step IPS and SNIPS and the five estimators of the return per episode. With ``--slate L``
the same sessions show slates of L, logged by ``egreedy:0.7`` (on greedy's ranking), and the
uniform target draws slates. ``loggers``: the
same one-step bandit as docs/logs.md's logger table (the default scenario, one step, 5
candidates), logged by each ``--logger`` policy spec in turn (``softmax:0.2:0.05``, ``egreedy``;
any spec ``lmrecsim evaluate --policy`` takes), and the ``--target`` spec estimated by SNIPS and
DR: which logger serves that target best.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class PopularityLogger:
    """Epsilon-greedy on the candidates' popularity feature (feature 0), with its probabilities."""

    def __init__(self, epsilon: float, seed: int) -> None:
        self.epsilon = epsilon
        self.rng = np.random.default_rng(seed)

    def action_probabilities(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        mask = obs["action_mask"].astype(bool)
        probs = np.where(mask, self.epsilon / mask.sum(), 0.0)
        scores = np.where(mask, obs["candidate_features"][:, 0], -np.inf)
        probs[int(np.argmax(scores))] += 1.0 - self.epsilon
        return probs

    def predict(
        self, obs: dict[str, np.ndarray], state: Any = None, episode_start: Any = None, **_: Any
    ) -> tuple[np.ndarray, Any]:
        p = self.action_probabilities(obs)
        return np.asarray(self.rng.choice(p.shape[0], p=p)), state


def summarise(results: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Per estimator (and unit, and the ``by`` columns first): mean, spread, bias, RMSE, misses of
    the pooled truth, mean ESS."""
    rows = []
    keys = [*by, "unit", "estimator"]
    for values, group in results.groupby(keys, sort=False):
        *first, unit, name = values
        truth = float(group.groupby("log")["ground_truth"].first().mean())
        est = group["estimate"]
        missed = int(((group["ci_low"] > truth) | (truth > group["ci_high"])).sum())
        bias = float(est.mean()) - truth
        rows.append(
            {
                **dict(zip(by, first, strict=True)),
                "unit": unit,
                "estimator": name,
                "truth": truth,
                "mean": float(est.mean()),
                "spread": float(est.std()),
                "bias": bias,
                "rmse": float(np.sqrt(bias**2 + est.var())),
                "missed": f"{missed}/{len(group)}",
                "ess": float(group["ess"].mean()),
            }
        )
    return pd.DataFrame(rows)


def run(kind: str, args: argparse.Namespace) -> pd.DataFrame:
    from lmrecsim.agents.base import RandomPolicy
    from lmrecsim.agents.baselines import EpsilonGreedyPolicy, GreedyPolicy
    from lmrecsim.envs.world import build_world
    from lmrecsim.evaluation.logs import write_step_log
    from lmrecsim.evaluation.ope import evaluate_off_policy
    from lmrecsim.evaluation.rollout import run_policy
    from lmrecsim.scenarios import load_scenario, scenario_from_dict
    from lmrecsim.scenarios.loader import deep_merge, scenario_to_dict

    base = scenario_to_dict(load_scenario("default"))
    if kind == "loggers":
        return compare_loggers(args, base)
    if kind == "slates":
        override = {
            "name": "ope-slates",
            "catalog": {"n_items": 200},
            "candidates": {"k": args.k, "slate_size": args.slate},
            "episode": {"horizon": 1},
            "users": {"patience": {"skip_cost": 0.03}},
            "encoder": {"project_dim": 16},
        }
        estimators: Sequence[str] | None = None  # the slate default: all eight
    else:
        override = {"name": "ope-episodes", "episode": {"horizon": args.horizon}}
        override["candidates"] = {"k": 5, "slate_size": args.slate}
        estimators = ("ips", "snips", "pdis", "wpdis", "fqe", "pddr", "wdr")
    scenario = scenario_from_dict(deep_merge(base, override))
    world = build_world(scenario, show_progress=False)
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.logs):
            if kind == "slates":
                logger: Any = (
                    RandomPolicy(seed=rep, slate_size=args.slate)
                    if args.logger == "uniform"
                    else EpsilonGreedyPolicy(epsilon=0.5, seed=rep, slate_size=args.slate)
                )
                target: Any = ("greedy", GreedyPolicy(slate_size=args.slate))
                seed = 200 + rep
            elif args.slate > 1:
                logger = EpsilonGreedyPolicy(epsilon=0.7, seed=rep, slate_size=args.slate)
                target = ("uniform", RandomPolicy(rep, slate_size=args.slate))
                seed = 300 + rep
            else:
                logger = PopularityLogger(0.7, seed=rep)
                target = ("uniform", RandomPolicy(rep))
                seed = 300 + rep
            steps, arrays = run_policy(
                world,
                logger,
                label="logger",
                seeds=[seed],
                episodes=args.episodes,
                deterministic=False,
            )
            path = Path(tmp) / f"log{rep}.parquet"
            write_step_log(path, steps, arrays, scenario=scenario, world=world)
            result = evaluate_off_policy(path, target, estimators=estimators)
            tables.append(result.table().assign(log=rep))
    return summarise(pd.concat(tables, ignore_index=True))


def compare_loggers(args: argparse.Namespace, base: dict[str, Any]) -> pd.DataFrame:
    """``--logs`` logs of one-step episodes per ``--logger`` spec (log r: the logger's seed r,
    the users of seed 500 + r, the same users for every logger), each scored for ``--target``
    by SNIPS and DR."""
    from lmrecsim.agents.baselines import make_policy
    from lmrecsim.envs.world import build_world
    from lmrecsim.evaluation.logs import write_step_log
    from lmrecsim.evaluation.ope import evaluate_off_policy
    from lmrecsim.evaluation.rollout import run_policy
    from lmrecsim.scenarios import scenario_from_dict
    from lmrecsim.scenarios.loader import deep_merge

    override = {"name": "ope-loggers", "episode": {"horizon": 1}, "candidates": {"k": args.k}}
    scenario = scenario_from_dict(deep_merge(base, override))
    world = build_world(scenario, show_progress=False)
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.logger:
            for rep in range(args.logs):
                label, logger = make_policy(spec, world, seed=rep)
                steps, arrays = run_policy(
                    world,
                    logger,
                    label=label,
                    seeds=[500 + rep],
                    episodes=args.episodes,
                    deterministic=False,
                )
                path = Path(tmp) / f"log{rep}.parquet"
                write_step_log(path, steps, arrays, scenario=scenario, world=world)
                result = evaluate_off_policy(path, args.target, estimators=("snips", "dr"))
                tables.append(result.table().assign(log=rep, logger=spec))
    return summarise(pd.concat(tables, ignore_index=True), by=("logger",))


def main(argv: Sequence[str] | None = None) -> int:
    from lmrecsim.commands.common import OneLineArgumentParser, int_at_least
    from lmrecsim.scenarios.schema import MAX_EVALUATION_EPISODES, MAX_STEPS

    count = int_at_least(1, 10_000)  # logs, candidates, slate sizes
    rounds = int_at_least(1, MAX_EVALUATION_EPISODES)
    parser = OneLineArgumentParser(
        prog="benchmarks/ope_estimators.py", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="kind", required=True)
    slates = sub.add_parser("slates", help="one-step slate bandits, the greedy target")
    slates.add_argument("--k", type=count, default=5, help="candidates (default 5)")
    slates.add_argument("--slate", type=count, default=2, help="slate size (default 2)")
    slates.add_argument("--logger", choices=["egreedy", "uniform"], default="egreedy")
    slates.add_argument("--episodes", type=rounds, default=400, help="rounds per log (default 400)")
    episodes = sub.add_parser("episodes", help="short sessions, a uniform target")
    episodes.add_argument(
        "--horizon", type=int_at_least(1, MAX_STEPS), default=3, help="session length (default 3)"
    )
    episodes.add_argument("--episodes", type=rounds, default=100, help="per log (default 100)")
    episodes.add_argument(
        "--slate",
        type=count,
        default=1,
        help="slate size (default 1; above 1 the logger is egreedy:0.7 on greedy's ranking)",
    )
    loggers = sub.add_parser("loggers", help="one-step bandits: loggers compared for one target")
    loggers.add_argument(
        "--logger",
        action="append",
        help="a logging policy spec, repeatable (default: softmax:0.05, softmax:0.05:0.1, "
        "softmax:0.2, softmax:0.2:0.1, egreedy, egreedy:0.5)",
    )
    loggers.add_argument("--target", default="greedy", help="the target's spec (default greedy)")
    loggers.add_argument("--k", type=count, default=5, help="candidates (default 5)")
    loggers.add_argument(
        "--episodes", type=rounds, default=500, help="rounds per log (default 500)"
    )
    for p in (slates, episodes, loggers):
        p.add_argument("--logs", type=count, default=20, help="independent logs (default 20)")
    args = parser.parse_args(argv)
    if args.kind == "episodes" and not 1 <= args.slate <= 5:
        parser.error(f"--slate: {args.slate} (expected 1 to 5: the sessions offer 5 candidates)")
    if args.kind == "loggers" and not args.logger:
        args.logger = [
            "softmax:0.05",
            "softmax:0.05:0.1",
            "softmax:0.2",
            "softmax:0.2:0.1",
            "egreedy",
            "egreedy:0.5",
        ]
    from lmrecsim.agents.baselines import check_policy_spec
    from lmrecsim.agents.errors import AgentError
    from lmrecsim.evaluation.logs import LogError
    from lmrecsim.scenarios.loader import ScenarioError

    start = time.perf_counter()
    try:  # bad input is one line and exit code 2, as for lmrecsim's commands
        for spec in (*args.logger, args.target) if args.kind == "loggers" else ():
            check_policy_spec(spec)  # before the world is built
        table = run(args.kind, args)
    except (AgentError, LogError, ScenarioError) as exc:
        parser.error(str(exc))
    setting = " ".join(
        " ".join(f"--{k} {v}" for v in (value if isinstance(value, list) else [value]))
        for k, value in vars(args).items()
        if k != "kind"
    )
    print(f"python -m benchmarks.ope_estimators {args.kind} {setting}")
    print(f"({time.perf_counter() - start:.0f} s)")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    return 0


if __name__ == "__main__":
    from lmrecsim.errors import report_user_errors

    # Ctrl-C and SIGTERM: one line ("interrupted", "terminated"), not a traceback.
    sys.exit(report_user_errors("benchmarks/ope_estimators.py", main))
