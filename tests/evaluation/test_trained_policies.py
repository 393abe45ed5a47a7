"""Trained SB3 models evaluated through ``ppo:PATH`` / ``dqn:PATH`` / ``maskable_ppo:PATH``."""

from __future__ import annotations

import numpy as np
import pytest

from lmrecsim.agents.train import train
from lmrecsim.evaluation import evaluate
from tests.fakes import other_warnings

TINY = {"n_steps": 64, "batch_size": 64, "n_epochs": 1}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for algo, hp in (("ppo", TINY), ("maskable_ppo", TINY), ("dqn", {"learning_starts": 64})):
        train(
            "default",
            out=root / algo,
            algo=algo,
            timesteps=512,
            n_envs=4,
            seed=1,
            hyperparameters=hp,
            progress=False,
        )
        out[algo] = root / algo
    return out


def test_saved_models_evaluate_through_specs(runs, tmp_path):
    specs = [f"{algo}={algo}:{path}" for algo, path in runs.items()]
    res = evaluate("default", specs, seeds=[5], episodes=2, out=tmp_path / "rep", progress=False)
    labels = set(res.summary["policy"])
    assert {"ppo", "maskable_ppo", "dqn", "random"} <= labels
    # Trained on seeds 1-4, evaluated on 5: held-out users, nothing to warn about but the
    # narrow intervals of two episodes.
    assert other_warnings(res.warnings) == []
    assert "was trained on" not in (tmp_path / "rep" / "report.md").read_text()
    steps = res.steps
    # Trained policies act greedily and never pick a masked slot.
    for algo in runs:
        mine = steps[steps["policy"] == algo]
        assert len(mine) > 0
        assert not mine["invalid_action"].any()
        assert np.allclose(mine["propensity"], 1.0)
    # Their run folders have progress.csv, so the report carries learning curves.
    assert (tmp_path / "rep" / "learning_curves.png").stat().st_size > 0
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "learning_curves" in html or "Learning" in html


def test_a_model_loaded_as_another_algorithm_names_the_one_it_was_trained_with(runs):
    from lmrecsim.agents.build import load_model
    from lmrecsim.agents.errors import AgentError

    # SB3's own words were "DQNPolicy.__init__() got an unexpected keyword argument 'use_sde'".
    for algo, wrong in (("dqn", "ppo"), ("ppo", "dqn")):
        expected = (
            f"{runs[algo] / 'model.zip'}: cannot load a {wrong} model: its run trained {algo} "
            f"(train.json; expected {algo}:{runs[algo]})"
        )
        with pytest.raises(AgentError) as exc:
            load_model(wrong, runs[algo])
        assert str(exc.value) == expected


def test_model_scores_match_its_greedy_action(runs):
    from lmrecsim.agents.baselines import make_policy
    from lmrecsim.envs import make_env

    env = make_env("default")
    label, policy = make_policy(f"ppo:{runs['ppo']}", env.world)
    obs, _ = env.reset(seed=11)
    for _ in range(5):
        scores = np.asarray(policy.scores(obs))
        action, _ = policy.predict(obs, deterministic=True)
        masked = np.where(obs["action_mask"] > 0, scores, -np.inf)
        assert int(action) == int(np.argmax(masked))
        obs, _, term, trunc, _ = env.step(int(action))
        if term or trunc:
            break
    assert label.startswith("ppo:")


def test_evaluating_on_training_seeds_is_flagged_in_the_report_and_on_stderr(
    runs, tmp_path, capsys
):
    from lmrecsim.cli import main

    res = evaluate(
        "default",
        [f"mine=ppo:{runs['ppo']}"],
        seeds=[3, 9, 4],
        episodes=1,
        out=tmp_path / "rep",
        progress=False,
    )
    assert len(other_warnings(res.warnings)) == 1
    warning = res.warnings[0]
    assert warning.startswith("mine was trained on seeds 1-4")
    assert "train.json" in warning and "2 of them (3, 4)" in warning
    assert "\n" not in warning
    assert f"**Warning:** {warning}" in (tmp_path / "rep" / "report.md").read_text()
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "<strong>Warning:</strong> mine was trained on seeds 1-4" in html

    rc = main(
        [
            "evaluate",
            "--policy",
            f"ppo:{runs['ppo']}",
            "--seeds",
            "1",
            "--episodes",
            "1",
            "--out",
            str(tmp_path / "cli"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 0
    assert f"lmrecsim: warning: ppo:{runs['ppo']} was trained on seeds 1-4" in err


def test_an_unreadable_train_json_is_a_warning_naming_the_file(runs, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs["ppo"], run)
    (run / "train.json").write_text('{"seed": 1, "n_envs": "four"}')
    res = evaluate("default", [f"p=ppo:{run}"], seeds=[5], episodes=2, progress=False)
    assert other_warnings(res.warnings) == [
        f"p: training seeds unknown: {run / 'train.json'}: n_envs: 'four' "
        "(expected an integer in [1, 1024], as lmrecsim train writes)"
    ]
    # Without a train.json (a model.zip kept on its own) nothing is known and nothing is said.
    (run / "train.json").unlink()
    res = evaluate("default", [f"p=ppo:{run / 'model.zip'}"], seeds=[1], episodes=2, progress=False)
    assert other_warnings(res.warnings) == []


def test_training_seeds_reads_the_run_folder(tmp_path):
    from lmrecsim.agents.train import training_seeds

    assert training_seeds(tmp_path) is None
    (tmp_path / "train.json").write_text('{"seed": 10, "n_envs": 3, "algo": "ppo"}')
    assert training_seeds(tmp_path) == (10, 11, 12)
    for bad, key in (
        ("[1, 2]", "expected a JSON object"),
        ("{", "unreadable"),
        ('{"seed": -1, "n_envs": 2}', "seed: -1"),
        ('{"seed": 0, "n_envs": 0}', "n_envs: 0"),
        ('{"seed": true, "n_envs": 2}', "seed: True"),
        # Used to build a tuple of 10^12 seeds: a MemoryError traceback from evaluate.
        ('{"seed": 0, "n_envs": 1000000000000}', r"n_envs: 1000000000000 \(expected an integer in"),
        ('{"seed": 99999999999999, "n_envs": 2}', "seed: 99999999999999"),
    ):
        (tmp_path / "train.json").write_text(bad)
        with pytest.raises(ValueError, match=key) as err:
            training_seeds(tmp_path)
        assert str(tmp_path / "train.json") in str(err.value)


def test_a_checkpoint_belongs_to_its_run(runs, tmp_path):
    # RUN/checkpoints/model_N_steps.zip: the run's train.json and progress.csv are the ones used.
    # The newest checkpoint before the end (384 of 512 steps: PPO saves one per rollout of 128)
    # comes after the first progress.csv row (256).
    checkpoint = max(
        (p for p in (runs["ppo"] / "checkpoints").glob("*.zip") if int(p.stem.split("_")[1]) < 512),
        key=lambda p: int(p.stem.split("_")[1]),
    )
    res = evaluate(
        "default", [f"ck=ppo:{checkpoint}"], seeds=[2], episodes=2, out=tmp_path, progress=False
    )
    assert res.policies["ck"].run_dir == runs["ppo"]
    assert len(other_warnings(res.warnings)) == 1
    assert res.warnings[0].startswith("ck was trained on seeds 1-4")
    assert (tmp_path / "learning_curves.png").is_file()
    # Its learning curve ends where the checkpoint was saved, not at the end of the run.
    from lmrecsim.evaluation.plots import learning_curve

    saved = int(checkpoint.stem.split("_")[1])
    assert res.policies["ck"].trained_steps == saved
    whole = learning_curve(runs["ppo"])
    cut = learning_curve(runs["ppo"], until=saved)
    assert whole["timesteps"].max() > saved
    assert cut is not None and cut["timesteps"].max() <= saved < whole["timesteps"].max()
    assert cut.equals(whole[whole["timesteps"] <= saved])


SMALL = {
    "extends": "default",
    "name": "small",
    "catalog": {"n_items": 30},
    "episode": {"horizon": 30},
}


@pytest.mark.parametrize("algo", ["ppo", "dqn", "maskable_ppo"])
def test_mlp_models_log_the_probability_of_what_they_did(tmp_path, algo):
    # An mlp policy does not apply the action mask (only MaskablePPO does), so on a small catalog,
    # where clicked items leave masked slots, it sometimes picks one. Those steps used to be
    # logged with propensity 0 (the probabilities masked what the model really did), which
    # broke off-policy evaluation with the log.
    from lmrecsim.evaluation.logs import read_step_log
    from lmrecsim.evaluation.ope import evaluate_off_policy
    from lmrecsim.scenarios import scenario_from_dict

    sc = scenario_from_dict(SMALL)
    hp = TINY if algo != "dqn" else {"learning_starts": 64}
    train(
        sc,
        out=tmp_path / "run",
        algo=algo,
        policy="mlp",
        timesteps=256,
        n_envs=2,
        seed=1,
        hyperparameters=hp,
        progress=False,
    )
    res = evaluate(
        sc,
        [f"m={algo}:{tmp_path / 'run'}"],
        seeds=[1000],
        episodes=4,
        out=tmp_path / "rep",
        progress=False,
        plots=False,
    )
    steps = read_step_log(tmp_path / "rep" / "episodes.parquet").for_policy("m")
    probs = np.stack(steps["action_probabilities"].to_numpy())
    taken = probs[np.arange(len(steps)), steps["action"].to_numpy()]
    np.testing.assert_allclose(steps["propensity"], taken)
    assert (steps["propensity"] == 1.0).all()  # deterministic: the action taken, probability 1
    if algo != "maskable_ppo":
        assert steps["invalid_action"].any()  # the situation this test is about
    else:
        assert not steps["invalid_action"].any()
    assert res.summary.set_index("policy").loc["m", "n"] == 4
    # The log serves off-policy evaluation with this policy as the logger.
    ope = evaluate_off_policy(
        tmp_path / "rep" / "episodes.parquet", "greedy", logged_policy="m", with_ground_truth=False
    )
    assert ope.estimates


def test_a_damaged_progress_csv_leaves_out_its_bad_rows(runs, tmp_path):
    # Text where a number belongs in progress.csv used to end `evaluate`, after every policy had
    # run, in a TypeError traceback from the learning curve.
    import shutil

    import pandas as pd

    from lmrecsim.cli import main
    from lmrecsim.evaluation.plots import learning_curve

    run = shutil.copytree(runs["ppo"], tmp_path / "run")
    progress = pd.read_csv(run / "progress.csv")
    whole = learning_curve(run)
    assert whole is not None and len(whole) >= 2 and 0 in whole.index
    progress = progress.astype({"time/total_timesteps": object, "rollout/ep_rew_mean": object})
    progress.loc[0, "time/total_timesteps"] = "abc"
    extra = progress.iloc[[-1]].assign(**{"rollout/ep_rew_mean": "inf"})
    pd.concat([progress, extra]).to_csv(run / "progress.csv", index=False)
    out = tmp_path / "rep"
    argv = ["evaluate", "--policy", f"x=ppo:{run}", "--seeds", "5", "--episodes", "2"]
    assert main([*argv, "--no-progress", "--out", str(out)]) == 0
    assert (out / "report.html").is_file()
    # The other rows are the curve as it was.
    pd.testing.assert_frame_equal(learning_curve(run), whole.drop(index=0))


def test_ope_and_replay_warn_of_a_model_trained_on_another_scenario(runs, tmp_path):
    """As ``evaluate`` does for its ``--scenario``: the log's scenario is another one than the
    model's run trained on (same shapes, so the model runs), worth a line on purpose or not."""
    from lmrecsim.evaluation.ope import evaluate_off_policy
    from lmrecsim.evaluation.replay import replay_with_policy

    other = tmp_path / "other.yaml"
    other.write_text("extends: default\nname: other\n")
    evaluate(str(other), ["egreedy"], seeds=[5], episodes=2, out=tmp_path / "rep", progress=False)
    log = tmp_path / "rep" / "episodes.parquet"
    expected = (
        f"ppo:{runs['ppo']} was trained on scenario 'default' ({runs['ppo']}/train.json) and runs "
        f"on the scenario of {log}, 'other' (expected a model trained on that scenario"
    )
    spec = f"ppo:{runs['ppo']}"
    ope = evaluate_off_policy(log, spec, logged_policy="egreedy", with_ground_truth=False)
    assert any(w.startswith(expected) for w in ope.warnings), ope.warnings
    side = replay_with_policy(log, spec, tmp_path / "side", logged_policy="egreedy")
    assert any(w.startswith(expected) for w in side.warnings), side.warnings
    # A log of the model's own scenario gives no such line.
    evaluate("default", ["egreedy"], seeds=[5], episodes=2, out=tmp_path / "own", progress=False)
    own = tmp_path / "own" / "episodes.parquet"
    ope = evaluate_off_policy(own, spec, logged_policy="egreedy", with_ground_truth=False)
    assert not any("was trained on scenario" in w for w in ope.warnings)


def test_a_model_passed_as_it_is_acts_with_the_mask_and_is_checked(runs):
    """A loaded model given as a ``(label, model)`` pair is evaluated as its ``maskable_ppo:PATH``
    spec would be: MaskablePPO acts with the action mask, and a model of another scenario's
    shapes is one line naming its label."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO

    from lmrecsim.agents.errors import AgentError

    # A small catalog with consumed items masked: many steps have masked slots.
    small = {"extends": "default", "catalog": {"n_items": 70}, "episode": {"horizon": 30}}
    from lmrecsim import make_env

    model = MaskablePPO("MultiInputPolicy", make_env(small), n_steps=64, batch_size=32, seed=0)
    res = evaluate(small, [("raw", model)], seeds=[1000], episodes=3, progress=False)
    steps = res.steps
    assert (~steps.loc[steps["policy"] == "random", "invalid_action"]).all()
    # Without the mask this untrained network picks a masked slot on about a quarter of steps.
    assert not steps.loc[steps["policy"] == "raw", "invalid_action"].any()
    assert res.summary.set_index("policy").loc["raw", "n"] == 3

    other = PPO.load(runs["ppo"] / "model.zip")  # trained on the default scenario, K = 20
    with pytest.raises(AgentError, match=r"'theirs': the model's observation 'candidates' has"):
        evaluate(
            {"extends": "default", "candidates": {"k": 10}},
            [("theirs", other)],
            seeds=[1000],
            episodes=1,
            progress=False,
        )
