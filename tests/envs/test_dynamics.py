"""The scenario dynamics measurably happen: item cold start, interest drift, Zipf popularity, new users.

Statistical checks use fixed keys and tolerances derived from the sample size (binomial or Poisson
standard errors, 4 sigma). Many users are stepped at once through the batched ``UserBatch``; a
user's trajectory does not depend on the batch it is stepped in, so this is the env's dynamics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lmrecsim.envs.simulator import UserBatch
from lmrecsim.envs.world import World, build_world
from lmrecsim.scenarios import scenario_from_dict


def _world(**blocks: Any) -> World:
    return build_world(scenario_from_dict({"extends": "default", "name": "dyn", **blocks}))


def _batch(world: World, n: int, seed: int) -> UserBatch:
    batch = UserBatch(world, n)
    keys = (np.arange(n, dtype=np.uint64) + np.uint64(seed) * np.uint64(1_000_003)) * np.uint64(
        0x9E3779B97F4A7C15
    ) + np.uint64(1)
    batch.reset_users(np.arange(n), keys)
    return batch


def _random_actions(batch: UserBatch, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random valid slot per user (the random policy)."""
    scores = np.where(batch.mask, rng.random(batch.mask.shape), -1.0)
    return scores.argmax(axis=1)


# ------------------------------------------------------------------------------------ item cold start
QUOTA, K, NEW_FRACTION, ARRIVE_END = 4, 20, 0.2, 10


@pytest.fixture(scope="module")
def new_item_world() -> World:
    return _world(
        catalog={
            "new_items": {"fraction": NEW_FRACTION, "arrival_start": 1, "arrival_end": ARRIVE_END}
        },
        candidates={"k": K, "new_item_quota": QUOTA},
        users={"patience": {"initial_low": 50.0, "initial_high": 50.0, "max_patience": 50.0}},
        episode={"horizon": 20},
    )


def test_new_items_are_held_back_with_zero_popularity(new_item_world: World) -> None:
    w = new_item_world
    new = w.arrival > 0
    assert new.sum() == round(NEW_FRACTION * w.n_items)
    assert w.arrival[new].min() >= 1 and w.arrival.max() <= ARRIVE_END
    assert np.all(w.popularity[new] == 0.0)
    assert np.all(w.pop_rank[new] >= (~new).sum())  # ranked after every ordinary item


def test_new_items_appear_among_candidates_at_the_quota(new_item_world: World) -> None:
    w = new_item_world
    n_users, rng = 300, np.random.default_rng(0)
    batch = _batch(w, n_users, seed=1)
    extras, slots = 0, 0
    for _ in range(20):
        t = batch.t[0]
        cand, valid = batch.cand, batch.mask
        arrived = (w.arrival[cand] > 0) & valid
        # Nothing that has not arrived yet is ever offered.
        assert not np.any(valid & (w.arrival[cand] > t))
        n_arrived = int((w.new_arrival_sorted <= t).sum())
        expected_quota = min(QUOTA, n_arrived)
        counts = arrived.sum(axis=1)
        assert np.all(counts >= expected_quota), (t, counts.min(), expected_quota)
        if t >= ARRIVE_END:
            extras += int((counts - QUOTA).sum())
            slots += n_users * (K - QUOTA)
        # Recommending a new item is flagged in info.
        pick = np.where(arrived.any(axis=1), arrived.argmax(axis=1), _random_actions(batch, rng))
        _, _, _, info = batch.step(pick)
        assert np.array_equal(info["is_new_item"], w.arrival[info["item_index"]] > 0)
        assert info["is_new_item"][arrived.any(axis=1)].all()
    # Beyond the quota, new items turn up only by chance (random exploration and nearest items):
    # at most at their catalog share, never crowding the slate. Binomial 4-sigma bound.
    share = extras / slots
    bound = NEW_FRACTION + 4 * np.sqrt(NEW_FRACTION * (1 - NEW_FRACTION) / slots)
    assert share <= bound


def test_without_a_quota_new_items_get_no_reserved_slots() -> None:
    w = _world(
        catalog={"new_items": {"fraction": NEW_FRACTION, "arrival_start": 1, "arrival_end": 2}},
        candidates={"k": K, "new_item_quota": 0, "popular": 1.0, "nearest": 0.0, "random": 0.0},
        episode={"horizon": 10},
    )
    batch = _batch(w, 200, seed=2)
    rng = np.random.default_rng(1)
    for _ in range(4):
        batch.step(_random_actions(batch, rng))
    # Popularity-sampled candidates never include zero-prior items.
    assert not np.any((w.arrival[batch.cand] > 0) & batch.mask)


# ----------------------------------------------------------------------------------- interest drift
OLD, NEW = "space_nerd", "hopeless_romantic"


def _topic_affinity(world: World, theta: np.ndarray, topics: tuple[str, ...]) -> np.ndarray:
    """Mean cosine of each user's hidden taste with the items of some topics, shape (N,)."""
    items = np.isin(world.primary_topic, [world.topic_names.index(t) for t in topics])
    return (theta @ world.item_emb[items].T).mean(axis=1)


@pytest.fixture(scope="module")
def abrupt_world() -> World:
    return _world(
        users={
            "personas": [OLD, NEW],
            "exposure_drift": 0.0,
            "drift": {"kind": "abrupt", "target": NEW, "step": 8, "fraction": 1.0},
            "patience": {"initial_low": 50.0, "initial_high": 50.0, "max_patience": 50.0},
        },
        episode={"horizon": 16},
    )


def test_abrupt_drift_moves_affinity_from_the_old_topic_to_the_new(abrupt_world: World) -> None:
    w = abrupt_world
    # A persona's topics are the ones it likes (space_nerd: hard_scifi, space_documentaries).
    old_topic = tuple(w.personas[0].liked)
    new_topic = tuple(w.personas[1].liked)
    batch = _batch(w, 200, seed=3)
    movers = batch.persona == 0
    assert movers.sum() > 50
    rng = np.random.default_rng(2)
    before_old = _topic_affinity(w, batch.theta, old_topic)
    before_new = _topic_affinity(w, batch.theta, new_topic)
    events = np.zeros(batch.n, dtype=int)
    for step in range(11):
        # The info describes the taste that served the step: the switch "at step 8" first serves
        # step 8, and that step carries the event (it used to be flagged on step 7, which the
        # old taste served, so ctr_after_drift counted a step from before the drift).
        serving = batch.theta.copy()
        _, _, _, info = batch.step(_random_actions(batch, rng))
        assert np.all(info["step"] == step)
        events += info["drift_event"]
        assert np.all(info["drift_event"] == (step == 8))
        assert np.all(info["drift_phase"] == (1.0 if step >= 8 else 0.0))
        switched = np.allclose(serving, batch.theta_away, atol=1e-6)
        assert switched == (step >= 8)
    assert np.all(events == 1)
    after_old = _topic_affinity(w, batch.theta, old_topic)
    after_new = _topic_affinity(w, batch.theta, new_topic)
    # Every user who started as the old persona now prefers the new persona's topic.
    assert np.all(before_old[movers] > before_new[movers])
    assert np.all(after_old[movers] < before_old[movers])
    assert np.all(after_new[movers] > before_new[movers])
    assert np.all(after_new[movers] > after_old[movers])


@pytest.mark.parametrize("strength", [0.3, 0.6])
def test_partial_drift_mixes_the_target_taste_with_the_own(strength: float) -> None:
    def worlds(s: float) -> World:
        return _world(
            users={"drift": {"kind": "abrupt", "step": 2, "fraction": 1.0, "strength": s}},
            episode={"horizon": 5},
        )

    full, part = _batch(worlds(1.0), 64, seed=7), _batch(worlds(strength), 64, seed=7)
    # Same users (same keys): the home tastes agree, the away taste is the stated mix.
    assert np.array_equal(full.theta_home, part.theta_home)
    mix = strength * full.theta_away + (1 - strength) * full.theta_home
    expect = mix / np.linalg.norm(mix, axis=1, keepdims=True)
    assert np.allclose(part.theta_away, expect, atol=1e-6)
    closeness = np.einsum("nd,nd->n", part.theta_away, part.theta_home)
    assert np.all(closeness > np.einsum("nd,nd->n", full.theta_away, full.theta_home))


def test_abrupt_drift_hits_the_configured_fraction_of_users() -> None:
    frac, n = 0.3, 1000
    w = _world(
        users={"drift": {"kind": "abrupt", "step": 2, "fraction": frac}}, episode={"horizon": 5}
    )
    batch = _batch(w, n, seed=4)
    share = batch.drifting.mean()
    assert abs(share - frac) < 4 * np.sqrt(frac * (1 - frac) / n)


def test_gradual_drift_approaches_the_target_monotonically() -> None:
    rate = 0.1
    w = _world(
        users={
            "exposure_drift": 0.0,
            "drift": {"kind": "gradual", "rate": rate},
            "patience": {"initial_low": 50.0, "initial_high": 50.0, "max_patience": 50.0},
        },
        episode={"horizon": 30},
    )
    batch = _batch(w, 100, seed=5)
    rng = np.random.default_rng(3)
    closeness = [np.einsum("nd,nd->n", batch.theta, batch.theta_away)]
    for step in range(20):
        _, _, _, info = batch.step(_random_actions(batch, rng))
        closeness.append(np.einsum("nd,nd->n", batch.theta, batch.theta_away))
        # The phase of the taste that served step `step`: `step` drift updates so far.
        assert np.allclose(info["drift_phase"], 1 - (1 - rate) ** step)
    c = np.stack(closeness)
    assert np.all(np.diff(c, axis=0) > -1e-6)
    assert np.all(c[-1] > c[0] + 0.05)
    assert np.all(c[-1] > 0.95)


def test_periodic_drift_alternates_between_home_and_target() -> None:
    period = 3
    w = _world(
        users={
            "exposure_drift": 0.0,
            "drift": {"kind": "periodic", "period": period, "fraction": 1.0},
            "patience": {"initial_low": 50.0, "initial_high": 50.0, "max_patience": 50.0},
        },
        episode={"horizon": 20},
    )
    batch = _batch(w, 50, seed=6)
    rng = np.random.default_rng(4)
    for step in range(12):
        serving = batch.theta.copy()
        _, _, _, info = batch.step(_random_actions(batch, rng))
        away = (step // period) % 2 == 1
        assert np.all(info["drift_event"] == (step > 0 and step % period == 0))
        assert np.all(info["drift_phase"] == float(away))
        target = batch.theta_away if away else batch.theta_home
        assert np.allclose(serving, target, atol=1e-6)


# ---------------------------------------------------------------------------------- Zipf popularity
ZIPF_S = 1.0


@pytest.fixture(scope="module")
def zipf_world() -> World:
    return _world(
        catalog={"popularity": {"zipf_exponent": ZIPF_S, "head_fraction": 0.1}},
        candidates={"popular": 1.0, "nearest": 0.0, "random": 0.0, "mask_consumed": False},
        users={"patience": {"initial_low": 50.0, "initial_high": 50.0, "max_patience": 50.0}},
        episode={"horizon": 30},
    )


def test_popularity_prior_is_zipf_with_the_configured_exponent(zipf_world: World) -> None:
    w = zipf_world
    ranks = np.arange(1, w.n_items + 1)
    expected = ranks**-ZIPF_S / (ranks**-ZIPF_S).sum()
    assert np.allclose(np.sort(w.popularity)[::-1], expected)
    assert w.head_rank == int(np.ceil(0.1 * w.n_items))


def test_recommended_items_follow_the_zipf_skew_under_a_random_policy(zipf_world: World) -> None:
    w = zipf_world
    n_users, n_steps = 400, 30
    batch = _batch(w, n_users, seed=7)
    rng = np.random.default_rng(5)
    counts = np.zeros(w.n_items)
    for _ in range(n_steps):
        _, _, _, info = batch.step(_random_actions(batch, rng))
        np.add.at(counts, info["popularity_rank"], 1)
    # Rank-frequency slope on log-spaced rank bins. In the tail (rank >= 20) an item's chance of
    # being among the K popularity-sampled candidates is proportional to its prior, so the slope is
    # -s; the head saturates (sampling without replacement) and is left out.
    edges = np.unique(np.geomspace(20, w.n_items, 12).astype(int))
    x, y, wts = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        c = counts[lo:hi].sum()
        x.append(np.log(np.arange(lo, hi) + 1).mean())
        y.append(np.log(c / (hi - lo)))
        wts.append(c)  # Poisson: var(log mean count) ~ 1 / count
    x, y, wts = map(np.asarray, (x, y, wts))
    xm = np.average(x, weights=wts)
    slope = np.sum(wts * (x - xm) * (y - np.average(y, weights=wts))) / np.sum(wts * (x - xm) ** 2)
    se = np.sqrt(1.0 / np.sum(wts * (x - xm) ** 2))
    # 4 standard errors, plus 0.05 for what is left of the without-replacement saturation.
    assert abs(slope + ZIPF_S) < 4 * se + 0.05, (slope, se)
    # And the head takes far more than its 10% of the catalog.
    head_share = counts[: w.head_rank].sum() / counts.sum()
    assert head_share > 0.4


# --------------------------------------------------------------------------------------- new users
@pytest.mark.parametrize("onboarding", ["text", "none"])
def test_new_users_show_onboarding_or_nothing(onboarding: str) -> None:
    frac, n = 0.5, 400
    w = _world(users={"new_user_fraction": frac, "onboarding": onboarding})
    batch = _batch(w, n, seed=8)
    new = batch.new_user
    assert abs(new.mean() - frac) < 4 * np.sqrt(frac * (1 - frac) / n)
    obs = batch.observe()
    assert np.all(batch.hist_item[new] == -1) and np.all(batch.n_consumed[new] == 0)
    assert np.all(batch.n_consumed[~new] >= w.scenario.users.history_min)
    user_norm = np.linalg.norm(obs["user"], axis=1)
    flag = obs["candidate_features"][:, :, 4]
    if onboarding == "text":
        assert np.all(user_norm[new] > 0) and np.all(flag[new] == 0)
        # The state is the encoded onboarding text of the user's persona.
        expected = w.projection.project(w.onboarding_emb[batch.persona[new]])
        assert np.allclose(obs["user"][new], expected, atol=1e-4)
    else:
        assert np.all(user_norm[new] == 0) and np.all(flag[new] == 1)
    assert np.all(flag[~new] == 0)
    _, _, _, info = batch.step(_random_actions(batch, np.random.default_rng(6)))
    assert np.array_equal(info["is_new_user"], new)


# ------------------------------------------------------------------------------------ small catalogs
def test_a_catalog_smaller_than_the_history_gives_pasts_of_distinct_items_and_runs_out() -> None:
    # 20 items, pasts of 15-30 items, and consumed items never offered again: a past holds
    # distinct items drawn from a pool of 20 draws (so fewer than 20), and long sessions empty
    # the slate instead of crashing. (A past longer than the pool used to fail at reset.)
    world = _world(
        catalog={"n_items": 20},
        candidates={"k": 20, "mask_consumed": True},
        episode={"horizon": 60},
    )
    batch = _batch(world, 64, seed=5)
    n = batch.n_consumed
    assert n.max() <= 20 and n.min() >= 1
    for row in range(64):
        past = batch.consumed[row, : n[row]]
        assert len(set(past.tolist())) == n[row] and (past >= 0).all()
    rng = np.random.default_rng(0)
    for _ in range(60):
        for row in range(64):
            # Valid slots hold distinct items the user has not consumed.
            offered = batch.cand[row][batch.mask[row]].tolist()
            consumed = set(batch.consumed[row, : batch.n_consumed[row]].tolist())
            assert len(set(offered)) == len(offered) and not consumed & set(offered)
            assert len(offered) <= 20 - len(consumed)
        batch.step(_random_actions(batch, rng))
    # Sessions that clicked a lot have run the catalog down to a few offers.
    assert batch.mask.sum(axis=1).min() < 20 - 15


@pytest.mark.parametrize("mask_consumed", [True, False])
def test_mask_consumed_decides_whether_clicked_items_come_back(mask_consumed: bool) -> None:
    # `mask_consumed: false` used to change nothing: the consumed-items bitmap still removed
    # every clicked item (and a returning user's past) from the slates.
    world = _world(
        catalog={"n_items": 20},
        candidates={"k": 10, "mask_consumed": mask_consumed},
        episode={"horizon": 15},
    )
    batch = _batch(world, 32, seed=3)
    rng = np.random.default_rng(1)
    offered_again = 0
    for _ in range(15):
        consumed = [set(batch.consumed[r, : batch.n_consumed[r]].tolist()) for r in range(32)]
        for r in range(32):
            offered = set(batch.cand[r][batch.mask[r]].tolist())
            offered_again += len(offered & consumed[r])
        if not mask_consumed:
            # 20 items, 10 slots: nothing excluded, every slot holds a distinct item.
            assert batch.mask.all()
        batch.step(_random_actions(batch, rng))
    assert (offered_again > 0) == (not mask_consumed)
