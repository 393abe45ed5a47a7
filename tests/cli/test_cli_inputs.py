"""Command-line arguments the commands cannot use: one line naming the flag, exit code 2, and
nothing written."""

from __future__ import annotations

import pytest

from lmrecsim.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "--policy", "random", "--out", "{file}"], "--out: '{file}' is a file"),
        (["train", "--timesteps", "64", "--out", "{file}"], "--out: '{file}' is a file"),
        (["demo", "--out", "{file}"], "--out: '{file}' is a file"),
        (["replay", "log.parquet", "--out", "{file}"], "--out: '{file}' is a file"),
        (["ope", "log.parquet", "--policy", "greedy", "--export", "{file}"], "--export: '{file}'"),
        (["bench", "--quick", "--out", "{dir}"], "--out: '{dir}' is a folder"),
        # A folder that cannot be created: used to be a traceback, after the whole evaluation.
        (
            ["evaluate", "--policy", "random", "--out", "{file}/sub"],
            "--out: '{file}/sub' cannot be created ('{file}' is a file)",
        ),
        (["train", "--out", "{file}/sub/run"], "--out: '{file}/sub/run' cannot be created"),
        (["ope", "log.parquet", "--policy", "greedy", "--out", "{file}/x"], "--out: '{file}/x'"),
        (["bench", "--quick", "--out", "{file}/b.json"], "--out: '{file}/b.json' cannot be"),
        # An empty --out (an unset shell variable) used to write into the current folder.
        (["evaluate", "--policy", "random", "--out", ""], "--out: empty (expected a folder name)"),
        (["train", "--out", " "], "--out: empty (expected a folder name)"),
    ],
)
def test_an_output_path_of_the_wrong_kind_is_refused_before_any_work(
    tmp_path, capsys, argv: list[str], message: str
) -> None:
    file, folder = tmp_path / "a_file", tmp_path / "a_dir"
    file.write_text("keep me")
    folder.mkdir()
    fill = {"file": str(file), "dir": str(folder)}
    assert main([a.format(**fill) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"lmrecsim: error: {message.format(**fill)}")
    assert file.read_text() == "keep me" and list(folder.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["train", "--timesteps", "-5", "--out", "x"],
            "argument --timesteps: -5 (expected an integer >= 1)",
        ),
        (
            ["train", "--n-envs", "0", "--out", "x"],
            "argument --n-envs: 0 (expected an integer >= 1)",
        ),
        (
            ["train", "--seed", "-1", "--out", "x"],
            "argument --seed: -1 (expected an integer >= 0 and <= 4294966271)",
        ),
        (["train", "--seed", str(2**32), "--out", "x"], f"argument --seed: {2**32} (expected"),
        (["train", "--checkpoint-freq", "0", "--out", "x"], "argument --checkpoint-freq: 0"),
        (["train", "--torch-threads", "0", "--out", "x"], "argument --torch-threads: 0"),
        (["demo", "--episodes", "0"], "argument --episodes: 0 (expected an integer >= 1)"),
        (["evaluate", "--policy", "random", "--episodes", "abc", "--out", "x"], "'abc' (expected"),
        (["ope", "log.parquet", "--policy", "greedy", "--folds", "0"], "argument --folds: 0"),
    ],
)
def test_numeric_options_out_of_range_are_refused_by_name(
    tmp_path, monkeypatch, capsys, argv, message
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_a_bad_torch_threads_variable_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LMRECSIM_TORCH_THREADS", "abc")
    assert main(["train", "--timesteps", "64", "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lmrecsim: error: $LMRECSIM_TORCH_THREADS: 'abc' (expected an integer >= 1)"]


def test_negative_evaluation_seeds_are_one_line(tmp_path, monkeypatch, capsys):
    # --seeds=-1 used to reach gymnasium and end in a traceback.
    monkeypatch.chdir(tmp_path)
    argv = ["evaluate", "--policy", "random", "--seeds=0,-1", "--out", "x", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "lmrecsim: error: --seeds: -1 is invalid (expected comma-separated integers >= 0)"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # Used to pass `validate --build` and fail only when the first user started.
        (
            "users: {drift: {kind: abrupt, target: space_nerdd}}",
            "users.drift.target: 'space_nerdd' is not a persona of this scenario (did you mean "
            "'space_nerd'?)",
        ),
        # Used to name neither the file nor the key.
        (
            "users: {personas: [space_nerd, nosuchpersona]}",
            "users.personas[1]: unknown name 'nosuchpersona'",
        ),
        ("encoder: {model: /nonexistent/model}", "encoder.model: '/nonexistent/model' does not"),
        # A hyperparameter typo used to pass validate --build and fail only in train.
        (
            "agent: {hyperparameters: {ppo: {learnin_rate: 0.1}}}",
            "agent.hyperparameters.learnin_rate: not an argument of PPO (did you mean "
            "'learning_rate'?)",
        ),
    ],
)
def test_build_errors_name_the_file_and_the_key(tmp_path, capsys, body, message):
    path = tmp_path / "mine.yaml"
    path.write_text(f"name: mine\n{body}\n")
    assert main(["scenarios", "validate", "--build", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and message in err[0], err


def test_a_refused_run_leaves_no_output_folder_behind(tmp_path, capsys):
    # The output folder is created before the work starts; a run refused afterwards (here an
    # unknown scenario, and a log that does not exist) removes it again when it is still empty.
    out = tmp_path / "new" / "report"
    argv = ["evaluate", "--scenario", "nope", "--policy", "random", "--out", str(out)]
    assert main(argv) == 2
    assert not (tmp_path / "new").exists()
    assert main(["replay", str(tmp_path / "missing.parquet"), "--out", str(out)]) == 2
    assert not (tmp_path / "new").exists()
    # An existing folder is never removed.
    keep = tmp_path / "keep"
    keep.mkdir()
    assert main(["replay", str(tmp_path / "missing.parquet"), "--out", str(keep)]) == 2
    assert keep.is_dir()
    assert len(capsys.readouterr().err.strip().splitlines()) == 3


def test_lmrecsim_warnings_are_one_line(capsys):
    import warnings

    from lmrecsim.encoders import CacheCorruptionWarning
    from lmrecsim.errors import report_user_errors

    def run() -> int:
        warnings.warn(
            "cache file x.npz is corrupt;\n  rebuilding it", CacheCorruptionWarning, stacklevel=1
        )
        warnings.warn("someone else's", UserWarning, stacklevel=1)
        return 0

    with pytest.warns(UserWarning, match="someone else's"):  # passed on to Python's handling
        assert report_user_errors("lmrecsim", run) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "lmrecsim: warning: cache file x.npz is corrupt; rebuilding it"
    # Other libraries' warnings keep Python's own handling (pytest records them here).
    assert not any("someone else's" in line and line.startswith("lmrecsim:") for line in err)
