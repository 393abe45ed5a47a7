def test_progress_csv_columns_do_not_depend_on_the_hash_seed(tmp_path):
    # SB3 adds new columns in set order, which changes with PYTHONHASHSEED; ours sorts them.
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from lmrecsim.agents.train import SortedCSVOutputFormat\n"
        "w = SortedCSVOutputFormat(sys.argv[1])\n"
        "w.write({'train/loss': 1.0, 'time/fps': 2, 'rollout/ep_rew_mean': 3.0, 'a/b': 4}, {})\n"
        "w.write({'train/loss': 1.5, 'time/fps': 2, 'rollout/ep_rew_mean': 3.5, 'a/b': 4, "
        "'z/new': 5, 'c/new': 6}, {})\n"
        "w.close()\n"
    )
    headers = set()
    for seed in ("1", "2", "3", "4"):
        path = tmp_path / f"p{seed}.csv"
        env = {"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}
        subprocess.run([sys.executable, "-c", script, str(path)], check=True, env=env)
        lines = path.read_text().splitlines()
        headers.add(lines[0])
        assert len(lines) == 3
    assert headers == {"a/b,rollout/ep_rew_mean,time/fps,train/loss,c/new,z/new"}


def test_an_out_of_range_override_names_the_scenario_it_overrides():
    # The error used to name "<dict>", losing the file the run was started from.
    import pytest

    from lmrecsim.agents.train import with_agent_overrides
    from lmrecsim.scenarios import ScenarioError, load_scenario

    sc = load_scenario("default")
    with pytest.raises(ScenarioError) as err:
        with_agent_overrides(sc, n_envs=5000)
    assert str(err.value).startswith(f"{sc.source} (agent overrides): agent.n_envs: 5000")


def test_a_checkpoint_frequency_below_one_is_refused_before_any_work(tmp_path):
    # From Python, 0 used to mean the default and -5 a checkpoint every step (the command line
    # refuses both).
    import pytest

    from lmrecsim.agents.errors import AgentError
    from lmrecsim.agents.train import train

    for bad in (0, -5, 2.5, True):
        with pytest.raises(AgentError, match=f"checkpoint_freq: {bad!r} is invalid"):
            train("default", out=tmp_path / "run", timesteps=8, checkpoint_freq=bad)
    assert list(tmp_path.iterdir()) == []


def test_overrides_may_be_numpy_integers_and_hyperparameters_must_be_a_mapping(tmp_path):
    # timesteps=np.int64(64) was refused as "np.int64(64) is invalid (expected an integer)"; a
    # list of pairs for hyperparameters ended in an AttributeError inside deep_merge.
    import numpy as np
    import pytest

    from lmrecsim.agents.errors import AgentError
    from lmrecsim.agents.train import resolve_run, train

    sc = resolve_run(
        "default", timesteps=np.int64(64), seed=np.int32(3), n_envs=np.int64(2), validate_every=0
    )
    agent = sc.agent
    assert (agent.timesteps, agent.seed, agent.n_envs, agent.validation.every) == (64, 3, 2, 0)
    assert type(agent.seed) is int
    with pytest.raises(AgentError, match=r"hyperparameters: list \[\('learning_rate', 0.001\)\]"):
        train("default", out=tmp_path / "run", hyperparameters=[("learning_rate", 0.001)])
    assert list(tmp_path.iterdir()) == []


def test_ppo_checkpoints_default_to_whole_rollouts(tmp_path):
    # PPO's policy changes once per rollout: a tenth of a small budget used to save the same
    # policy every 24 steps, 85 times over one 2,048-step rollout.
    from lmrecsim.agents.train import default_checkpoint_freq, resolve_run, train

    def freq(**kw) -> int:
        return default_checkpoint_freq(resolve_run("default", **kw))

    assert freq(timesteps=256) == 256 * 8  # default.yaml: n_steps 256, 8 envs
    assert freq(timesteps=200_000) == 20_000  # a tenth, above one rollout
    assert freq(timesteps=256, algo="dqn") == 25  # off-policy: a tenth, as before
    assert freq(timesteps=256, n_envs=2, hyperparameters={"n_steps": 32}) == 64
    import numpy as np

    assert freq(timesteps=256, n_envs=2, hyperparameters={"n_steps": np.int64(32)}) == 64
    # Without n_steps in the scenario's section: lmrecsim's default (256), not SB3's (2048),
    # which made the interval longer than whole budgets, and so no checkpoint at all.
    assert freq(timesteps=1024, algo="maskable_ppo", n_envs=2) == 512
    from lmrecsim.scenarios import scenario_from_dict

    bare = scenario_from_dict({"name": "bare", "agent": {"timesteps": 2048, "n_envs": 2}})
    assert default_checkpoint_freq(bare) == 512
    out = tmp_path / "run"
    train(
        "default",
        out=out,
        timesteps=256,
        n_envs=2,
        hyperparameters={"n_steps": 32, "batch_size": 64, "n_epochs": 1},
        progress=False,
    )
    saved = sorted(int(p.name.split("_")[1]) for p in (out / "checkpoints").iterdir())
    assert saved == [64, 128, 192, 256]


def _tiny_run(out, **kwargs):
    from lmrecsim.agents.train import train

    return train(
        "default",
        out=out,
        timesteps=64,
        n_envs=2,
        hyperparameters={"n_steps": 32, "batch_size": 64, "n_epochs": 1},
        validate_every=0,
        progress=False,
        **kwargs,
    )


def test_a_bad_callback_factory_or_record_leaves_the_earlier_run_alone(tmp_path):
    # Both were used after the earlier run in the folder was cleared: its model.zip was gone,
    # train.json said "running", and the error was a TypeError from inside the training.
    import json
    import re

    import pytest
    from stable_baselines3.common.callbacks import StopTrainingOnMaxEpisodes

    from lmrecsim.agents.errors import AgentError

    out = tmp_path / "run"
    _tiny_run(out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    for factory, shown in (
        (lambda sc, world: None, "NoneType None"),
        (lambda sc, world: StopTrainingOnMaxEpisodes(5), "StopTrainingOnMaxEpisodes"),
    ):
        with pytest.raises(AgentError, match=f"^callback_factory: returned {shown}"):
            _tiny_run(out, callback_factory=factory)
    for record, message in (
        ({"algo": "dqn"}, "record: entry 'algo' is invalid (expected a string key other than"),
        ({"note": object()}, "record: entry 'note' holds object"),
        ({"note": float("nan")}, "record: entry 'note' holds float nan"),
        ([("note", 1)], "record: list is invalid"),
    ):
        with pytest.raises(AgentError, match=f"^{re.escape(message)}"):
            _tiny_run(out, record=record)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert json.loads((out / "train.json").read_text())["status"] == "complete"
    result = _tiny_run(out, record={"note": "kept"}, callback_factory=lambda sc, world: ())
    assert json.loads((out / "train.json").read_text())["note"] == "kept"
    assert result.timesteps == 64


def test_numpy_numbers_in_hyperparameters_are_python_numbers_in_the_scenario():
    # np.float32 learning rates passed the checks and failed in pydantic's serialiser while the
    # scenario was hashed, without naming the key.
    import numpy as np

    from lmrecsim.agents.train import resolve_run
    from lmrecsim.scenarios.loader import scenario_hash

    hp = {
        "n_steps": np.int64(32),
        "learning_rate": np.float32(0.25),
        "policy_kwargs": {"x": [np.int8(1)]},
    }
    sc = resolve_run("default", algo="ppo", hyperparameters=hp)
    got = sc.agent.hyperparameters_for("ppo")
    assert type(got["n_steps"]) is int and got["n_steps"] == 32
    assert type(got["learning_rate"]) is float and got["learning_rate"] == 0.25
    assert type(got["policy_kwargs"]["x"][0]) is int
    assert scenario_hash(sc) == scenario_hash(
        resolve_run(
            "default",
            algo="ppo",
            hyperparameters={"n_steps": 32, "learning_rate": 0.25, "policy_kwargs": {"x": [1]}},
        )
    )


def test_the_returned_model_goes_on_learning_in_memory(tmp_path):
    # model.learn() after train() failed on the run's closed progress.csv ("I/O operation on a
    # closed file") once its first rollout was collected.
    from lmrecsim.agents.train import train

    result = train(
        "default",
        out=tmp_path / "run",
        timesteps=128,
        n_envs=2,
        validate_every=0,
        progress=False,
        hyperparameters={"n_steps": 64, "batch_size": 64, "n_epochs": 1},
    )
    progress = (tmp_path / "run" / "progress.csv").read_bytes()
    model = result.model.learn(256, reset_num_timesteps=False)
    assert model.num_timesteps == 384
    # The run's files are its own: the steps learnt in memory are not written into them.
    assert (tmp_path / "run" / "progress.csv").read_bytes() == progress


def test_hyperparameters_are_scenario_data_and_activations_go_by_name(tmp_path):
    # A schedule lambda or torch.nn.Tanh in hyperparameters ended in pydantic's
    # "PydanticSerializationError: Unable to serialize unknown type" from inside the world build;
    # the name "tanh" in SB3's "'str' object is not callable".
    import pytest
    import torch

    from lmrecsim.agents.errors import AgentError
    from lmrecsim.agents.train import train
    from lmrecsim.scenarios import ScenarioError, load_scenario

    for hp, key, kind in (
        ({"learning_rate": lambda p: 1e-3}, "learning_rate", "a function"),
        (
            {"policy_kwargs": {"activation_fn": torch.nn.Tanh}},
            "policy_kwargs.activation_fn",
            "a Python class",
        ),
        ({"ppo": {"gamma": object()}}, "ppo.gamma", "a Python object object"),
    ):
        with pytest.raises(ScenarioError, match=rf"agent.hyperparameters: {key} is {kind}, not"):
            load_scenario({"extends": "default", "agent": {"hyperparameters": hp}})
    tiny = {"n_steps": 64, "batch_size": 64, "n_epochs": 1}
    result = train(
        "default",
        out=tmp_path / "run",
        policy="mlp",
        timesteps=64,
        n_envs=1,
        validate_every=0,
        progress=False,
        hyperparameters={**tiny, "policy_kwargs": {"activation_fn": "tanh"}},
    )
    layers = [type(m) for m in result.model.policy.mlp_extractor.modules()]
    assert torch.nn.Tanh in layers and torch.nn.ReLU not in layers
    with pytest.raises(AgentError, match=r"activation_fn: 'swish' is not one of relu, tanh, "):
        train(
            "default",
            out=tmp_path / "bad",
            policy="mlp",
            timesteps=64,
            n_envs=1,
            progress=False,
            hyperparameters={**tiny, "policy_kwargs": {"activation_fn": "swish"}},
        )
