"""``lmrecsim train --resume`` / :func:`lmrecsim.agents.train.resume`: a stopped run continues
from its newest checkpoint, a complete one to a higher budget, with its records kept consistent."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3.common.callbacks import BaseCallback

from lmrecsim.agents.build import load_model
from lmrecsim.agents.errors import AgentError
from lmrecsim.agents.train import resume, train
from lmrecsim.cli import main
from tests.callbacks import StopAt

from .conftest import tiny_scenario

PPO_HP = {"n_steps": 32, "batch_size": 64, "n_epochs": 1}


def _stopped_run(
    out: Path,
    *,
    algo: str = "ppo",
    stop_at: int = 600,
    checkpoint_freq: int = 256,
    validate_every: int = 256,
) -> None:
    """A run of 1,024 steps, checkpoints and validations every 256 by default, stopped (Ctrl-C)
    at ``stop_at``."""
    hp = PPO_HP if algo == "ppo" else {"learning_starts": 64}
    with pytest.raises(KeyboardInterrupt):
        train(
            tiny_scenario(),
            out=out,
            algo=algo,
            timesteps=1024,
            n_envs=2,
            seed=1,
            hyperparameters=hp,
            checkpoint_freq=checkpoint_freq,
            validate_every=validate_every,
            progress=False,
            callback_factory=lambda sc, world: [StopAt(stop_at)],
        )


def _resume_with(out: Path, callback: BaseCallback):
    """``resume(out)`` with one more SB3 callback in its training."""
    return resume(out, progress=False, callback_factory=lambda sc, world: [callback])


def _steps(path: Path) -> list[int]:
    return [int(row["time/total_timesteps"]) for row in csv.DictReader(path.open())]


def _params(model) -> list[np.ndarray]:
    return [p.detach().cpu().numpy().copy() for p in model.policy.parameters()]


def test_a_stopped_run_resumes_from_its_newest_checkpoint_with_consistent_records(tmp_path):
    out = tmp_path / "run"
    _stopped_run(out)
    before = json.loads((out / "train.json").read_text())
    assert before["status"] == "stopped" and before["timesteps"] >= 600
    old_validation = list(csv.DictReader((out / "validation.csv").open()))
    old_progress = list(csv.DictReader((out / "progress.csv").open()))
    assert any(int(r["timesteps"]) >= 512 for r in old_validation)  # some are after the checkpoint

    result = resume(out, progress=False)

    assert result.resumed_from == 512 and result.timesteps >= 1024
    record = json.loads((out / "train.json").read_text())
    assert record["status"] == "complete" and record["resumed_from"] == 512
    assert record["timesteps"] == result.timesteps and record["seed"] == 1
    assert load_model("ppo", out / "model.zip").num_timesteps == result.timesteps
    # Validations recorded before the checkpoint stay as they were, later ones are redone.
    rows = list(csv.DictReader((out / "validation.csv").open()))
    kept = [r for r in old_validation if int(r["timesteps"]) < 512]
    assert kept and rows[: len(kept)] == kept
    steps = [int(r["timesteps"]) for r in rows]
    assert steps == sorted(set(steps)) and steps[-1] == result.timesteps
    best = [r for r in rows if r["best"] == "True"][-1]
    assert record["validation"]["best_timesteps"] == int(best["timesteps"])
    assert (out / "best_model.zip").is_file()
    # progress.csv: the rows logged before the checkpoint as they were, then the resumed ones.
    new_rows = list(csv.DictReader((out / "progress.csv").open()))
    old_kept = [r for r in old_progress if int(r["time/total_timesteps"]) < 512]
    assert old_kept and len(old_kept) < len(old_progress)
    assert [{k: r[k] for k in old_kept[0]} for r in new_rows[: len(old_kept)]] == old_kept
    progress_steps = _steps(out / "progress.csv")
    assert progress_steps[len(old_kept)] >= 512 and progress_steps[-1] == result.timesteps
    assert (out / "checkpoints" / "model_768_steps.zip").is_file()


def test_the_checkpoints_copy_of_the_best_model_comes_back(tmp_path):
    # A validation after the checkpoint at 512 may have replaced best_model.zip with a model the
    # resumed run never trains; the checkpoint's copy must replace it.
    out = tmp_path / "run"
    _stopped_run(out, stop_at=800)
    copy = out / "checkpoints" / "best_model_512_steps.zip"
    assert copy.read_bytes() == (out / "best_model.zip").read_bytes()  # no later best here
    (out / "best_model.zip").write_bytes(b"a model from after the checkpoint")
    resume(out, timesteps=1024, progress=False, checkpoint_freq=10_000)
    rows = list(csv.DictReader((out / "validation.csv").open()))
    best = [r for r in rows if r["best"] == "True"][-1]
    assert load_model("ppo", out / "best_model.zip") is not None
    if int(best["timesteps"]) < 512:  # no resumed validation beat the restored best
        assert (out / "best_model.zip").read_bytes() == copy.read_bytes()
    else:
        assert (out / "best_model.zip").read_bytes() != copy.read_bytes()
    assert not (out / "checkpoints" / "model_1024_steps.zip").exists()  # --checkpoint-freq 10,000


def test_a_corrupt_copy_of_the_best_model_refuses_the_resume(tmp_path, capsys):
    # It was copied over best_model.zip unchecked, and the run ended "complete" with a best
    # model that no command could load.
    out = tmp_path / "run"
    _stopped_run(out)  # resumes from the checkpoint at 512, after the best validation (256)
    copy = out / "checkpoints" / "best_model_512_steps.zip"
    copy.write_bytes(copy.read_bytes()[:2000])
    best_before = (out / "best_model.zip").read_bytes()
    record_before = (out / "train.json").read_text()
    code = main(["train", "--resume", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert err.startswith(f"lmrecsim: error: {copy}: cannot load a ppo model")
    assert err.endswith(
        "(the copy of best_model.zip the checkpoint keeps; train again without --resume)"
    )
    assert (out / "best_model.zip").read_bytes() == best_before
    assert (out / "train.json").read_text() == record_before


def test_resuming_is_reproducible_bit_for_bit(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    _stopped_run(first)
    shutil.copytree(first, second)
    a = resume(first, progress=False)
    b = resume(second, progress=False)
    assert all(
        np.array_equal(x, y) for x, y in zip(_params(a.model), _params(b.model), strict=True)
    )
    assert (first / "validation.csv").read_text() == (second / "validation.csv").read_text()


def test_a_resumed_dqn_refills_its_replay_buffer_and_keeps_learning_starts(tmp_path):
    out = tmp_path / "dqn"
    _stopped_run(out, algo="dqn")
    checkpoint = load_model("dqn", out / "checkpoints" / "model_512_steps.zip")
    updates = []

    class _Updates(BaseCallback):
        def _on_step(self) -> bool:
            updates.append((self.num_timesteps, self.model._n_updates))
            return True

    result = _resume_with(out, _Updates())
    # No gradient step until learning_starts (64) steps after the checkpoint have refilled the
    # buffer, then training goes on.
    early = [n for steps, n in updates if steps <= 512 + 64]
    assert early and set(early) == {checkpoint._n_updates}
    assert updates[-1][1] > checkpoint._n_updates
    assert load_model("dqn", out / "model.zip").learning_starts == 64
    assert result.model.learning_starts == 64


def test_a_complete_run_trains_further_only_to_a_higher_budget(tmp_path):
    out = tmp_path / "run"
    train(
        tiny_scenario(),
        out=out,
        timesteps=256,
        n_envs=2,
        hyperparameters=PPO_HP,
        validate_every=0,
        progress=False,
    )
    with pytest.raises(AgentError, match=r"model\.zip: the run has trained 256 steps, its budget"):
        resume(out, progress=False)
    result = resume(out, timesteps=384, progress=False)
    assert (result.resumed_from, result.timesteps) == (256, 384)
    assert "timesteps: 384" in (out / "scenario.yaml").read_text()
    assert json.loads((out / "train.json").read_text())["status"] == "complete"


def test_nothing_to_resume_is_one_line(tmp_path):
    with pytest.raises(AgentError, match="holds no run to resume"):
        resume(tmp_path / "nothing", progress=False)
    out = tmp_path / "early"
    _stopped_run(out, stop_at=100)  # before the first checkpoint at 256
    with pytest.raises(AgentError, match=r"checkpoints: no model_N_steps\.zip to resume from"):
        resume(out, progress=False)


def test_the_command_resumes_and_refuses_options_that_change_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    _stopped_run(out, stop_at=300)
    code = main(["train", "--resume", "--out", str(out), "--algo", "dqn", "--no-progress"])
    assert code != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--algo: cannot be given with --resume" in err
    # Zero is a value, not an absent option (0 == False in Python).
    for flag in ("--seed", "--validate-every"):
        assert main(["train", "--resume", "--out", str(out), flag, "0", "--no-progress"]) != 0
        assert f"{flag}: cannot be given with --resume" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(out), "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["resumed_from"] == 256 and printed["timesteps"] >= 1024


def test_damaged_records_and_checkpoints_are_one_line_naming_the_file(tmp_path):
    out = tmp_path / "run"
    _stopped_run(out, stop_at=600)
    pristine = tmp_path / "pristine"
    shutil.copytree(out, pristine)

    def fresh() -> Path:
        shutil.rmtree(out)
        shutil.copytree(pristine, out)
        return out

    cases = [
        ("progress.csv", b"\xff\xfe\x00garbage", r"progress\.csv: unreadable \(UnicodeDecodeError"),
        ("progress.csv", b"a,b\n1,2\n", r"progress\.csv: not SB3's CSV log"),
        ("validation.csv", b"x,y\n1,2\n", r"validation\.csv: not what lmrecsim train writes"),
        ("train.json", b"{not json", r"train\.json: unreadable"),
        ("checkpoints/model_512_steps.zip", b"not a zip", r"model_512_steps\.zip: cannot load"),
    ]
    for name, data, message in cases:
        folder = fresh()
        (folder / name).write_bytes(data)
        before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        with pytest.raises(AgentError, match=message) as err:
            resume(folder, progress=False)
        assert "\n" not in str(err.value)
        # Refused before anything in the folder changed.
        assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert "delete it to resume from the checkpoint before it" in str(err.value)


def test_a_run_resumed_twice_before_its_first_validation_resumes_again(tmp_path):
    # A resume with no validation before its checkpoint writes a validation.csv of a header
    # alone; stopping it again before its first validation must not make that file "damaged".
    out = tmp_path / "run"
    _stopped_run(out, stop_at=200, checkpoint_freq=128, validate_every=512)
    assert not (out / "validation.csv").exists()
    with pytest.raises(KeyboardInterrupt):
        _resume_with(out, StopAt(300))
    assert (
        out / "validation.csv"
    ).read_text().strip() == "timesteps,mean_return,std_error,users,best"
    result = resume(out, progress=False)
    assert result.timesteps >= 1024 and result.validation["best_timesteps"] >= 512


def test_a_folder_where_the_run_writes_a_file_is_refused_before_resuming(tmp_path):
    out = tmp_path / "run"
    _stopped_run(out, stop_at=300)
    (out / "model.zip").mkdir()  # model.zip is written at the end: it would fail after training
    with pytest.raises(AgentError, match=r"^out: '.*model\.zip' is a folder"):
        resume(out, progress=False)
    assert json.loads((out / "train.json").read_text())["status"] == "stopped"


def test_a_bad_thread_count_is_refused_not_replaced(tmp_path):
    # It used to be dropped for the default thread count when not an integer.
    out = tmp_path / "run"
    _stopped_run(out, stop_at=300)
    with pytest.raises(AgentError, match=r"^torch_threads: '2' is invalid"):
        resume(out, progress=False, torch_threads="2")  # type: ignore[arg-type]
    assert json.loads((out / "train.json").read_text())["status"] == "stopped"
    # A count of 0 in the run's train.json names that file, not a flag.
    record = json.loads((out / "train.json").read_text())
    (out / "train.json").write_text(json.dumps({**record, "torch_threads": 0}))
    with pytest.raises(AgentError) as err:
        resume(out, progress=False)
    assert str(err.value) == (
        f"{out / 'train.json'}: torch_threads: 0 is invalid (expected an integer >= 1 and "
        "<= 256, or --torch-threads N)"
    )
    (out / "train.json").write_text(json.dumps({**record, "torch_threads": 1000}))
    with pytest.raises(AgentError, match=r"train\.json: torch_threads: 1000 is invalid"):
        resume(out, progress=False)


def test_a_logging_run_keeps_its_log_when_stopped_and_goes_on_logging_when_resumed(
    tmp_path, monkeypatch, capsys
):
    """``train --log-episodes`` stopped by Ctrl-C writes the episodes that completed; ``train
    --resume`` adds its own under ``ppo-training (resumed at N)``, and the log replays exactly."""
    from lmrecsim.agents import train as train_module
    from lmrecsim.evaluation.logs import read_step_log
    from lmrecsim.evaluation.replay import replay

    sc_file = tmp_path / "tiny.yaml"
    sc_file.write_text(
        "extends: default\nname: tiny\ncatalog: {n_items: 200}\ncandidates: {k: 10}\n"
        "episode: {horizon: 30}\nencoder: {project_dim: 16}\n"
    )
    out = tmp_path / "run"
    original = train_module._learn

    def stopping(*args, **kwargs):  # Ctrl-C at step 600 of the first run
        kwargs["extra_callbacks"] = [*kwargs["extra_callbacks"], StopAt(600)]
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, "_learn", stopping)
    argv = ["train", "--scenario", str(sc_file), "--timesteps", "1024", "--n-envs", "2"]
    argv += ["--checkpoint-freq", "256", "--validate-every", "0", "--out", str(out)]
    argv += ["--no-progress", "--hp", "n_steps=32", "--hp", "batch_size=64", "--hp", "n_epochs=1"]
    assert main([*argv, "--log-episodes"]) == 130  # what Ctrl-C gives
    record = json.loads((out / "train.json").read_text())
    assert record["status"] == "stopped" and record["log_episodes"] is True
    first = read_step_log(out / "episodes.parquet").steps
    assert set(first["policy"]) == {"ppo-training"} and 0 < len(first) <= 600
    ends = first.sort_values("step").groupby(["seed", "episode"]).tail(1)
    assert (ends["terminated"] | ends["truncated"]).all()  # complete episodes only

    monkeypatch.setattr(train_module, "_learn", original)
    assert main(["train", "--resume", "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "train.json").read_text())["log_episodes"] is True
    log = read_step_log(out / "episodes.parquet")
    labels = log.steps.groupby("policy").size()
    assert labels.index.tolist() == ["ppo-training", "ppo-training (resumed at 512)"]
    assert labels["ppo-training"] == len(first) and labels.iloc[1] > 0
    assert replay(out / "episodes.parquet", tmp_path / "replay").reproduced
    # Further, from the complete run's model.zip: a third label; the earlier rows stay.
    capsys.readouterr()
    assert main(["train", "--resume", "--timesteps", "1536", "--out", str(out)]) == 0
    steps = read_step_log(out / "episodes.parquet").steps
    sizes = steps.groupby("policy").size()
    assert sizes[labels.index].tolist() == labels.tolist()
    assert steps["policy"].iloc[-1] == "ppo-training (resumed at 1024)" and len(sizes) == 3

    # A log of another scenario in the run folder refuses the resume before it starts.
    other = tmp_path / "other"
    assert (
        main(
            [
                "evaluate",
                "--policy",
                "random",
                "--seeds",
                "5",
                "--episodes",
                "1",
                "--out",
                str(other),
                "--no-progress",
            ]
        )
        == 0
    )
    shutil.copy(other / "episodes.parquet", out / "episodes.parquet")
    before = (out / "train.json").read_text()
    capsys.readouterr()
    assert main(["train", "--resume", "--timesteps", "2048", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"lmrecsim: error: {out / 'episodes.parquet'}: logged on another scenario than the run's "
        "scenario.yaml (expected the run's own log; move it away to resume without it)"
    ]
    assert (out / "train.json").read_text() == before


def test_a_run_into_a_folder_another_run_is_writing_is_refused_and_changes_nothing(
    tmp_path, capsys
):
    # Two trains into one folder used to both end "complete": the second deleted the first's
    # files when it started, and the folder held checkpoints of both.
    import os

    from lmrecsim.atomic import LOCK_NAME, folder_lock

    out = tmp_path / "run"
    kwargs = dict(n_envs=2, hyperparameters=PPO_HP, validate_every=0, progress=False)
    train(tiny_scenario(), out=out, timesteps=256, **kwargs)

    def files() -> dict[Path, bytes]:
        return {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != LOCK_NAME}

    before = files()
    expected = (
        f"out: '{out}' is in use by another lmrecsim run (process {os.getpid()}) (expected a "
        "folder no other run is writing: wait for it to end, or train into another --out)"
    )
    with folder_lock(out):  # as a run in another process holds it
        with pytest.raises(AgentError) as info:
            train(tiny_scenario(), out=out, timesteps=256, seed=2, **kwargs)
        assert str(info.value) == expected
        with pytest.raises(AgentError) as info:
            resume(out, timesteps=384, progress=False)
        assert str(info.value) == expected
        argv = ["train", "--resume", "--out", str(out), "--timesteps", "384", "--no-progress"]
        assert main(argv) == 2
        assert capsys.readouterr().err.strip() == f"lmrecsim: error: {expected}"
    assert files() == before
    # Once the other run has ended, the folder is free again.
    assert resume(out, timesteps=384, progress=False).timesteps == 384
