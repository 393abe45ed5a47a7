"""``lmrecsim runs``: the training runs under folders, one line each, and what to do next."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "runs",
        help="list training runs: status, steps, best validation, how to resume",
        description="List the run folders (those with the train.json lmrecsim train writes) "
        "under each DIR, recursively: scenario, algorithm, status (complete, running, stopped, "
        "failed), steps trained of the budget, best validation return, and for a run that did "
        "not complete the lmrecsim train --resume command that continues it.",
    )
    p.add_argument("dirs", nargs="*", default=["runs"], metavar="DIR", help="default: runs")
    p.add_argument("--csv", metavar="FILE", help="also write the table to FILE (CSV)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from lmrecsim.agents.runs import list_runs
    from lmrecsim.atomic import atomic_write

    table = list_runs(*args.dirs)
    if args.csv:
        atomic_write(args.csv, table.to_csv(index=False))
    if table.empty:
        print(f"no training runs under {', '.join(args.dirs)}")
        return 0
    shown = table.drop(columns=["next"]).copy()
    shown["best_return"] = shown["best_return"].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    print(shown.astype(object).where(shown.notna(), "").to_string(index=False))
    todo = table[table["next"].fillna("") != ""]
    for r in todo.itertuples():
        if r.status == "unreadable":  # its train.json: a warning, on stderr
            print(f"lmrecsim: warning: {r.next}", file=sys.stderr)
        else:
            print(f"{r.run}: {r.status}; {r.next}")
    return 0
