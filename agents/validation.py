"""Model selection on held-out users while training (``agent.validation``).

Every ``every`` training steps, and once when training ends, the model acts greedily for one
session of each validation user; the model with the best mean return so far is saved as
``best_model.zip`` and every validation becomes a row of ``validation.csv``. This is SB3's
``EvalCallback`` idea with this project's users: validation user ``i`` is the first session of seed
``seed + i``, exactly the user ``lmrecsim evaluate --seeds seed+i --episodes 1`` sees first, and
all of them are stepped together in one batched env.

Validation draws no random numbers from the model or the training env (greedy actions, its own
env), so a run trains the same model with or without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from stable_baselines3.common.callbacks import BaseCallback

from ..atomic import atomic_write
from ..envs.vec_env import BatchedRecommendationVecEnv, sub_env_seeds
from ..envs.world import World
from ..scenarios.schema import ValidationConfig

#: Columns of ``validation.csv``, one row per validation.
VALIDATION_COLUMNS = ("timesteps", "mean_return", "std_error", "users", "best")


def validation_returns(
    model: Any, world: World, config: ValidationConfig, *, maskable: bool = False
) -> np.ndarray:
    """The return of one greedy session of each validation user, shape ``(users,)``.

    Args:
        model: an SB3 model (its ``predict`` takes a batch of observations).
        world: the scenario's world.
        config: which users (``seed``, ``users``).
        maskable: pass the action masks to ``predict`` (MaskablePPO).
    """
    venv = BatchedRecommendationVecEnv(world=world, n_envs=config.users)
    venv.seed(config.seed)
    obs = venv.reset()
    total = np.zeros(config.users)
    finished = np.zeros(config.users, dtype=bool)
    # Each user's first session ends within the horizon; the batched env then starts the next
    # user in that slot, whose rewards are not counted.
    while not finished.all():
        kwargs = {"action_masks": obs["action_mask"].astype(bool)} if maskable else {}
        actions, _ = model.predict(obs, deterministic=True, **kwargs)
        obs, rewards, dones, _ = venv.step(actions)
        total += np.where(finished, 0.0, rewards.astype(np.float64))
        finished |= dones
    venv.close()
    return total


@dataclass(frozen=True)
class ValidationRow:
    """One validation: the model after ``timesteps`` training steps."""

    timesteps: int
    mean_return: float
    std_error: float
    users: int
    best: bool


class ValidationCallback(BaseCallback):
    """Validate every ``config.every`` steps and at the end; keep the best model.

    Writes ``validation.csv`` (rewritten after every validation, through a temp file) and
    ``best_model.zip`` (whenever the mean return beats every earlier one; ties keep the earlier
    model) into ``out_dir``, and records ``validation/mean_return`` in SB3's logger.

    Args:
        world: the scenario's world.
        config: the scenario's ``agent.validation`` (``every`` > 0).
        out_dir: the run folder.
        maskable: the model is a MaskablePPO.
        save: ``save(model, path)`` writes a model atomically.
    """

    def __init__(
        self,
        world: World,
        config: ValidationConfig,
        out_dir: Path,
        *,
        maskable: bool,
        save: Any,
    ) -> None:
        super().__init__()
        self.world = world
        self.config = config
        self.out_dir = Path(out_dir)
        self.maskable = maskable
        self.save = save
        self.rows: list[ValidationRow] = []
        self._next = config.every
        #: The model was (or may have been) updated since the last validation.
        self._stale = True

    def restore(self, rows: list[ValidationRow]) -> None:
        """Carry on after ``rows``, the validations of the run this one resumes: the next
        validation is due at the first multiple of ``config.every`` above the last of them, and
        ``validation.csv`` is rewritten with them."""
        self.rows = list(rows)
        self._next = self.config.every
        for row in self.rows:
            while self._next <= row.timesteps:
                self._next += self.config.every
        self._write()

    @property
    def best(self) -> ValidationRow | None:
        """The validation whose model is ``best_model.zip``."""
        marked = [row for row in self.rows if row.best]
        return marked[-1] if marked else None

    # SB3 updates the model between a rollout's end and the next rollout's start (PPO after every
    # n_steps x n_envs steps, DQN after every train_freq), so validations happen at rollout
    # starts, when the model is the one trained on ``num_timesteps`` steps, and once more when
    # training ends, after the last update.
    def _on_rollout_start(self) -> None:
        if self.num_timesteps > 0 and self.num_timesteps >= self._next:
            self.validate()
            while self._next <= self.num_timesteps:
                self._next += self.config.every

    def _on_rollout_end(self) -> None:
        self._stale = True

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        if self._stale or not self.rows:
            self.validate()

    def validate(self) -> ValidationRow:
        """Validate the model as it is now; save it when it is the best so far."""
        returns = validation_returns(self.model, self.world, self.config, maskable=self.maskable)
        mean = float(returns.mean())
        se = float(returns.std(ddof=1) / np.sqrt(returns.size)) if returns.size > 1 else 0.0
        previous = self.best
        best = previous is None or mean > previous.mean_return
        if best:
            self.save(self.model, self.out_dir / "best_model.zip")
        row = ValidationRow(int(self.num_timesteps), mean, se, int(returns.size), best)
        self._stale = False
        self.rows.append(row)
        # As SB3's EvalCallback: a row of its own at the validated step (recorded values wait for
        # the algorithm's next dump otherwise, a rollout later, and the last one never comes).
        self.logger.record("validation/mean_return", mean)
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        self.logger.dump(self.num_timesteps)
        self._write()
        return row

    def _write(self) -> None:
        frame = pd.DataFrame([row.__dict__ for row in self.rows], columns=list(VALIDATION_COLUMNS))
        atomic_write(self.out_dir / "validation.csv", frame.to_csv(index=False))

    def summary(self) -> dict[str, Any]:
        """What ``train.json`` records about the validation."""
        best = self.best
        return {
            "every": self.config.every,
            "seed": self.config.seed,
            "users": self.config.users,
            "best_timesteps": None if best is None else best.timesteps,
            "best_mean_return": None if best is None else round(best.mean_return, 6),
            "last_mean_return": None if not self.rows else round(self.rows[-1].mean_return, 6),
        }


def check_validation_seeds(config: ValidationConfig, seed: int, n_envs: int) -> str | None:
    """Why the validation users would include training users (``seed + i`` for ``i < n_envs``),
    or None when they are apart (or validation is off)."""
    if config.every == 0:
        return None
    overlap = sorted(set(sub_env_seeds(seed, n_envs)) & set(config.seeds))
    if not overlap:
        return None
    return (
        f"agent.validation: validation seeds {config.seed}-{config.seed + config.users - 1} include "
        f"training seed {overlap[0]} (agent.seed {seed} + sub-env {overlap[0] - seed}); expected "
        "them apart: set another agent.seed (--seed) or agent.validation.seed, or turn validation "
        "off (--validate-every 0)"
    )


def validation_file_problem(run_dir: str | Path) -> str | None:
    """Why a run folder's ``validation.csv`` cannot be read as :class:`ValidationCallback` writes
    it, or None: there is none, it holds just the header (a run stopped or resumed before its
    first validation), or it reads (:func:`read_validation`)."""
    path = Path(run_dir) / "validation.csv"
    if not path.is_file() or read_validation(run_dir) is not None:
        return None
    try:
        if path.read_text(encoding="utf-8").strip() == ",".join(VALIDATION_COLUMNS):
            return None
    except (OSError, UnicodeDecodeError):
        pass
    return (
        f"{path}: not what lmrecsim train writes (expected the columns "
        f"{', '.join(VALIDATION_COLUMNS)} with one row per validation)"
    )


def read_validation(run_dir: str | Path) -> pd.DataFrame | None:
    """A run folder's ``validation.csv``, or None when it has none or it is not what
    :class:`ValidationCallback` writes (a curve is then left out; nothing fails)."""
    path = Path(run_dir) / "validation.csv"
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError):
        return None
    if not set(VALIDATION_COLUMNS) <= set(frame.columns) or frame.empty:
        return None
    out = pd.DataFrame(
        {
            key: pd.to_numeric(frame[key], errors="coerce")
            for key in ("timesteps", "mean_return", "std_error", "users")
        }
    )
    best = frame["best"].str.strip().map({"True": True, "False": False})
    if out.isna().any().any() or best.isna().any() or not np.isfinite(out.to_numpy()).all():
        return None
    out["best"] = best.astype(bool)
    return out
