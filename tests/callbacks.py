"""SB3 callbacks the tests share."""

from __future__ import annotations

from stable_baselines3.common.callbacks import BaseCallback


class StopAt(BaseCallback):
    """Raises ``error`` (by default KeyboardInterrupt, what Ctrl-C does) once training has run
    ``steps`` steps."""

    def __init__(self, steps: int, error: BaseException | None = None) -> None:
        super().__init__()
        self.steps = steps
        self.error = error if error is not None else KeyboardInterrupt()

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.steps:
            raise self.error
        return True
