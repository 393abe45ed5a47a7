"""Every shipped scenario validates, states its question, builds a checked env and runs an episode."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from lmrecsim.cli import main
from lmrecsim.envs import make_env
from lmrecsim.envs.response import click_probability
from lmrecsim.scenarios import load_scenario, shipped_scenario_names
from lmrecsim.scenarios.loader import SHIPPED_DIR

NAMES = shipped_scenario_names()


@pytest.fixture(scope="module", params=NAMES)
def env(request: pytest.FixtureRequest):
    return make_env(request.param)


def test_the_issue_scenarios_are_shipped() -> None:
    assert {"default", "cold_start", "interest_drift", "long_tail", "clickbait"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_file_states_its_question_and_overrides_only_what_it_needs(name: str) -> None:
    text = (SHIPPED_DIR / f"{name}.yaml").read_text(encoding="utf-8")
    header = text.split("\n\n", 1)[0]
    assert text.startswith(f"# {name}.yaml"), "open with a comment naming the file"
    assert "Question:" in header and "Answered by:" in header
    raw = yaml.safe_load(text)
    scenario = load_scenario(name)
    assert scenario.name == name and scenario.description
    if name != "default":
        assert raw["extends"] == "default"
        # Short: it names its metrics and overrides a few blocks, not the whole schema.
        assert len(raw) <= 9
        assert "metrics" in raw.get("evaluation", {})
        # Every metric it configures is named in the header that explains the question.
        for metric in scenario.evaluation.metrics:
            assert metric in header, f"{metric} not explained in the header"


def test_validate_accepts_every_shipped_file(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(SHIPPED_DIR / f"{n}.yaml") for n in NAMES]
    assert main(["scenarios", "validate", *files]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(NAMES)


def test_env_passes_gymnasium_and_sb3_checkers(env) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=False)


def test_episode_runs_fast_and_reports_the_scenario_signals(env) -> None:
    sc = env.scenario
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=11)
    start = time.perf_counter()
    steps, done = 0, False
    while not done:
        valid = np.flatnonzero(obs["action_mask"])
        obs, reward, terminated, truncated, info = env.step(int(rng.choice(valid)))
        assert env.observation_space.contains(obs)
        assert np.isfinite(reward)
        for key in ("is_new_user", "is_new_item", "popularity_rank", "drift_phase", "drift_event"):
            assert key in info
        steps += 1
        done = terminated or truncated
    elapsed = time.perf_counter() - start
    assert 1 <= steps <= sc.episode.horizon
    assert elapsed < 1.0, f"{sc.name}: an episode took {elapsed:.2f} s"


def _click_probabilities(env) -> np.ndarray:
    """The true click probability of each current candidate (privileged: reads the hidden taste)."""
    users, world, sc = env.users, env.world, env.scenario
    cand = users.cand[0]
    topic = world.primary_topic[cand]
    return click_probability(
        sc.response,
        users.candidate_affinity()[0].astype(np.float64),
        world.log_pop_rel[cand].astype(np.float64),
        world.catalog.appeal[cand].astype(np.float64),
        users.fatigue[0, topic].astype(np.float64),
    )


def test_clickbait_greedy_click_chasing_loses_users() -> None:
    env = make_env("clickbait")
    n_episodes = 30
    results: dict[str, tuple[list[int], list[int]]] = {}
    for policy in ("max_click_probability", "max_affinity"):
        lengths, clicks = [], []
        for ep in range(n_episodes):
            env.reset(seed=500 + ep)
            done, t, c = False, 0, 0
            while not done:
                if policy == "max_click_probability":
                    score = _click_probabilities(env)
                else:
                    score = env.users.candidate_affinity()[0]
                score = np.where(env.users.mask[0], score, -np.inf)
                _, _, terminated, truncated, info = env.step(int(np.argmax(score)))
                done = terminated or truncated
                t += 1
                c += int(info["clicked"])
            lengths.append(t)
            clicks.append(c)
        results[policy] = (lengths, clicks)
    greedy_len, greedy_clicks = map(np.asarray, results["max_click_probability"])
    aff_len, aff_clicks = map(np.asarray, results["max_affinity"])
    # Sessions: greedy is shorter by far more than the standard error of the difference.
    diff = aff_len.mean() - greedy_len.mean()
    se = np.sqrt(aff_len.var(ddof=1) / n_episodes + greedy_len.var(ddof=1) / n_episodes)
    assert diff > 4 * se, (aff_len.mean(), greedy_len.mean(), se)
    # ... it wins the per-step click-through rate, and loses clicks per session.
    assert greedy_clicks.sum() / greedy_len.sum() > aff_clicks.sum() / aff_len.sum()
    assert greedy_clicks.mean() < aff_clicks.mean()


@pytest.mark.parametrize(
    ("parent", "child", "expect"),
    [
        # Sections over plain keys, and plain keys over sections: the child's form wins whole.
        ({"gamma": 0.9, "n_steps": 64}, {"ppo": {"gamma": 0.97}}, {"ppo": {"gamma": 0.97}}),
        ({"ppo": {"gamma": 0.97}, "dqn": {"gamma": 0.9}}, {"gamma": 0.8}, {"gamma": 0.8}),
        # Same form: merged key by key, as every other mapping (default.yaml's sections included).
        ({"ppo": {"gamma": 0.97}}, {"dqn": {"gamma": 0.9}}, None),
        ({"gamma": 0.9}, {"n_steps": 64}, {"gamma": 0.9, "n_steps": 64}),
    ],
)
def test_child_hyperparameters_in_the_other_form_replace_the_parents(
    tmp_path, parent: dict, child: dict, expect: dict | None
) -> None:
    (tmp_path / "parent.yaml").write_text(
        yaml.safe_dump({"extends": "default", "name": "p", "agent": {"hyperparameters": parent}})
    )
    (tmp_path / "child.yaml").write_text(
        yaml.safe_dump({"extends": "parent.yaml", "name": "c", "agent": {"hyperparameters": child}})
    )
    got = load_scenario(tmp_path / "child.yaml").agent.hyperparameters
    if expect is not None:
        assert got == expect
    else:
        defaults = load_scenario("default").agent.hyperparameters
        assert got == {
            "ppo": {**defaults["ppo"], "gamma": 0.97},
            "dqn": {**defaults["dqn"], "gamma": 0.9},
        }
