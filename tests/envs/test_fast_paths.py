"""Every fast path of the simulator against its slow reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lmrecsim.envs.candidates import (
    first_occurrence,
    first_occurrence_reference,
    generate_candidates,
    nearest_items,
    nearest_items_reference,
)
from lmrecsim.envs.simulator import UserBatch

from .test_vec_env import small_world


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("exact", [True, False])
def test_nearest_items_matches_reference(dtype: type, exact: bool) -> None:
    rng = np.random.default_rng(0)
    n, p, n_q, m = 3000, 16, 37, 9
    items = rng.standard_normal((n, p)).astype(dtype)
    query = rng.standard_normal((n_q, p)).astype(np.float32)
    arrival = np.where(rng.random(n) < 0.3, rng.integers(1, 20, n), 0)
    steps = rng.integers(0, 20, n_q)
    exclude = np.where(rng.random((n_q, 12)) < 0.5, rng.integers(0, n, (n_q, 12)), -1)
    # Small blocks so the merge across blocks is exercised.
    got = nearest_items(
        query,
        items,
        m,
        available_until=steps,
        arrival=arrival,
        exclude=exclude,
        block=700,
        exact=exact,
    )
    ref = nearest_items_reference(
        query, items, m, available_until=steps, arrival=arrival, exclude=exclude
    )
    if exact:
        np.testing.assert_array_equal(got, ref)
    else:
        # float32 scores may swap near-ties; the sets agree almost everywhere.
        agree = np.mean([len(set(a) & set(b)) / m for a, b in zip(got, ref, strict=True)])
        assert agree > 0.97


def test_nearest_items_fewer_than_m_available() -> None:
    items = np.eye(4, dtype=np.float32)
    got = nearest_items(
        np.ones((2, 4), np.float32), items, 6, exclude=np.array([[0, -1], [-1, -1]])
    )
    assert (got[0, 3:] == -1).all() and set(got[0, :3]) == {1, 2, 3}
    assert (got[1, 4:] == -1).all() and set(got[1, :4]) == {0, 1, 2, 3}


def test_nearest_items_rows_do_not_depend_on_batch() -> None:
    rng = np.random.default_rng(1)
    items = rng.standard_normal((2000, 32)).astype(np.float32)
    query = rng.standard_normal((64, 32)).astype(np.float32)
    full = nearest_items(query, items, 8)
    for r in (0, 17, 63):
        np.testing.assert_array_equal(nearest_items(query[r : r + 1], items, 8)[0], full[r])


def test_first_occurrence_matches_reference() -> None:
    rng = np.random.default_rng(2)
    proposals = rng.integers(-1, 30, size=(50, 41))
    np.testing.assert_array_equal(
        first_occurrence(proposals), first_occurrence_reference(proposals)
    )


def _candidate_inputs(world: Any, rng: np.random.Generator, n: int) -> dict[str, Any]:
    consumed = np.full((n, 15), -1, dtype=np.int64)
    for r in range(n):
        c = rng.choice(world.n_items, size=rng.integers(0, 15), replace=False)
        consumed[r, : c.size] = c
    return {
        "keys": rng.integers(0, 2**62, n).astype(np.uint64),
        "steps": rng.integers(0, 10, n),
        "user_proj": rng.standard_normal((n, world.project_dim)).astype(np.float32),
        "has_state": rng.random(n) < 0.8,
        "consumed": consumed,
        "item_proj": world.item_proj,
        "pop_cdf": world.pop_cdf,
        "arrival": world.arrival,
        "new_order": world.new_order,
        "new_arrival_sorted": world.new_arrival_sorted,
    }


def test_consumed_bitmap_matches_membership_test(tmp_path: Any) -> None:
    world = small_world(tmp_path)
    inputs = _candidate_inputs(world, np.random.default_rng(3), 40)
    mask = np.zeros((40, world.n_items), dtype=bool)
    r, c = np.nonzero(inputs["consumed"] >= 0)
    mask[r, inputs["consumed"][r, c]] = True
    cfg = world.scenario.candidates
    fast = generate_candidates(cfg, consumed_mask=mask, **inputs)
    slow = generate_candidates(cfg, **inputs)
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])
    items, valid = fast
    for row in range(40):
        chosen = items[row][valid[row]]
        assert len(set(chosen.tolist())) == chosen.size
        assert not np.isin(chosen, inputs["consumed"][row]).any()


def test_pooled_projection_matches_reference_and_bitmap_matches_lists(tmp_path: Any) -> None:
    world = small_world(tmp_path, users={"new_user_fraction": 0.3})
    users = UserBatch(world, 16)
    users.reset_users(np.arange(16), np.arange(1, 17, dtype=np.uint64) * 977)
    rng = np.random.default_rng(4)
    for _ in range(25):
        users.step(rng.integers(0, world.scenario.candidates.k, 16))
        ref = users.pooled_projection_reference()
        np.testing.assert_allclose(users.observe()["user"], ref, rtol=1e-4, atol=1e-4)
        assert users.consumed_mask is not None
        for r in range(16):
            listed = users.consumed[r, : users.n_consumed[r]]
            np.testing.assert_array_equal(np.flatnonzero(users.consumed_mask[r]), np.sort(listed))
