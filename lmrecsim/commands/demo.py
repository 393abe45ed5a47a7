"""``lmrecsim demo``: train PPO on the default scenario and write its evaluation report."""

from __future__ import annotations

import argparse
from pathlib import Path

from lmrecsim.commands.common import int_at_least
from lmrecsim.scenarios.schema import MAX_EVALUATION_EPISODES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train PPO on the default scenario and write its evaluation report",
        description="The quick start: trains PPO (the scenario's agent.policy network, the "
        "candidate scorer by default) on a scenario for a short budget and writes a run folder "
        "with the model, the evaluation report OUT/report/report.html (PPO against random, "
        "greedy and the oracle on held-out evaluation seeds, with plots) and OUT/summary.txt.",
    )
    p.add_argument(
        "--scenario",
        default="default",
        help="shipped scenario name or YAML path (default: default)",
    )
    p.add_argument(
        "--timesteps",
        type=int_at_least(1),
        default=100_000,
        help="training budget (steps; default 100000)",
    )
    p.add_argument(
        "--episodes",
        type=int_at_least(1, MAX_EVALUATION_EPISODES),
        default=20,
        help="evaluation episodes per seed (default 20)",
    )
    p.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lmrecsim.api import demo

    text = demo(
        args.scenario,
        out=Path(args.out),
        timesteps=args.timesteps,
        episodes=args.episodes,
        progress=not args.no_progress,
    )
    print(text)
    return 0
