"""Validation on held-out users while training (``agent.validation``, ``best_model.zip``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch as th

from lmrecsim.agents.build import load_model
from lmrecsim.agents.train import train
from lmrecsim.agents.validation import validation_returns, validation_seeds
from lmrecsim.evaluation import evaluate
from lmrecsim.scenarios import ScenarioError
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
    clean = evaluate(
        sc, [f"ppo:{on.out_dir}"], seeds=[9000], episodes=1, progress=False, plots=False
    )
    assert not any("validation" in w for w in clean.warnings)


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


@pytest.mark.parametrize(
    ("validation", "agent", "expected"),
    [
        ({"every": 10, "seed": 998, "users": 3}, {}, "include evaluation seed (evaluation.seeds) 1000"),
        ({"every": 10, "seed": 5, "users": 3}, {"seed": 0}, "include training seed"),
    ],
)
def test_validation_seeds_must_be_apart(validation, agent, expected) -> None:
    with pytest.raises(ScenarioError) as err:
        tiny_scenario(agent={"validation": validation, **agent})
    assert "agent.validation.seed: validation seeds" in str(err.value)
    assert expected in str(err.value)
    # Off, the seeds are not checked (nothing uses them).
    tiny_scenario(agent={"validation": {**validation, "every": 0}, **agent})


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
