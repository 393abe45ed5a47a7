"""The two state modes: ``text`` encodes rendered histories in one batched, cached call per step."""

from __future__ import annotations

from typing import Any

import numpy as np

from lmrecsim.commands.bench import state_agreement
from lmrecsim.envs.simulator import UserBatch, _normalise

from .test_vec_env import HashEncoder, small_scenario


def _text_world(tmp_path: Any) -> tuple[Any, HashEncoder]:
    from lmrecsim.envs.world import build_world

    encoder = HashEncoder(dim=40)
    world = build_world(
        small_scenario(tmp_path, state={"mode": "text"}, users={"new_user_fraction": 0.3}),
        encoder=encoder,
    )
    return world, encoder


def test_text_state_is_the_projected_encoding_of_the_history(tmp_path: Any) -> None:
    world, encoder = _text_world(tmp_path)
    users = UserBatch(world, 12)
    users.reset_users(np.arange(12), np.arange(12, dtype=np.uint64) + 5)
    rng = np.random.default_rng(0)
    for _ in range(6):
        users.step(rng.integers(0, users.k, 12))
        obs = users.observe()
        for r in range(12):
            text = users.history_text(r)
            if not text:
                np.testing.assert_array_equal(obs["user"][r], 0.0)
                continue
            ref = world.projection.project(_normalise(encoder.encode([text])))[0]
            np.testing.assert_allclose(obs["user"][r], ref, rtol=1e-5, atol=1e-5)


def test_text_mode_encodes_once_per_step_and_caches(tmp_path: Any) -> None:
    world, encoder = _text_world(tmp_path)
    users = UserBatch(world, 16)
    keys = np.arange(16, dtype=np.uint64) * 31 + 1
    actions = np.random.default_rng(1).integers(0, users.k, size=(8, 16))
    users.reset_users(np.arange(16), keys)
    calls0 = encoder.calls
    for a in actions:
        users.step(a)
    # One batched model call per step at most (for 16 users), never one per user.
    assert encoder.calls - calls0 <= len(actions)
    first_obs = users.observe()["user"].copy()
    texts_before = encoder.texts_encoded
    users.reset_users(np.arange(16), keys)
    for a in actions:
        users.step(a)
    # Replaying the same trajectories is answered from the LRU cache alone.
    assert encoder.texts_encoded == texts_before
    np.testing.assert_array_equal(users.observe()["user"], first_obs)


def test_pooled_and_text_states_agree(tmp_path: Any) -> None:
    world, _ = _text_world(tmp_path)
    agreement = state_agreement(world, n_users=8, n_steps=10)
    # The bag-of-words stand-in shares title words between item texts and histories.
    assert 0.2 < agreement <= 1.0
