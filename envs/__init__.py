"""The simulated world: catalog, users, response model, candidates and the Gymnasium env.

``make_env(scenario)`` builds a :class:`RecommendationEnv`; ``make_vec_env(scenario, n_envs)`` the
batched SB3 ``VecEnv``. The env is also registered as ``lmrecsim/Recommend-v0``::

    import gymnasium as gym
    import lmrecsim.envs  # registers the id
    env = gym.make("lmrecsim/Recommend-v0", scenario="default")
    venv = gym.make_vec("lmrecsim/Recommend-v0", num_envs=64, vectorization_mode="vector_entry_point")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium as gym

from ..scenarios import ScenarioRef, load_scenario

if TYPE_CHECKING:
    from .env import RecommendationEnv
    from .vec_env import BatchedRecommendationVecEnv


ENV_ID = "lmrecsim/Recommend-v0"

if ENV_ID not in gym.registry:
    gym.register(
        id=ENV_ID,
        entry_point="lmrecsim.envs.env:RecommendationEnv",
        # gym.make_vec(ENV_ID, num_envs=N, vectorization_mode="vector_entry_point") builds the
        # array-batched VectorEnv instead of N env objects.
        vector_entry_point="lmrecsim.envs.vector_env:RecommendationVectorEnv",
    )


def make_env(scenario: ScenarioRef = "default", **kwargs: Any) -> RecommendationEnv:
    """Build the single-user env of a scenario (name, path, ``Scenario`` or mapping of keys);
    ``kwargs`` go to :class:`~lmrecsim.envs.env.RecommendationEnv` (``render_mode``,
    ``encoder``)."""
    from .env import RecommendationEnv

    return RecommendationEnv(load_scenario(scenario), **kwargs)


def make_vec_env(
    scenario: ScenarioRef = "default", n_envs: int = 8, *, seed: int | None = None, **kwargs: Any
) -> BatchedRecommendationVecEnv:
    """Build the batched SB3 VecEnv of a scenario; sub-env i is seeded with ``seed + i``.

    ``kwargs`` go to :class:`~lmrecsim.envs.vec_env.BatchedRecommendationVecEnv`
    (``full_info``, ``encoder``, ``render_mode``). A ``seed`` that is not None or an integer >= 0 is a one-line
    ``ValueError`` before the world is built.
    """
    from .vec_env import BatchedRecommendationVecEnv, check_seed

    seed = check_seed(seed)
    venv = BatchedRecommendationVecEnv(load_scenario(scenario), n_envs, **kwargs)
    if seed is not None:
        venv.seed(seed)
    return venv


__all__ = ["ENV_ID", "make_env", "make_vec_env"]
