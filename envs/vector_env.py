"""A Gymnasium ``VectorEnv`` over one :class:`~.simulator.UserBatch`.

``RecommendationVectorEnv(scenario, num_envs)`` behaves like
``gymnasium.vector.SyncVectorEnv([lambda: RecommendationEnv(scenario)] * num_envs)`` -- same
observations, rewards, terminations and truncations, with ``reset(seed=s)`` seeding sub-env i with
``s + i`` -- but all users are numpy rows stepped together.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ..encoders import Encoder
from ..scenarios import Scenario, load_scenario
from . import rng as crng
from .env import (
    RecommendationEnv,
    action_masks,
    action_space,
    check_render_mode,
    observation_space,
)
from .simulator import UserBatch, check_count
from .vec_env import check_seed
from .world import World, build_world

_AUTORESET_MODES = (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP, AutoresetMode.DISABLED)
_RENDER_MODES = tuple(RecommendationEnv.metadata["render_modes"])  # what a sub-env renders


def _info_array(value: np.ndarray) -> np.ndarray:
    """A copy of a batched info value with the dtype ``SyncVectorEnv`` gives the single env's.

    The single env's info holds Python scalars, which ``SyncVectorEnv`` batches as int64, float64
    and bool arrays; per-candidate arrays keep their dtype.
    """
    if value.ndim == 1 and value.dtype.kind in "iuf":
        return np.array(value, dtype=np.int64 if value.dtype.kind in "iu" else np.float64)
    return np.array(value)


def _put(infos: dict[str, Any], values: dict[str, np.ndarray], rows: np.ndarray) -> None:
    """Write ``values`` at the rows where the bool mask ``rows`` is True, with ``_key`` masks,
    as ``VectorEnv._add_info`` does row by row (other rows: zeros, or None for objects); with no
    row, no key is added."""
    if not rows.any():
        return
    for key, value in values.items():
        if key not in infos:
            if value.dtype == object:
                infos[key] = np.full(value.shape, None, dtype=object)
            else:
                infos[key] = np.zeros_like(value)
            infos["_" + key] = np.zeros(rows.shape[0], dtype=bool)
        infos[key][rows] = value[rows]
        infos["_" + key] = infos["_" + key] | rows


class RecommendationVectorEnv(VectorEnv):
    """``num_envs`` recommendation sessions as one Gymnasium vector env.

    Observations are the single env's Dict batched along a leading axis of size ``num_envs``.
    ``infos`` are what ``SyncVectorEnv`` makes of the single envs' infos: every per-step signal
    as an array of shape (num_envs,) (or (num_envs, K)) with the usual ``_name`` masks, the reset
    info (``user_id``, ``is_new_user``, ``persona``, ``candidate_items``, ``candidate_affinity``)
    of sub-envs that started a new user, and in ``SAME_STEP`` mode a finished sub-env's last
    observation and step info in ``infos["final_obs"]`` and ``infos["final_info"]``.

    Args:
        scenario: a shipped scenario name, a path, or a ``Scenario``.
        num_envs: number of sub-environments.
        encoder: use this encoder instead of the scenario's.
        world: a prebuilt world (overrides ``scenario``).
        autoreset_mode: ``AutoresetMode.NEXT_STEP`` (Gymnasium's default: the step after an
            episode end resets that sub-env, ignores its action and returns reward 0) or
            ``AutoresetMode.SAME_STEP`` (reset within the ending step) or
            ``AutoresetMode.DISABLED`` (no reset: the caller resets finished sub-envs with
            ``reset(options={"reset_mask": mask})`` before the next step, which refuses to step
            them otherwise).
        render_mode: None or ``"ansi"`` (``render()`` returns each sub-env's history text).
        max_episode_steps: truncate episodes after this many steps, as ``gym.make``'s
            ``TimeLimit`` does (the scenario's ``episode.horizon`` still applies).
    """

    def __init__(
        self,
        scenario: str | Scenario = "default",
        num_envs: int = 8,
        *,
        encoder: Encoder | None = None,
        world: World | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
        max_episode_steps: int | None = None,
    ) -> None:
        check_count(num_envs, "num_envs")
        try:
            mode = AutoresetMode(autoreset_mode)
        except ValueError:
            mode = None
        if mode not in _AUTORESET_MODES:
            raise ValueError(
                f"autoreset_mode: {autoreset_mode!r} (expected AutoresetMode.NEXT_STEP, SAME_STEP "
                "or DISABLED, or 'NextStep', 'SameStep' or 'Disabled')"
            )
        check_render_mode(render_mode, list(_RENDER_MODES))
        if max_episode_steps is not None and (
            isinstance(max_episode_steps, bool)
            or not isinstance(max_episode_steps, (int, np.integer))
            or max_episode_steps < 1
        ):
            raise ValueError(
                f"max_episode_steps: {max_episode_steps!r} (expected None or an integer >= 1)"
            )
        if world is None:
            world = build_world(load_scenario(scenario), encoder=encoder)
        self.world = world
        self.scenario = world.scenario
        self.num_envs = num_envs
        self.autoreset_mode = mode
        self.metadata = {"autoreset_mode": mode, "render_modes": list(_RENDER_MODES)}
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        # Catalog ids as an object array: the step info's ``item_id`` is one gather.
        self._item_ids = np.array([str(i) for i in world.catalog.item_ids], dtype=object)
        self._persona_names = np.array([p.name for p in world.personas], dtype=object)
        self.single_observation_space = observation_space(world)
        self.single_action_space = action_space(world)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.users = UserBatch(world, num_envs, rich_info=True)
        # The next user of each sub-env, started ahead of time and several at once (a reset's
        # cost is mostly per call, not per user); row i is sub-env i's next episode when ready.
        self._next_users = UserBatch(world, num_envs, rich_info=True)
        self._ready = np.zeros(num_envs, dtype=bool)
        # SAME_STEP mode: observations of the prepared users (rows where _ready), computed with
        # them in one batch, so an auto-reset copies them instead of observing a few rows.
        self._next_obs: dict[str, np.ndarray] | None = None
        # Not in text mode: a text-mode state goes through the language model and a BLAS
        # projection, whose last bits depend on which rows are encoded together, so there users
        # are started in the step that needs them, as before. Pooled and events states are
        # row-wise sums of cached vectors and do not depend on the batch.
        self._prepare_ahead = self.scenario.state.mode != "text"
        self._gens: list[np.random.Generator | None] = [None] * num_envs
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self._started = np.zeros(num_envs, dtype=bool)  # rows reset at least once

    def _keys(self, rows: np.ndarray, seeds: list[int | None] | None = None) -> np.ndarray:
        """One episode key per row, from that sub-env's generator (re)seeded when a seed is given."""
        out = np.empty(rows.size, dtype=np.uint64)
        for j, i in enumerate(rows.tolist()):
            seed = None if seeds is None else seeds[i]
            if seed is not None or self._gens[i] is None:
                self._gens[i], _ = seeding.np_random(seed)
            gen = self._gens[i]
            assert gen is not None
            out[j] = crng.episode_key(gen)
        return out

    def _start_users(
        self, rows: np.ndarray, seeds: list[int | None] | None = None
    ) -> dict[str, np.ndarray] | None:
        """Start the next episode of sub-envs ``rows`` (reseeding those with a seed).

        An unseeded sub-env continues its generator, so its prepared user (whose key was the
        generator's next draw) is used; when one has none, every unseeded sub-env without one
        gets its next user now, in one batch. Each sub-env's keys come from its own generator in
        order, so the users are those of resetting one sub-env at a time.

        Returns:
            In ``SAME_STEP`` mode, when every row got a prepared user: their first observations,
            observed in the batch that prepared them (a user's observation depends only on its own
            row); otherwise None (observe them).
        """
        if seeds is None:
            seeds = [None] * self.num_envs
        seeded = np.array([seeds[i] is not None for i in rows.tolist()], dtype=bool)
        direct = rows[seeded]
        if direct.size:
            self.users.reset_users(direct, self._keys(direct, seeds))
            self._ready[direct] = False
        rows = rows[~seeded]
        if not rows.size:
            return None
        if not self._prepare_ahead:
            self.users.reset_users(rows, self._keys(rows))
            return None
        same_step = self.autoreset_mode == AutoresetMode.SAME_STEP
        if not self._ready[rows].all():
            fill = np.flatnonzero(~self._ready)
            self._next_users.reset_users(fill, self._keys(fill))
            self._ready[fill] = True
            if same_step:
                self._next_obs = self._next_users.observe_into(fill, self._next_obs)
        self.users.copy_rows(self._next_users, rows, rows)
        self._ready[rows] = False
        if not same_step or direct.size or self._next_obs is None:
            return None
        return {key: value[rows] for key, value in self._next_obs.items()}

    def _reset_values(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The single env's reset info for rows ``rows``, as full (num_envs, ...) arrays whose
        other rows are unspecified (see :func:`_put`)."""
        u = self.users
        affinity = u.candidate_affinity(rows)
        aff = np.zeros((self.num_envs, *affinity.shape[1:]), dtype=affinity.dtype)
        aff[rows] = affinity
        return {
            "user_id": u.user_id.astype(np.int64),
            "is_new_user": u.new_user.copy(),
            "persona": self._persona_names[u.persona],
            "candidate_items": u.cand.copy(),
            "candidate_affinity": aff,
        }

    def _reset_info(self, rows: np.ndarray) -> dict[str, Any]:
        mask = np.zeros(self.num_envs, dtype=bool)
        mask[rows] = True
        infos: dict[str, Any] = {}
        _put(infos, self._reset_values(rows), mask)
        return infos

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset all sub-envs (or those in ``options["reset_mask"]``); int seeds are ``seed + i``."""
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
            first = check_seed(seed)
            assert first is not None
            seeds = [first + i for i in range(self.num_envs)]
        elif isinstance(seed, (list, tuple, np.ndarray)):
            seeds = [check_seed(s) for s in seed]
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset: {len(seeds)} seeds (expected num_envs={self.num_envs})")
        else:
            raise ValueError(
                f"reset: seed {seed!r} (expected None, an integer >= 0, or a list of "
                f"{self.num_envs} such seeds)"
            )
        mask = np.ones(self.num_envs, dtype=bool)
        if options is not None and "reset_mask" in options:
            mask = self._reset_mask(options["reset_mask"])
        rows = np.flatnonzero(mask)
        self._start_users(rows, seeds)
        self._autoreset[rows] = False
        self._started[rows] = True
        return self.users.observe(), self._reset_info(rows)

    def _reset_mask(self, value: Any) -> np.ndarray:
        """``options["reset_mask"]`` checked as ``SyncVectorEnv`` checks it: a bool array of shape
        (num_envs,) with at least one True. Cast to bool, sub-env indices such as ``[0, 2]``
        silently reset other sub-envs (here sub-env 1 alone)."""
        mask = np.asarray(value)
        if mask.dtype != np.bool_ or mask.shape != (self.num_envs,) or not mask.any():
            raise ValueError(
                f"reset: options['reset_mask'] is {mask.dtype} of shape {mask.shape} with "
                f"{int(np.count_nonzero(mask))} set (expected a bool array of shape "
                f"({self.num_envs},) with at least one True: the sub-envs to reset)"
            )
        return mask

    def step(
        self, actions: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-env; infos are those ``SyncVectorEnv`` builds from the single envs'
        (step infos, reset infos of restarted sub-envs, ``final_obs``/``final_info`` in
        ``SAME_STEP`` mode), with the ``_name`` masks."""
        if not self._started.all():  # as SyncVectorEnv's envs: empty users, seeds not applied
            raise RuntimeError(
                f"call reset() before step(): sub-envs {np.flatnonzero(~self._started).tolist()} "
                "have not been reset"
            )
        if self.autoreset_mode == AutoresetMode.DISABLED and self._autoreset.any():
            # SyncVectorEnv asserts; its single envs would step a session that has ended.
            raise RuntimeError(
                f"step(): sub-envs {np.flatnonzero(self._autoreset).tolist()} have ended and "
                "autoreset_mode is DISABLED (expected reset(options={'reset_mask': mask}) of them "
                "before the next step)"
            )
        users = self.users
        # Finished users are stepped along with the rest (their draws are keyed by their own
        # episode, so nobody else is affected) and then replaced.
        reward, terminated, truncated, info = users.step(actions)
        if self.max_episode_steps is not None:
            # gym.make's TimeLimit: truncated once the episode has taken max_episode_steps steps.
            truncated = truncated | (users.t >= self.max_episode_steps)
        values = {key: _info_array(value) for key, value in info.items()}
        values["item_id"] = self._item_ids[info["item_index"]]
        infos: dict[str, Any] = {}
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            restart = self._autoreset
            stepped = ~restart
            reward = np.where(restart, 0.0, reward)
            terminated = terminated & stepped
            truncated = truncated & stepped
            _put(infos, values, stepped)
            rows = np.flatnonzero(restart)
            if rows.size:
                self._start_users(rows)
                _put(infos, self._reset_values(rows), restart)
            obs = users.observe()
            self._autoreset = terminated | truncated
        elif self.autoreset_mode == AutoresetMode.DISABLED:
            obs = users.observe()
            _put(infos, values, np.ones(self.num_envs, dtype=bool))
            self._autoreset = terminated | truncated
        else:
            obs = users.observe()
            ended = terminated | truncated
            _put(infos, values, ~ended)
            rows = np.flatnonzero(ended)
            if rows.size:
                final = np.full(self.num_envs, None, dtype=object)
                for i in rows.tolist():
                    final[i] = {key: value[i].copy() for key, value in obs.items()}
                infos["final_obs"] = final
                infos["_final_obs"] = ended.copy()
                final_info: dict[str, Any] = {}
                _put(final_info, values, ended)
                infos["final_info"] = final_info
                infos["_final_info"] = ended.copy()
                fresh = self._start_users(rows)
                if fresh is None:
                    fresh = users.observe(rows)
                for key, value in fresh.items():
                    obs[key][rows] = value
                _put(infos, self._reset_values(rows), ended)
        return obs, reward.astype(np.float64), terminated, truncated, infos

    def render(self) -> tuple[str, ...] | None:
        """With ``render_mode="ansi"``: each sub-env's history text (what ``RecommendationEnv``
        renders); otherwise None."""
        if self.render_mode != "ansi":
            return None
        return tuple(self.users.history_text(i) for i in range(self.num_envs))

    def action_masks(self) -> np.ndarray:
        """(num_envs, K) bool valid-action masks; (num_envs, L * K) on slates, the K mask for each
        position (sb3-contrib's layout for a MultiDiscrete space)."""
        return action_masks(self.users)

    def close_extras(self, **kwargs: Any) -> None:
        return None
