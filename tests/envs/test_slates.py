"""Slates: ``candidates.slate_size`` L > 1, a MultiDiscrete action and a multinomial-logit choice."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from lmrecsim.envs.env import RecommendationEnv
from lmrecsim.envs.response import click_logit
from lmrecsim.envs.simulator import UserBatch, check_slates, slate_shown
from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv
from lmrecsim.envs.vector_env import RecommendationVectorEnv
from lmrecsim.envs.world import World
from lmrecsim.scenarios import ScenarioError

from .test_vec_env import small_scenario, small_world

SLATE = {"candidates": {"slate_size": 3}}


@pytest.fixture(scope="module")
def slate_world(tmp_path_factory: Any) -> World:
    return small_world(tmp_path_factory.mktemp("slate"), **SLATE)


def _start(world: World, n: int, seed: int = 0) -> UserBatch:
    users = UserBatch(world, n, rich_info=True)
    keys = np.random.default_rng(seed).integers(1, 2**63, size=n, dtype=np.uint64)
    users.reset_users(np.arange(n), keys)
    return users


def _valid_slates(users: UserBatch, size: int, rng: np.random.Generator) -> np.ndarray:
    """One slate of ``size`` distinct valid slots per user."""
    return np.stack([rng.permutation(np.flatnonzero(m))[:size] for m in users.mask])


def test_slate_size_sets_a_multidiscrete_action_space_and_passes_the_env_checkers(
    slate_world: World,
) -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = RecommendationEnv(world=slate_world)
    assert env.action_space == spaces.MultiDiscrete([slate_world.scenario.candidates.k] * 3)
    check_env(env, skip_render_check=True)
    sb3_check_env(RecommendationEnv(world=slate_world))
    venv = BatchedRecommendationVecEnv(world=slate_world, n_envs=2)
    assert venv.action_space == env.action_space
    vector = RecommendationVectorEnv(world=slate_world, num_envs=2)
    assert vector.single_action_space == env.action_space


def test_slate_size_above_k_is_one_line_naming_the_key(tmp_path: Any) -> None:
    with pytest.raises(ScenarioError) as err:
        small_scenario(tmp_path, candidates={"k": 4, "slate_size": 5})
    msg = str(err.value)
    assert "slate_size" in msg and "\n" not in msg


def test_malformed_slates_are_refused() -> None:
    np.testing.assert_array_equal(check_slates([1, 2, 3], 1, 5, 3), [[1, 2, 3]])
    with pytest.raises(ValueError, match=r"expected \(2, 3\)"):
        check_slates(np.zeros((2, 2), dtype=np.int64), 2, 5, 3)
    # The right number of values in another shape: a transposed or flat batch is refused.
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        check_slates(np.zeros((3, 2), dtype=np.int64), 2, 5, 3)
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        check_slates(np.zeros(6, dtype=np.int64), 2, 5, 3)
    np.testing.assert_array_equal(check_slates([[1, 2, 3]], 1, 5, 3), [[1, 2, 3]])
    with pytest.raises(ValueError, match="not a candidate slot"):
        check_slates([1, 2, 5], 1, 5, 3)
    with pytest.raises(ValueError, match="dtype"):
        check_slates([1.0, 2.0, 3.0], 1, 5, 3)


def test_masked_and_repeated_positions_show_nothing() -> None:
    mask = np.array([[True, True, False, True], [True, True, True, True]])
    slots = np.array([[0, 2, 0], [3, 1, 3]])
    np.testing.assert_array_equal(
        slate_shown(slots, mask), [[True, False, False], [True, True, False]]
    )


def test_choice_frequencies_follow_the_multinomial_logit(slate_world: World) -> None:
    """Over many users, how often each position is clicked matches the reported probabilities,
    which are exp(z_j) / (1 + sum exp(z)) of the response model's click logits."""
    n, size = 4000, 3
    users = _start(slate_world, n)
    slots = _valid_slates(users, size, np.random.default_rng(1))
    rows = np.arange(n)[:, None]
    items = users.cand[rows, slots]
    sc = slate_world.scenario
    aff = np.einsum("nd,nld->nl", users.theta.astype(np.float64), slate_world.item_emb[items])
    z = click_logit(
        sc.response,
        aff,
        slate_world.log_pop_rel[items].astype(np.float64),
        slate_world.catalog.appeal[items].astype(np.float64),
        users.fatigue[rows, slate_world.primary_topic[items]].astype(np.float64),
    )
    expected = np.exp(z) / (1.0 + np.exp(z).sum(axis=1, keepdims=True))
    _, _, _, info = users.step(slots)
    np.testing.assert_allclose(info["slate_click_probability"], expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(info["click_probability"], expected.sum(axis=1), rtol=1e-5)
    p = info["slate_click_probability"]
    for j in range(size):
        hits = int((info["clicked_position"] == j).sum())
        mean = p[:, j].sum()
        sd = np.sqrt((p[:, j] * (1 - p[:, j])).sum())
        assert abs(hits - mean) < 4 * sd, (j, hits, mean, sd)
    none = int((info["clicked_position"] == -1).sum())
    p_none = 1 - p.sum(axis=1)
    assert abs(none - p_none.sum()) < 4 * np.sqrt((p_none * (1 - p_none)).sum())
    # The clicked item is the one at the clicked position, and it is what the info describes.
    c = info["clicked"]
    np.testing.assert_array_equal(c, info["clicked_position"] >= 0)
    np.testing.assert_array_equal(
        info["item_index"][c], items[np.flatnonzero(c), info["clicked_position"][c]]
    )
    # Without a click the info describes the first item shown.
    np.testing.assert_array_equal(info["item_index"][~c], items[~c, 0])


def test_a_slate_showing_one_item_is_the_single_item_click_model(tmp_path: Any) -> None:
    """A slate whose other positions repeat its first slot shows one item: its click chance is
    sigmoid(z), and the user clicks exactly when the single-item env's same user clicks."""
    single = small_world(tmp_path / "one")
    slate = small_world(tmp_path / "three", **SLATE)
    n = 300
    a = _start(single, n, seed=5)
    b = _start(slate, n, seed=5)
    np.testing.assert_array_equal(a.cand, b.cand)
    for _ in range(6):
        slots = np.argmax(a.mask, axis=1)
        _, _, _, ia = a.step(slots)
        _, _, _, ib = b.step(np.repeat(slots[:, None], 3, axis=1))
        np.testing.assert_allclose(ib["click_probability"], ia["click_probability"], rtol=1e-6)
        np.testing.assert_array_equal(ib["clicked"], ia["clicked"])
        np.testing.assert_array_equal(ib["item_index"], ia["item_index"])
        np.testing.assert_array_equal(ib["slate_items"][:, 1:], -1)


def test_an_empty_slate_is_an_invalid_skip(slate_world: World) -> None:
    users = _start(slate_world, 2)
    users.mask[:] = True
    users.mask[0, :3] = False
    before = users.patience.copy()
    reward, _, _, info = users.step(np.array([[0, 1, 2], [0, 1, 2]]))
    assert info["invalid_action"].tolist() == [True, False]
    assert reward[0] == 0.0 and not info["clicked"][0]
    np.testing.assert_array_equal(info["slate_items"][0], [-1, -1, -1])
    skip = slate_world.scenario.users.patience.skip_cost
    assert users.patience[0] == pytest.approx(before[0] - skip)


def test_history_fatigue_and_state_take_every_item_shown(slate_world: World) -> None:
    users = _start(slate_world, 64, seed=3)
    slots = _valid_slates(users, 3, np.random.default_rng(4))
    fatigue = users.fatigue.copy()
    _, _, _, info = users.step(slots)
    fc = slate_world.scenario.users.fatigue
    expected = fatigue * np.float32(fc.decay)
    topics = slate_world.primary_topic[info["slate_items"]]
    for r in range(64):
        for t in topics[r]:
            expected[r, t] += np.float32(fc.gain)
    np.testing.assert_allclose(users.fatigue, expected, rtol=1e-6)
    # The history gained the three items in slate order; only the clicked position is a click.
    np.testing.assert_array_equal(users.hist_item[:, -3:], info["slate_items"])
    clicked_pos = np.arange(3)[None, :] == info["clicked_position"][:, None]
    np.testing.assert_array_equal(users.hist_click[:, -3:], clicked_pos)
    # The window keeps as many steps as a single-item env's.
    assert users.window == 3 * max(slate_world.scenario.state.history_window, 10)


def test_batched_slate_trajectories_equal_the_single_env_per_seed(slate_world: World) -> None:
    n_envs, n_steps, seed, k = 4, 30, 11, slate_world.scenario.candidates.k
    actions = np.random.default_rng(2).integers(0, k, size=(n_steps, n_envs, 3))
    venv = BatchedRecommendationVecEnv(world=slate_world, n_envs=n_envs)
    venv.seed(seed)
    venv.reset()
    batched = []
    for t in range(n_steps):
        venv.step_async(actions[t])
        batched.append(venv.step_wait())
    n_done = 0
    for i in range(n_envs):
        env = RecommendationEnv(world=slate_world)
        env.reset(seed=seed + i)
        for t in range(n_steps):
            obs, r, term, trunc, _ = env.step(actions[t, i])
            if term or trunc:
                n_done += 1
                obs, _ = env.reset()
            b_obs, b_rew, b_done, _ = batched[t]
            assert b_rew[i] == np.float32(r) and bool(b_done[i]) == (term or trunc), (i, t)
            for key, value in obs.items():
                np.testing.assert_array_equal(b_obs[key][i], value, err_msg=f"{key} {i} {t}")
    assert n_done >= n_envs


def test_gymnasium_make_takes_slates(slate_world: World) -> None:
    env = gym.make("lmrecsim/Recommend-v0", world=slate_world)
    obs, _ = env.reset(seed=0)
    a = np.flatnonzero(obs["action_mask"])[:3]
    _, _, _, _, info = env.step(a)
    assert len(info["slate_items"]) == 3 and "item_id" in info


def test_features_count_recency_in_steps_and_stay_in_bounds(slate_world: World) -> None:
    from lmrecsim.envs.env import observation_space
    from lmrecsim.envs.features import (
        FEATURE_NAMES,
        candidate_features,
        candidate_features_reference,
    )

    users = _start(slate_world, 24, seed=8)
    rng = np.random.default_rng(9)
    for _ in range(6):
        users.step(_valid_slates(users, 3, rng))
    rows = np.arange(users.n)
    fast = candidate_features(users, rows)
    np.testing.assert_allclose(fast, candidate_features_reference(users, rows), rtol=0, atol=1e-6)
    box = observation_space(slate_world)["candidate_features"]
    assert box.contains(fast[0]) and (fast[..., FEATURE_NAMES.index("topic_exposure")] <= 1).all()
    # The three events of the newest step weigh the same: a skipped newest step among clicks.
    users.hist_item[0] = users.cand[0, 0]
    users.hist_click[0] = True
    users.hist_click[0, -3:] = False
    share = candidate_features(users, rows)[0, 0, FEATURE_NAMES.index("recent_skip_share")]
    n_steps = users.window // 3
    assert share == pytest.approx(1 / sum(0.5**a for a in range(n_steps)), abs=1e-6)


def test_position_bias_lowers_later_positions_logits(tmp_path: Any) -> None:
    """With response.position_bias b, position j's click logit is lowered by b * j: the ratio of
    the click chances of an item at position 2 and at position 0 (the same users, the same items
    in the other order) is exp(-2b) times the ratio without bias."""
    plain = small_world(tmp_path / "plain", **SLATE)
    bias = 0.7
    biased = small_world(tmp_path / "biased", response={"position_bias": bias}, **SLATE)
    n = 200
    slots = _valid_slates(_start(plain, n, seed=4), 3, np.random.default_rng(5))
    probs = {}
    for name, world in (("plain", plain), ("biased", biased)):
        for order in ((0, 1, 2), (2, 1, 0)):
            users = _start(world, n, seed=4)
            _, _, _, info = users.step(slots[:, order])
            probs[name, order] = info["slate_click_probability"]
    # The item of slot column 0 sits at position 0, then at position 2.
    first, last = probs["plain", (0, 1, 2)][:, 0], probs["plain", (2, 1, 0)][:, 2]
    b_first, b_last = probs["biased", (0, 1, 2)][:, 0], probs["biased", (2, 1, 0)][:, 2]
    np.testing.assert_allclose(last / first, 1.0, rtol=1e-9)  # order does not matter without bias
    z = {  # the logits back from the probabilities: log(p_j / p_none)
        key: np.log(p / (1 - p.sum(axis=1, keepdims=True))) for key, p in probs.items()
    }
    np.testing.assert_allclose(z["biased", (0, 1, 2)][:, 0], z["plain", (0, 1, 2)][:, 0])
    np.testing.assert_allclose(z["biased", (2, 1, 0)][:, 2], z["plain", (2, 1, 0)][:, 2] - 2 * bias)
    assert (b_last < b_first).all()


def test_the_info_keeps_the_slate_when_the_caller_reuses_its_action_buffer(
    slate_world: World,
) -> None:
    env = RecommendationEnv(world=slate_world)
    env.reset(seed=0)
    action = np.array([0, 1, 2])
    _, _, _, _, info = env.step(action)
    action[:] = 7
    np.testing.assert_array_equal(info["slate_slots"], [0, 1, 2])
