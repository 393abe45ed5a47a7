"""Bad input to the Python API of evaluation, replay, OPE and the vector env: one line naming the
argument, before any work (found by an audit of the public functions)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import lmrecsim.envs  # noqa: F401 - registers lmrecsim/Recommend-v0
from lmrecsim.agents.baselines import GreedyPolicy
from lmrecsim.evaluation.errors import EvaluationError
from lmrecsim.evaluation.logs import LogError
from lmrecsim.evaluation.ope import evaluate_off_policy
from lmrecsim.evaluation.replay import replay_with_policy
from lmrecsim.evaluation.runner import evaluate
from lmrecsim.scenarios import scenario_from_dict
from lmrecsim.scenarios.loader import ScenarioError


@pytest.fixture(scope="module")
def scenario():
    return scenario_from_dict(
        {"extends": "default", "name": "api-inputs", "episode": {"horizon": 4}}
    )


@pytest.fixture(scope="module")
def log(scenario, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("log")
    evaluate(scenario, ["random"], seeds=[0], episodes=3, progress=False, out=out)
    return out / "episodes.parquet"


def _one_line(err: pytest.ExceptionInfo, *parts: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message


@pytest.mark.parametrize("policy", [object(), None, ("mine", object())])
def test_a_policy_without_predict_is_refused_before_the_rollout(log, tmp_path, policy) -> None:
    # Used to end in an AttributeError at the first step of the re-simulation.
    with pytest.raises(EvaluationError) as err:
        replay_with_policy(log, policy, tmp_path / "side")
    _one_line(err, "policy: ", "the SB3 predict method")
    with pytest.raises(EvaluationError) as err:
        evaluate_off_policy(log, policy, with_ground_truth=False)
    _one_line(err, "policy: ", "the SB3 predict method")
    assert not (tmp_path / "side").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"estimators": "ips"}, "estimators: 'ips' (expected None for the log's defaults"),
        ({"estimators": []}, "estimators: [] (expected None"),
        ({"seed": -1}, "seed: -1 (expected an integer >= 0"),
        ({"seed": 1.5}, "seed: 1.5 (expected an integer >= 0"),
    ],
)
def test_ope_arguments_are_checked(log, kwargs, message) -> None:
    # A string was read letter by letter ("'i' is unknown"), [] as every estimator, and a bad
    # seed reached numpy's SeedSequence.
    with pytest.raises(LogError) as err:
        evaluate_off_policy(log, "greedy", with_ground_truth=False, **kwargs)
    _one_line(err, message)


@pytest.mark.parametrize("n_resamples", [0, -5, 1.5])
def test_side_by_side_resamples_are_checked(log, tmp_path, n_resamples) -> None:
    with pytest.raises(EvaluationError) as err:
        replay_with_policy(log, "greedy", tmp_path / "side", n_resamples=n_resamples)
    _one_line(err, f"n_resamples: {n_resamples!r} (expected an integer >= 1)")


class _Broken(GreedyPolicy):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def action_probabilities(self, observation):
        k = observation["action_mask"].shape[0]
        if self.mode == "nan":
            return np.full(k, np.nan)
        if self.mode == "short":
            return np.full(3, 1 / 3)
        if self.mode == "text":
            return ["a"] * k
        return super().action_probabilities(observation)

    def scores(self, observation):
        if self.mode == "nan_scores":
            return np.full(observation["action_mask"].shape[0], np.nan)
        return super().scores(observation)


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("nan", "action_probabilities returned [nan"),
        ("short", "action_probabilities returned shape (3,) (expected (20,)"),
        ("nan_scores", "scores returned NaN (expected 20 numbers"),
        ("text", "action_probabilities returned ['a', 'a', "),
    ],
)
def test_a_policys_bad_probabilities_or_scores_are_named(scenario, mode, message) -> None:
    # Used to surface as numpy's "all input arrays must have the same shape" or a ranking
    # metric's NaN complaint, naming neither the policy nor its method.
    with pytest.raises(EvaluationError) as err:
        evaluate(scenario, [("bad", _Broken(mode))], seeds=[0], episodes=1, progress=False)
    _one_line(err, "policy 'bad': ", message)


@pytest.mark.parametrize(
    ("kwargs", "seed", "message"),
    [
        ({}, 1.5, "reset: seed 1.5 (expected None, an integer >= 0, or a list of 3 such seeds)"),
        ({}, "a", "reset: seed 'a' (expected None"),
        ({}, [0, -1, 2], "seed: -1 (expected None or an integer >= 0)"),
        ({"max_episode_steps": 2.5}, None, "max_episode_steps: 2.5 (expected None or an integer"),
        ({"autoreset_mode": "bogus"}, None, "autoreset_mode: 'bogus' (expected"),
    ],
)
def test_vector_env_arguments_are_named(scenario, kwargs, seed, message) -> None:
    # 1.5 used to fail in list(seed), and max_episode_steps=2.5 truncated after step 3.
    with pytest.raises(ValueError) as err:
        v = gym.make_vec(
            "lmrecsim/Recommend-v0",
            num_envs=3,
            vectorization_mode="vector_entry_point",
            scenario=scenario,
            **kwargs,
        )
        v.reset(seed=seed)
    _one_line(err, message)
    v = gym.make_vec(
        "lmrecsim/Recommend-v0",
        num_envs=3,
        vectorization_mode="vector_entry_point",
        scenario=scenario,
    )
    obs, _ = v.reset(seed=np.int64(3))  # a numpy integer is an integer
    again, _ = v.reset(seed=[3, 4, 5])
    np.testing.assert_array_equal(obs["user"], again["user"])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["x"], "<dict>: a list (expected a mapping of scenario keys)"),
        (None, "<dict>: a NoneType (expected a mapping of scenario keys)"),
        ({"name": "a\nb"}, "name: 'a\\nb' is invalid (expected printable text"),
    ],
)
def test_a_scenario_that_is_not_a_mapping_or_has_a_newline_in_its_name(data, message) -> None:
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(data)
    _one_line(err, message)


def test_ope_reads_a_generator_of_estimators_once(log) -> None:
    # The emptiness check used the generator up: no estimates and an empty ope.csv, silently.
    result = evaluate_off_policy(
        log, "greedy", estimators=(name for name in ("ips", "snips")), with_ground_truth=False
    )
    assert list(result.table()["estimator"]) == ["ips", "snips"]


class _ZeroForItsOwnAction(GreedyPolicy):
    def action_probabilities(self, observation):
        probs = super().action_probabilities(observation)
        return np.roll(probs, 1)  # all its mass on another slot than the one predict chooses


def test_a_zero_probability_for_the_action_taken_is_refused(scenario) -> None:
    # Logged as propensity 0: read_step_log accepted it, only a later ope refused the log.
    with pytest.raises(EvaluationError) as err:
        evaluate(
            scenario, [("zero", _ZeroForItsOwnAction())], seeds=[0], episodes=1, progress=False
        )
    _one_line(err, "policy 'zero': action_probabilities returned 0 for slot ", "which its predict")


def test_exposure_of_a_label_not_evaluated_is_an_error(scenario) -> None:
    result = evaluate(scenario, ["random"], seeds=[0], episodes=1, progress=False)
    assert result.exposure("random").sum() > 0
    with pytest.raises(EvaluationError) as err:
        result.exposure("randon")
    _one_line(err, "exposure: no policy 'randon' in this evaluation (expected one of 'random')")


@pytest.mark.parametrize("label", ["", "  ", "a\nb", "tab\there"])
def test_a_blank_or_control_character_label_is_refused(scenario, label) -> None:
    # "" was accepted and made a blank row in every table.
    with pytest.raises(EvaluationError) as err:
        evaluate(scenario, [(label, GreedyPolicy())], seeds=[0], episodes=1, progress=False)
    _one_line(err, f"policies: label {label!r} is invalid (expected a non-blank label")


def test_a_mapping_of_labels_to_spec_strings_is_evaluated_as_label_spec() -> None:
    # {"mine": "greedy"} was refused: "policies: ('mine', 'greedy') is invalid".
    import pandas as pd

    small = {"extends": "default", "episode": {"horizon": 5}}
    by_map = evaluate(small, {"mine": "greedy"}, seeds=[1], episodes=2, progress=False)
    by_spec = evaluate(small, ["mine=greedy"], seeds=[1], episodes=2, progress=False)
    assert list(by_map.summary["policy"]) == ["mine", "random"]
    pd.testing.assert_frame_equal(by_map.summary, by_spec.summary)
