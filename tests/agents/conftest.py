"""Fixtures for the agent tests: a tiny scenario world and a VecEnv wrapper that masks slots."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv  # noqa: E402
from lmrecsim.envs.world import World, build_world  # noqa: E402
from lmrecsim.scenarios import load_scenario, scenario_from_dict  # noqa: E402
from lmrecsim.scenarios.loader import deep_merge, scenario_to_dict  # noqa: E402

# Small catalog, short sessions, few candidates: a world that builds and trains in seconds. A
# lower skip cost than default keeps sessions long enough for a clear random-to-oracle gap
# (measured: random 4.8, greedy 5.3, oracle 8.6 per episode).
TINY = {
    "name": "tiny",
    "catalog": {"n_items": 200},
    "candidates": {"k": 10},
    "episode": {"horizon": 30},
    "users": {"patience": {"skip_cost": 0.03}},
    "encoder": {"project_dim": 16},
}


def tiny_scenario(**override: Any) -> Any:
    data = deep_merge(scenario_to_dict(load_scenario("default")), TINY)
    return scenario_from_dict(deep_merge(data, override))


@pytest.fixture(scope="session")
def tiny_world() -> World:
    return build_world(tiny_scenario(), show_progress=False)


class RandomMaskVecEnv(VecEnvWrapper):
    """Masks a random half of the slots of every observation (always leaving one valid).

    The env itself rarely masks anything; this makes every decision a masked one, so a test can
    check that no algorithm ever picks a masked slot. Both ``obs["action_mask"]`` and
    ``action_masks()`` (MaskablePPO) report the same masks.
    """

    def __init__(self, venv: VecEnv, seed: int = 0) -> None:
        super().__init__(venv)
        self.rng = np.random.default_rng(seed)
        self.masks = np.ones((venv.num_envs, venv.action_space.n), dtype=bool)
        self.invalid_actions = 0

    def _remask(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n, k = self.masks.shape
        masks = self.rng.random((n, k)) < 0.5
        masks[np.arange(n), self.rng.integers(k, size=n)] = True
        self.masks = masks & (obs["action_mask"] > 0)
        self.masks[~self.masks.any(axis=1), 0] = True
        obs = dict(obs)
        obs["action_mask"] = self.masks.astype(np.int8)
        return obs

    def reset(self) -> dict[str, np.ndarray]:
        return self._remask(self.venv.reset())

    def step_async(self, actions: np.ndarray) -> None:
        acts = np.asarray(actions).reshape(-1)
        self.invalid_actions += int((~self.masks[np.arange(acts.size), acts]).sum())
        self.venv.step_async(actions)

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        return self._remask(obs), rewards, dones, infos

    def action_masks(self) -> np.ndarray:
        return self.masks.copy()

    def env_method(
        self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any
    ) -> list[Any]:
        if method_name == "action_masks":
            return list(self.masks.copy())
        return self.venv.env_method(method_name, *args, indices=indices, **kwargs)


# ---------------------------------------------------------------- held-out returns (slates)

EVAL_SEED = 5000  # sub-env i serves the users of seed 5000 + i: none of the training seeds
EVAL_EPISODES = 800


def first_episode_returns(world, act) -> np.ndarray:
    """(EVAL_EPISODES,) return of the first episode of each held-out seed under ``act``
    (slate tests: an agent against random slates on users no training run saw)."""
    venv = BatchedRecommendationVecEnv(world.scenario, EVAL_EPISODES, world=world)
    venv.seed(EVAL_SEED)
    obs = venv.reset()
    returns = np.zeros(EVAL_EPISODES)
    live = np.ones(EVAL_EPISODES, dtype=bool)
    while live.any():
        obs, reward, done, _ = venv.step(act(obs))
        returns += np.where(live, reward, 0.0)
        live &= ~done
    return returns


def random_slates(seed: int, size: int = 3):
    """An act function: ``size`` distinct valid slots per row, uniformly drawn."""
    rng = np.random.default_rng(seed)

    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.array([rng.permutation(np.flatnonzero(m))[:size] for m in obs["action_mask"]])

    return act


def assert_beats(agent: np.ndarray, random: np.ndarray, ratio: float) -> None:
    """The agent's returns beat random's on the same users: a mean paired difference above 2.5
    standard errors (one-sided p < 0.01), and a mean return above ``ratio`` times random's."""
    diff = agent - random
    se = diff.std(ddof=1) / np.sqrt(diff.size)
    assert diff.mean() > 2.5 * se, (agent.mean(), random.mean(), se)
    assert agent.mean() > ratio * random.mean(), (agent.mean(), random.mean())


def masked_slate_obs(world, n: int = 6) -> dict[str, np.ndarray]:
    """A batch of first observations with a random mask: row 0 all valid, row 1 only slots 2
    and 7 (fewer valid slots than a slate of three)."""
    venv = BatchedRecommendationVecEnv(world.scenario, n, world=world)
    venv.seed(77)
    obs = venv.reset()
    rng = np.random.default_rng(3)
    mask = rng.random(obs["action_mask"].shape) < 0.6
    mask[0] = True
    mask[1] = False
    mask[1, [2, 7]] = True  # fewer valid slots than positions
    obs["action_mask"] = mask.astype(obs["action_mask"].dtype)
    return obs
