"""``lmrecsim evaluate``: evaluate policies on a scenario and write a report folder."""

from __future__ import annotations

import argparse
import json
import math
import sys

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
    p.add_argument("--scenario", default="default", help="shipped scenario name or YAML path")
    p.add_argument(
        "--policy",
        action="append",
        required=True,
        metavar="SPEC",
        help="random | popular | greedy | linucb | egreedy | oracle | ppo:PATH | dqn:PATH | "
        "maskable_ppo:PATH, optionally LABEL=SPEC; repeatable",
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


def run(args: argparse.Namespace) -> int:
    from lmrecsim.evaluation.runner import evaluate

    result = evaluate(
        args.scenario,
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
