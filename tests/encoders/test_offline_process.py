"""The library works offline without switching the caller's process offline."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import os
from lmrecsim import make_env
env = make_env({"extends": "default", "state": {"mode": "text"}, "catalog": {"n_items": 60},
                "episode": {"horizon": 3}})
env.reset(seed=0)
env.step(0)
print(os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
"""


def test_make_env_leaves_the_hub_settings_of_the_process_alone() -> None:
    # make_env set HF_HUB_OFFLINE=1 for the whole process, so a notebook's own later
    # from_pretrained("<hub id>") failed as offline without an obvious reason.
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["None", "None"]
