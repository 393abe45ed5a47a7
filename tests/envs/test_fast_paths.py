"""Every fast path of the simulator against its slow reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lmrecsim.envs import rng as crng
from lmrecsim.envs.candidates import (
    CandidateGenerator,
    SortedLookup,
    finish_slates,
    finish_slates_reference,
    first_occurrence,
    first_occurrence_reference,
    first_true_columns,
    generate_candidates,
    nearest_items,
    nearest_items_reference,
    prepare_items,
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


@pytest.mark.parametrize("prepared", [False, True])
def test_nearest_items_with_ties_arrivals_and_exclusions_matches_reference(prepared: bool) -> None:
    # Duplicated items make exact ties (the lower index must win), items arrive later, exclusion
    # lists are half empty, one user has fewer than m items left.
    rng = np.random.default_rng(5)
    n, p, n_q, m = 1500, 16, 96, 7
    items = rng.standard_normal((n, p)).astype(np.float32)
    items[1000:1100] = items[200:300]
    query = rng.standard_normal((n_q, p)).astype(np.float32)
    query[:8] = items[200:208]  # the nearest item of these rows is tied with its duplicate
    arrival = np.where(rng.random(n) < 0.2, rng.integers(1, 20, n), 0)
    steps = rng.integers(0, 20, n_q)
    exclude = np.where(rng.random((n_q, 30)) < 0.5, rng.integers(0, n, (n_q, 30)), -1)
    kw: dict[str, Any] = {"available_until": steps, "arrival": arrival, "exclude": exclude}
    ref = nearest_items_reference(query, items, m, **kw)
    got = nearest_items(query, items, m, prepared=prepare_items(items) if prepared else None, **kw)
    np.testing.assert_array_equal(got, ref)
    few = np.full((1, n - 3), -1)
    few[0] = np.setdiff1d(np.arange(n), [4, 9, 11])
    got = nearest_items(query[:1], items, m, exclude=few)
    assert set(got[0, :3].tolist()) == {4, 9, 11} and (got[0, 3:] == -1).all()


def test_stream_plan_matches_separate_draws() -> None:
    keys = np.random.default_rng(6).integers(0, 2**63, 9).astype(np.uint64)
    steps = np.arange(9) * 7
    plan = crng.StreamPlan([(crng.STREAM_CLICK, 1), (crng.STREAM_SATISFACTION, 2), (12, 40)])
    u = plan.uniform(keys, steps)
    assert u.shape == (9, 43) and u.flags.c_contiguous
    for (stream, n), cols in zip(plan.spec, plan.slices, strict=True):
        np.testing.assert_array_equal(u[:, cols], crng.uniform(keys, steps, stream, n))
    # The transforms give what the one-stream functions give.
    np.testing.assert_array_equal(
        crng.uniform_to_normal(u[:, plan.slices[1]], 1),
        crng.normal(keys, steps, crng.STREAM_SATISFACTION, 1),
    )
    np.testing.assert_array_equal(
        crng.uniform_to_integers(u[:, plan.slices[2]], 17), crng.integers(keys, steps, 12, 40, 17)
    )
    # The per-step table gives the same numbers (steps inside it, and past its end).
    plain = crng.StreamPlan(plan.spec)
    plan.cache_steps(30)
    for st in (steps % 30, steps):
        np.testing.assert_array_equal(plan.bits(keys, st), plain.bits(keys, st))


def test_candidate_generator_with_predrawn_uniforms(tmp_path: Any) -> None:
    world = small_world(
        tmp_path,
        catalog={"new_items": {"fraction": 0.2, "arrival_start": 1, "arrival_end": 8}},
        candidates={"new_item_quota": 3},
    )
    inputs = _candidate_inputs(world, np.random.default_rng(8), 30)
    cfg = world.scenario.candidates
    world_keys = ("item_proj", "pop_cdf", "arrival", "new_order", "new_arrival_sorted")
    gen = CandidateGenerator(cfg, **{key: inputs.pop(key) for key in world_keys})
    u = gen.plan.uniform(inputs["keys"], inputs["steps"])
    fast = gen(uniforms=u, **inputs)
    slow = generate_candidates(cfg, **inputs, **{key: getattr(world, key) for key in world_keys})
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])
    assert fast[1].any(axis=1).all()


def test_step_without_info_has_the_same_dynamics(tmp_path: Any) -> None:
    world = small_world(tmp_path)
    a, b = UserBatch(world, 6), UserBatch(world, 6)
    keys = np.arange(1, 7, dtype=np.uint64) * 31
    a.reset_users(np.arange(6), keys)
    b.reset_users(np.arange(6), keys)
    for t in range(8):
        actions = np.full(6, t % world.scenario.candidates.k)
        ra, rb = a.step(actions), b.step(actions, info=False)
        assert rb[3] == {} and ra[3]
        for x, y in zip(ra[:3], rb[:3], strict=True):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(a.cand, b.cand)


def test_copied_users_equal_users_started_in_place(tmp_path: Any) -> None:
    world = small_world(tmp_path, users={"new_user_fraction": 0.3})
    n = 7
    direct, copied, ahead = UserBatch(world, n), UserBatch(world, n), UserBatch(world, n)
    # ROW_STATE must list every per-user array, or copied users would keep stale state.
    per_user = {
        name
        for name, value in vars(direct).items()
        if isinstance(value, np.ndarray) and value.ndim and value.shape[0] == n
    }
    assert per_user - {"_rows"} <= set(UserBatch.ROW_STATE)
    keys = np.arange(1, n + 1, dtype=np.uint64) * 1009
    direct.reset_users(np.arange(n), keys)
    copied.reset_users(np.arange(n), keys[::-1].copy())
    ahead.reset_users(np.arange(n), keys[::-1].copy())  # row r holds the user of row n-1-r
    copied.copy_rows(ahead, np.arange(n), np.arange(n)[::-1])
    for name in UserBatch.ROW_STATE:
        np.testing.assert_array_equal(getattr(direct, name), getattr(copied, name), err_msg=name)
    rng = np.random.default_rng(10)
    for _ in range(6):
        actions = rng.integers(0, world.scenario.candidates.k, n)
        for x, y in zip(direct.step(actions)[:3], copied.step(actions)[:3], strict=True):
            np.testing.assert_array_equal(x, y)


def test_gathered_dots_match_reference_and_do_not_depend_on_batch() -> None:
    from lmrecsim.envs import simulator

    rng = np.random.default_rng(11)
    emb = rng.standard_normal((500, 48)).astype(np.float32)
    theta = rng.standard_normal((37, 48)).astype(np.float32)
    items = rng.integers(0, 500, (37, 90))
    got = simulator._gathered_dots(theta, emb, items)
    assert got.dtype == np.float32 and got.shape == (37, 90)
    # Summed in float64: every element is the exact dot product rounded once to float32 (the
    # float32 reference sums with its own rounding, so it agrees within float32 accumulation).
    exact = np.einsum("nd,nmd->nm", theta.astype(np.float64), emb[items].astype(np.float64))
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-5 * np.abs(exact).max())
    ref = simulator.gathered_dots_reference(theta, emb, items)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4 * np.abs(exact).max())
    assert np.abs(got - exact).max() <= np.abs(ref - exact).max()
    for r in (0, 5, 36):
        np.testing.assert_array_equal(
            simulator._gathered_dots(theta[r : r + 1], emb, items[r : r + 1])[0], got[r]
        )


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


def test_first_true_columns_matches_stable_argsort() -> None:
    mask = np.random.default_rng(9).random((40, 33)) < 0.3
    mask[0] = False
    mask[1] = True
    for k in (1, 7, 33):
        ref = np.argsort(~mask, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(first_true_columns(mask, k), ref)


def test_sorted_lookup_matches_searchsorted() -> None:
    rng = np.random.default_rng(4)
    # A popularity CDF with repeated values (zero-prior items) and a coarse table, so that many
    # queries fall into buckets that straddle an edge; plus queries exactly on edges and ends.
    w = rng.pareto(1.2, size=500)
    w[rng.random(500) < 0.1] = 0.0
    cdf = np.cumsum(w)
    top = float(cdf[-1])
    for buckets in (7, 600, 20_000):
        lookup = SortedLookup(cdf, top, buckets)
        x = np.concatenate(
            [rng.random(5000) * top, cdf, np.nextafter(cdf, 0.0), [0.0, top, top * (1 - 1e-16)]]
        ).reshape(-1, 3)
        np.testing.assert_array_equal(lookup(x), np.searchsorted(cdf, x, side="right"))
    assert SortedLookup(cdf, top, 600).straddle.mean() < 0.5


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


@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("with_new", [False, True])
def test_finish_slates_matches_reference(use_mask: bool, with_new: bool) -> None:
    rng = np.random.default_rng(11)
    n_rows, n_items, k = 300, 60, 10
    new_cols, pop_cols = (4 if with_new else 0), (9, 16)
    # Few items, so repeats within and across blocks are common; some rows run short of items.
    proposals = rng.integers(-1, n_items, (n_rows, 40))
    proposals[:20, 8:] = -1
    excl = np.where(rng.random((n_rows, 12)) < 0.6, rng.integers(0, n_items, (n_rows, 12)), -1)
    mask = np.zeros((n_rows, n_items), dtype=bool)
    r, c = np.nonzero(excl >= 0)
    mask[r, excl[r, c]] = True
    kw: dict[str, Any] = {
        "new_cols": new_cols,
        "new_cap": rng.integers(0, 4, n_rows) if with_new else None,
        "pop_cols": pop_cols,
        "pop_cap": rng.integers(0, 5, n_rows) if with_new else 3,
        "shuffle": rng.random((n_rows, k)),
        "k": k,
    }
    ref = finish_slates_reference(proposals.copy(), excl, mask if use_mask else None, **kw)
    seen = np.zeros(n_items, dtype=bool)
    got = finish_slates(proposals.copy(), excl, mask if use_mask else None, seen=seen, **kw)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])
    assert not seen.any()  # the scratch is handed back clean
    assert (~ref[1]).any() and ref[1].any()  # both full and short slates were exercised
