"""The simulation's numbers do not depend on the BLAS thread settings."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import hashlib, numpy as np
from lmrecsim.envs import make_vec_env
venv = make_vec_env("default", n_envs=8, seed=3)
obs = venv.reset()
h = hashlib.sha256(venv.world.item_proj.tobytes())
rng = np.random.default_rng(0)
for _ in range(20):
    obs, reward, done, info = venv.step(rng.integers(0, 20, size=8))
    for key in sorted(obs):
        h.update(np.ascontiguousarray(obs[key]).tobytes())
    h.update(reward.tobytes())
print(h.hexdigest())
"""


def _digest(threads: str) -> str:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
    }
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_observations_are_the_same_with_one_or_two_blas_threads():
    # The projection of the catalog ran on every BLAS thread: OMP_NUM_THREADS=1 (CI, batch
    # schedulers) gave item vectors 1.4e-6 away from a multi-core run, and every observation and
    # trained model followed.
    assert _digest("1") == _digest("2")
