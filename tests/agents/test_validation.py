"""Validation on held-out users while training (``agent.validation``, ``best_model.zip``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch as th

from lmrecsim.agents.build import load_model
from lmrecsim.agents.train import train, validation_seeds
from lmrecsim.agents.validation import validation_returns
from lmrecsim.evaluation import evaluate
from lmrecsim.scenarios.schema import ValidationConfig

from .conftest import tiny_scenario

# PPO updates after every 64 x 8 = 512 steps: validations at 1,024, 2,048 and the end (2,560).
PPO_HP = {"n_steps": 64, "batch_size": 128, "n_epochs": 2}
VALIDATION = {"every": 1000, "seed": 7000, "users": 24}


def _params(model) -> dict[str, th.Tensor]:
    return {k: v.clone() for k, v in model.policy.state_dict().items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("validation")
    sc = tiny_scenario(agent={"validation": VALIDATION, "hyperparameters": {"ppo": PPO_HP}})
    on = train(sc, out=base / "on", timesteps=2560, progress=False)
    off = train(sc, out=base / "off", timesteps=2560, progress=False, validate_every=0)
    return sc, on, off


def test_validation_does_not_change_the_trained_model(runs) -> None:
    _, on, off = runs
    a, b = _params(on.model), _params(off.model)
    assert a.keys() == b.keys() and all(th.equal(a[k], b[k]) for k in a)
    assert not (off.out_dir / "best_model.zip").exists()
    assert not (off.out_dir / "validation.csv").exists()
    assert "validation" not in json.loads((off.out_dir / "train.json").read_text())


def test_validations_happen_after_updates_and_at_the_end(runs) -> None:
    _, on, _ = runs
    table = pd.read_csv(on.out_dir / "validation.csv")
    # Each validation is also a row of SB3's log at its own step, the last one included.
    progress = pd.read_csv(on.out_dir / "progress.csv")
    logged = progress.dropna(subset=["validation/mean_return"])
    assert logged["time/total_timesteps"].tolist() == table["timesteps"].tolist()
    np.testing.assert_allclose(logged["validation/mean_return"], table["mean_return"])
    # Due at 1,000 and 2,000: the first rollout starts at or after them (1,024, 2,048), and once
    # more after the last update.
    assert table["timesteps"].tolist() == [1024, 2048, 2560]
    assert (table["users"] == VALIDATION["users"]).all()
    best = table["mean_return"].cummax()
    # A row is marked best when it beats every earlier row (ties keep the earlier model).
    expected = [True] + list(table["mean_return"].to_numpy()[1:] > best.to_numpy()[:-1])
    assert table["best"].tolist() == expected
    info = json.loads((on.out_dir / "train.json").read_text())["validation"]
    winner = table[table["best"]].iloc[-1]
    assert info["best_timesteps"] == int(winner["timesteps"]) == on.validation["best_timesteps"]
    assert info["best_mean_return"] == pytest.approx(winner["mean_return"])
    assert info["last_mean_return"] == pytest.approx(table["mean_return"].iloc[-1])


def test_best_model_is_the_model_of_the_best_validation(runs) -> None:
    sc, on, _ = runs
    from lmrecsim.envs.world import build_world

    world = build_world(sc)
    best = load_model("ppo", on.out_dir / "best_model.zip")
    table = pd.read_csv(on.out_dir / "validation.csv")
    winner = table[table["best"]].iloc[-1]
    assert best.num_timesteps == winner["timesteps"]
    returns = validation_returns(best, world, ValidationConfig(**VALIDATION))
    assert returns.mean() == pytest.approx(winner["mean_return"], abs=1e-9)


def test_validation_users_are_the_first_users_of_their_seeds(runs) -> None:
    # User i is what `lmrecsim evaluate --seeds 7000+i --episodes 1` sees: same return.
    sc, on, _ = runs
    config = ValidationConfig(every=1, seed=7000, users=5)
    from lmrecsim.envs.world import build_world

    returns = validation_returns(on.model, build_world(sc), config)
    res = evaluate(
        sc,
        [("ppo", _Greedy(on.model))],
        seeds=list(config.seeds),
        episodes=1,
        progress=False,
        plots=False,
        n_resamples=10,
    )
    ep = res.episodes[res.episodes["policy"] == "ppo"].sort_values("seed")
    np.testing.assert_allclose(ep["return"].to_numpy(), returns, rtol=0, atol=1e-5)
    assert np.ptp(returns) > 0  # different users, not one user five times


class _Greedy:
    """A live SB3 model acting greedily, as validation does."""

    def __init__(self, model) -> None:
        self.model = model

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        return self.model.predict(obs, deterministic=True)


def test_evaluating_on_validation_seeds_warns(runs) -> None:
    sc, on, _ = runs
    assert validation_seeds(on.out_dir) == tuple(range(7000, 7024))
    res = evaluate(
        sc,
        [f"ppo:{on.out_dir / 'best_model.zip'}"],
        seeds=[7003, 9000],
        episodes=1,
        progress=False,
        plots=False,
        n_resamples=10,
    )
    lines = [w for w in res.warnings if "validation seeds 7000-7023" in w]
    assert len(lines) == 1 and "1 of them are evaluated (7003)" in lines[0]
    # The last model (the run folder, its model.zip) was not chosen on those users.
    for spec in (f"ppo:{on.out_dir}", f"ppo:{on.out_dir / 'model.zip'}"):
        last = evaluate(sc, [spec], seeds=[7003], episodes=1, progress=False, plots=False)
        assert not any("validation" in w for w in last.warnings), spec


def test_dqn_validates_and_keeps_its_best(tmp_path) -> None:
    sc = tiny_scenario(
        agent={
            "algo": "dqn",
            "validation": {"every": 600, "seed": 7000, "users": 16},
            "hyperparameters": {"dqn": {"learning_starts": 200, "train_freq": 4}},
        }
    )
    res = train(sc, out=tmp_path, timesteps=1800, progress=False)
    table = pd.read_csv(tmp_path / "validation.csv")
    # DQN updates every 4 x 8 = 32 steps: the first rollout start at or after 600, 1,200 and
    # 1,800 (the end).
    assert table["timesteps"].tolist() == [608, 1216, 1824]
    best = load_model("dqn", tmp_path / "best_model.zip")
    assert best.num_timesteps == res.validation["best_timesteps"]


def test_training_refuses_validation_users_that_are_training_users(tmp_path) -> None:
    from lmrecsim.agents.errors import AgentError
    from lmrecsim.cli import main

    sc = tiny_scenario(agent={"validation": {"every": 10, "seed": 5, "users": 3}})
    with pytest.raises(AgentError) as err:
        train(sc, out=tmp_path / "a", timesteps=64, progress=False)
    assert "include training seed 5 (agent.seed 0 + sub-env 5)" in str(err.value)
    assert "--validate-every 0" in str(err.value)
    assert not (tmp_path / "a").exists()  # refused before the run folder exists
    # Off, the seeds are not checked (nothing uses them); loading never checks them, so a
    # scenario that evaluates on seeds 3000+ still loads for `evaluate`.
    tiny_scenario(agent={"validation": {"every": 0, "seed": 5, "users": 3}})
    tiny_scenario(evaluation={"seeds": [3005]})
    # The command line: one line, exit 2, naming the flag to change.
    code = main(["train", "--seed", "3000", "--timesteps", "64", "--out", str(tmp_path / "b")])
    assert code == 2 and not (tmp_path / "b").exists()


def test_the_cli_override_turns_validation_on_and_off(tmp_path) -> None:
    import yaml

    from lmrecsim.cli import main

    path = tmp_path / "tiny.yaml"
    sc = tiny_scenario(agent={"hyperparameters": {"ppo": PPO_HP}})
    from lmrecsim.scenarios.loader import scenario_to_dict

    path.write_text(yaml.safe_dump(scenario_to_dict(sc)))
    common = ["train", "--scenario", str(path), "--timesteps", "1024", "--no-progress"]
    assert main([*common, "--validate-every", "512", "--out", str(tmp_path / "a")]) == 0
    assert pd.read_csv(tmp_path / "a" / "validation.csv")["timesteps"].tolist() == [512, 1024]
    assert main([*common, "--validate-every", "0", "--out", str(tmp_path / "b")]) == 0
    assert not (tmp_path / "b" / "validation.csv").exists()
    # The shipped default validates: its run folder is cleared of an earlier run's best model.
    assert main([*common, "--out", str(tmp_path / "a"), "--validate-every", "0"]) == 0
    assert not (tmp_path / "a" / "best_model.zip").exists()


def test_reports_draw_the_validation_curve_up_to_the_evaluated_model(runs) -> None:
    from lmrecsim.evaluation.plots import plot_learning_curves, validation_curve

    _, on, off = runs
    assert validation_curve(off.out_dir) is None
    full = validation_curve(on.out_dir)
    assert full["timesteps"].tolist() == [1024, 2048, 2560]
    # A model saved at 2,048 steps (a checkpoint's cut) shows the validations up to it.
    assert validation_curve(on.out_dir, until=2048)["timesteps"].tolist() == [1024, 2048]
    # A run with validations but no training curve (progress.csv lost) still gets its plot.
    assert plot_learning_curves({}, {"ppo": full}) is not None
    assert plot_learning_curves({}, {}) is None


def test_a_stopped_run_records_its_validation_users_from_the_start(tmp_path) -> None:
    # A run stopped midway keeps the best_model.zip of its validations so far: evaluating it on
    # its validation users must still warn, so train.json names them before training starts.
    from stable_baselines3.common.callbacks import BaseCallback

    seen = {}

    class _Peek(BaseCallback):
        def _on_training_start(self) -> None:
            seen.update(json.loads((tmp_path / "train.json").read_text()))

        def _on_step(self) -> bool:
            return True

    sc = tiny_scenario(agent={"validation": VALIDATION, "hyperparameters": {"ppo": PPO_HP}})
    train(sc, out=tmp_path, timesteps=512, progress=False, callback_factory=lambda s, w: [_Peek()])
    assert seen["status"] == "running"
    assert seen["validation"] == VALIDATION
    assert validation_seeds(tmp_path) == tuple(range(7000, 7024))


@pytest.mark.parametrize(
    "text",
    [
        "timesteps,mean_return,std_error,users,best\nabc,3.1,0.1,16,True\n",
        "timesteps,mean_return,std_error,users,best\n512,3.1,0.1,16,maybe\n",
        "timesteps,mean_return,std_error,users,best\n512,,0.1,16,True\n",
        "timesteps,mean_return\n512,3.1\n",
        "",
    ],
)
def test_a_corrupt_validation_csv_leaves_the_curve_out(runs, tmp_path, text) -> None:
    import shutil

    from lmrecsim.agents.validation import read_validation
    from lmrecsim.evaluation.plots import validation_curve

    sc, on, _ = runs
    run = tmp_path / "run"
    shutil.copytree(on.out_dir, run)
    (run / "validation.csv").write_text(text)
    assert read_validation(run) is None and validation_curve(run) is None
    res = evaluate(
        sc,
        [f"ppo:{run / 'best_model.zip'}"],
        seeds=[9000],
        episodes=1,
        progress=False,
        out=tmp_path / "rep",
    )
    assert (tmp_path / "rep" / "learning_curves.png").is_file()  # the training curve alone
    assert res.files


@pytest.mark.parametrize(
    ("override", "algo"),
    [
        ({}, "maskable_ppo"),
        ({"candidates": {"slate_size": 3}}, "ppo"),
    ],
)
def test_maskable_ppo_and_slate_runs_validate_like_evaluate(tmp_path, override, algo) -> None:
    # MaskablePPO acts on its masks, a slate model on (users, L) slates: validation returns are
    # the ones `evaluate` gives the same model on the same users.
    from lmrecsim.envs.world import build_world

    val = {"every": 512, "seed": 7000, "users": 4}
    sc = tiny_scenario(
        agent={"algo": algo, "validation": val, "hyperparameters": {algo: PPO_HP}}, **override
    )
    res = train(sc, out=tmp_path, timesteps=1024, progress=False)
    table = pd.read_csv(tmp_path / "validation.csv")
    assert table["timesteps"].tolist() == [512, 1024]
    returns = validation_returns(
        res.model, build_world(sc), ValidationConfig(**val), maskable=algo == "maskable_ppo"
    )
    assert returns.mean() == pytest.approx(table["mean_return"].iloc[-1], abs=1e-9)
    ev = evaluate(
        sc,
        [f"{algo}:{tmp_path}"],
        seeds=list(range(7000, 7004)),
        episodes=1,
        progress=False,
        plots=False,
        n_resamples=10,
    )
    ep = ev.episodes[ev.episodes["policy"] != "random"].sort_values("seed")
    np.testing.assert_allclose(ep["return"].to_numpy(), returns, rtol=0, atol=1e-5)


def test_validation_seeds_of_a_hand_edited_record_are_unknown(tmp_path) -> None:
    """Only what train writes is read: 10^12 validation users used to be a tuple of 10^12 seeds
    (a MemoryError traceback from evaluate)."""
    import json

    for users, want in ((3, (5, 6, 7)), (10**12, None), (0, None), (True, None)):
        (tmp_path / "train.json").write_text(
            json.dumps({"seed": 0, "n_envs": 1, "validation": {"seed": 5, "users": users}})
        )
        assert validation_seeds(tmp_path) == want
