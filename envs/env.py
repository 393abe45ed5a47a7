"""The Gymnasium environment: one simulated user per episode."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..encoders import Encoder
from ..scenarios import ScenarioRef, load_scenario
from . import rng as crng
from .features import FEATURE_HIGH, FEATURE_LOW
from .simulator import UserBatch
from .world import World, build_world


def observation_space(world: World) -> spaces.Dict:
    """The Dict observation space of a world (fixed shapes, float32)."""
    k, p = world.scenario.candidates.k, world.project_dim
    proj = world.projection
    # Unit vectors x project to (x - mean) @ W * scale, whose entries are bounded by
    # (1 + |mean|) * scale since W has orthonormal columns.
    bound = np.float32((1.0 + float(np.linalg.norm(proj.mean))) * proj.scale * 1.001)
    return spaces.Dict(
        {
            "user": spaces.Box(-bound, bound, shape=(p,), dtype=np.float32),
            "candidates": spaces.Box(-bound, bound, shape=(k, p), dtype=np.float32),
            "candidate_features": spaces.Box(
                np.tile(FEATURE_LOW, (k, 1)), np.tile(FEATURE_HIGH, (k, 1)), dtype=np.float32
            ),
            "action_mask": spaces.MultiBinary(k),
        }
    )


def action_space(world: World) -> spaces.Discrete | spaces.MultiDiscrete:
    """The action space of a world: ``Discrete(K)``, or ``MultiDiscrete([K] * L)`` for slates of
    L = ``candidates.slate_size`` > 1 items."""
    c = world.scenario.candidates
    if c.slate_size > 1:
        return spaces.MultiDiscrete(np.full(c.slate_size, c.k, dtype=np.int64))
    return spaces.Discrete(c.k)


def action_masks(users: UserBatch) -> np.ndarray:
    """(N, K) bool valid-candidate masks of ``users``, in sb3-contrib's layout for the action
    space: on slates of L > 1 (``MultiDiscrete([K] * L)``) each row is the K mask repeated for
    every position, (N, L * K), as MaskablePPO expects of a MultiDiscrete space."""
    if users.slate > 1:
        return np.tile(users.mask, (1, users.slate))
    return users.mask.copy()


def step_info(info: dict[str, Any], row: int, world: World) -> dict[str, Any]:
    """The info dict of one user from a batched info dict (numpy scalars become Python scalars),
    with the recommended item's catalog id added as ``item_id``."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        v = value[row]
        out[key] = v.item() if isinstance(v, np.generic) else v
    out["item_id"] = str(world.catalog.item_ids[out["item_index"]])
    return out


class RenderModeError(ValueError, TypeError):
    """An unsupported ``render_mode``. Also a ``TypeError``: stable-baselines3's ``make_vec_env``
    asks for ``render_mode="rgb_array"`` and, on a TypeError, makes the env without one."""


def check_render_mode(render_mode: str | None, modes: list[str]) -> None:
    """Refuse a render mode not in ``modes`` (an env's ``metadata["render_modes"]``) with a
    :class:`RenderModeError`."""
    if render_mode is not None and render_mode not in modes:
        raise RenderModeError(f"render_mode: {render_mode!r} (expected None or one of {modes})")


class RecommendationEnv(gym.Env):
    """Recommend one item per step to a simulated user whose taste is hidden.

    ## Description
    Each episode is one user's session. The user has a hidden taste vector built from a persona text
    ("enjoys hard sci-fi and space documentaries, avoids romance") encoded by a language model, plus
    noise. Each step the environment offers K candidate items; the agent picks one; the user clicks
    with probability ``sigmoid(beta*(cos(taste, item) - center) + gamma*log popularity + appeal -
    fatigue + bias)``, rates and dwells by their satisfaction, loses patience on skips and click-bait
    and leaves when it runs out. Consumption pulls the taste toward what was consumed, and the
    scenario may make it drift.

    ## Observation
    ``Dict`` of float32 arrays with fixed shapes (p = ``encoder.project_dim``, K = ``candidates.k``):

    * ``user`` (p,): the visible user state -- the language-model encoding of the user's history
      (``state.mode``: ``pooled``, ``text`` or ``events``), projected by a PCA fitted on the
      catalog; all zeros for a user who has shown nothing (then ``candidate_features[:, 4]`` is 1).
    * ``candidates`` (K, p): projected embeddings of the candidate items.
    * ``candidate_features`` (K, 17), from the visible history only (``envs/features.py``): log
      popularity / 5, is a new item, shown in the recent window, share of recent recommendations
      with the same topic, user has no visible state, session progress t / horizon, mean cosine to
      the recently clicked items, mean cosine to the recently skipped items, recency-weighted
      exposure of the candidate's topic, the smoothed click rate of that topic's recent
      recommendations (clicks / (times shown + 1): 0 for a topic not shown); a second, short
      time scale (half-life one step): recency-weighted cosine to the clicked and to the skipped
      items, cosine to the last click, and the recency-weighted share of skips; and this session
      so far, each over the horizon: steps with a click, steps without one, and the sum of
      (rating - 3) over its clicks (the visible trace of the user's patience).
      "Recent" is the last max(10, ``state.history_window``) steps; a returning user's window
      starts filled with the past items the user brings (as clicks).
    * ``action_mask`` (K,) int8: 1 for slots holding a valid item.

    ## Action
    ``Discrete(K)``: the candidate slot to recommend. A masked slot shows nothing: the user skips.
    With ``candidates.slate_size`` L > 1, ``MultiDiscrete([K] * L)``: a slate of L slots, shown
    together; the user clicks at most one item (a multinomial logit with a no-click option,
    ``UserBatch.step_slates``). A masked or repeated slot shows nothing at its position.

    ## Reward
    The scenario's ``reward.name``: ``click`` (1 per click), ``rating`` (rating / 5), ``dwell``
    (dwell / dwell_scale), ``engagement`` (weighted mix), ``cosine`` (relu(cos + 1)).

    ## Episode end
    Terminated when the user's patience runs out (churn); truncated at ``episode.horizon`` steps.

    ## Info
    ``item_index``, ``item_id``, ``clicked``, ``rating``, ``dwell``, ``satisfaction``, ``affinity``
    (hidden cosine), ``click_probability``, ``is_new_user``, ``is_new_item``, ``popularity_rank``
    (0 = most popular), ``drift_event`` (True on the first step a changed taste serves),
    ``drift_phase`` (of the taste that served the step), ``patience``, ``invalid_action``,
    ``user_id``, ``step``, ``candidate_items`` (K,) and ``candidate_affinity`` (K,). With slates,
    the per-item entries describe the clicked item (or the first shown when nothing was clicked),
    ``click_probability`` is the chance of any click, and ``slate_items`` (L,) (-1: nothing shown),
    ``slate_slots`` (L,), ``clicked_position`` (-1: no click) and ``slate_click_probability`` (L,)
    are added.

    ## Arguments
    * ``scenario``: a shipped scenario name, a path to a YAML file, a ``Scenario``, or a mapping
      of scenario keys (``{"extends": "default", "candidates": {"slate_size": 3}}``).
    * ``encoder``: use this encoder instead of the scenario's (tests, custom models).
    * ``world``: a prebuilt world (shared between envs; overrides ``scenario``).
    * ``render_mode``: ``"ansi"`` renders the user's history text.
    """

    # render_fps: Gymnasium warns without one; text has no frame rate, 4 is what its toy-text envs use.
    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        scenario: ScenarioRef = "default",
        *,
        encoder: Encoder | None = None,
        world: World | None = None,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        check_render_mode(render_mode, self.metadata["render_modes"])
        if world is None:
            world = build_world(load_scenario(scenario), encoder=encoder)
        self.world = world
        self.scenario = world.scenario
        self.render_mode = render_mode
        self.observation_space = observation_space(world)
        self.action_space = action_space(world)
        self._users = UserBatch(world, 1, rich_info=True)
        self._row = np.zeros(1, dtype=np.int64)
        self._needs_reset = True

    @property
    def users(self) -> UserBatch:
        """The underlying batch of one user (hidden state included; for metrics and oracles)."""
        return self._users

    def _obs(self) -> dict[str, np.ndarray]:
        obs = self._users.observe(self._row)
        return {key: value[0] for key, value in obs.items()}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        key = crng.episode_key(self.np_random)
        self._users.reset_users(self._row, np.array([key], dtype=np.uint64))
        self._needs_reset = False
        u = self._users
        info = {
            "user_id": int(u.user_id[0]),
            "is_new_user": bool(u.new_user[0]),
            "persona": self.world.personas[int(u.persona[0])].name,
            "candidate_items": u.cand[0].copy(),
            "candidate_affinity": u.candidate_affinity(self._row)[0],
        }
        return self._obs(), info

    def step(
        self, action: int | np.integer | np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (and after an episode ends)")
        reward, terminated, truncated, info = self._users.step(action)
        out = step_info(info, 0, self.world)
        term, trunc = bool(terminated[0]), bool(truncated[0])
        self._needs_reset = term or trunc
        return self._obs(), float(reward[0]), term, trunc, out

    def action_masks(self) -> np.ndarray:
        """Valid actions, for sb3-contrib's MaskablePPO: bool, (K,), or (L * K,) on slates (the K
        mask for each position: a masked slot is never recommended, a repeated one shows
        nothing)."""
        return action_masks(self._users)[0]

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self._users.history_text(0)
        return None
