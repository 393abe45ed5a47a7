"""``lmrecsim train`` end to end, and its one-line errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from lmrecsim.cli import main


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_train_smoke_run_writes_the_run_folder(tmp_path, algo, capsys):
    out = tmp_path / algo
    hp = (
        ["--hp", "n_steps=64", "--hp", "batch_size=64"]
        if algo == "ppo"
        else ["--hp", "learning_starts=50"]
    )
    code = main(
        [
            "train",
            "--scenario",
            "default",
            "--algo",
            algo,
            "--timesteps",
            "300",
            "--n-envs",
            "2",
            "--seed",
            "3",
            "--out",
            str(out),
            "--no-progress",
            *hp,
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["timesteps"] >= 300 and printed["steps_per_second"] > 0
    assert (out / "model.zip").stat().st_size > 0
    resolved = yaml.safe_load((out / "scenario.yaml").read_text())
    assert resolved["agent"]["algo"] == algo and resolved["agent"]["seed"] == 3
    rows = list(csv.DictReader((out / "progress.csv").open()))
    assert rows and "time/total_timesteps" in rows[0]
    assert any((out / "tb").iterdir())
    assert any((out / "checkpoints").glob("model_*_steps.zip"))
    assert json.loads((out / "train.json").read_text())["algo"] == algo


def test_trained_model_loads_and_predicts(tmp_path):
    from lmrecsim.agents.build import load_model
    from lmrecsim.envs import make_env

    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--timesteps",
                "128",
                "--n-envs",
                "2",
                "--hp",
                "n_steps=64",
                "--hp",
                "batch_size=64",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    model = load_model("ppo", out)
    env = make_env("default")
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert obs["action_mask"][int(action)] == 1


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["train", "--scenario", "no_such_scenario", "--out", "x"],
            "no_such_scenario: unknown scenario",
        ),
        (["train", "--hp", "oops", "--out", "x"], "--hp: 'oops' is invalid"),
        # A value nested too deeply for the YAML parser used to be a RecursionError traceback.
        (["train", "--hp", "x=" + "[" * 3000, "--out", "x"], "has an unreadable value"),
        # Values of the wrong kind used to surface as SB3's internal TypeError text.
        (
            ["train", "--hp", "n_steps=abc", "--out", "x", "--no-progress"],
            "agent.hyperparameters.n_steps: 'abc' is invalid (expected an integer)",
        ),
        (
            ["train", "--hp", "n_epochs=2.5", "--out", "x", "--no-progress"],
            "agent.hyperparameters.n_epochs: 2.5 is invalid (expected an integer)",
        ),
        (
            ["train", "--hp", "gae_lambda=high", "--out", "x", "--no-progress"],
            "agent.hyperparameters.gae_lambda: 'high' is invalid (expected a number)",
        ),
        (
            ["train", "--hp", "learning_rate=fast", "--out", "x", "--no-progress"],
            "agent.hyperparameters.learning_rate: 'fast' is invalid (expected a number or",
        ),
        (
            [
                "train",
                "--algo",
                "dqn",
                "--hp",
                "optimize_memory_usage=1",
                "--out",
                "x",
                "--no-progress",
            ],
            "agent.hyperparameters.optimize_memory_usage: 1 is invalid (expected true or false)",
        ),
        (
            ["train", "--hp", "gama=0.9", "--out", "x", "--no-progress"],
            "agent.hyperparameters.gama: not an argument of PPO (did you mean 'gamma'?)",
        ),
        (
            [
                "train",
                "--algo",
                "dqn",
                "--hp",
                "train_freq=[1, episode]",
                "--out",
                "x",
                "--no-progress",
            ],
            "train_freq: [1, 'episode'] trains per episode, which SB3 allows with one env only",
        ),
        (
            ["train", "--algo", "dqn", "--hp", "double_q=maybe", "--out", "x", "--no-progress"],
            "agent.hyperparameters.double_q: 'maybe' is invalid (expected true or false)",
        ),
        (
            ["train", "--algo", "dqn", "--hp", "doubleq=true", "--out", "x", "--no-progress"],
            "agent.hyperparameters.doubleq: not an argument of MaskedDQN (did you mean "
            "'double_q'?)",
        ),
        (
            [
                "train",
                "--algo",
                "dqn",
                "--hp",
                "policy_kwargs={duelling: true}",
                "--out",
                "x",
                "--no-progress",
            ],
            "agent.hyperparameters.policy_kwargs.duelling: not an argument of "
            "CandidateScorerDQNPolicy (did you mean 'dueling'?)",
        ),
        (
            [
                "train",
                "--algo",
                "dqn",
                "--hp",
                "policy_kwargs={dueling: maybe}",
                "--out",
                "x",
                "--no-progress",
            ],
            "agent.hyperparameters.policy_kwargs.dueling: 'maybe' is invalid (expected true or "
            "false)",
        ),
        (
            ["train", "--hp", "policy_kwargs={dueling: true}", "--out", "x", "--no-progress"],
            "agent.hyperparameters.policy_kwargs.dueling: the dueling Q-network is a DQN option "
            "(expected agent.algo dqn; in a scenario, the key in the dqn section)",
        ),
        (
            [
                "train",
                "--hp",
                "policy_kwargs={features_extractor_kwarg: {hidden: 8}}",
                "--out",
                "x",
                "--no-progress",
            ],
            "agent.hyperparameters.policy_kwargs.features_extractor_kwarg: not an argument of "
            "CandidateScorerPolicy (did you mean 'features_extractor_kwargs'?)",
        ),
        (
            [
                "train",
                "--algo",
                "dqn",
                "--policy",
                "mlp",
                "--hp",
                "policy_kwargs={duelling: true}",
                "--out",
                "x",
                "--no-progress",
            ],
            "agent.hyperparameters.policy_kwargs.duelling: not an argument of SB3's "
            "MultiInputPolicy (did you mean 'dueling'?)",
        ),
        (
            ["train", "--hp", "policy_kwargs={activation_fn: tanh}", "--out", "x", "--no-progress"],
            "agent.hyperparameters.policy_kwargs.activation_fn: the candidate scorer's layers are "
            "ReLU layers",
        ),
        # Out of range: these used to end in a traceback once training started (n_epochs 0,
        # train_freq 0) or to train on nonsense without a word.
        (
            ["train", "--hp", "n_epochs=0", "--out", "x", "--no-progress"],
            "agent.hyperparameters.n_epochs: 0 is invalid (expected at least 1)",
        ),
        (
            [
                "train",
                "--algo",
                "dqn",
                "--hp",
                "train_freq=[0, step]",
                "--out",
                "x",
                "--no-progress",
            ],
            "agent.hyperparameters.train_freq: (0, 'step') is invalid (expected at least 1)",
        ),
        (
            ["train", "--hp", "gae_lambda=5", "--out", "x", "--no-progress"],
            "agent.hyperparameters.gae_lambda: 5 is invalid (expected a number in [0, 1])",
        ),
        (
            ["train", "--hp", "max_grad_norm=0", "--out", "x", "--no-progress"],
            "agent.hyperparameters.max_grad_norm: 0 is invalid (expected more than 0)",
        ),
        (
            [
                "train",
                "--hp",
                "learning_rate={linear: [3e-4, -1e-4]}",
                "--out",
                "x",
                "--no-progress",
            ],
            "agent.hyperparameters.learning_rate: {'linear': [0.0003, -0.0001]} is invalid "
            "(expected a start more than 0 and an end at least 0)",
        ),
        (
            [
                "train",
                "--hp",
                "policy_kwargs={features_extractor_kwargs: {hiden: 8}}",
                "--out",
                "x",
                "--no-progress",
            ],
            "agent.hyperparameters.policy_kwargs.features_extractor_kwargs.hiden: not a size of "
            "the candidate scorer (did you mean 'hidden'?)",
        ),
        (
            # MaskedDQN passes **kwargs on to SB3's DQN, whose arguments are still checked.
            ["train", "--algo", "dqn", "--hp", "gama=0.9", "--out", "x", "--no-progress"],
            "agent.hyperparameters.gama: not an argument of MaskedDQN (did you mean 'gamma'?)",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert len(err.strip().splitlines()) == 1


def test_settings_the_agent_rejects_name_the_file_and_leave_no_run_folder(tmp_path, capsys):
    bad = tmp_path / "bad_schedule.yaml"
    bad.write_text(
        "extends: default\nname: bad_schedule\n"
        "agent:\n  hyperparameters:\n    ppo: {learning_rate: {linear: [3e-4]}}\n"
    )
    out = tmp_path / "run"
    args = [
        "train",
        "--scenario",
        str(bad),
        "--timesteps",
        "64",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    # The key is the one in the file: in its ppo section.
    assert f"{bad}: agent.hyperparameters.ppo.learning_rate: expected a number or" in err[0]
    assert not out.exists()
    # --algo picks another section of the file, and the key is named in that one.
    bad.write_text(
        "extends: default\nname: bad_schedule\n"
        "agent:\n  hyperparameters:\n    ppo: {}\n    dqn: {gama: 0.9}\n"
    )
    assert main([*args, "--algo", "dqn"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"lmrecsim: error: {bad}: agent.hyperparameters.dqn.gama: not an argument of MaskedDQN "
        "(did you mean 'gamma'?)"
    ]
    # A file without algorithm sections has the key directly under agent.hyperparameters.
    bad.write_text(
        "name: bad_schedule\nagent:\n  hyperparameters: {learning_rate: {linear: [3e-4]}}\n"
    )
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"{bad}: agent.hyperparameters.learning_rate: expected a number or" in err[0]
    assert not out.exists()
    # From --hp the key is named without the file (the value did not come from it).
    args = ["train", "--algo", "dqn", "--hp", "n_steps=0", "--no-progress", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "lmrecsim: error: agent.hyperparameters.n_steps: 0 is invalid (expected at least 1)"
    ]
    assert not out.exists()


def test_a_hyperparameter_out_of_range_fails_before_the_world_is_built(
    tmp_path, capsys, monkeypatch
):
    # With progress on, the language model's loading bar used to come before the error line.
    import lmrecsim.agents.train as train_module

    def no_world(*args, **kwargs):
        raise AssertionError("the world was built before the hyperparameters were checked")

    monkeypatch.setattr(train_module, "build_world", no_world)
    assert main(["train", "--hp", "n_epochs=0", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "lmrecsim: error: agent.hyperparameters.n_epochs: 0 is invalid (expected at least 1)"
    ]
    mine = tmp_path / "mine.yaml"
    mine.write_text("extends: default\nname: mine\nagent: {hyperparameters: {ppo: {gamma: 2}}}\n")
    assert main(["train", "--scenario", str(mine), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(mine) in err[0], err
    assert "agent.hyperparameters.ppo.gamma: 2 is invalid (expected a number in [0, 1])" in err[0]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_invalid_yaml_and_missing_model(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncandidates: {k: [\n")
    assert main(["train", "--scenario", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "bad.yaml: invalid YAML" in capsys.readouterr().err
    missing = tmp_path / "nomodel.yaml"
    missing.write_text(f"name: x\nextends: default\nencoder:\n  model: {tmp_path / 'absent'}\n")
    assert main(["train", "--scenario", str(missing), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "absent" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o2").exists()  # no run folder for a run that never started


def test_no_traceback_from_the_console_script(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "lmrecsim", "train", "--scenario", "nope", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("lmrecsim: error: nope: unknown scenario")


def test_a_log_of_no_finished_episode_is_written_and_refused_later(tmp_path, capsys):
    # 8 steps finish no episode: the log used to crash training with an Arrow traceback after
    # model.zip was written; now it is a valid empty log, with a warning, that replay refuses.
    from lmrecsim.evaluation.logs import read_step_log

    out = tmp_path / "run"
    argv = ["train", "--algo", "dqn", "--timesteps", "8", "--out", str(out), "--no-progress"]
    assert main([*argv, "--log-episodes"]) == 0
    err = capsys.readouterr().err
    assert "holds no steps: no episode finished" in err and "Traceback" not in err
    log = read_step_log(out / "episodes.parquet")
    assert len(log.steps) == 0 and "candidate_item_ids" in log.steps.columns
    assert main(["replay", str(out / "episodes.parquet"), "--out", str(tmp_path / "r")]) == 2
    assert "holds no steps" in capsys.readouterr().err


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_train_log_episodes_writes_a_readable_log(tmp_path, algo):
    from lmrecsim.evaluation.logs import read_step_log

    out = tmp_path / algo
    hp = (
        ["--hp", "n_steps=32", "--hp", "batch_size=64"]
        if algo == "ppo"
        else ["--hp", "learning_starts=20"]
    )
    assert (
        main(
            [
                "train",
                "--algo",
                algo,
                "--timesteps",
                "128",
                "--n-envs",
                "2",
                "--seed",
                "4",
                "--out",
                str(out),
                "--no-progress",
                "--log-episodes",
                *hp,
            ]
        )
        == 0
    )
    log = read_step_log(out / "episodes.parquet")
    steps = log.steps
    assert set(steps["seed"]) == {4, 5}
    # Propensities are real probabilities of the logged actions under the behaviour policy.
    assert ((steps["propensity"] > 0) & (steps["propensity"] <= 1)).all()
    if algo == "ppo":
        assert (steps["propensity"] < 1).any()
    # Complete episodes only: the one each sub-env was in when training stopped is left out,
    # so every episode ends in a churn or at the horizon, and the log replays exactly.
    ends = steps.sort_values("step").groupby(["seed", "episode"]).tail(1)
    assert (ends["terminated"] | ends["truncated"]).all()
    # (With the shipped PPO settings both sub-envs happen to end an episode at step 64 exactly.)
    assert len(steps) <= 128
    from lmrecsim.evaluation.replay import replay

    assert replay(out / "episodes.parquet", tmp_path / "replay").reproduced
    # And it serves off-policy evaluation, which needs the logged contexts back.
    assert (
        main(
            [
                "ope",
                str(out / "episodes.parquet"),
                "--policy",
                "greedy",
                "--out",
                str(tmp_path / "ope"),
            ]
        )
        == 0
    )


def test_torch_threads_flag_sets_the_thread_count(tmp_path):
    import torch

    before = torch.get_num_threads()
    short = "train --timesteps 64 --n-envs 2 --hp n_steps=32 --hp batch_size=64 --no-progress"
    try:
        assert main([*short.split(), "--torch-threads", "2", "--out", str(tmp_path / "a")]) == 0
        assert torch.get_num_threads() == 2
        assert main([*short.split(), "--out", str(tmp_path / "b")]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_demo_refuses_evaluation_seeds_that_were_trained_on(tmp_path, capsys):
    sc = tmp_path / "overlap.yaml"
    sc.write_text("name: overlap\nextends: default\nevaluation:\n  seeds: [3, 1000]\n")
    out = tmp_path / "run"
    assert main(["demo", "--scenario", str(sc), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "evaluation.seeds: [3] overlap the training seeds 0..7" in err[0]
    assert not out.exists()  # refused before training, nothing half-written


def test_reward_normalisation_from_the_command_line(tmp_path, capsys):
    from lmrecsim.evaluation.logs import read_step_log

    out = tmp_path / "norm"
    args = ["train", "--timesteps", "64", "--n-envs", "2", "--no-progress", "--out", str(out)]
    hp = ["--hp", "n_steps=32", "--hp", "batch_size=64"]
    assert main([*args, *hp, "--hp", "normalize_reward=maybe"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "lmrecsim: error: agent.hyperparameters.normalize_reward: expected true or false, "
        "got 'maybe'"
    ]
    assert not out.exists()
    assert main([*args, *hp, "--hp", "normalize_reward=true", "--log-episodes"]) == 0
    resolved = yaml.safe_load((out / "scenario.yaml").read_text())
    # default.yaml has per-algorithm sections; the command line lands in the one that ran.
    assert resolved["agent"]["hyperparameters"]["ppo"]["normalize_reward"] is True
    # The log keeps the env's rewards (clicks under the default reward), not the scaled ones.
    steps = read_step_log(out / "episodes.parquet").steps
    assert steps["clicked"].any()
    assert (steps["reward"] == steps["clicked"].astype(float)).all()


def test_hp_values_in_exponent_notation_are_numbers(tmp_path):
    # The README's own example: YAML 1.1 would read 1e-3 as a string, which SB3 refuses.
    out = tmp_path / "dqn"
    args = ["train", "--algo", "dqn", "--timesteps", "64", "--n-envs", "2", "--no-progress"]
    hp = ["--hp", "learning_rate=1e-3", "--hp", "learning_starts=32"]
    assert main([*args, *hp, "--out", str(out)]) == 0
    resolved = yaml.safe_load((out / "scenario.yaml").read_text())
    assert resolved["agent"]["hyperparameters"]["dqn"]["learning_rate"] == 0.001
    from stable_baselines3 import DQN

    assert DQN.load(out / "model.zip").learning_rate == 0.001


@pytest.mark.parametrize(
    ("policy_kwargs", "expected"),
    [
        # The shipped dueling Q-network survives sizing the network from the command line ...
        (
            "{features_extractor_kwargs: {hidden: 16}}",
            {"dueling": True, "features_extractor_kwargs": {"hidden": 16}},
        ),
        # ... and the README's command turns it off.
        ("{dueling: false}", {"dueling": False}),
    ],
)
def test_hp_policy_kwargs_merge_into_the_shipped_scenarios(tmp_path, policy_kwargs, expected):
    out = tmp_path / "dqn"
    args = ["train", "--algo", "dqn", "--timesteps", "64", "--n-envs", "2", "--no-progress"]
    hp = ["--hp", "learning_starts=32", "--hp", f"policy_kwargs={policy_kwargs}"]
    assert main([*args, *hp, "--validate-every", "0", "--out", str(out)]) == 0
    resolved = yaml.safe_load((out / "scenario.yaml").read_text())
    assert resolved["agent"]["hyperparameters"]["dqn"]["policy_kwargs"] == expected
    from lmrecsim.agents import load_model

    model = load_model("dqn", out)
    assert model.policy.dueling is expected["dueling"]
    heads = [key for key in model.q_net.state_dict() if ".value." in key]
    assert bool(heads) is expected["dueling"]
    hidden = expected.get("features_extractor_kwargs", {}).get("hidden", 128)
    assert model.q_net.features_extractor.score_head.in_features == hidden


@pytest.mark.parametrize("normalize", [False, True])
def test_a_training_log_of_fractional_rewards_replays_exactly(tmp_path, normalize):
    # The log used to hold SB3's float32 rewards: a rating reward of 0.6 was logged as
    # 0.6000000238 and the replay reported a divergence at the first click.
    from lmrecsim.evaluation.logs import read_step_log
    from lmrecsim.evaluation.replay import replay

    sc = tmp_path / "rating.yaml"
    sc.write_text(
        "name: rating\nextends: default\nreward: {name: rating}\nepisode: {horizon: 15}\n"
    )
    out = tmp_path / "run"
    args = ["train", "--scenario", str(sc), "--timesteps", "128", "--n-envs", "2"]
    hp = ["--hp", "n_steps=64", "--hp", "batch_size=64", "--hp", f"normalize_reward={normalize}"]
    assert main([*args, *hp, "--log-episodes", "--no-progress", "--out", str(out)]) == 0
    steps = read_step_log(out / "episodes.parquet").steps
    clicked = steps[steps["clicked"]]
    assert len(clicked) > 0
    assert (clicked["reward"] == clicked["rating"] / 5.0).all()
    assert replay(out / "episodes.parquet", tmp_path / "replay").reproduced


def test_a_new_run_into_an_old_run_folder_removes_the_old_runs_leftovers(tmp_path):
    # A DQN run into a PPO run's folder used to keep the PPO step log and checkpoints next to
    # the DQN model, so replay and ope silently read the wrong run.
    out = tmp_path / "run"
    short = ["--timesteps", "128", "--n-envs", "2", "--no-progress", "--out", str(out)]
    ppo = ["train", "--hp", "n_steps=32", "--hp", "batch_size=64", "--checkpoint-freq", "64"]
    assert main([*ppo, *short, "--log-episodes"]) == 0
    old = {p.name for p in (out / "checkpoints").iterdir()}
    assert (out / "episodes.parquet").is_file() and old
    (out / "notes.txt").write_text("mine")
    dqn = ["train", "--algo", "dqn", "--hp", "learning_starts=16", "--checkpoint-freq", "96"]
    assert main([*dqn, *short]) == 0
    assert not (out / "episodes.parquet").exists()
    new = {p.name for p in (out / "checkpoints").iterdir()}
    assert new == {"model_96_steps.zip"}
    assert len(list((out / "tb").glob("events.out.tfevents.*"))) == 1
    assert (out / "notes.txt").read_text() == "mine"
    # A folder that never held a run keeps files that happen to share those names.
    plain = tmp_path / "project"
    plain.mkdir()
    (plain / "summary.txt").write_text("my own summary")
    (plain / "episodes.parquet").write_bytes(b"mine")
    assert (
        main([*ppo, "--timesteps", "128", "--n-envs", "2", "--no-progress", "--out", str(plain)])
        == 0
    )
    assert (plain / "summary.txt").read_text() == "my own summary"
    assert (plain / "episodes.parquet").read_bytes() == b"mine"


def test_demo_reports_the_figures_evaluate_gives(tmp_path, capsys):
    # The demo used to pool clicks over steps and bootstrap on its own, so its click-through and
    # intervals differed from `lmrecsim evaluate` on the same model, seeds and episodes.
    import pandas as pd

    out = tmp_path / "demo"
    assert (
        main(["demo", "--timesteps", "512", "--episodes", "2", "--out", str(out), "--no-progress"])
        == 0
    )
    text = (out / "summary.txt").read_text()
    report = tmp_path / "eval"
    argv = ["evaluate", "--policy", f"ppo=ppo:{out}", "--episodes", "2", "--out", str(report)]
    assert main([*argv, "--no-progress"]) == 0
    summary = pd.read_csv(report / "summary.csv").set_index("policy")
    for name in ("ppo", "random"):
        row = summary.loc[name]
        line = next(x for x in text.splitlines() if x.startswith(f"{name} "))
        expected = f"{row['return']:6.2f} [{row['return_low']:5.2f}, {row['return_high']:5.2f}]"
        assert expected in line and f"{row['ctr']:13.3f}" in line, (line, expected)
    # The demo writes the evaluation report itself: PPO against random, greedy and the oracle on
    # the same users, with the same figures as the separate evaluation of its model.zip.
    own = pd.read_csv(out / "report" / "summary.csv").set_index("policy")
    assert list(own.index) == ["ppo", "greedy", "random", "oracle"]
    for name in ("ppo", "random"):
        assert own.loc[name, "return"] == summary.loc[name, "return"]
    for name in ("greedy", "oracle"):
        row = own.loc[name]
        line = next(x for x in text.splitlines() if x.startswith(f"{name} "))
        assert f"{row['return']:6.2f} [{row['return_low']:5.2f}," in line, line
    html = (out / "report" / "report.html").read_text()
    assert f"ppo:{out / 'model.zip'}" in html and "data:image/png;base64," in html
    assert f"report with plots: {out / 'report' / 'report.html'}" in text
    from lmrecsim.evaluation.plots import PLOT_NAMES

    assert {p.stem for p in (out / "report").glob("*.png")} <= set(PLOT_NAMES)
    # The gap line: (ppo - random) / (oracle - random) of the mean returns over the same episodes.
    returns = own["return"]
    share = (returns["ppo"] - returns["random"]) / (returns["oracle"] - returns["random"])
    line = next(x for x in text.splitlines() if x.startswith("share of the random-to-oracle"))
    assert f"ppo {100 * share:.0f}% [" in line, (line, share)
    assert text.startswith("lmrecsim demo: PPO (candidate scorer) on scenario 'default'")
    # The shipped default validates on held-out users; the summary names the best validation.
    table = pd.read_csv(out / "validation.csv")
    best = table[table["best"]].iloc[-1]
    # 512 steps are fewer than its interval (10,000): it validated once, at the end.
    line = next(x for x in text.splitlines() if x.startswith("validated at the end of training"))
    assert f"best greedy return {best['mean_return']:.2f} at {int(best['timesteps'])} steps" in line
    # A later run into the folder removes the report with the rest of the old run's outputs, so a
    # report never sits beside a model it does not describe; other files there stay.
    (out / "report" / "notes.txt").write_text("mine")
    train = ["train", "--timesteps", "64", "--n-envs", "1", "--validate-every", "0"]
    assert main([*train, "--out", str(out), "--no-progress"]) == 0
    assert [p.name for p in (out / "report").iterdir()] == ["notes.txt"]


def test_demo_refuses_a_report_folder_it_cannot_write_before_training(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "report").write_text("not a folder")
    assert main(["demo", "--timesteps", "64", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"'{out / 'report'}' is a file (expected a folder to write into)"), err
    assert not (out / "model.zip").exists() and (out / "report").read_text() == "not a folder"


def test_demo_names_the_network_it_trained(tmp_path):
    # The summary said "candidate scorer" whatever the scenario's agent.policy was.
    sc = tmp_path / "mlp.yaml"
    sc.write_text("extends: default\nagent: {policy: mlp}\n")
    out = tmp_path / "demo"
    argv = ["demo", "--scenario", str(sc), "--timesteps", "256", "--episodes", "1"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    assert (out / "summary.txt").read_text().startswith("lmrecsim demo: PPO (MLP) on scenario")


@pytest.mark.parametrize("algo", ["dqn", "maskable_ppo"])
def test_training_logs_of_mlp_policies_give_the_taken_actions_their_probability(tmp_path, algo):
    # MaskablePPO samples among valid slots only, and an mlp DQN's greedy action may be a masked
    # slot: the logged probabilities used to be the unmasked softmax and the masked argmax.
    from lmrecsim.evaluation.logs import read_step_log

    sc = tmp_path / "small.yaml"
    sc.write_text("name: small\nextends: default\ncatalog: {n_items: 30}\nepisode: {horizon: 10}\n")
    hp = (
        ["--hp", "n_steps=64", "--hp", "batch_size=64"]
        if algo != "dqn"
        else ["--hp", "learning_starts=32"]
    )
    out = tmp_path / "run"
    argv = ["train", "--scenario", str(sc), "--algo", algo, "--policy", "mlp", "--timesteps", "256"]
    assert (
        main([*argv, "--n-envs", "2", *hp, "--log-episodes", "--no-progress", "--out", str(out)])
        == 0
    )
    steps = read_step_log(out / "episodes.parquet").steps
    probs = np.stack(steps["action_probabilities"].to_numpy())
    masks = np.stack(steps["candidate_mask"].to_numpy())
    taken = probs[np.arange(len(steps)), steps["action"].to_numpy()]
    np.testing.assert_allclose(steps["propensity"], taken)
    assert (steps["propensity"] > 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    if algo == "maskable_ppo":
        assert (probs[~masks] == 0).all()


def test_yaml_spellings_of_integer_arguments_are_taken_as_meant(tmp_path):
    # buffer_size: 1e5 is a float in YAML; train_freq: [1, episode] a list. SB3 wants an int and
    # a tuple; both used to fail (the list only once training had started).
    from stable_baselines3 import DQN

    out = tmp_path / "run"
    hp = [
        "--hp",
        "buffer_size=1e4",
        "--hp",
        "learning_starts=16",
        "--hp",
        "train_freq=[1, episode]",
    ]
    argv = ["train", "--algo", "dqn", "--timesteps", "64", "--n-envs", "1", *hp, "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    model = DQN.load(out / "model.zip")
    assert model.buffer_size == 10_000 and isinstance(model.buffer_size, int)
    assert model.train_freq.frequency == 1 and model.train_freq.unit.value == "episode"
