"""Reusing a complete run (``finished_run``): only the same settings, seed, budget and threads,
only a run that completed, and the reused model acts as the trained one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lmrecsim.agents.train import finished_run, resolve_run, reuse_run, train
from lmrecsim.envs.features import N_FEATURES

from .conftest import tiny_scenario

HP = {"n_steps": 32, "batch_size": 64, "n_epochs": 1}
ARGS = {"algo": "ppo", "timesteps": 256, "seed": 3, "n_envs": 2, "hyperparameters": HP}


@pytest.fixture(scope="module")
def complete_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("runs") / "ppo"
    sc = tiny_scenario(agent={"validation": {"every": 128, "users": 8}})
    res = train(sc, out=out, **ARGS, progress=False, torch_threads=1)
    return out, res


def _params(model: object) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.policy.parameters()]  # type: ignore[attr-defined]


def _copy(complete_run: tuple[Path, object], tmp_path: Path) -> Path:
    out = tmp_path / "ppo"
    shutil.copytree(complete_run[0], out)
    return out


def _resolved(**override: object) -> object:
    sc = tiny_scenario(agent={"validation": {"every": 128, "users": 8}})
    return resolve_run(sc, **{**ARGS, **override})


def test_a_complete_run_is_reused_with_its_model_and_record(complete_run, tmp_path):
    trained = complete_run[1]
    out = _copy(complete_run, tmp_path)
    reused = finished_run(out, _resolved(), torch_threads=1)
    assert reused is not None and reuse_run(out, _resolved(), torch_threads=1)[1] == ""
    assert reused.timesteps == trained.timesteps and reused.validation == trained.validation
    assert reused.seconds == pytest.approx(trained.seconds, abs=1e-3)
    for a, b in zip(_params(reused.model), _params(trained.model), strict=True):
        assert torch.equal(a, b)
    obs = trained.model.env.reset()
    np.testing.assert_array_equal(
        reused.model.predict(obs, deterministic=True)[0],
        trained.model.predict(obs, deterministic=True)[0],
    )


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ({"seed": 4}, "seed: 4"),
        ({"timesteps": 512}, "timesteps: 512"),
        ({"hyperparameters": {**HP, "ent_coef": 0.02}}, "ent_coef: 0.02"),
    ],
    ids=["seed", "budget", "setting"],
)
def test_other_settings_are_not_reused(complete_run, tmp_path, override, line):
    out = _copy(complete_run, tmp_path)
    assert finished_run(out, _resolved(**override), torch_threads=1) is None
    # The reason names the first line of scenario.yaml that differs, as this run would write it.
    run, why = reuse_run(out, _resolved(**override), torch_threads=1)
    assert run is None and why.startswith("its scenario.yaml differs from this run's at line ")
    assert f"this run {line!r}" in why


def test_another_thread_count_is_not_reused(complete_run, tmp_path):
    out = _copy(complete_run, tmp_path)
    assert finished_run(out, _resolved(), torch_threads=2) is None
    assert reuse_run(out, _resolved(), torch_threads=2)[1] == (
        "it was trained with torch_threads 1, not 2"
    )


def test_a_model_of_another_feature_count_is_not_reused(complete_run, tmp_path, monkeypatch):
    """A run trained by a version of lmrecsim with other candidate features has the same
    scenario.yaml, but its model cannot act on this version's observations."""
    out = _copy(complete_run, tmp_path)
    monkeypatch.setattr("lmrecsim.agents.train.N_FEATURES", N_FEATURES - 3)
    assert finished_run(out, _resolved(), torch_threads=1) is None
    assert reuse_run(out, _resolved(), torch_threads=1)[1] == (
        f"its model sees {N_FEATURES} candidate features, this version of lmrecsim "
        f"{N_FEATURES - 3} (trained by another version)"
    )


@pytest.mark.parametrize("status", ["running", "stopped", "failed"])
def test_an_unfinished_run_is_not_reused(complete_run, tmp_path, status):
    out = _copy(complete_run, tmp_path)
    info = json.loads((out / "train.json").read_text())
    (out / "train.json").write_text(json.dumps({**info, "status": status}))
    assert finished_run(out, _resolved(), torch_threads=1) is None
    assert reuse_run(out, _resolved(), torch_threads=1)[1] == (
        f"its train.json says status {status!r}, not 'complete'"
    )


@pytest.mark.parametrize("damage", ["corrupt model", "no best model", "corrupt record", "empty"])
def test_a_damaged_run_is_not_reused(complete_run, tmp_path, damage):
    out = _copy(complete_run, tmp_path)
    if damage == "corrupt model":
        (out / "model.zip").write_bytes(b"not a zip")
    elif damage == "no best model":
        (out / "best_model.zip").unlink()
    elif damage == "corrupt record":
        (out / "train.json").write_text("{truncated")
    else:
        shutil.rmtree(out)
        out.mkdir()
    assert finished_run(out, _resolved(), torch_threads=1) is None
    why = reuse_run(out, _resolved(), torch_threads=1)[1]
    expected = {
        "corrupt model": "its model.zip does not load",
        "no best model": "it has no best_model.zip",
        "corrupt record": "its train.json cannot be read (",
        "empty": "",
    }[damage]
    assert why.startswith(expected) and (why == "") == (damage == "empty")


@pytest.mark.parametrize(
    "validation",
    [[], "best", None, {}, {"best_timesteps": "256"}, {"best_timesteps": True}, "missing"],
    ids=["list", "string", "null", "empty", "string steps", "bool steps", "missing"],
)
def test_a_hand_edited_validation_record_is_not_reused(complete_run, tmp_path, validation):
    # A list or a string used to raise AttributeError ('list' object has no attribute 'get');
    # null or no record at all used to reuse the run as if it had not validated.
    out = _copy(complete_run, tmp_path)
    info = json.loads((out / "train.json").read_text())
    assert info["status"] == "complete" and isinstance(info["validation"], dict)
    if validation == "missing":
        del info["validation"]
    else:
        info["validation"] = validation
    (out / "train.json").write_text(json.dumps(info))
    assert finished_run(out, _resolved(), torch_threads=1) is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("timesteps", True),
        ("timesteps", "256"),
        ("timesteps", -1),
        ("seconds", "1.5"),
        ("seconds", float("nan")),
        ("seconds", -1.0),
        ("torch_threads", True),
    ],
)
def test_a_hand_edited_record_of_the_wrong_kind_is_not_reused(complete_run, tmp_path, key, value):
    out = _copy(complete_run, tmp_path)
    info = json.loads((out / "train.json").read_text())
    (out / "train.json").write_text(json.dumps({**info, key: value}))
    assert finished_run(out, _resolved(), torch_threads=1) is None


def test_resolve_run_is_what_train_writes(complete_run):
    out = complete_run[0]
    from lmrecsim.scenarios import scenario_to_yaml

    assert (out / "scenario.yaml").read_text() == scenario_to_yaml(_resolved())
