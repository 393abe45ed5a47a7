"""Command-line arguments the commands cannot use: one line naming the flag, exit code 2, and
nothing written."""

from __future__ import annotations

import sys
from pathlib import Path

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
    ("entry", "kind", "extra", "message"),
    [
        ("model.zip", "dir", [], "model.zip' is a folder (expected a file of the run, or nothing)"),
        ("best_model.zip", "dir", [], "best_model.zip' is a folder"),
        ("tb", "file", [], "tb' is a file (expected the run's folder of TensorBoard logs"),
        ("checkpoints", "file", [], "checkpoints' is a file (expected the run's folder of"),
        ("episodes.parquet", "dir", ["--log-episodes"], "episodes.parquet' is a folder"),
    ],
)
def test_a_run_output_of_the_wrong_kind_in_the_run_folder_is_refused_before_training(
    tmp_path, capsys, entry: str, kind: str, extra: list[str], message: str
) -> None:
    # A folder named model.zip (or episodes.parquet) failed the run after all its training, naming
    # a hidden temp file; a file named tb or checkpoints ended it in a FileExistsError with a
    # train.json that still said "running".
    out = tmp_path / "run"
    out.mkdir()
    (out / entry).mkdir() if kind == "dir" else (out / entry).write_text("keep me")
    argv = ["train", "--algo", "dqn", "--timesteps", "8", "--no-progress", *extra]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lmrecsim: error: "), err
    assert f"'{out / entry}' is a" in err[0] and message in err[0], err
    assert [p.name for p in out.iterdir()] == [entry]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["train", "--timesteps", "-5", "--out", "x"],
            "argument --timesteps: -5 (expected an integer >= 1)",
        ),
        (
            ["train", "--n-envs", "0", "--out", "x"],
            "argument --n-envs: 0 (expected an integer >= 1 and <= 1024)",
        ),
        (
            ["train", "--seed", "-1", "--out", "x"],
            "argument --seed: -1 (expected an integer >= 0 and <= 4294966271)",
        ),
        (["train", "--seed", str(2**32), "--out", "x"], f"argument --seed: {2**32} (expected"),
        (
            ["train", "--n-envs", "2000", "--out", "x"],
            "argument --n-envs: 2000 (expected an integer >= 1 and <= 1024)",
        ),
        (["train", "--checkpoint-freq", "0", "--out", "x"], "argument --checkpoint-freq: 0"),
        (["train", "--torch-threads", "0", "--out", "x"], "argument --torch-threads: 0"),
        (
            ["train", "--torch-threads", "100000", "--out", "x"],
            "argument --torch-threads: 100000 (expected an integer >= 1 and <= 256)",
        ),
        (
            ["demo", "--episodes", "0"],
            "argument --episodes: 0 (expected an integer >= 1 and <= 1000000)",
        ),
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
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]  # one line, without argparse's usage block
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


@pytest.mark.parametrize("value", ["abc", "0", "-1", "", "\u0662", "\uff12", "100000"])
def test_a_bad_torch_threads_variable_is_one_line(tmp_path, monkeypatch, capsys, value):
    # 0 and -1 used to be taken as 1 without a word, where --torch-threads 0 is refused; an
    # Arabic-Indic or fullwidth 2 used to be read as 2.
    monkeypatch.setenv("LMRECSIM_TORCH_THREADS", value)

    # Refused before the world is built (whose first build encodes the catalog).
    def no_world(*args: object, **kwargs: object) -> None:
        raise AssertionError("the world was built before the thread count was checked")

    import importlib

    # The module: lmrecsim.agents.train as an attribute is the train function.
    monkeypatch.setattr(importlib.import_module("lmrecsim.agents.train"), "build_world", no_world)
    assert main(["train", "--timesteps", "64", "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"lmrecsim: error: $LMRECSIM_TORCH_THREADS: {value!r} (expected an integer >= 1 and <= 256)"
    ]


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


def test_evaluation_seeds_too_large_for_the_step_log_are_one_line(tmp_path, monkeypatch, capsys):
    # --seeds 2**63 used to run the whole evaluation and then end in a traceback (OverflowError
    # or numpy's "expected non-negative integer") when the step log's int64 column was built.
    monkeypatch.chdir(tmp_path)
    argv = ["evaluate", "--policy", "random", f"--seeds=0,{2**63}", "--out", "x", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"lmrecsim: error: --seeds: {2**63} is invalid (expected comma-separated integers "
        f"<= {2**63 - 1}: step logs store seeds as 64-bit integers)"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seeds", ["1,,2", "1,", ",1"])
def test_evaluation_seeds_with_an_empty_entry_are_one_line(tmp_path, monkeypatch, capsys, seeds):
    # "1,,2" used to run seeds 1 and 2, as if the empty entry were not there.
    monkeypatch.chdir(tmp_path)
    argv = ["evaluate", "--policy", "random", f"--seeds={seeds}", "--episodes", "1", "--out", "x"]
    assert main([*argv, "--no-progress"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"lmrecsim: error: --seeds: {seeds!r} has an empty entry (expected comma-separated "
        "integers)"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seeds", ["\u0661\u0662", "\uff11\uff12", "0,\u0967"])
def test_evaluation_seeds_in_other_digits_are_one_line(tmp_path, monkeypatch, capsys, seeds):
    # Arabic-Indic, fullwidth and Devanagari digits used to be read as seeds 12, 12 and 1: int()
    # takes any script's digits.
    monkeypatch.chdir(tmp_path)
    argv = ["evaluate", "--policy", "random", f"--seeds={seeds}", "--episodes", "1", "--out", "x"]
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"lmrecsim: error: --seeds: {seeds!r} is invalid (expected comma-separated integers "
        "written with the digits 0-9)"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        # Each asks for a small run too: should the value be read as a number again, it fails fast.
        (
            ["evaluate", "--policy", "random", "--episodes", "\uff12", "--seeds", "1000"],
            "--episodes",
        ),
        (["demo", "--timesteps", "64", "--episodes", "\u0662"], "--episodes"),
        (["train", "--timesteps", "\u0661\u0660\u0660"], "--timesteps"),
        (["train", "--timesteps", "64", "--seed", "\uff13"], "--seed"),
        (["train", "--timesteps", "64", "--n-envs", "\u0662"], "--n-envs"),
    ],
)
def test_integer_options_in_other_digits_are_refused_by_name(
    tmp_path, monkeypatch, capsys, argv, flag
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", "x", "--no-progress"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    value = argv[argv.index(flag) + 1]
    assert err.startswith(f"lmrecsim {argv[0]}: error: argument {flag}: {value!r} (expected")
    assert err.endswith(" written with the digits 0-9)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("action", ["show", "validate"])
@pytest.mark.parametrize("name", ["", " "])
def test_an_empty_scenario_name_is_an_unknown_scenario(capsys, action, name):
    # Used to say ": unknown scenario", naming nothing.
    from lmrecsim.scenarios.loader import shipped_scenario_names

    assert main(["scenarios", action, name]) == 2
    out, err = capsys.readouterr()
    names = ", ".join(shipped_scenario_names())
    prefix = "lmrecsim: error: " if action == "show" else ""
    assert out == ""
    assert err.splitlines() == [
        f"{prefix}{name!r}: unknown scenario (expected a file path or one of: {names})"
    ]


@pytest.mark.parametrize("command", ["train", "evaluate", "demo"])
def test_an_empty_scenario_option_is_an_unknown_scenario(tmp_path, monkeypatch, capsys, command):
    # train used to take --scenario '' (an unset shell variable) for the default scenario and
    # train it for minutes.
    from lmrecsim.scenarios.loader import shipped_scenario_names

    monkeypatch.chdir(tmp_path)
    argv = [command, "--scenario", "", "--out", "x", "--no-progress"]
    assert main(argv + (["--policy", "random"] if command == "evaluate" else [])) == 2
    names = ", ".join(shipped_scenario_names())
    assert capsys.readouterr().err.strip().splitlines() == [
        f"lmrecsim: error: '': unknown scenario (expected a file path or one of: {names})"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["evaluate", "demo"])
@pytest.mark.parametrize("episodes", ["1000001", "99999999999999999999999999"])
def test_episodes_above_the_bound_are_refused_by_name(
    tmp_path, monkeypatch, capsys, command, episodes
):
    # A count with an extra digit used to start an evaluation that would not end (Ctrl-C, then
    # kill). The scenario is unknown too: should --episodes pass again, the test fails at once.
    monkeypatch.chdir(tmp_path)
    argv = [command, "--scenario", "nope", "--episodes", episodes, "--out", "x", "--no-progress"]
    if command == "evaluate":
        argv += ["--policy", "random"]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"lmrecsim {command}: error: argument --episodes: {episodes} "
        "(expected an integer >= 1 and <= 1000000)"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("function", ["evaluate", "demo"])
def test_the_api_refuses_episodes_above_the_bound_before_any_work(tmp_path, function):
    from lmrecsim.api import demo
    from lmrecsim.evaluation import evaluate
    from lmrecsim.evaluation.errors import EvaluationError

    out = tmp_path / "x"
    # An unknown policy and scenario: should the count pass again, the test fails at once.
    call = {
        "evaluate": lambda: evaluate("default", ["nope"], episodes=10**6 + 1, out=out),
        "demo": lambda: demo("nope", episodes=10**6 + 1, out=out, progress=False),
    }[function]
    with pytest.raises(EvaluationError) as exc:
        call()
    assert str(exc.value) == "episodes: 1000001 (expected an integer >= 1 and <= 1000000)"
    assert not out.exists()


def test_scenario_episodes_above_the_bound_are_one_line(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text("extends: default\nname: mine\nevaluation:\n  episodes: 1000001\n")
    assert main(["scenarios", "validate", str(path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"{path}: evaluation.episodes: 1000001 is out of range (expected a number <= 1000000)"
    ]
    path.write_text("extends: default\nname: mine\nevaluation:\n  episodes: 1000000\n")
    assert main(["scenarios", "validate", str(path)]) == 0


@pytest.mark.parametrize("seed", [-1, 2**63])
def test_the_evaluate_function_refuses_seeds_outside_the_log_range(tmp_path, seed):
    from lmrecsim.evaluation import evaluate
    from lmrecsim.evaluation.errors import EvaluationError

    with pytest.raises(EvaluationError) as exc:
        evaluate("default", ["random"], seeds=[0, seed], episodes=1, out=tmp_path / "x")
    assert str(exc.value) == (
        f"seeds: {seed} is invalid (expected integers >= 0 and <= {2**63 - 1})"
    )
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
        # A missing catalog or persona file used to name only itself, not the scenario's key.
        ("catalog: {source: nofile.csv}", "catalog.source: "),
        ("users: {personas: nofile.csv}", "users.personas: "),
        # A hyperparameter typo used to pass validate --build and fail only in train.
        (
            "agent: {hyperparameters: {ppo: {learnin_rate: 0.1}}}",
            "agent.hyperparameters.ppo.learnin_rate: not an argument of PPO (did you mean "
            "'learning_rate'?)",
        ),
        # So did one in the section of an algorithm the file does not train (--algo picks it).
        (
            "agent: {hyperparameters: {ppo: {n_epochs: 5}, dqn: {doubleq: true}}}",
            "agent.hyperparameters.dqn.doubleq: not an argument of MaskedDQN (did you mean "
            "'double_q'?)",
        ),
        (
            "agent: {hyperparameters: {ppo: {}, dqn: {policy_kwargs: {duelling: true}}}}",
            "agent.hyperparameters.dqn.policy_kwargs.duelling: not an argument of "
            "CandidateScorerDQNPolicy (did you mean 'dueling'?)",
        ),
        (
            "agent: {policy: mlp, hyperparameters: {ppo: {}, dqn: {policy_kwargs: {duelling: "
            "true}}}}",
            "agent.hyperparameters.dqn.policy_kwargs.duelling: not an argument of SB3's "
            "MultiInputPolicy (did you mean 'dueling'?)",
        ),
        (
            "agent: {algo: dqn, hyperparameters: {dqn: {}, ppo: {policy_kwargs: {dueling: true}}}}",
            "agent.hyperparameters.ppo.policy_kwargs.dueling: the dueling Q-network is a DQN "
            "option (expected agent.algo dqn; in a scenario, the key in the dqn section)",
        ),
        (
            "agent: {algo: dqn, hyperparameters: {dqn: {}, maskable_ppo: {n_epochs: many}}}",
            "agent.hyperparameters.maskable_ppo.n_epochs: 'many' is invalid (expected an integer)",
        ),
        (
            "agent: {hyperparameters: {ppo: {}, dqn: {normalize_reward: 1}}}",
            "agent.hyperparameters.dqn.normalize_reward: expected true or false, got 1",
        ),
        # Values out of range used to pass here and end in a traceback mid-run (n_epochs 0,
        # train_freq 0) or train on nonsense (gamma 2, a scorer of 0 hidden units).
        (
            "agent: {hyperparameters: {ppo: {n_epochs: 0}, dqn: {}}}",
            "agent.hyperparameters.ppo.n_epochs: 0 is invalid (expected at least 1)",
        ),
        (
            "agent: {hyperparameters: {ppo: {}, dqn: {train_freq: 0}}}",
            "agent.hyperparameters.dqn.train_freq: 0 is invalid (expected at least 1)",
        ),
        (
            "agent: {hyperparameters: {ppo: {}, dqn: {gamma: 2}}}",
            "agent.hyperparameters.dqn.gamma: 2 is invalid (expected a number in [0, 1])",
        ),
        (
            "agent: {hyperparameters: {ppo: {policy_kwargs: {features_extractor_kwargs: "
            "{hidden: 0}}}}}",
            "agent.hyperparameters.ppo.policy_kwargs.features_extractor_kwargs.hidden: 0 is "
            "invalid (expected an integer at least 1)",
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

    assert report_user_errors("lmrecsim", run) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "lmrecsim: warning: cache file x.npz is corrupt; rebuilding it"
    # Another package's warning: one line too, naming where it came from (this test file here;
    # stable_baselines3 for a warning from site-packages/stable_baselines3/...).
    assert err[1:] == ["lmrecsim: warning: (test_cli_inputs) someone else's"]


def test_a_sigterm_while_ctrl_c_is_being_handled_is_no_traceback(monkeypatch):
    # Ctrl-C, then SIGTERM while the first was still being handled (a long run's memory being
    # freed) used to end in a traceback whose last line was "lmrecsim.errors.Terminated".
    import io
    import os
    import signal
    import sys

    from lmrecsim.errors import report_user_errors

    class SignalledStderr(io.StringIO):
        def write(self, text: str) -> int:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives as "interrupted" is being said
            return super().write(text)

    def run() -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(sys, "stderr", SignalledStderr())
    assert report_user_errors("lmrecsim", run) == 143


def test_api_functions_refuse_an_output_path_that_is_a_file_before_any_work(tmp_path):
    # The CLI checked this; the Python API found out after the work, with a raw FileExistsError.
    from lmrecsim.agents.errors import AgentError
    from lmrecsim.agents.train import train
    from lmrecsim.evaluation import evaluate
    from lmrecsim.evaluation.errors import EvaluationError
    from lmrecsim.evaluation.logs import LogError
    from lmrecsim.evaluation.ope import evaluate_off_policy
    from lmrecsim.evaluation.replay import replay

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(EvaluationError, match="out: '.*a_file' is a file"):
        evaluate("default", ["greedy"], seeds=[0], episodes=1, progress=False, out=blocker)
    with pytest.raises(AgentError, match="out: '.*a_file/run' cannot be created"):
        train("default", out=blocker / "run", timesteps=64, progress=False)
    with pytest.raises(LogError, match="out_dir: '.*a_file' is a file"):
        replay(tmp_path / "missing.parquet", blocker)
    with pytest.raises(LogError, match="export_dir: '.*a_file' is a file"):
        evaluate_off_policy(tmp_path / "missing.parquet", "greedy", export_dir=blocker)
    with pytest.raises(LogError, match="n_folds: 0"):
        evaluate_off_policy(tmp_path / "missing.parquet", "greedy", n_folds=0)


def test_vec_envs_refuse_a_bad_number_of_sub_envs():
    from lmrecsim.envs import make_vec_env
    from lmrecsim.envs.vector_env import RecommendationVectorEnv

    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=r"n_envs: .* \(expected an integer >= 1\)"):
            make_vec_env("default", n_envs=bad)
    with pytest.raises(ValueError, match="num_envs: 0"):
        RecommendationVectorEnv("default", num_envs=0)


def test_learning_args_with_an_unclosed_quote_are_one_line(capsys):
    # Used to end in shlex's traceback: "ValueError: No closing quotation".
    assert main(["bench", "--learning", "--learning-args=--scenarios 'my file.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        'lmrecsim: error: --learning-args: "--scenarios \'my file.yaml" cannot be split into '
        "arguments (No closing quotation; expected them quoted as a shell quotes them)"
    ]


def test_learning_args_without_learning_is_refused(capsys):
    assert main(["bench", "--learning-args=--quick", "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "lmrecsim: error: --learning-args: given without --learning (expected both, or neither)"
    ]


@pytest.mark.parametrize(
    ("argv", "flag"),
    [(["--quick"], "--quick"), (["--out", "{tmp}/new/bench.json"], "--out")],
)
def test_speed_benchmark_options_with_learning_are_refused(
    tmp_path, monkeypatch, capsys, argv: list[str], flag: str
) -> None:
    # Were silently dropped: `bench --learning --quick` started the full learning benchmark (hours)
    # and `--out FILE` created FILE's folder and wrote nothing there.
    from lmrecsim.commands import bench

    calls: list[str] = []
    monkeypatch.setattr(bench, "run_learning", lambda extra: calls.append(extra) or 0)
    args = [a.format(tmp=tmp_path) for a in argv]
    assert main(["bench", "--learning", "--learning-args=--scenarios default", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"lmrecsim: error: {flag}: given with --learning, which does not take it (expected it "
        "inside --learning-args"
    ), err
    assert calls == [] and list(tmp_path.iterdir()) == []
    assert main(["bench", "--learning", "--learning-args=--quick"]) == 0
    assert calls == ["--quick"]


def test_no_progress_with_learning_is_refused(monkeypatch, capsys) -> None:
    # Was parsed and ignored: the learning benchmark has no progress bar to hide.
    from lmrecsim.commands import bench

    calls: list[str] = []
    monkeypatch.setattr(bench, "run_learning", lambda extra: calls.append(extra) or 0)
    assert main(["bench", "--learning", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lmrecsim: error: --no-progress: given with --learning") and not calls


def test_lazy_public_names_are_listed_by_dir():
    import lmrecsim
    import lmrecsim.evaluation

    assert {"make_env", "make_vec_env", "load_scenario", "train"} <= set(dir(lmrecsim))
    assert {"evaluate", "EvaluationResult"} <= set(dir(lmrecsim.evaluation))


@pytest.mark.parametrize(
    ("files", "body", "message"),
    [
        # Persona topics were never checked against the catalog, though the docs said so.
        (
            {"p.yaml": "- {name: tide, text: I like the sea., liked: [nature_wildlif]}\n"},
            "users: {personas: p.yaml}",
            "p.yaml: persona 1 ('tide'): liked: 'nature_wildlif' is not a topic of the catalog "
            "(did you mean 'nature_wildlife'?)",
        ),
        # A byte-order mark (spreadsheets' "CSV UTF-8") used to read as a missing 'name' column.
        (
            {"p.csv": "\ufeffname,text,liked\ntide,I like the sea.,nature_wildlife\n"},
            "users: {personas: p.csv}\nepisode: {horizon: 1}",
            None,
        ),
        # YAML errors used to lose the line and the problem.
        (
            {"p.yaml": "- {name: a1, text: likes jazz\n"},
            "users: {personas: p.yaml}",
            "p.yaml: cannot read YAML at line 2, column 1 (expected ',' or '}'",
        ),
        # A random drift target among one persona used to drift each user to their own taste,
        # and the report gave drift figures for a change that never happened.
        (
            {},
            "extends: interest_drift\nusers: {personas: [space_nerd]}",
            "users.drift.target: 'random' moves each user toward another persona than their own, "
            "and users.personas gives 1 (expected at least 2 personas, or a named target)",
        ),
        # A single persona name used to be read as a file called like it.
        (
            {},
            "users: {personas: space_nerd}",
            "users.personas: 'space_nerd' is not a file (expected 'default', a persona file",
        ),
        # A filter that selects nothing used to blame candidates.k.
        (
            {
                "items.csv": "item_id,title,description,topics\n"
                + "".join(f"i{j},Title {j},About {j}.,a|b\n" for j in range(25))
            },
            "catalog: {source: items.csv, topics: [b]}\nusers: {personas: [space_nerd]}",
            "catalog.topics: no item has 'b' as its primary (first) topic",
        ),
    ],
)
def test_persona_and_catalog_build_errors(tmp_path, capsys, files, body, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\n{body}\n")
    code = main(["scenarios", "validate", "--build", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    if message is None:
        assert code == 0, err
    else:
        assert code == 2 and len(err) == 1 and message in err[0], err


def test_a_folder_created_for_out_is_removed_when_export_is_refused(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = tmp_path / "o1" / "new"
    argv = ["ope", "nolog.parquet", "--policy", "greedy", "--out", str(out), "--export"]
    assert main([*argv, str(blocker / "x")]) == 2
    assert not (tmp_path / "o1").exists()
    assert "--export" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_an_output_no_one_can_create_files_in_is_refused_up_front(tmp_path, capsys):
    # os.access says root may write to /proc: `bench --out /proc/x.json` ran every benchmark and
    # only then failed to write its JSON.
    assert main(["bench", "--quick", "--no-progress", "--out", "/proc/x.json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "lmrecsim: error: --out: '/proc/x.json' cannot be written: its folder '/proc' is not "
        "writable (expected a folder you can write to)"
    ]


def test_a_library_warning_is_one_line_naming_the_library(tmp_path, capsys) -> None:
    # Python's form was four lines: the path of stable-baselines3's ppo.py, the message over
    # three lines, then the source line `warnings.warn(`.
    argv = ["train", "--hp", "batch_size=30", "--hp", "n_steps=16", "--n-envs", "2"]
    argv += ["--timesteps", "32", "--validate-every", "0", "--out", str(tmp_path / "r")]
    assert main([*argv, "--no-progress"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(
        "lmrecsim: warning: (stable_baselines3) You have specified a mini-batch size of 30"
    )
    assert err[0].endswith("Info: (n_steps=16 and n_envs=2)")


@pytest.mark.parametrize(
    ("filename", "source"),
    [
        ("/v/lib/python3.11/site-packages/stable_baselines3/ppo/ppo.py", "stable_baselines3"),
        ("/usr/lib/python3/dist-packages/numpy/core/fromnumeric.py", "numpy"),
        ("C:\\py\\Lib\\site-packages\\torch\\nn\\modules\\module.py", "torch"),
        ("/home/me/project/my_script.py", "my_script"),
    ],
)
def test_a_warnings_source_is_its_package(filename: str, source: str) -> None:
    from lmrecsim.errors import _warning_source

    assert _warning_source(filename) == source


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "extends: interest_drift\nusers: {drift: {step: 100000}}",
            "users.drift.step: 100000, at or past episode.horizon 60: no user drifts within an "
            "episode (the drift metrics read n/a)",
        ),
        (
            "catalog: {n_items: 40, new_items: {fraction: 0.5, arrival_start: 50, arrival_end: 60}}"
            "\ncandidates: {k: 10, mask_consumed: false}",
            "catalog.new_items.arrival_start: 50, at or past episode.horizon 50: no new item "
            "arrives within an episode, and the 20 held back are never shown",
        ),
        (
            "catalog: {n_items: 20, new_items: {fraction: 0.5}}\n"
            "candidates: {k: 15, mask_consumed: false}",
            "candidates.k: 15, more than the 10 items there are before new ones arrive",
        ),
        (
            "catalog: {n_items: 80}",
            "catalog.n_items: 80, no more than episode.horizon 50 plus users.history_max 30: with "
            "candidates.mask_consumed a user who clicks often runs out of items within a session",
        ),
        (
            "catalog: {n_items: 400}\ncandidates: {index: ivf, ivf_lists: 40}",
            "candidates.ivf_lists: 40 clusters for 400 items (faiss's k-means wants 39 items per "
            "cluster, so at most 10;",
        ),
    ],
)
def test_settings_no_episode_reaches_are_one_warning_line(tmp_path, capfd, body, message):
    """Valid, so not refused, but said: the figures that depend on them read n/a or 0."""
    path = tmp_path / "s.yaml"
    base = "" if body.startswith("extends:") else "extends: default\n"
    path.write_text(f"name: s\n{base}{body}\n")
    assert main(["scenarios", "validate", "--build", str(path)]) == 0
    err = capfd.readouterr().err.strip().splitlines()  # faiss's own stderr included
    assert len(err) == 1 and err[0].startswith(f"lmrecsim: warning: (world) {path}: {message}"), err


def test_a_bad_policy_spec_fails_before_the_language_model_loads(tmp_path, capsys, monkeypatch):
    # With progress on, the model's loading bar used to come before the error line.
    import lmrecsim.evaluation.ope as ope_module
    import lmrecsim.evaluation.replay as replay_module
    import lmrecsim.evaluation.runner as runner_module

    bandit = tmp_path / "bandit.yaml"
    bandit.write_text("extends: default\nname: bandit\nepisode: {horizon: 1}\ncandidates: {k: 5}\n")
    argv = ["evaluate", "--scenario", str(bandit), "--policy", "egreedy", "--seeds", "3"]
    assert main([*argv, "--episodes", "4", "--out", str(tmp_path / "ev"), "--no-progress"]) == 0
    log = str(tmp_path / "ev" / "episodes.parquet")
    capsys.readouterr()

    def no_world(*args, **kwargs):
        raise AssertionError("the world was loaded before the policy spec was checked")

    for module, name in ((runner_module, "build_world"), (replay_module, "load_world")):
        monkeypatch.setattr(module, name, no_world)
    monkeypatch.setattr(ope_module, "load_world", no_world)
    missing = tmp_path / "nothing" / "model.zip"
    for args, expected in (
        (["evaluate", "--policy", "nosuch", "--out", str(tmp_path / "a")], "'nosuch': unknown"),
        (
            ["evaluate", "--policy", "greedy", "--policy", "softmax:0.1:3", "--out", str(tmp_path)],
            "policy 'softmax:0.1:3': softmax: epsilon 3.0 (expected a number in [0, 1])",
        ),
        (
            ["ope", log, "--logged-policy", "egreedy", "--policy", f"ppo:{missing}"],
            f"{missing}: model file not found",
        ),
        (
            [
                "replay",
                log,
                "--logged-policy",
                "egreedy",
                "--policy",
                "random=greedy",
                "--out",
                "r",
            ],
            "label 'random' is the name of a baseline",
        ),
    ):
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], (args, err)


@pytest.mark.parametrize(("code", "signame"), [(0, "SIGTERM"), (2, "SIGINT")])
def test_a_signal_after_the_command_has_finished_keeps_its_exit_code(code, signame) -> None:
    # During the interpreter's shutdown a late Ctrl-C or SIGTERM killed a finished command with
    # status 130 / 143 and no line. Here the signal comes from an exit handler, after the
    # console script's command has returned; the output written before it is not lost.
    import subprocess

    script = (
        "import atexit, os, signal, time\n"
        "import lmrecsim.cli as cli\n"
        f"cli.main = lambda argv=None: print('wrote report.html') or {code}\n"
        f"atexit.register(lambda: (os.kill(os.getpid(), signal.{signame}), time.sleep(60)))\n"
        "cli.console_main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout, done.stderr) == (code, "wrote report.html\n", "")


def test_library_errors_name_the_flags_on_the_command_line(capsys, tmp_path) -> None:
    # The library names its Python arguments ("seeds: ..."); a command names the flag typed.
    from lmrecsim.cli import main
    from lmrecsim.errors import command_line_wording

    argv = ["evaluate", "--policy", "greedy", "--reference", "nobody", "--seeds", "1"]
    assert main([*argv, "--episodes", "1", "--no-progress", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lmrecsim: error: --reference: 'nobody' is not one of"), err
    assert command_line_wording("policies: label 'a' is used twice") == (
        "--policy: label 'a' is used twice"
    )
    assert command_line_wording("n_folds: 0 (expected") == "--folds: 0 (expected"
    assert command_line_wording("scenario.yaml: seeds: x") == "scenario.yaml: seeds: x"
