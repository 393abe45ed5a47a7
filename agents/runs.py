"""The training runs under a folder, one row each: what ``lmrecsim runs`` prints.

A run folder is one that holds the ``train.json`` :func:`lmrecsim.agents.train.train` writes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ..atomic import folder_in_use
from ..scenarios.yaml_text import safe_load
from .errors import AgentError
from .train import run_record, stopped_checkpoint_steps

#: Columns of :func:`list_runs`.
RUN_COLUMNS = (
    "run",
    "scenario",
    "algo",
    "policy",
    "seed",
    "status",
    "timesteps",
    "budget",
    "resumed_from",
    "best_return",
    "best_timesteps",
    "steps_per_second",
    "next",
)


def _budget(folder: Path) -> int | None:
    """``agent.timesteps`` of the run's ``scenario.yaml``, or None when it cannot be read."""
    try:
        data = safe_load((folder / "scenario.yaml").read_text(encoding="utf-8"))
        value = data["agent"]["timesteps"]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError):
        return None
    return _int(value)


def _int(value: Any) -> int | None:
    """``value`` when it is an int the table's Int64 columns hold, else None (not shown)."""
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    return None


def _row(folder: Path) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(RUN_COLUMNS)
    row["run"] = str(folder)
    try:
        record = run_record(folder) or {}
    except ValueError as exc:  # one line naming the file
        row["status"] = "unreadable"
        row["next"] = str(exc)
        return row
    for key in ("scenario", "algo", "policy"):
        row[key] = record.get(key) if isinstance(record.get(key), str) else None
    row["seed"] = _int(record.get("seed"))
    status = record.get("status")
    row["status"] = status if isinstance(status, str) else "unknown"
    row["timesteps"] = _int(record.get("timesteps"))
    row["budget"] = _budget(folder)
    # None (blank) for a run never resumed: 0 would read as "resumed at step 0".
    row["resumed_from"] = _int(record.get("resumed_from"))
    validation = record.get("validation")
    if isinstance(validation, dict):
        best = validation.get("best_mean_return")
        row["best_return"] = best if isinstance(best, (int, float)) else None
        row["best_timesteps"] = _int(validation.get("best_timesteps"))
    sps = record.get("steps_per_second")
    row["steps_per_second"] = sps if isinstance(sps, (int, float)) else None
    if row["status"] == "complete":
        row["next"] = ""
    elif (busy := folder_in_use(folder)) is not None:  # a live run holds it
        row["next"] = f"{busy}: wait for it to end"
    else:
        steps = stopped_checkpoint_steps(folder)
        budget = row["budget"]
        if steps is None:
            row["next"] = "no checkpoint: train again"
        elif budget is not None and steps >= budget:
            row["next"] = f"newest checkpoint at its budget ({steps}): train again"
        else:
            row["next"] = f"lmrecsim train --resume --out {folder}  (from {steps} steps)"
    return row


def list_runs(*roots: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per run folder under ``roots`` (searched recursively; a root may be a run folder
    itself), sorted by path, with the columns of :data:`RUN_COLUMNS`.

    ``status`` is ``train.json``'s (``complete``, ``running``, ``stopped``, ``failed``; a run
    killed outright keeps ``running``), or ``unreadable``; ``next`` says what to do with a run
    that did not complete: the ``lmrecsim train --resume`` command that continues it from its
    newest checkpoint, or to train again. ``best_return`` is the best validation return, when
    the run validated. A run a live process is writing (it holds the folder's lock) says so in
    ``next`` instead of the command that would resume it.

    Raises:
        AgentError: a root that does not exist (one line naming it).
    """
    folders: set[Path] = set()
    for root in roots:
        path = Path(root)
        if not path.exists():
            raise AgentError(f"'{path}': no such folder (expected a folder of training runs)")
        if path.is_file():
            raise AgentError(f"'{path}' is a file (expected a folder of training runs)")
        folders.update(p.parent for p in path.rglob("train.json") if p.is_file())
    rows = [_row(folder) for folder in sorted(folders)]
    table = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    # Counts stay integers (a missing one is <NA>, not a float column of 256.0 and NaN).
    for name in ("seed", "timesteps", "budget", "resumed_from", "best_timesteps"):
        table[name] = table[name].astype("Int64")
    return table
