"""``lmrecsim ope``: estimate a policy's value from a step log without running it."""

from __future__ import annotations

import argparse
import sys

from lmrecsim.commands.common import int_at_least


def add_parser(sub: argparse._SubParsersAction) -> None:
    from lmrecsim.evaluation.ope import ALL_ESTIMATORS

    p = sub.add_parser(
        "ope",
        help="off-policy evaluation of a policy from a step log",
        description="Estimate the target policy's value per step from a log made by a stochastic "
        "logging policy (IPS, SNIPS, DM, DR; on slate logs IPS and SNIPS over whole slates, "
        "the position-wise IIPS, SNIIPS, RIPS and SNRIPS, and DM and Cascade-DR over a Q-model "
        "fitted position by position; PDIS, WPDIS, FQE, per-decision and weighted DR for its "
        "return per episode; "
        "95% intervals, effective sample size), compared with the ground truth from running the "
        "target on the same scenario and seeds.",
    )
    p.add_argument("log", help="step log (episodes.parquet)")
    p.add_argument("--policy", required=True, help="target policy spec (baseline, ppo:PATH, ...)")
    p.add_argument(
        "--estimator",
        action="append",
        choices=list(ALL_ESTIMATORS),
        help="estimator to compute, repeatable (default: all a log takes: ips, snips, dm, dr; on a "
        "slate log ips, snips, iips, sniips, rips, snrips, dm, dr, where dr is Cascade-DR; "
        "pdis, wpdis, fqe, pddr and wdr, asked for by name, estimate the return per episode)",
    )
    p.add_argument("--logged-policy", help="the logging policy's label (logs of several)")
    p.add_argument("--out", help="write DIR/ope.csv")
    p.add_argument(
        "--export",
        help="write DIR/bandit_feedback.npz (Open Bandit Pipeline layout; its slate layout for a "
        "slate log, with the Q-model and the target's per-position distributions that its "
        "SlateCascadeDoublyRobust reads when the target gives them)",
    )
    p.add_argument("--no-ground-truth", action="store_true", help="skip running the target policy")
    p.add_argument(
        "--folds",
        type=int_at_least(1),
        default=2,
        help="cross-fitting folds of the models (dm and dr's reward model, the slate Q-model, "
        "the value model of fqe, pddr and wdr; default 2; 1: one model fitted on every episode, no "
        "cross-fitting; more folds than episodes: one fold per episode)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lmrecsim.evaluation.ope import evaluate_off_policy

    result = evaluate_off_policy(
        args.log,
        args.policy,
        estimators=args.estimator,
        logged_policy=args.logged_policy,
        out_dir=args.out,
        export_dir=args.export,
        with_ground_truth=not args.no_ground_truth,
        n_folds=args.folds,
    )
    print(result.summary(with_warnings=False))
    for warning in result.warnings:  # on stderr, as every command's warnings
        print(f"lmrecsim: warning: {warning}", file=sys.stderr)
    return 0
