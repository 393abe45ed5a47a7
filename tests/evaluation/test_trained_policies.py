"""Trained SB3 models evaluated through ``ppo:PATH`` / ``dqn:PATH`` / ``maskable_ppo:PATH``."""

from __future__ import annotations

import numpy as np
import pytest

from lmrecsim.agents.train import train
from lmrecsim.evaluation import evaluate

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
