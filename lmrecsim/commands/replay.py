"""``lmrecsim replay``: re-simulate a step log exactly, or run another policy on the same users."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="re-simulate a step log, or compare another policy on the same users",
        description="Without --policy: re-simulate every logged episode from its scenario and seed "
        "and check the log is reproduced exactly (writes DIR/replay.json; exit code 1 on divergence, "
        "naming the first differing step). With --policy: run that policy on exactly the logged "
        "users and random streams and write DIR/side_by_side.csv, DIR/side_by_side.html and the paired "
        "difference in return per episode with its 95% interval.",
    )
    p.add_argument("log", help="step log (episodes.parquet)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--policy", help="policy spec: baseline name, ppo:PATH, dqn:PATH, LABEL=SPEC")
    p.add_argument(
        "--logged-policy",
        help="which logged policy to replay, or to compare with (logs of several policies)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lmrecsim.evaluation.replay import replay, replay_with_policy

    if args.policy is not None:  # an empty --policy is refused by name, not an exact replay
        result = replay_with_policy(
            args.log, args.policy, args.out, logged_policy=args.logged_policy
        )
    else:
        result = replay(args.log, args.out, logged_policy=args.logged_policy)
    for warning in result.warnings:
        print(f"lmrecsim: warning: {warning}", file=sys.stderr)
    print(result.summary())
    return 1 if result.reproduced is False else 0
