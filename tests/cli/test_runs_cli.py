"""``lmrecsim runs``: one row per run folder, with what to do with a run that did not complete."""

from __future__ import annotations

import pandas as pd
import pytest

from lmrecsim.agents.errors import AgentError
from lmrecsim.agents.runs import RUN_COLUMNS, list_runs
from lmrecsim.agents.train import train
from lmrecsim.cli import main
from tests.callbacks import StopAt

HP = {"n_steps": 32, "batch_size": 64, "n_epochs": 1}


def _train(out, *, stop_at: int | None = None) -> None:
    factory = None if stop_at is None else (lambda sc, world: [StopAt(stop_at)])
    try:
        train(
            "default",
            out=out,
            timesteps=256,
            n_envs=2,
            hyperparameters=HP,
            checkpoint_freq=64,
            validate_every=128,
            progress=False,
            callback_factory=factory,
        )
    except KeyboardInterrupt:
        assert stop_at is not None


def test_runs_lists_every_run_with_its_status_and_how_to_resume(tmp_path, capsys):
    root = tmp_path / "runs"
    _train(root / "done")
    _train(root / "group" / "stopped", stop_at=150)
    _train(root / "early", stop_at=10)  # before its first checkpoint
    (root / "broken").mkdir()
    (root / "broken" / "train.json").write_text("{not json")
    table = list_runs(root).set_index("run")
    assert list(table.reset_index().columns) == list(RUN_COLUMNS)
    done, stopped = table.loc[str(root / "done")], table.loc[str(root / "group" / "stopped")]
    assert (done["status"], done["timesteps"], done["budget"], done["next"]) == (
        "complete",
        256,
        256,
        "",
    )
    assert done["best_timesteps"] == 256 and done["algo"] == "ppo" and done["scenario"] == "default"
    # Never resumed: blank, not "resumed from step 0".
    assert pd.isna(done["resumed_from"])
    assert stopped["status"] == "stopped" and 150 <= stopped["timesteps"] < 256
    assert (
        stopped["next"]
        == f"lmrecsim train --resume --out {root / 'group' / 'stopped'}  (from 128 steps)"
    )
    assert table.loc[str(root / "early"), "next"] == "no checkpoint: train again"
    # A run a live process is writing is not offered for resuming (the resume would be refused).
    import os

    from lmrecsim.atomic import folder_lock

    with folder_lock(root / "group" / "stopped"):
        busy = list_runs(root / "group").loc[0, "next"]
    assert busy == (
        f"'{root / 'group' / 'stopped'}' is in use by another lmrecsim run (process "
        f"{os.getpid()}): wait for it to end"
    )
    assert table.loc[str(root / "broken"), "status"] == "unreadable"
    assert "train.json: unreadable" in table.loc[str(root / "broken"), "next"]

    assert main(["runs", str(root), "--csv", str(tmp_path / "runs.csv")]) == 0
    out, err = capsys.readouterr()
    assert f"{root / 'group' / 'stopped'}: stopped; lmrecsim train --resume --out" in out
    # The broken run is a warning on stderr; the others' counts stay integers beside it.
    assert f"lmrecsim: warning: {root / 'broken' / 'train.json'}: unreadable" in err
    csv = pd.read_csv(tmp_path / "runs.csv", dtype=str).set_index("run")
    assert list(csv.reset_index().columns) == list(RUN_COLUMNS)
    assert csv.loc[str(root / "done"), "timesteps"] == "256"  # not 256.0
    assert csv.loc[str(root / "done"), "budget"] == "256"
    # The printed command continues the run.
    assert (
        main(["train", "--resume", "--out", str(root / "group" / "stopped"), "--no-progress"]) == 0
    )
    assert list_runs(root / "group").loc[0, "status"] == "complete"


def test_no_runs_and_a_missing_folder(tmp_path, capsys):
    assert main(["runs", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("no training runs under")
    with pytest.raises(AgentError, match="no such folder"):
        list_runs(tmp_path / "missing")
    assert main(["runs", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_counts_beyond_64_bits_are_not_shown_rather_than_a_traceback(tmp_path, capsys):
    # A hand-edited train.json or scenario.yaml: Int64 columns ended the listing in an
    # OverflowError traceback.
    import json

    run = tmp_path / "runs" / "edited"
    run.mkdir(parents=True)
    record = {"status": "complete", "scenario": "default", "algo": "ppo", "seed": 2**64}
    (run / "train.json").write_text(json.dumps({**record, "timesteps": 2**64}))
    (run / "scenario.yaml").write_text("agent:\n  timesteps: 99999999999999999999\n")
    table = list_runs(tmp_path / "runs")
    assert table.loc[0, "status"] == "complete"
    assert table[["seed", "timesteps", "budget"]].isna().all(axis=None)
    assert str(table["timesteps"].dtype) == "Int64"
    assert main(["runs", str(tmp_path / "runs")]) == 0
    assert "edited" in capsys.readouterr().out
