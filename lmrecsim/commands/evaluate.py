"""``lmrecsim evaluate``: evaluate policies on a scenario and write a report folder."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from lmrecsim.commands.common import int_at_least, parse_seeds
from lmrecsim.scenarios.schema import MAX_EVALUATION_EPISODES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate policies on a scenario and write a report",
        description="Evaluate baselines and saved models on a scenario with common random numbers. "
        "Writes DIR/summary.csv, DIR/comparison.csv, DIR/episodes.csv, DIR/episodes.parquet (the "
        "step log), DIR/report.md, DIR/report.html and PNG plots; prints one JSON line with the "
        "report's path, each policy's mean return and, when random and the oracle are among the "
        "policies, the share of the random-to-oracle gap each other policy closes (gap_closed).",
    )
    p.add_argument(
        "--scenario",
        help="shipped scenario name or YAML path (default: the scenario the saved models' runs "
        "trained on, their scenario.yaml; the default scenario for baselines alone)",
    )
    p.add_argument(
        "--policy",
        action="append",
        required=True,
        metavar="SPEC",
        help="random | popular | greedy | linucb | egreedy[:EPSILON] | "
        "softmax[:TEMPERATURE[:EPSILON]] | oracle | ppo:PATH | dqn:PATH | "
        "maskable_ppo:PATH | RUN (a run folder of lmrecsim train, or a model in it: its "
        "train.json names the algorithm), optionally LABEL=SPEC; repeatable",
    )
    p.add_argument(
        "--episodes",
        type=int_at_least(1, MAX_EVALUATION_EPISODES),
        help="episodes per seed (default: the scenario's)",
    )
    p.add_argument("--seeds", help="comma-separated evaluation seeds (default: the scenario's)")
    p.add_argument(
        "--reference",
        default="random",
        help="label of the policy others are compared with (default: random)",
    )
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def scenario_of_runs(specs: list[str]) -> str:
    """The scenario to evaluate on when ``--scenario`` is not given: the ``scenario.yaml`` of the
    saved models' runs when they all trained on one scenario (by its name in ``train.json``), the
    default scenario when no policy is a saved model with a run folder.

    Raises:
        UsageError: the runs trained on scenarios of different names, or a run without its
            ``scenario.yaml`` (one line naming them).
    """
    from lmrecsim.agents.baselines import model_spec_path
    from lmrecsim.agents.build import run_folder, trained_scenario
    from lmrecsim.errors import UsageError

    runs: dict[str, Path] = {}
    for spec in specs:
        path = model_spec_path(spec)
        if path is None:
            continue
        folder = run_folder(path)
        name = trained_scenario(folder)  # None for an unreadable train.json: evaluate reports it
        if name is not None and not (folder / "scenario.yaml").is_file():
            # Evaluating on the default scenario instead would score other users, unannounced.
            raise UsageError(
                f"{folder / 'scenario.yaml'}: missing (the resolved scenario of the run, which "
                f"trained on {name!r}; expected the file, or --scenario NAME or FILE)"
            )
        if name is not None:
            runs.setdefault(name, folder)
    if len(runs) > 1:
        found = ", ".join(f"{name!r} in {folder}" for name, folder in runs.items())
        raise UsageError(
            f"--scenario: not given, and the models were trained on different scenarios ({found}); "
            "expected --scenario NAME"
        )
    if runs:
        return str(next(iter(runs.values())) / "scenario.yaml")
    return "default"


def run(args: argparse.Namespace) -> int:
    from lmrecsim.evaluation.runner import evaluate

    scenario = args.scenario if args.scenario is not None else scenario_of_runs(args.policy)
    result = evaluate(
        scenario,
        args.policy,
        seeds=None if args.seeds is None else parse_seeds(args.seeds),
        episodes=args.episodes,
        reference=args.reference,
        out=args.out,
        progress=not args.no_progress,
    )
    for warning in result.warnings:
        print(f"lmrecsim: warning: {warning}", file=sys.stderr)
    table = result.summary.set_index("policy")
    line: dict[str, object] = {
        "out": args.out,
        "scenario": result.scenario.name,
        "report": str(result.files[-1]) if result.files else None,
        "return": {p: round(float(table.at[p, "return"]), 4) for p in table.index},
    }
    gap = result.gap_shares()
    if gap is not None:  # random and the oracle were evaluated
        line["gap_closed"] = {
            r.policy: round(float(r.gap_closed), 4) if math.isfinite(r.gap_closed) else None
            for r in gap.itertuples()
        }
    print(json.dumps(line))
    return 0
