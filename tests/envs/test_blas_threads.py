"""The simulation's numbers do not depend on the BLAS thread settings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = """
import hashlib, numpy as np
from lmrecsim.envs import make_vec_env
venv = make_vec_env("default", n_envs=8, seed=3)
obs = venv.reset()
h = hashlib.sha256(venv.world.item_proj.tobytes())
h.update(venv.world.projection.components.tobytes())
rng = np.random.default_rng(0)
for _ in range(20):
    obs, reward, done, info = venv.step(rng.integers(0, 20, size=8))
    for key in sorted(obs):
        h.update(np.ascontiguousarray(obs[key]).tobytes())
    h.update(reward.tobytes())
print(h.hexdigest())
"""


def _cold_projection_cache(folder: Path) -> Path:
    """A copy of the embedding cache without its fitted projections, so the run fits its own."""
    from lmrecsim.encoders.cache import default_cache_dir

    source = default_cache_dir()
    if source.is_dir():
        shutil.copytree(source, folder)
    for path in (folder / "arrays").glob("*.npz"):
        with np.load(path) as stored:
            if str(stored["key"]).startswith("projection|"):
                path.unlink()
    return folder


def _digest(threads: str, cache: Path) -> str:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "LMRECSIM_CACHE_DIR": str(cache),
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
    }
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_observations_are_the_same_with_one_or_two_blas_threads(tmp_path):
    # The projection of the catalog ran on every BLAS thread: OMP_NUM_THREADS=1 (CI, batch
    # schedulers) gave item vectors 1.4e-6 away from a multi-core run, and every observation and
    # trained model followed. Each run fits its own PCA (a cached fit would hide the fit's part).
    one = _digest("1", _cold_projection_cache(tmp_path / "one"))
    assert one == _digest("2", _cold_projection_cache(tmp_path / "two"))


OPE_SCRIPT = """
import numpy as np
from lmrecsim.envs.world import build_world
from lmrecsim.evaluation.logs import write_step_log
from lmrecsim.evaluation.ope import evaluate_off_policy
from lmrecsim.evaluation.rollout import run_policy
from lmrecsim.agents.base import RandomPolicy
from lmrecsim.scenarios import scenario_from_dict
import sys
sc = scenario_from_dict({"extends": "default", "episode": {"horizon": 1}, "candidates": {"k": 5}})
world = build_world(sc)
steps, arrays = run_policy(world, RandomPolicy(seed=0), label="random", seeds=[0], episodes=4000)
write_step_log(sys.argv[1], steps, arrays, scenario=sc, world=world)
r = evaluate_off_policy(sys.argv[1], "greedy", estimators=("dm",), with_ground_truth=False)
print(r.table().to_csv(float_format="%.17g").replace(chr(10), " "))
"""


def test_the_dm_estimate_is_the_same_with_one_or_two_blas_threads(tmp_path):
    # The reward model's SVD ran on every BLAS thread: DM moved in its last digits.
    outs = []
    for threads in ("1", "2"):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": threads}
        env["OPENBLAS_NUM_THREADS"] = threads
        log = str(tmp_path / f"log{threads}.parquet")
        out = subprocess.run(
            [sys.executable, "-c", OPE_SCRIPT, log],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        outs.append(out.stdout.strip().splitlines()[-1])
    assert outs[0] == outs[1]
