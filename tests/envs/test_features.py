"""Candidate features: each matches a per-candidate loop over the visible history, within bounds."""

from __future__ import annotations

import numpy as np
import pytest

from lmrecsim.envs.features import (
    EXPOSURE_DECAY,
    FEATURE_HIGH,
    FEATURE_LOW,
    FEATURE_NAMES,
    RECENT_DECAY,
    candidate_features,
    candidate_features_reference,
)
from lmrecsim.envs.simulator import UserBatch
from lmrecsim.envs.world import World, build_world
from lmrecsim.scenarios.loader import scenario_from_dict


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(scenario_from_dict({"extends": "default", "name": "feats"}))


def _stepped(world: World, n: int, steps: int, seed: int) -> UserBatch:
    users = UserBatch(world, n)
    rng = np.random.default_rng(seed)
    users.reset_users(np.arange(n), rng.integers(0, 2**62, n).astype(np.uint64))
    for _ in range(steps):
        users.step(np.where(users.mask, rng.random(users.mask.shape), -1.0).argmax(axis=1))
    return users


def _reference(users: UserBatch, r: int, k: int) -> dict[str, float]:
    """The history-evidence features of candidate ``k`` of row ``r``, one event at a time."""
    w = users.world
    unit = w.item_unit_proj.astype(np.float64)
    c = int(users.cand[r, k])
    events = [
        (age, int(item), bool(click))
        for age, (item, click) in enumerate(
            zip(users.hist_item[r][::-1], users.hist_click[r][::-1], strict=True)
        )
        if item >= 0
    ]
    cos = {item: float(unit[c] @ unit[item]) for _, item, _ in events}

    def mean(weights: list[tuple[float, float]]) -> float:
        total = sum(wt for wt, _ in weights)
        return sum(wt * v for wt, v in weights) / total if total > 0 else 0.0

    same = [
        (age, click) for age, item, click in events if w.primary_topic[item] == w.primary_topic[c]
    ]
    clicks = [(age, item) for age, item, click in events if click]
    skips = [(age, item) for age, item, click in events if not click]
    fast = {age: RECENT_DECAY**age for age, _, _ in events}
    return {
        "click_similarity": mean([(1.0, cos[i]) for _, i in clicks]),
        "skip_similarity": mean([(1.0, cos[i]) for _, i in skips]),
        "topic_exposure": sum(EXPOSURE_DECAY**age for age, _ in same) * (1 - EXPOSURE_DECAY),
        "topic_click_rate": sum(click for _, click in same) / (len(same) + 1.0),
        "recent_click_similarity": mean([(fast[a], cos[i]) for a, i in clicks]),
        "recent_skip_similarity": mean([(fast[a], cos[i]) for a, i in skips]),
        "last_click_similarity": cos[min(clicks)[1]] if clicks else 0.0,
        "recent_skip_share": mean([(fast[a], float(not click)) for a, _, click in events]),
    }


@pytest.mark.parametrize("steps", [0, 3, 12])
def test_evidence_features_match_a_loop_over_the_history(world: World, steps: int) -> None:
    users = _stepped(world, 12, steps, seed=steps)
    feats = candidate_features(users, np.arange(users.n))
    assert feats.shape == (users.n, users.k, len(FEATURE_NAMES))
    assert np.all(feats >= FEATURE_LOW) and np.all(feats <= FEATURE_HIGH)
    checked = 0
    for r in range(users.n):
        for k in np.flatnonzero(users.mask[r])[:5]:
            for name, want in _reference(users, r, int(k)).items():
                got = feats[r, k, FEATURE_NAMES.index(name)]
                assert got == pytest.approx(want, abs=2e-5), (name, r, k)
                checked += 1
    assert checked > 200


def test_recent_features_follow_a_change_of_taste_faster_than_window_means(world: World) -> None:
    """Clicks on one new item after a run of clicks elsewhere: the short time scale moves most."""
    users = _stepped(world, 4, 12, seed=7)
    win = users.hist_item.shape[1]
    rng = np.random.default_rng(0)
    old_items = rng.choice(world.n_items, size=win - 2, replace=False)
    new_item = int(users.cand[0, 0])
    users.hist_item[0] = np.concatenate([old_items, [new_item, new_item]])
    users.hist_click[0] = True
    feats = candidate_features(users, np.arange(users.n))[0, 0]
    recent = feats[FEATURE_NAMES.index("recent_click_similarity")]
    window = feats[FEATURE_NAMES.index("click_similarity")]
    assert feats[FEATURE_NAMES.index("last_click_similarity")] == pytest.approx(1.0, abs=1e-5)
    # The two newest events carry (1 + 0.5) / sum(0.5^a) ~ 0.75 of the recent weight, so the other
    # cosines (>= -1) can pull it down to 0.5 at most; the window mean weighs them 2 : 8.
    assert recent > 0.5 and recent > window + 0.3
    assert feats[FEATURE_NAMES.index("recent_skip_share")] == 0.0
    users.hist_click[0, -3:] = False  # the three newest were skips
    skip_share = candidate_features(users, np.arange(users.n))[
        0, 0, FEATURE_NAMES.index("recent_skip_share")
    ]
    assert skip_share == pytest.approx((1 + 0.5 + 0.25) / sum(0.5**a for a in range(win)), abs=1e-6)


@pytest.mark.parametrize("steps", [0, 3, 12])
def test_compiled_features_match_the_numpy_reference(world: World, steps: int) -> None:
    users = _stepped(world, 24, steps, seed=100 + steps)
    users.hist_item[5] = -1  # a row with no shown event
    users.hist_click[6] = False  # a row with skips only
    rows = np.arange(users.n)
    fast = candidate_features(users, rows)
    ref = candidate_features_reference(users, rows)
    assert fast.dtype == np.float32 and fast.shape == ref.shape
    # float32 rounding of the cosines (the kernel sums in float64) is the only difference.
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-6)
    assert np.array_equal(fast[:, :, :6], ref[:, :, :6])
    # Each row is computed on its own: any subset of rows, in any order, gives the same rows.
    some = np.array([17, 3, 5, 3, 22])
    assert np.array_equal(candidate_features(users, some), fast[some])


def test_session_features_count_this_sessions_feedback(world: World) -> None:
    """Clicks, skips and the ratings of clicks since the session began, over the horizon; a
    history from before the session does not count, and a new user starts from zero."""
    users = UserBatch(world, 8)
    users.reset_users(np.arange(8), np.arange(1, 9, dtype=np.uint64) * np.uint64(7919))
    horizon = world.scenario.episode.horizon
    name = {
        n: FEATURE_NAMES.index(n) for n in ("session_clicks", "session_skips", "session_rating")
    }
    first = candidate_features(users, np.arange(8))
    assert (users.hist_item >= 0).any()  # returning users: a history, but no session yet
    assert np.all(first[:, :, list(name.values())] == 0.0)
    rng = np.random.default_rng(3)
    clicks = np.zeros(8)
    ratings = np.zeros(8)
    for _ in range(12):
        _, _, _, info = users.step(np.where(users.mask, rng.random(users.mask.shape), -1).argmax(1))
        clicks += info["clicked"]
        ratings += np.where(info["clicked"], info["rating"] - 3.0, 0.0)
    assert 0 < clicks.sum() < 8 * 12 and np.any(ratings != 0)
    feats = candidate_features(users, np.arange(8))
    for k in (0, users.k - 1):
        np.testing.assert_allclose(feats[:, k, name["session_clicks"]], clicks / horizon, atol=1e-7)
        np.testing.assert_allclose(
            feats[:, k, name["session_skips"]], (12 - clicks) / horizon, atol=1e-7
        )
        np.testing.assert_allclose(
            feats[:, k, name["session_rating"]], ratings / horizon, atol=1e-7
        )
    users.reset_users(np.array([2]), np.array([5], dtype=np.uint64))
    again = candidate_features(users, np.arange(8))
    assert np.all(again[2, :, list(name.values())] == 0.0)
    assert np.array_equal(again[3], feats[3])
