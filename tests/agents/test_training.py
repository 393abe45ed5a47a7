"""Short training runs: a tiny scenario is learned measurably better than random, on unseen users."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from lmrecsim.agents.base import RandomPolicy
from lmrecsim.agents.build import build_model
from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv
from lmrecsim.evaluation.rollout import episode_returns, run_policy

TRAIN_SEED = 0
EVAL_SEEDS = [5000, 5001, 5002, 5003]
# 160 paired episodes: with 60, the paired difference's standard error (about 0.35) left a
# training seed's real gain of 0.8 per episode under the bar (measured over training seeds 0-3 at
# one torch thread: t = 2.3 to 3.7 with 60 episodes, 3.4 to 6.8 with 160).
EPISODES = 40


class _UserLog(BaseCallback):
    """Records the ids of every user the training env served."""

    def __init__(self) -> None:
        super().__init__()
        self.users: set[int] = set()

    def _on_step(self) -> bool:
        self.users.update(int(u) for u in self.training_env.users.user_id)
        return True


@pytest.fixture(scope="module")
def trained(tiny_world):
    # One torch thread, as `lmrecsim train` uses by default: the thread count changes the
    # floating-point sums and so the trained model, and whether an earlier test in the session
    # had set it made this model differ with the order the tests ran in.
    threads = th.get_num_threads()
    th.set_num_threads(1)
    try:
        return _train(tiny_world)
    finally:
        th.set_num_threads(threads)


def _train(tiny_world):
    venv = BatchedRecommendationVecEnv(tiny_world.scenario, 8, world=tiny_world)
    venv.seed(TRAIN_SEED)
    model = build_model(
        "ppo",
        venv,
        seed=TRAIN_SEED,
        hyperparameters={"n_steps": 64, "batch_size": 128, "n_epochs": 5, "learning_rate": 1e-3},
    )
    log = _UserLog()
    model.learn(total_timesteps=24_000, callback=log)
    return model, log.users


def _returns(world, policy, label: str) -> np.ndarray:
    steps, _ = run_policy(world, policy, label=label, seeds=EVAL_SEEDS, episodes=EPISODES)
    table = episode_returns(steps).sort_values(["seed", "episode"])
    return table["ret"].to_numpy()


@pytest.mark.slow
def test_short_ppo_run_beats_random_on_paired_episodes(tiny_world, trained) -> None:
    model, _ = trained
    agent = _returns(tiny_world, model, "ppo")
    random = _returns(tiny_world, RandomPolicy(seed=0), "random")
    # Paired: the same users and random numbers for both policies, episode by episode. A mean
    # paired difference above 2.5 standard errors is one-sided p < 0.01 over 160 episodes.
    diff = agent - random
    se = diff.std(ddof=1) / np.sqrt(diff.size)
    assert diff.mean() > 2.5 * se, (agent.mean(), random.mean(), se)
    # Training seeds 0-3 gave 1.14x to 1.27x random's return here.
    assert agent.mean() > 1.1 * random.mean()


@pytest.mark.slow
def test_evaluation_users_are_not_training_users(tiny_world, trained) -> None:
    _, train_users = trained
    steps, _ = run_policy(tiny_world, RandomPolicy(seed=0), label="r", seeds=EVAL_SEEDS, episodes=2)
    eval_users = set(steps["user_id"].astype(int))
    assert len(train_users) > 100 and len(eval_users) == len(EVAL_SEEDS) * 2
    assert train_users.isdisjoint(eval_users)
    assert TRAIN_SEED not in EVAL_SEEDS


def test_per_algorithm_hyperparameter_sections_reach_the_model(tmp_path) -> None:
    from lmrecsim.agents.train import train
    from lmrecsim.scenarios import load_scenario

    from .conftest import tiny_scenario

    sc = tiny_scenario(
        agent={
            "n_envs": 2,
            "hyperparameters": {
                "ppo": {"n_steps": 16, "batch_size": 32, "n_epochs": 3},
                "dqn": {"learning_starts": 7, "train_freq": 2},
            },
        }
    )
    assert sc.agent.hyperparameters_for("maskable_ppo") == {}
    ppo = train(sc, out=tmp_path / "ppo", algo="ppo", timesteps=32, progress=False)
    assert (ppo.model.n_steps, ppo.model.n_epochs) == (16, 3)
    resolved = load_scenario(tmp_path / "ppo" / "scenario.yaml")
    # Keys the file does not set are inherited from default.yaml's sections, and the resolved
    # file keeps the sections: the one that ran, and the other, for a run with --algo dqn.
    inherited = load_scenario("default").agent.hyperparameters
    ppo_section = {**inherited["ppo"], "n_steps": 16, "batch_size": 32, "n_epochs": 3}
    dqn_section = {**inherited["dqn"], "learning_starts": 7, "train_freq": 2}
    assert resolved.agent.hyperparameters == {"ppo": ppo_section, "dqn": dqn_section}
    dqn = train(
        sc,
        out=tmp_path / "dqn",
        algo="dqn",
        timesteps=16,
        progress=False,
        hyperparameters={"train_freq": 1},
    )
    assert (dqn.model.learning_starts, dqn.model.train_freq.frequency) == (7, 1)
    # The command line's train_freq is in the section that ran; the ppo section is the file's.
    again = load_scenario(tmp_path / "dqn" / "scenario.yaml")
    assert again.agent.hyperparameters == {
        "ppo": ppo_section,
        "dqn": {**dqn_section, "train_freq": 1},
    }
    # So the DQN run's scenario.yaml trains PPO as the original did (its dqn-only dueling key
    # used to reach PPO and be refused).
    rerun = train(again, out=tmp_path / "ppo2", algo="ppo", timesteps=32, progress=False)
    assert (rerun.model.n_steps, rerun.model.n_epochs) == (16, 3)


def test_linear_schedules_in_a_scenario_anneal_the_optimizer_and_reload(tmp_path) -> None:
    import pytest

    from lmrecsim.agents.build import build_model, load_model
    from lmrecsim.agents.errors import AgentError
    from lmrecsim.agents.train import train

    from .conftest import tiny_scenario

    hp = {"ppo": {"n_steps": 16, "batch_size": 32, "n_epochs": 1}}
    # YAML reads 2e-4 (no dot) as the text "2e-4"; a schedule takes it as the number.
    hp["ppo"]["learning_rate"] = {"linear": [1e-3, "2e-4"]}
    hp["ppo"]["clip_range"] = {"linear": [0.3, 0.1]}
    sc = tiny_scenario(agent={"n_envs": 2, "hyperparameters": hp})
    res = train(sc, out=tmp_path / "ppo", algo="ppo", timesteps=64, progress=False)
    model = res.model
    assert model.lr_schedule(1.0) == pytest.approx(1e-3)
    assert model.lr_schedule(0.25) == pytest.approx(4e-4)
    assert model.clip_range(0.5) == pytest.approx(0.2)
    # The last update ran at the end of training, with the schedule's end value.
    assert model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(2e-4)
    reloaded = load_model("ppo", tmp_path / "ppo")
    assert reloaded.lr_schedule(0.5) == pytest.approx(6e-4)
    for bad in ({"linear": [1e-3]}, {"cosine": [1e-3, 0]}, {"linear": ["a", 0]}):
        with pytest.raises(AgentError, match=r"agent.hyperparameters.learning_rate: expected"):
            build_model("ppo", res.model.get_env(), hyperparameters={"learning_rate": bad})


@pytest.mark.parametrize("algo", ["ppo", "dqn", "maskable_ppo"])
def test_policy_kwargs_the_candidate_scorer_cannot_honour_are_refused(tiny_world, algo) -> None:
    from lmrecsim.agents.errors import AgentError

    venv = BatchedRecommendationVecEnv(tiny_world.scenario, 2, world=tiny_world)
    with pytest.raises(AgentError, match=r"policy_kwargs\.net_arch: the candidate scorer is sized"):
        build_model(algo, venv, hyperparameters={"policy_kwargs": {"net_arch": [64, 64]}})
    with pytest.raises(AgentError, match=r"policy_kwargs\.features_extractor_class"):
        build_model(
            algo, venv, hyperparameters={"policy_kwargs": {"features_extractor_class": object}}
        )
    # What sizes the scorer is honoured: one hidden layer of 32 units.
    kwargs = {"features_extractor_kwargs": {"hidden": 32, "n_layers": 1}}
    model = build_model(algo, venv, hyperparameters={"policy_kwargs": kwargs})
    widths = {m.out_features for m in model.policy.modules() if isinstance(m, th.nn.Linear)}
    assert 32 in widths and 128 not in widths  # 128: the default hidden size
    # The MLP policy takes net_arch as SB3 does.
    mlp = build_model(
        algo, venv, policy="mlp", hyperparameters={"policy_kwargs": {"net_arch": [24, 24]}}
    )
    assert 24 in {m.out_features for m in mlp.policy.modules() if hasattr(m, "out_features")}


@pytest.mark.parametrize(
    ("algo", "hyperparameters", "message"),
    [
        # 2**40 steps of K x p float32 observations: petabytes, past any address space.
        (
            "ppo",
            {"n_steps": 2**40},
            rf"^agent\.hyperparameters\.n_steps: {2**40} steps of each of the 2 envs do not fit "
            r"in memory \(Unable to allocate .*; expected a smaller n_steps\)$",
        ),
        # Past numpy's largest dimension: a ValueError, not a MemoryError.
        (
            "maskable_ppo",
            {"n_steps": 10**20},
            rf"^agent\.hyperparameters\.n_steps: {10**20} steps of each of the 2 envs do not fit "
            r"in memory \(Maximum allowed dimension exceeded; expected a smaller n_steps\)$",
        ),
        (
            "dqn",
            {"buffer_size": 2**42},
            rf"^agent\.hyperparameters\.buffer_size: {2**42} rows do not fit in memory "
            r"\(Unable to allocate .*; expected a smaller buffer_size\)$",
        ),
    ],
)
def test_a_buffer_too_large_for_memory_is_one_line_naming_the_key(
    tiny_world, algo, hyperparameters, message
) -> None:
    # Used to end in a traceback (numpy's MemoryError or ValueError) out of SB3's constructor.
    from lmrecsim.agents.errors import AgentError

    venv = BatchedRecommendationVecEnv(tiny_world.scenario, 2, world=tiny_world)
    with pytest.raises(AgentError, match=message):
        build_model(algo, venv, hyperparameters=hyperparameters)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("seed", "agent.seed or --seed"),
        ("device", "none: the networks train on the CPU"),
        ("verbose", "none: progress.csv and tb/ record training"),
        ("tensorboard_log", "none: lmrecsim train writes TensorBoard logs to OUT/tb"),
        ("policy", "agent.policy or --policy"),
    ],
)
def test_a_constructor_argument_lmrecsim_sets_is_refused_as_a_hyperparameter(
    tiny_world, key, expected
) -> None:
    # `--hp seed=1` used to reach SB3 as "PPO() got multiple values for keyword argument 'seed'",
    # and `scenarios validate --build` passed a file that gave one.
    from lmrecsim.agents.build import check_hyperparameters
    from lmrecsim.agents.errors import AgentError

    message = (
        f"agent.hyperparameters.{key}: set by lmrecsim, not a hyperparameter (expected {expected})"
    )
    venv = BatchedRecommendationVecEnv(tiny_world.scenario, 2, world=tiny_world)
    for algo in ("ppo", "dqn"):
        with pytest.raises(AgentError) as exc:
            build_model(algo, venv, hyperparameters={key: 1})
        assert str(exc.value) == message
        with pytest.raises(AgentError) as exc:
            check_hyperparameters(algo, {key: 1})
        assert str(exc.value) == message


@pytest.mark.parametrize(
    ("algo", "policy", "hyperparameters", "message"),
    [
        (
            "ppo",
            "candidate_scorer",
            {"learning_rate": None},
            "agent.hyperparameters.learning_rate: None is invalid (expected a number or "
            "{linear: [start, end]})",
        ),
        (
            "dqn",
            "candidate_scorer",
            {"learning_rate": None},
            "agent.hyperparameters.learning_rate: None is invalid (expected a number or "
            "{linear: [start, end]})",
        ),
        (
            "ppo",
            "mlp",
            {"clip_range": None},
            "agent.hyperparameters.clip_range: None is invalid (expected a number or "
            "{linear: [start, end]})",
        ),
        (
            "ppo",
            "candidate_scorer",
            {"policy_kwargs": 5},
            "agent.hyperparameters.policy_kwargs: 5 is invalid (expected a mapping of policy "
            "arguments)",
        ),
        (
            "dqn",
            "mlp",
            {"policy_kwargs": [64, 64]},
            "agent.hyperparameters.policy_kwargs: [64, 64] is invalid (expected a mapping of "
            "policy arguments)",
        ),
    ],
)
def test_values_sb3_refused_in_its_own_words_are_named_by_key(
    tiny_world, algo, policy, hyperparameters, message
) -> None:
    # `--hp learning_rate=` (null) used to end in SB3's "The learning rate schedule must be a
    # float or a callable, not None", `--hp policy_kwargs=5` in "argument after ** must be a
    # mapping, not int": one line, but naming neither the key nor what was expected.
    from lmrecsim.agents.build import check_hyperparameters
    from lmrecsim.agents.errors import AgentError

    venv = BatchedRecommendationVecEnv(tiny_world.scenario, 2, world=tiny_world)
    with pytest.raises(AgentError) as exc:
        build_model(algo, venv, policy=policy, hyperparameters=hyperparameters)
    assert str(exc.value) == message
    with pytest.raises(AgentError) as exc:
        check_hyperparameters(algo, hyperparameters, policy)
    assert str(exc.value) == message


def test_null_clip_range_vf_and_policy_kwargs_are_sb3_defaults(tiny_world) -> None:
    # SB3's own default of both is None (no value clipping; no policy arguments).
    venv = BatchedRecommendationVecEnv(tiny_world.scenario, 2, world=tiny_world)
    model = build_model("ppo", venv, hyperparameters={"clip_range_vf": None, "policy_kwargs": None})
    assert model.clip_range_vf is None


def test_a_damaged_model_file_is_one_line_saying_what_was_expected(tiny_world, tmp_path) -> None:
    # A model.zip without its policy.optimizer.pth used to read "cannot load a ppo model
    # ('policy.optimizer')": the missing part's name in quotes, and no word of what was expected.
    import zipfile

    from lmrecsim.agents.build import load_model
    from lmrecsim.agents.errors import AgentError

    venv = BatchedRecommendationVecEnv(tiny_world.scenario, 2, world=tiny_world)
    whole = tmp_path / "whole.zip"
    build_model("ppo", venv, hyperparameters={"n_steps": 8, "batch_size": 16}).save(whole)
    partial = tmp_path / "partial.zip"
    with zipfile.ZipFile(whole) as src, zipfile.ZipFile(partial, "w") as dst:
        for name in src.namelist():
            if name != "policy.optimizer.pth":
                dst.writestr(name, src.read(name))
    garbage = tmp_path / "garbage.zip"
    garbage.write_bytes(b"not a zip file")
    expected = "; expected a model.zip saved by lmrecsim train or SB3's save)"
    with pytest.raises(AgentError) as exc:
        load_model("ppo", partial)
    assert str(exc.value) == (
        f"{partial}: cannot load a ppo model ('policy.optimizer' is missing{expected}"
    )
    # A data file without the spaces: SB3's KeyError holds a sentence, not a part's name.
    no_spaces = tmp_path / "no_spaces.zip"
    with zipfile.ZipFile(no_spaces, "w") as dst:
        dst.writestr("data", "{}")
    with pytest.raises(AgentError) as exc:
        load_model("ppo", no_spaces)
    assert str(exc.value) == (
        f"{no_spaces}: cannot load a ppo model (incomplete saved data: The observation_space and "
        f"action_space were not given, can't verify new environments{expected}"
    )
    with pytest.raises(AgentError) as exc:
        load_model("ppo", garbage)
    assert str(exc.value).startswith(f"{garbage}: cannot load a ppo model (")
    assert str(exc.value).endswith(expected)
    assert "\n" not in str(exc.value)
    # The file is named at the start; SB3's name for the bytes it was read into is left out.
    assert "BytesIO" not in str(exc.value), str(exc.value)


def test_a_model_loaded_onto_an_env_of_other_shapes_says_which_key(tmp_path):
    # SB3's message was both spaces' whole reprs, cut off mid-array of bounds.
    from lmrecsim import make_vec_env
    from lmrecsim.agents.build import load_model
    from lmrecsim.agents.errors import AgentError
    from lmrecsim.agents.train import train

    train(
        "default",
        out=tmp_path / "run",
        timesteps=64,
        n_envs=1,
        validate_every=0,
        progress=False,
        hyperparameters={"n_steps": 64, "batch_size": 64, "n_epochs": 1},
    )
    # The algorithm is the argument here, not the scenario key agent.algo.
    with pytest.raises(AgentError, match="^algo: 'sac' is not one of ppo, dqn"):
        load_model("sac", tmp_path / "run")
    venv = make_vec_env({"extends": "default", "candidates": {"k": 10}}, n_envs=1)
    with pytest.raises(AgentError) as exc:
        load_model("ppo", tmp_path / "run", env=venv)
    assert str(exc.value) == (
        f"{tmp_path / 'run' / 'model.zip'}: the model's observation 'action_mask' is MultiBinary "
        "(20,), the env's is MultiBinary (10,) (expected an env of the scenario the model was "
        "trained on)"
    )
