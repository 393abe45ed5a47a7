"""A batched stable-baselines3 ``VecEnv``: all users of all sub-environments in numpy arrays.

``BatchedRecommendationVecEnv(scenario, n_envs)`` behaves like
``DummyVecEnv([lambda: RecommendationEnv(scenario)] * n_envs)`` -- same observations, rewards,
dones and per-seed trajectories (sub-env i seeded with ``seed + i``) -- but steps every user with
array operations instead of N Python env objects. In ``pooled`` and ``events`` modes the match is
bit for bit; in ``text`` mode the language model's output for a text depends in its last bits
(up to about 1e-6) on which texts are encoded together, so the ``user`` observations agree to that
precision (and the slates exactly with ``candidates.nearest_to: pooled``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env import VecEnv

from ..encoders import Encoder
from ..scenarios import ScenarioRef, load_scenario
from . import rng as crng
from .env import (
    RecommendationEnv,
    action_masks,
    action_space,
    check_render_mode,
    observation_space,
    step_info,
)
from .simulator import UserBatch, check_count
from .world import World, build_world


def sub_env_seeds(seed: int, n_envs: int) -> range:
    """The seeds of the users of a run seeded with ``seed`` over ``n_envs`` sub-envs: sub-env i
    draws its users from ``seed + i`` (SB3's ``VecEnv.seed`` rule, which this env keeps).

    Every check that training, validation and evaluation users are apart uses this one rule.
    """
    return range(seed, seed + n_envs)


def check_seed(seed: Any) -> int | None:
    """``seed`` as None or a Python int >= 0 (a numpy integer becomes its int), or a one-line
    ``ValueError`` naming ``seed``."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed: {seed!r} (expected None or an integer >= 0)")
    if seed < 0:
        raise ValueError(f"seed: {int(seed)} (expected None or an integer >= 0)")
    return int(seed)


class BatchedRecommendationVecEnv(VecEnv):
    """N recommendation sessions stepped together (SB3 ``VecEnv`` API).

    Args:
        scenario: a shipped scenario name, a path, a ``Scenario`` or a mapping of scenario keys.
        n_envs: number of sub-environments (users stepped at once).
        encoder: use this encoder instead of the scenario's.
        world: a prebuilt world (overrides ``scenario``).
        full_info: return every per-step signal in each sub-env's info dict (like the single env,
            plus ``reward``: the step's reward in float64, where the returned rewards are float32)
            and the single env's whole reset info in ``reset_infos``;
            by default infos hold only what SB3 needs at an episode end (``TimeLimit.truncated``,
            ``terminal_observation``), and with slates ``clicked_position`` (-1: no click),
            which SlateQ learns from -- building N dicts of twenty entries per step would cost
            more than the simulation.
        render_mode: None or ``"ansi"``: ``env_method("render")`` returns each sub-env's
            history text, what ``RecommendationEnv(render_mode="ansi").render()`` returns (SB3's
            ``VecEnv.render()`` calls it and returns None, as for a ``DummyVecEnv``).

    ``get_attr`` answers a sub-env's ``metadata`` (``RecommendationEnv.metadata``) and ``spec``
    (None, as for an env not made by ``gymnasium.make``) as a ``DummyVecEnv``'s envs would: the
    VecEnv holds both, as it holds every attribute its sub-envs share.
    """

    #: A sub-env's ``spec``: None, as for a ``RecommendationEnv`` not made by ``gymnasium.make``.
    spec = None

    def __init__(
        self,
        scenario: ScenarioRef = "default",
        n_envs: int = 8,
        *,
        encoder: Encoder | None = None,
        world: World | None = None,
        full_info: bool = False,
        render_mode: str | None = None,
    ) -> None:
        check_count(n_envs, "n_envs")
        check_render_mode(render_mode, RecommendationEnv.metadata["render_modes"])
        if world is None:
            world = build_world(load_scenario(scenario), encoder=encoder)
        self.world = world
        self.scenario = world.scenario
        self.render_mode = render_mode
        self.full_info = full_info
        self.users = UserBatch(world, n_envs, rich_info=full_info)
        # The next user of each sub-env, started ahead of time and several at once (a reset's
        # cost is mostly per call, not per user); row i is sub-env i's next episode when ready.
        self._next_users = UserBatch(world, n_envs, rich_info=full_info)
        self._ready = np.zeros(n_envs, dtype=bool)
        # Observations of the prepared users (rows where _ready), computed with them in one batch:
        # an auto-reset then copies them instead of observing a few rows (a per-call cost).
        self._next_obs: dict[str, np.ndarray] | None = None
        # Not in text mode: a text-mode state goes through the language model and a BLAS
        # projection, whose last bits depend on which rows are encoded together, so there users
        # are started in the step that needs them, as before. Pooled and events states are
        # row-wise sums of cached vectors and do not depend on the batch.
        self._prepare_ahead = self.scenario.state.mode != "text"
        self._gens: list[np.random.Generator | None] = [None] * n_envs
        self._actions = np.zeros(n_envs, dtype=np.int64)
        self._has_reset = False  # no user has started before the first reset()
        # Attributes set for some sub-envs only (set_attr with indices), per sub-env.
        self._own_attrs: list[dict[str, Any]] = [{} for _ in range(n_envs)]
        super().__init__(n_envs, observation_space(world), action_space(world))
        self.metadata = dict(RecommendationEnv.metadata)  # a DummyVecEnv's is its first env's

    # --------------------------------------------------------------- seeding
    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed sub-env i with ``seed + i`` at the next :meth:`reset` (SB3's rule).

        Checked here, where the caller passed it: a numpy integer is taken as its int, and
        anything else but None or an integer >= 0 is a one-line ``ValueError``. (SB3 keeps any
        value, so ``np.int64(0)``, ``-1`` or ``1.5`` failed at the next reset, in Gymnasium's
        seeding, and ``np.uint8(255) + i`` wrapped around.)

        ``seed=None`` draws the base seed from fresh OS entropy (not reproducible, as in SB3),
        leaving numpy's global generator alone: SB3 draws it with ``np.random.randint``, which
        would shift the stream of a caller who seeded ``np.random`` for their own work.
        """
        checked = check_seed(seed)
        if checked is None:
            checked = int(np.random.SeedSequence().generate_state(1, np.uint32)[0])
        return super().seed(checked)

    def _next_key(self, i: int, seed: int | None) -> np.uint64:
        if seed is not None or self._gens[i] is None:
            self._gens[i], _ = seeding.np_random(seed)
        gen = self._gens[i]
        assert gen is not None
        return crng.episode_key(gen)

    def _reset_info(self, i: int) -> dict[str, Any]:
        """Sub-env ``i``'s ``reset_infos`` entry: the user; with ``full_info`` the single env's
        whole reset info (persona, candidate items and their hidden affinities)."""
        u = self.users
        info: dict[str, Any] = {"user_id": int(u.user_id[i]), "is_new_user": bool(u.new_user[i])}
        if self.full_info:
            info["persona"] = self.world.personas[int(u.persona[i])].name
            info["candidate_items"] = u.cand[i].copy()
            info["candidate_affinity"] = u.candidate_affinity(np.array([i]))[0]
        return info

    # ------------------------------------------------------------------ API
    def reset(self) -> dict[str, np.ndarray]:
        # A sub-env reset without a seed continues its generator: a user prepared ahead already
        # holds its next key, so it is used; a seed starts the sub-env's sequence anew.
        unseeded = np.array([s is None for s in self._seeds], dtype=bool)
        prepared = np.flatnonzero(unseeded & self._ready)
        fresh = np.flatnonzero(~(unseeded & self._ready))
        keys = np.array([self._next_key(int(i), self._seeds[i]) for i in fresh], dtype=np.uint64)
        self.users.reset_users(fresh, keys)
        if prepared.size:
            self.users.copy_rows(self._next_users, prepared, prepared)
        self._ready[:] = False
        self.reset_infos = [self._reset_info(i) for i in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        self._has_reset = True
        return self.users.observe()

    def step_async(self, actions: np.ndarray) -> None:
        # Checked (integer slots in [0, K)) by UserBatch.step.
        if not self._has_reset:  # as RecommendationEnv: empty users, and the seed not applied
            raise RuntimeError("call reset() before step() (and after an episode ends)")
        self._actions = np.asarray(actions)

    def step_wait(
        self,
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[dict[str, Any]]]:
        users = self.users
        reward, terminated, truncated, info = users.step(self._actions, info=self.full_info)
        dones = terminated | truncated
        obs = users.observe()
        if self.full_info:
            infos = [step_info(info, i, self.world) for i in range(self.num_envs)]
            # The reward in float64 too: SB3 takes float32 rewards, which are not the env's
            # (0.6 becomes 0.6000000238), and a step log must hold what a replay reproduces.
            for i, value in enumerate(reward.tolist()):
                infos[i]["reward"] = value
        elif "clicked_position" in info:
            # Slates: the position each user clicked (-1: none) is what SlateQ learns its choice
            # model from, so it is in every info.
            infos = [{"clicked_position": p} for p in info["clicked_position"].tolist()]
        else:
            infos = [{} for _ in range(self.num_envs)]
        done_idx = np.flatnonzero(dones)
        if done_idx.size:
            for i in done_idx:
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                infos[i]["terminal_observation"] = {k: v[i].copy() for k, v in obs.items()}
            fresh = self._start_next_users(done_idx)
            if fresh is None:
                fresh = users.observe(done_idx)
            for key, value in fresh.items():
                obs[key][done_idx] = value
            for i in done_idx:
                self.reset_infos[i] = self._reset_info(int(i))
        if self.full_info:
            for i in range(self.num_envs):
                infos[i].setdefault("TimeLimit.truncated", False)
        return obs, reward.astype(np.float32), dones, infos

    def _start_next_users(self, rows: np.ndarray) -> dict[str, np.ndarray] | None:
        """Start the next episode of sub-envs ``rows`` with their prepared users.

        When one of them has none ready, every sub-env without one gets its next user now, in one
        batch: each sub-env's episode keys still come from its own generator in order, so the
        users (and trajectories) are those of resetting one sub-env at a time.

        Returns:
            The first observations of the started users (leading dim ``len(rows)``), observed in
            the batch that prepared them (a user's observation depends only on its own row), or
            None when users are not prepared ahead (text mode): observe them.
        """
        ready = self._ready
        if not self._prepare_ahead:
            keys = np.array([self._next_key(int(i), None) for i in rows], dtype=np.uint64)
            self.users.reset_users(rows, keys)
            return None
        if not ready[rows].all():
            fill = np.flatnonzero(~ready)
            keys = np.array([self._next_key(int(i), None) for i in fill], dtype=np.uint64)
            self._next_users.reset_users(fill, keys)
            self._next_obs = self._next_users.observe_into(fill, self._next_obs)
            ready[fill] = True
        self.users.copy_rows(self._next_users, rows, rows)
        ready[rows] = False
        assert self._next_obs is not None
        return {key: value[rows] for key, value in self._next_obs.items()}

    def action_masks(self) -> np.ndarray:
        """(n_envs, K) bool valid-action masks, for sb3-contrib's MaskablePPO; (n_envs, L * K) on
        slates, the K mask for each position."""
        return action_masks(self.users)

    def close(self) -> None:
        return None

    def _indices(self, indices: None | int | Iterable[int]) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        rows = [indices] if isinstance(indices, int) else [int(i) for i in indices]
        for i in rows:
            if not 0 <= i < self.num_envs:
                raise IndexError(f"sub-env index {i} out of range (n_envs={self.num_envs})")
        return rows

    def get_attr(self, attr_name: str, indices: None | int | Iterable[int] = None) -> list[Any]:
        """The attribute of each sub-env in ``indices``: a value set for that sub-env alone by
        :meth:`set_attr`, else the shared one."""
        own = self._own_attrs
        return [
            own[i][attr_name] if attr_name in own[i] else getattr(self, attr_name)
            for i in self._indices(indices)
        ]

    def set_attr(
        self, attr_name: str, value: Any, indices: None | int | Iterable[int] = None
    ) -> None:
        """Set an attribute of the sub-envs in ``indices`` (all: shared by every sub-env, as
        ``DummyVecEnv`` would set it on each env object; some: on those sub-envs only)."""
        rows = self._indices(indices)
        if set(rows) >= set(range(self.num_envs)):
            setattr(self, attr_name, value)
            for own in self._own_attrs:
                own.pop(attr_name, None)
        else:
            for i in rows:
                self._own_attrs[i][attr_name] = value

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: None | int | Iterable[int] = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call a sub-env method on the sub-envs in ``indices``.

        The users live in shared arrays, not in env objects, so only the per-sub-env methods
        SB3 and sb3-contrib call are answered: ``action_masks`` (each sub-env's mask) and
        ``render`` (each sub-env's history text with ``render_mode="ansi"``, the VecEnv's or
        one :meth:`set_attr` gave that sub-env, else None, as a ``RecommendationEnv`` renders).
        Any other
        name is an ``AttributeError``: calling the VecEnv's own method once per index (what this
        did) reset every sub-env for ``env_method("reset", indices=[1])``.
        """
        rows = self._indices(indices)
        if method_name == "action_masks":
            masks = self.action_masks()
            return [masks[i] for i in rows]
        if method_name == "render":
            # A sub-env's own render_mode (set_attr with indices) counts, as on an env object.
            modes = self.get_attr("render_mode", rows)
            return [
                self.users.history_text(i) if mode == "ansi" else None
                for i, mode in zip(rows, modes, strict=True)
            ]
        raise AttributeError(
            f"env_method({method_name!r}): BatchedRecommendationVecEnv keeps its users in arrays "
            "and has no per-sub-env objects; it answers 'action_masks' and 'render' per sub-env "
            "(expected one of those, the VecEnv's own methods such as reset(), or a DummyVecEnv "
            "of RecommendationEnv for other per-env calls)"
        )

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: None | int | Iterable[int] = None
    ) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]
