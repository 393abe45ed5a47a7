"""``lmrecsim evaluate`` without ``--scenario`` evaluates saved models on the scenario their runs
trained on, and warns when a model is evaluated on another one."""

from __future__ import annotations

import json

import pytest

from lmrecsim.agents.baselines import make_policy, model_spec_path, split_spec
from lmrecsim.agents.errors import AgentError
from lmrecsim.agents.train import train
from lmrecsim.cli import main
from tests.fakes import other_warnings


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name in ("cold_start", "default"):
        train(
            name,
            out=root / name,
            timesteps=64,
            n_envs=2,
            hyperparameters={"n_steps": 32, "batch_size": 64, "n_epochs": 1},
            validate_every=0,
            progress=False,
        )
    return root


def _evaluate(capsys, *args: str) -> tuple[int, dict | None, str]:
    """Exit code, the JSON line of stdout and stderr, without the warning that two episodes
    give narrow intervals."""
    code = main(["evaluate", *args, "--episodes", "2", "--seeds", "1000", "--no-progress"])
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    err = "\n".join(other_warnings(captured.err)).strip()
    return code, (json.loads(lines[-1]) if code == 0 else None), err


def test_models_are_evaluated_on_their_runs_scenario_by_default(runs, tmp_path, capsys):
    spec = f"ppo:{runs / 'cold_start'}"
    code, line, err = _evaluate(capsys, "--policy", spec, "--out", str(tmp_path / "a"))
    assert code == 0 and line["scenario"] == "cold_start" and "warning" not in err
    # A checkpoint of the run counts as the run's too.
    checkpoint = next((runs / "cold_start" / "checkpoints").glob("model_*_steps.zip"))
    code, line, _ = _evaluate(
        capsys, "--policy", f"x=ppo:{checkpoint}", "--out", str(tmp_path / "b")
    )
    assert code == 0 and line["scenario"] == "cold_start"
    # Baselines alone: the default scenario, as before.
    code, line, _ = _evaluate(capsys, "--policy", "greedy", "--out", str(tmp_path / "c"))
    assert code == 0 and line["scenario"] == "default"


def test_another_scenario_is_allowed_with_a_warning(runs, tmp_path, capsys):
    spec = f"cs=ppo:{runs / 'cold_start'}"
    code, line, err = _evaluate(
        capsys, "--scenario", "default", "--policy", spec, "--out", str(tmp_path / "a")
    )
    assert code == 0 and line["scenario"] == "default"
    assert err.startswith("lmrecsim: warning: cs was trained on scenario 'cold_start'")
    assert "evaluated on 'default'" in err and err.count("\n") == 0


def test_models_of_different_scenarios_need_a_scenario(runs, tmp_path, capsys):
    code, _, err = _evaluate(
        capsys,
        "--policy",
        f"ppo:{runs / 'cold_start'}",
        "--policy",
        f"ppo:{runs / 'default'}",
        "--out",
        str(tmp_path / "a"),
    )
    assert code == 2 and err.count("\n") == 0
    assert "--scenario: not given, and the models were trained on different scenarios" in err
    assert not (tmp_path / "a").exists()


def test_a_run_folder_is_a_policy_spec_of_its_own_algorithm(runs, tmp_path, capsys):
    run = str(runs / "cold_start")
    checkpoint = next((runs / "cold_start" / "checkpoints").glob("model_*_steps.zip"))
    code, line, err = _evaluate(
        capsys,
        "--policy",
        run,
        "--policy",
        f"best={checkpoint}",
        "--out",
        str(tmp_path / "a"),
    )
    assert code == 0 and line["scenario"] == "cold_start", err
    assert set(line["return"]) == {run, "best", "random"}
    empty = tmp_path / "not_a_run"
    empty.mkdir()
    code, _, err = _evaluate(capsys, "--policy", str(empty), "--out", str(tmp_path / "b"))
    assert code == 2 and err.count("\n") == 0
    assert f"{empty} holds no run of lmrecsim train (no train.json" in err


def test_policy_spec_parts() -> None:
    assert split_spec(" mine = ppo:runs/a ") == ("mine", "ppo:runs/a")
    assert split_spec("ppo:runs/a=b") == (None, "ppo:runs/a=b")  # '=' inside the path
    assert model_spec_path("mine=dqn:runs/x/best_model.zip") == "runs/x/best_model.zip"
    assert model_spec_path("greedy") is None and model_spec_path("ppo:") is None
    assert model_spec_path("=ppo:runs/a") is None  # not a model spec: make_policy refuses it
    with pytest.raises(AgentError, match="empty label"):
        make_policy("=ppo:runs/a", None)
    with pytest.raises(AgentError, match="nothing after 'mine='"):
        make_policy("mine=", None)
    # A newline would split the label over the lines of the reports' tables.
    with pytest.raises(AgentError, match="control character"):
        make_policy("a\nb=greedy", None)


def _copy_run(runs, tmp_path, name: str):
    import shutil

    return shutil.copytree(runs / "cold_start", tmp_path / name)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "train.json: unreadable (JSONDecodeError; expected JSON)"),
        ("[1, 2]", "train.json: expected a JSON object"),
        ('{"algo": "sac"}', "train.json: 'algo' is 'sac' (expected one of ppo, dqn, maskable_ppo"),
    ],
)
def test_a_run_folder_with_a_broken_train_json_is_named(runs, tmp_path, capsys, text, message):
    # Used to say "unknown policy", naming neither the file nor what was wrong with it.
    run = _copy_run(runs, tmp_path, "broken")
    (run / "train.json").write_text(text)
    code, _, err = _evaluate(capsys, "--policy", str(run), "--out", str(tmp_path / "a"))
    assert code == 2 and err.count("\n") == 0 and message in err, err
    assert not (tmp_path / "a").exists()


def test_a_run_folder_without_its_scenario_is_refused(runs, tmp_path, capsys):
    # Used to be evaluated on the default scenario (other users than the run's), without a word.
    run = _copy_run(runs, tmp_path, "no_scenario")
    (run / "scenario.yaml").unlink()
    code, _, err = _evaluate(capsys, "--policy", str(run), "--out", str(tmp_path / "a"))
    assert code == 2 and err.count("\n") == 0
    assert err.startswith(f"lmrecsim: error: {run / 'scenario.yaml'}: missing")
    assert "trained on 'cold_start'" in err
    # Given a scenario, it runs; the warning names the scenario, not the missing file.
    code, _, err = _evaluate(
        capsys, "--scenario", "default", "--policy", str(run), "--out", str(tmp_path / "b")
    )
    assert code == 0 and "expected --scenario 'cold_start'" in err and "scenario.yaml" not in err


def test_a_corrupt_policy_file_is_not_advised_to_load_unsafely(runs, tmp_path, capsys):
    # torch's own message advises weights_only=False, which would run code from the file.
    import zipfile

    bad = tmp_path / "bad.zip"
    with (
        zipfile.ZipFile(runs / "cold_start" / "model.zip") as src,
        zipfile.ZipFile(bad, "w") as dst,
    ):
        for item in src.infolist():
            data = b"garbage" if item.filename == "policy.pth" else src.read(item.filename)
            dst.writestr(item, data)
    code, _, err = _evaluate(capsys, "--policy", f"ppo:{bad}", "--out", str(tmp_path / "a"))
    assert code == 2 and err.count("\n") == 0
    assert "its policy.pth is not a readable PyTorch state" in err and "weights_only" not in err


class _Touch:
    """A pickle that creates a file when it is loaded (what a crafted model.zip could do)."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def _with_data_entry(src_zip, dst_zip, key: str, value) -> None:
    """A copy of a model.zip whose ``data`` entry ``key`` is the pickle of ``value`` (or
    ``value`` itself when it is bytes: a hand-made pickle)."""
    import base64
    import pickle
    import zipfile

    with zipfile.ZipFile(src_zip) as src, zipfile.ZipFile(dst_zip, "w") as dst:
        for item in src.infolist():
            raw = src.read(item.filename)
            if item.filename == "data":
                data = json.loads(raw)
                data[key] = {
                    ":type:": "<class 'function'>",
                    ":serialized:": base64.b64encode(
                        value if isinstance(value, bytes) else pickle.dumps(value)
                    ).decode(),
                }
                raw = json.dumps(data).encode()
            dst.writestr(item, raw)


def test_a_model_file_whose_data_names_a_function_is_refused_without_running_it(
    runs, tmp_path, capsys
):
    # SB3's load unpickles the data's entries with cloudpickle, which calls whatever a pickle
    # names: this file made a normal report and created the marker.
    marker = tmp_path / "ran"
    bad = tmp_path / "bad.zip"
    _with_data_entry(runs / "cold_start" / "model.zip", bad, "lr_schedule", _Touch(marker))
    code, _, err = _evaluate(capsys, "--policy", f"ppo:{bad}", "--out", str(tmp_path / "a"))
    assert code == 2 and err.count("\n") == 0
    assert err.startswith(f"lmrecsim: error: {bad}: data entry 'lr_schedule' names pathlib")
    assert not marker.exists() and not (tmp_path / "a").exists()
    # A class of another package is refused too; the model's own entries load.
    _with_data_entry(runs / "cold_start" / "model.zip", bad, "clip_range", json.JSONDecoder)
    from lmrecsim.agents.build import load_model
    from lmrecsim.agents.safe_load import safe_custom_objects

    with pytest.raises(AgentError, match="data entry 'clip_range' names json.decoder.JSONDecoder"):
        load_model("ppo", bad)

    model = load_model("ppo", runs / "cold_start")
    objects = safe_custom_objects(runs / "cold_start" / "model.zip")
    assert {"observation_space", "action_space", "policy_class", "lr_schedule"} <= set(objects)
    assert model.observation_space == objects["observation_space"]
    assert type(model.policy) is objects["policy_class"]


def test_a_runs_damaged_curve_files_are_warnings_not_silently_dropped_curves(
    runs, tmp_path, capsys
):
    run = _copy_run(runs, tmp_path, "damaged")
    out = tmp_path / "report"
    # A run's own files: no warning (no validation.csv here, and a header-only one is a run
    # stopped before its first validation).
    (run / "validation.csv").write_text("timesteps,mean_return,std_error,users,best\n")
    code, _, err = _evaluate(capsys, "--policy", f"mine=ppo:{run}", "--out", str(out))
    assert code == 0 and "warning" not in err
    assert (out / "learning_curves.png").is_file()
    (run / "progress.csv").write_text("\x00garbage\n1,2\n")
    (run / "validation.csv").write_text(
        "timesteps,mean_return,std_error,users,best\n32,abc,0.1,400,maybe\n"
    )
    code, _, err = _evaluate(capsys, "--policy", f"mine=ppo:{run}", "--out", str(out))
    assert code == 0
    lines = [line for line in err.splitlines() if line.startswith("lmrecsim: warning:")]
    assert (
        f"lmrecsim: warning: {run / 'progress.csv'}: unreadable (expected SB3's CSV log"
        in (lines[0])
    )
    assert lines[0].endswith("the report leaves out the training curve of 'mine'")
    assert lines[1].startswith(f"lmrecsim: warning: {run / 'validation.csv'}: not what lmrecsim")
    assert lines[1].endswith("the report leaves out the validation curve of 'mine'")
    report = (out / "report.md").read_text()
    assert "leaves out the training curve of 'mine'" in report
    assert not (out / "learning_curves.png").exists()


def test_a_model_file_is_checked_without_importing_the_modules_it_names(runs, tmp_path):
    # The allow-list was checked after the import, and importing lmrecsim.__main__ runs the
    # command line (a SystemExit out of the load).
    import sys

    from lmrecsim.agents.build import load_model

    bad = tmp_path / "bad.zip"
    for module in ("lmrecsim.__main__", "torch.utils.model_dump.__main__"):
        sys.modules.pop(module, None)
        _with_data_entry(
            runs / "cold_start" / "model.zip", bad, "lr_schedule", f"c{module}\nmain\n.".encode()
        )
        with pytest.raises(AgentError, match=f"data entry 'lr_schedule' names {module}.main"):
            load_model("ppo", bad)
        assert module not in sys.modules


def test_models_sb3_saves_load_and_a_function_is_refused_naming_sb3s_own_load(tmp_path):
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.torch_layers import FlattenExtractor

    from lmrecsim.agents.build import load_model

    env = gym.make("CartPole-v1")
    kwargs = {
        "features_extractor_class": FlattenExtractor,
        "activation_fn": torch.nn.Tanh,
        "optimizer_class": torch.optim.AdamW,
    }
    PPO("MlpPolicy", env, n_steps=16, batch_size=16, policy_kwargs=kwargs).save(tmp_path / "a")
    model = load_model("ppo", tmp_path / "a.zip")
    assert model.policy.optimizer_class is torch.optim.AdamW
    PPO("MlpPolicy", env, n_steps=16, batch_size=16, learning_rate=lambda p: 3e-4 * p).save(
        tmp_path / "b"
    )
    with pytest.raises(AgentError) as err:
        load_model("ppo", tmp_path / "b.zip")
    assert "data entry 'learning_rate' names cloudpickle" in str(err.value)
    assert str(err.value).endswith("load a file you trust with SB3's own load)")
