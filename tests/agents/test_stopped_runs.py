"""Training and evaluation runs stopped midway (Ctrl-C, SIGTERM, a full disk): no half-written
file under a final name, no temp file left, and no folder that mixes two runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmrecsim.agents.train import save_model_atomic, train
from tests.callbacks import StopAt

TINY = {"n_steps": 32, "batch_size": 64, "n_epochs": 1}


def test_a_failed_run_says_so_with_its_error(tmp_path):
    out = tmp_path / "run"
    full_disk = OSError("No space left on device\nsecond line")  # a bug, a full disk
    with pytest.raises(OSError, match="No space left"):
        _train(out, stop_at=128, error=full_disk)
    info = json.loads((out / "train.json").read_text())
    assert info["status"] == "failed" and info["error"] == "OSError: No space left on device"
    assert 128 <= info["timesteps"] < 512 and info["torch_threads"] == 1
    assert not (out / "model.zip").exists()


def _train(
    out: Path,
    *,
    stop_at: int | None = None,
    seed: int = 1,
    error: BaseException | None = None,
    validate_every: int | None = None,
) -> None:
    train(
        "default",
        out=out,
        algo="ppo",
        timesteps=512,
        n_envs=2,
        seed=seed,
        hyperparameters=TINY,
        checkpoint_freq=64,
        progress=False,
        validate_every=validate_every,
        callback_factory=(lambda sc, world: [StopAt(stop_at, error)]) if stop_at else None,
    )


def _checkpoints(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "checkpoints").iterdir())


def test_a_stopped_validated_run_records_its_best_model(tmp_path):
    # The best model is saved while the run goes on; a stop used to leave train.json without its
    # step and return (lmrecsim runs showed them blank) although best_model.zip was there.
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _train(out, stop_at=300, validate_every=128)
    info = json.loads((out / "train.json").read_text())
    val = info["validation"]
    assert info["status"] == "stopped" and (out / "best_model.zip").is_file()
    import pandas as pd

    rows = pd.read_csv(out / "validation.csv")
    best = rows.loc[rows["mean_return"].idxmax()]
    assert val["best_timesteps"] == int(best["timesteps"]) and val["every"] == 128
    assert val["best_mean_return"] == pytest.approx(best["mean_return"], abs=1e-6)
    assert val["last_mean_return"] == pytest.approx(rows["mean_return"].iloc[-1], abs=1e-6)
    from lmrecsim.agents.runs import list_runs

    row = list_runs(out).iloc[0]
    assert row["best_timesteps"] == val["best_timesteps"] and row["status"] == "stopped"
    assert row["best_return"] == pytest.approx(val["best_mean_return"])


def test_a_stopped_save_leaves_neither_a_truncated_zip_nor_a_temp_file(tmp_path):
    class Model:
        def save(self, fh) -> None:
            fh.write(b"PK half a zip")
            raise KeyboardInterrupt

    target = tmp_path / "model_64_steps.zip"
    with pytest.raises(KeyboardInterrupt):
        save_model_atomic(Model(), target)
    assert list(tmp_path.iterdir()) == []


def test_a_stopped_run_says_so_and_the_next_run_clears_it(tmp_path):
    out = tmp_path / "run"
    _train(out)  # a finished run
    finished = json.loads((out / "train.json").read_text())
    assert finished["status"] == "complete" and (out / "model.zip").is_file()

    # A second run, stopped at 200 steps: the first run's model is gone (it used to stay, beside
    # the second run's scenario.yaml and checkpoints), and train.json says the run is unfinished.
    with pytest.raises(KeyboardInterrupt):
        _train(out, stop_at=200, seed=7)
    info = json.loads((out / "train.json").read_text())
    assert info["status"] == "stopped" and info["seed"] == 7
    assert 200 <= info["timesteps"] < 512 and "error" not in info
    assert not (out / "model.zip").exists()
    stopped = _checkpoints(out)
    assert stopped and all(int(n.split("_")[1]) <= 200 for n in stopped)

    # A checkpoint of the stopped run still evaluates as part of its run (its seeds are known).
    from lmrecsim.agents.train import training_seeds

    assert training_seeds(out) == (7, 8)

    # The next run into the folder removes the stopped run's checkpoints (no train.json of a
    # finished run was needed for that).
    _train(out, seed=3)
    assert json.loads((out / "train.json").read_text())["status"] == "complete"
    assert max(int(n.split("_")[1]) for n in _checkpoints(out)) > 200
    assert len(list((out / "tb").glob("events.out.tfevents.*"))) == 1


def test_a_stopped_evaluation_leaves_the_earlier_report_whole(tmp_path, monkeypatch):
    from lmrecsim.evaluation import evaluate, report

    evaluate("default", ["greedy"], seeds=[1000], episodes=1, out=tmp_path, progress=False)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    # Stopped while rendering the last file: the tables, the step log and the plots are already
    # written (to the staging folder), and none of them may replace the earlier report's.
    monkeypatch.setattr(report, "render_html", stop)
    with pytest.raises(KeyboardInterrupt):
        evaluate("default", ["oracle"], seeds=[1001], episodes=1, out=tmp_path, progress=False)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="POSIX signals")
def test_sigterm_is_one_line_and_cleans_up(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "lmrecsim", "train", "--timesteps", "200000", "--out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd + ["--no-progress"], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while not (out / "checkpoints").is_dir() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert err.strip().splitlines()[-1] == "lmrecsim: terminated" and "Traceback" not in err
    leftovers = [p for p in out.rglob(".*") if p.name.endswith((".tmp", ".tmp.zip"))]
    assert leftovers == []
    assert json.loads((out / "train.json").read_text())["status"] == "stopped"
    assert not (out / "model.zip").exists()


@pytest.mark.parametrize("stop_at", [128, None])
def test_a_sigterm_while_the_run_records_its_end_still_leaves_the_record(
    tmp_path, monkeypatch, stop_at
):
    # Ctrl-C, then a SIGTERM (or a second Ctrl-C) a moment later, used to cut the write of
    # "stopped" short: `lmrecsim train` said "terminated" and exited 143, and train.json still
    # said "running". The same for a signal while a finished run wrote "complete".
    import lmrecsim.agents.train as train_module
    from lmrecsim.errors import Terminated, sigterm_as_exception

    write = train_module.write_text_atomic
    ending = '"stopped"' if stop_at else '"complete"'

    def signalled_write(path: Path, text: str) -> None:
        if ending in text:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while the record is being written
        write(path, text)

    monkeypatch.setattr(train_module, "write_text_atomic", signalled_write)
    out = tmp_path / "run"
    with pytest.raises(Terminated), sigterm_as_exception():
        _train(out, stop_at=stop_at)
    info = json.loads((out / "train.json").read_text())
    assert info["status"] == ending.strip('"')
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []


def test_ctrl_c_during_a_save_waits_for_it_and_stays_an_interrupt(tmp_path, ctrl_c_raises):
    # torch's zip writer finishes its archive on the way out; cut short by Ctrl-C it raised
    # "RuntimeError: [enforce fail at inline_container.cc:672] . unexpected pos ..." in place of
    # the KeyboardInterrupt: `lmrecsim train` ended in a traceback with train.json "failed".
    class Model:
        def save(self, fh) -> None:
            fh.write(b"PK first part")
            try:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of the save
                fh.write(b", last part")
            except KeyboardInterrupt:
                raise RuntimeError("unexpected pos 61568 vs 61520") from None

    target = tmp_path / "model_64_steps.zip"
    with pytest.raises(KeyboardInterrupt):
        save_model_atomic(Model(), target)
    assert target.read_bytes() == b"PK first part, last part"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
