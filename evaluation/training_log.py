"""Recording the steps of a training run as an episode log (``lmrecsim train --log-episodes``).

On a slate scenario (``MultiDiscrete([K] * L)`` actions) the policy's distribution is read through
SB3's Distribution API: the logged ``action_probabilities`` are the first position's (a
``MultiCategoricalDistribution``'s first categorical, or the distribution's own ``probs`` (B, K)),
and the propensity of each slate is ``exp(log_prob(slates))`` for the (B, L) slates taken; for
DQN (SlateQ) both follow its epsilon-greedy rule around the greedy slate.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch as th
from sb3_contrib import MaskablePPO
from stable_baselines3.common.callbacks import BaseCallback

from ..agents.baselines import first_position_probs, obs_t_device
from ..agents.positions import logged_marginals
from ..agents.slate import position_marginals, prefix_log_probs
from ..agents.slateq import SlateQ
from ..envs.world import World
from ..scenarios import Scenario, scenario_hash
from ..scenarios.loader import scenario_to_dict
from .logs import (
    COLUMNS,
    SCHEMA_VERSION,
    LogError,
    StepRecorder,
    build_step_table,
    read_step_log,
    write_step_table,
)


def _warm_up(model, n_envs: int) -> bool:
    """Whether DQN drew this step's actions in its warm-up (before ``learning_starts``). The
    callback runs after num_timesteps counted this step, so the action was drawn one step
    earlier."""
    return model.num_timesteps - n_envs < getattr(model, "learning_starts", 0)


def _action_probabilities(model, obs: dict[str, np.ndarray]) -> np.ndarray:
    """(n_envs, K) probability of each slot under the model's behaviour policy at this step."""
    mask = np.asarray(obs["action_mask"]) > 0
    policy = model.policy
    if hasattr(policy, "get_distribution"):  # PPO / MaskablePPO: the policy's categorical
        obs_t, _ = policy.obs_to_tensor(obs)
        with th.no_grad():
            probs = first_position_probs(policy.get_distribution(obs_t)).cpu().numpy()
        probs = probs.astype(np.float64)
        if isinstance(model, MaskablePPO):
            # MaskablePPO samples among the valid slots only (the distribution above is unmasked).
            probs = np.where(mask, probs, 0.0)
            total = probs.sum(axis=1, keepdims=True)
            probs = np.divide(probs, total, out=np.full_like(probs, 0.0), where=total > 0)
        return probs
    n_valid = np.maximum(mask.sum(axis=1, keepdims=True), 1)
    # DQN's warm-up (before learning_starts) samples uniformly among the valid slots.
    if _warm_up(model, mask.shape[0]):
        return (mask / n_valid).astype(np.float64)
    # DQN after warm-up: epsilon-greedy over the valid slots around the greedy action.
    obs_t, _ = policy.obs_to_tensor(obs)
    with th.no_grad():
        q = policy.q_net(obs_t).cpu().numpy()
    # The greedy action is the network's argmax (the candidate scorer already scores masked slots
    # out; an mlp Q-network may prefer a masked slot, and then that is what DQN does).
    greedy = np.argmax(q, axis=1)
    eps = float(getattr(model, "exploration_rate", 0.0))
    probs = eps * mask / n_valid
    probs[np.arange(len(greedy)), greedy] += 1.0 - eps
    return probs


def _slate_propensities(
    model, obs: dict[str, np.ndarray], slates: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Under PPO's slate distribution, for each of the (n_envs, L) slates: (n_envs, L) the
    probability of its first 1, 2, ..., L slots (the last column is the whole slate's) and
    (n_envs, L) the probability that position l holds its slot l (the item-position marginals).
    SlateQ's are :meth:`~lmrecsim.agents.slateq.SlateQ.behaviour_probabilities`."""
    policy = model.policy
    obs_t, _ = policy.obs_to_tensor(obs)
    with th.no_grad():
        dist = policy.get_distribution(obs_t)
        actions = th.as_tensor(slates, dtype=th.long, device=obs_t_device(obs_t))
        log_p = prefix_log_probs(dist, actions)
    marginals = position_marginals(dist, np.asarray(obs["action_mask"]) > 0)
    return np.exp(log_p.cpu().numpy().astype(np.float64)), logged_marginals(marginals, slates)


class EpisodeLogCallback(BaseCallback):
    """Records every training step (behaviour-policy propensities included) for the episode log.

    The training env must be a ``BatchedRecommendationVecEnv(full_info=True)`` (possibly wrapped),
    so each step's info carries the per-step signals.

    The log is written when training ends, and when Ctrl-C or SIGTERM stops it
    (:meth:`on_stopped`): the episodes that completed up to the stop.

    Args:
        path: where to write the Parquet log at the end of training.
        scenario: the resolved training scenario; world: its world.
        seed: the training seed (sub-env i is logged with seed ``seed + i``).
        label: the policy label in the log.
        merge: keep the rows of other labels that ``path`` already holds (a resumed run's
            episodes join its run's log under their own label; :func:`resumed_label`). Rows of
            ``label`` itself are replaced: they are an earlier resume from the same checkpoint,
            whose steps the resumed run trains again.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        scenario: Scenario,
        world: World,
        seed: int,
        label: str,
        merge: bool = False,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.merge = merge
        self.scenario = scenario
        self.world = world
        self.seed = seed
        self.recorder = StepRecorder(label)
        # Steps in the log after write() (complete episodes only); None before it.
        self.written_steps: int | None = None
        self._episode: np.ndarray | None = None

    def _on_step(self) -> bool:
        obs = self.model._last_obs  # the observation the actions were taken on
        n_envs = len(self.locals["infos"])
        # (n_envs, L) slates on a slate scenario, else (n_envs,) slots.
        actions = np.asarray(self.locals["actions"]).reshape(n_envs, -1)
        slates = actions.shape[1] > 1 or "slate_items" in self.locals["infos"][0]
        if isinstance(self.model, SlateQ):  # its rule: epsilon-greedy around the greedy slate
            warm_up = _warm_up(self.model, n_envs)
            probs, prefixes, positions = self.model.behaviour_probabilities(
                obs, actions, warm_up=warm_up
            )
        else:
            probs = _action_probabilities(self.model, obs)
            prefixes, positions = (
                _slate_propensities(self.model, obs, actions) if slates else (None, None)
            )
        # The env's own rewards, not the scaled ones a reward-normalising wrapper trains on.
        normalizer = self.model.get_vec_normalize_env()
        rewards = np.asarray(
            self.locals["rewards"] if normalizer is None else normalizer.get_original_reward()
        ).reshape(-1)
        infos = self.locals["infos"]
        dones = np.asarray(self.locals["dones"]).reshape(-1)
        if self._episode is None:
            self._episode = np.zeros(len(actions), dtype=np.int64)
        masks = np.asarray(obs["action_mask"])
        for i, info in enumerate(infos):
            truncated = bool(info.get("TimeLimit.truncated", False))
            self.recorder.add(
                seed=self.seed + i,
                episode=int(self._episode[i]),
                action=actions[i] if slates else int(actions[i, 0]),
                probabilities=probs[i],
                mask=masks[i],
                # The env's float64 reward (the returned ones are float32 for SB3).
                reward=float(info.get("reward", rewards[i])),
                terminated=bool(dones[i]) and not truncated,
                truncated=truncated,
                info=info,
                prefix_propensities=None if prefixes is None else prefixes[i],
                position_propensities=None if positions is None else positions[i],
            )
        self._episode += dones.astype(np.int64)
        return True

    def _on_training_end(self) -> None:
        # Written when learn() ends, before train() saves model.zip and marks train.json
        # complete: a run stopped after that point has its log (a run stopped before it writes
        # its log in on_stopped).
        self.write()

    def on_stopped(self) -> None:
        """Training was stopped (Ctrl-C, SIGTERM): write the episodes that completed."""
        self.write()

    def write(self) -> Path:
        """Write the recorded steps (atomically) and return the log's path.

        Each sub-env's episode still running when training stopped is left out: the log holds
        complete episodes only, so it replays exactly and its returns are whole sessions.
        """
        open_episodes = (
            [(self.seed + i, int(e)) for i, e in enumerate(self._episode)]
            if self._episode is not None
            else []
        )
        steps, arrays = self.recorder.frames(drop=open_episodes)
        table = build_step_table(steps, arrays, scenario=self.scenario, world=self.world)
        if self.merge and self.path.is_file():
            earlier = read_step_log(self.path).steps
            earlier = earlier[earlier["policy"] != self.recorder.label]
            # Logged on the run's scenario with another budget (checked by merge_problem before
            # the resume): the same users, so the rows join the new scenario's log.
            earlier = earlier.assign(scenario_hash=scenario_hash(self.scenario))
            table = pd.concat([earlier[list(COLUMNS)], table], ignore_index=True)
        write_step_table(self.path, table, scenario=self.scenario)
        self.written_steps = len(steps)
        return self.path


def resumed_label(label: str, steps: int) -> str:
    """The label of a resumed run's episodes in its run's log: ``LABEL (resumed at STEPS)``."""
    return f"{label} (resumed at {steps})"


def merge_problem(path: str | os.PathLike[str], scenario: Scenario) -> str | None:
    """Why a resumed run's episodes cannot join the step log at ``path``, or None (no log yet, or
    one of the run's scenario: the same in everything but the ``agent`` block)."""
    p = Path(path)
    if not p.exists():
        return None
    try:
        log = read_step_log(p)
        logged = scenario_to_dict(log.scenario())
    except LogError as exc:
        return f"{exc} (move it away to resume without it)"
    mine = scenario_to_dict(scenario)
    logged.pop("agent", None)
    mine.pop("agent", None)
    if logged != mine:
        return (
            f"{p}: logged on another scenario than the run's scenario.yaml (expected the run's own "
            "log; move it away to resume without it)"
        )
    if log.schema_version != SCHEMA_VERSION:
        return (
            f"{p}: a step log of schema version {log.schema_version}, this lmrecsim writes "
            f"{SCHEMA_VERSION} (move it away to resume without it)"
        )
    return None
