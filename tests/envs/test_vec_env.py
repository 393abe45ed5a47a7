"""The batched VecEnv reproduces the single env's per-seed trajectories, auto-resets included."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from lmrecsim.envs.env import RecommendationEnv
from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv
from lmrecsim.envs.world import World, build_world
from lmrecsim.scenarios import Scenario, load_scenario
from lmrecsim.scenarios.loader import deep_merge, scenario_from_dict, scenario_to_dict


class HashEncoder:
    """A deterministic stand-in for the language model: bag of hashed words, unit-norm rows.

    Texts sharing words get similar vectors, so nearest-item candidates and the pooled/text
    agreement behave qualitatively like a real model, at no model cost.
    """

    def __init__(self, dim: int = 48) -> None:
        self.dim = dim
        self.name = f"hash-{dim}"
        self.identity = f"test-hash-encoder|{dim}"
        self.calls = 0
        self.texts_encoded = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts_encoded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.where(norm > 0, norm, 1.0)
        return out


def small_scenario(tmp_path: Any, **overrides: Any) -> Scenario:
    """The default scenario on 300 items with short episodes (so auto-resets happen)."""
    base = {
        "catalog": {"n_items": 300},
        "episode": {"horizon": 12},
        "encoder": {"cache_dir": str(tmp_path), "project_dim": 16},
    }
    data = deep_merge(scenario_to_dict(load_scenario("default")), deep_merge(base, overrides))
    return scenario_from_dict(data)


def small_world(tmp_path: Any, **overrides: Any) -> World:
    return build_world(small_scenario(tmp_path, **overrides), encoder=HashEncoder())


def _run_single(world: World, seed: int, actions: np.ndarray) -> list[tuple[Any, ...]]:
    """Step one env through ``actions``, resetting (unseeded) after each episode end."""
    env = RecommendationEnv(world=world)
    obs, _ = env.reset(seed=seed)
    out = []
    for a in actions:
        nxt, r, term, trunc, _ = env.step(int(a))
        done = term or trunc
        terminal = nxt
        if done:
            nxt, _ = env.reset()
        out.append((nxt, r, done, terminal if done else None))
    return out


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"users": {"new_user_fraction": 0.5, "drift": {"kind": "gradual", "rate": 0.1}}},
        {
            "catalog": {"new_items": {"fraction": 0.2, "arrival_start": 1, "arrival_end": 8}},
            "candidates": {"new_item_quota": 3},
            "reward": {"name": "engagement"},
        },
        {
            "catalog": {"new_items": {"fraction": 0.2, "arrival_start": 1, "arrival_end": 8}},
            "candidates": {"index": "ivf", "ivf_lists": 6, "ivf_probe": 2},
        },
        # Text mode: the encoder and the projection run on batches of different sizes, so the
        # user state matches to float rounding only; matching the pooled history, the nearest
        # source (and with it every slate and reward) does not depend on the batch at all.
        {"state": {"mode": "text"}, "candidates": {"nearest_to": "pooled"}},
        {"state": {"mode": "events"}, "users": {"new_user_fraction": 0.3}},
        {"state": {"mode": "events", "text_events": "all"}},
    ],
    ids=[
        "default",
        "new-users-drift",
        "new-items",
        "ivf-index",
        "text-nearest-to-pooled",
        "events",
        "events-all",
    ],
)
def test_vec_env_matches_single_env_per_seed(tmp_path: Any, overrides: dict[str, Any]) -> None:
    world = small_world(tmp_path, **overrides)
    text_mode = world.scenario.state.mode == "text"

    def same(key: str, actual: np.ndarray, desired: np.ndarray, msg: str = "") -> None:
        if key == "user" and text_mode:
            np.testing.assert_allclose(actual, desired, rtol=1e-5, atol=1e-5, err_msg=msg)
        else:
            np.testing.assert_array_equal(actual, desired, err_msg=msg)

    n_envs, n_steps, seed = 5, 40, 123
    k = world.scenario.candidates.k
    actions = np.random.default_rng(7).integers(0, k, size=(n_steps, n_envs))
    venv = BatchedRecommendationVecEnv(world=world, n_envs=n_envs)
    venv.seed(seed)
    obs0 = venv.reset()
    for i in range(n_envs):
        single_obs, _ = RecommendationEnv(world=world).reset(seed=seed + i)
        for key, value in single_obs.items():
            same(key, obs0[key][i], value)
    batched = []
    for t in range(n_steps):
        venv.step_async(actions[t])
        batched.append(venv.step_wait())
    n_done = 0
    for i in range(n_envs):
        single = _run_single(world, seed + i, actions[:, i])
        for t, (s_obs, s_r, s_done, s_term) in enumerate(single):
            obs, rew, dones, infos = batched[t]
            assert bool(dones[i]) == s_done, (i, t)
            assert rew[i] == np.float32(s_r), (i, t)
            for key, value in s_obs.items():
                same(key, obs[key][i], value, f"{key} env {i} step {t}")
            if s_done:
                n_done += 1
                for key, value in s_term.items():
                    same(key, infos[i]["terminal_observation"][key], value)
    # Several episodes per sub-env, so the auto-reset path is exercised.
    assert n_done >= 2 * n_envs


@pytest.mark.parametrize("n_steps", [20, 28])
def test_vec_env_unseeded_reset_continues_each_sub_env_sequence(
    tmp_path: Any, n_steps: int
) -> None:
    # An unseeded reset() after auto-resets starts each sub-env's next episode from its own
    # generator, as DummyVecEnv over single envs does. Impatient users, so that sub-envs finish
    # at different steps.
    world = small_world(tmp_path, users={"patience": {"skip_cost": 0.3}})
    n_envs, seed = 4, 40
    k = world.scenario.candidates.k
    actions = np.random.default_rng(12).integers(0, k, size=(n_steps, n_envs))
    venv = BatchedRecommendationVecEnv(world=world, n_envs=n_envs)
    venv.seed(seed)
    venv.reset()
    n_done = 0
    for t in range(n_steps):
        venv.step_async(actions[t])
        n_done += int(venv.step_wait()[2].sum())
    assert n_done > n_envs
    obs = venv.reset()
    for i in range(n_envs):
        env = RecommendationEnv(world=world)
        env.reset(seed=seed + i)
        for t in range(n_steps):
            _, _, term, trunc, _ = env.step(int(actions[t, i]))
            if term or trunc:
                env.reset()
        single_obs, _ = env.reset()
        for key, value in single_obs.items():
            np.testing.assert_array_equal(obs[key][i], value, err_msg=f"{key} env {i}")


def test_vec_env_auto_reset_observations_prepared_ahead_equal_observing(tmp_path: Any) -> None:
    """The first observation of an auto-reset user, observed when it was prepared (with other
    prepared users), equals observing it after it started."""
    world = small_world(tmp_path, users={"new_user_fraction": 0.4})
    n = 7
    venv = BatchedRecommendationVecEnv(world=world, n_envs=n)
    venv.seed(21)
    venv.reset()
    actions = np.random.default_rng(1).integers(0, world.scenario.candidates.k, size=(45, n))
    n_done = 0
    for t in range(45):
        venv.step_async(actions[t])
        obs, _, dones, _ = venv.step_wait()
        rows = np.flatnonzero(dones)
        n_done += rows.size
        if rows.size:
            for key, value in venv.users.observe(rows).items():
                np.testing.assert_array_equal(obs[key][rows], value, err_msg=key)
        whole = venv.users.observe()
        for key, value in whole.items():
            np.testing.assert_array_equal(obs[key], value, err_msg=key)
    assert n_done >= 2 * n


def _full_info_pair(
    world: World, n_envs: int
) -> tuple[BatchedRecommendationVecEnv, RecommendationEnv, dict[str, Any]]:
    """A full-info batched env seeded 5 (reset) and the single env of its sub-env 1 (seed 6),
    with the single env's reset info."""
    venv = BatchedRecommendationVecEnv(world=world, n_envs=n_envs, full_info=True)
    venv.seed(5)
    venv.reset()
    env = RecommendationEnv(world=world)
    _, info = env.reset(seed=6)
    return venv, env, info


def test_vec_env_full_info_matches_single_env(tmp_path: Any) -> None:
    venv, env, _ = _full_info_pair(small_world(tmp_path), 3)
    for t in range(10):
        actions = np.array([t % 4, (3 * t) % 20, (7 * t) % 20])
        venv.step_async(actions)
        _, _, dones, infos = venv.step_wait()
        _, _, term, trunc, info = env.step(int(actions[1]))
        for key in ("item_index", "clicked", "rating", "affinity", "patience", "user_id"):
            assert infos[1][key] == info[key], key
        np.testing.assert_array_equal(infos[1]["candidate_affinity"], info["candidate_affinity"])
        if term or trunc:
            break


def test_vec_env_full_info_reset_infos_are_the_single_envs(tmp_path: Any) -> None:
    # They held only user_id and is_new_user, so the first step's candidates and the persona of
    # a user were nowhere to be read.
    world = small_world(tmp_path)
    venv, env, info = _full_info_pair(world, 2)

    def same(vec_info: dict[str, Any], single: dict[str, Any]) -> None:
        assert vec_info.keys() == single.keys()
        for key, value in single.items():
            np.testing.assert_array_equal(vec_info[key], value, err_msg=key)

    same(venv.reset_infos[1], info)
    # At an automatic reset, the next user's (the single env's next reset without a seed).
    for _ in range(world.scenario.episode.horizon):
        venv.step_async(np.array([0, 0]))
        _, _, dones, _ = venv.step_wait()
        _, _, term, trunc, _ = env.step(0)
        assert dones[1] == (term or trunc)
        if dones[1]:
            _, info = env.reset()
            same(venv.reset_infos[1], info)
            break
    else:
        raise AssertionError("sub-env 1 never ended its episode")
    # Without full_info the entries stay small: what SB3 reads.
    lean = BatchedRecommendationVecEnv(world=world, n_envs=2)
    lean.seed(5)
    lean.reset()
    assert set(lean.reset_infos[1]) == {"user_id", "is_new_user"}


def test_vec_env_trajectory_does_not_depend_on_batch_size(tmp_path: Any) -> None:
    world = small_world(tmp_path)
    rewards = {}
    for n in (2, 6):
        venv = BatchedRecommendationVecEnv(world=world, n_envs=n)
        venv.seed(11)
        venv.reset()
        out = []
        for t in range(30):
            venv.step_async(np.full(n, t % 20))
            out.append(venv.step_wait()[1][:2])
        rewards[n] = np.array(out)
    np.testing.assert_array_equal(rewards[2], rewards[6])


@pytest.mark.parametrize("state_mode", ["pooled", "events"])
@pytest.mark.parametrize("mode", ["NextStep", "SameStep"])
def test_gymnasium_vector_env_matches_sync_vector_env(
    tmp_path: Any, mode: str, state_mode: str
) -> None:
    import gymnasium as gym
    from gymnasium.utils.env_checker import data_equivalence

    from lmrecsim.envs.vector_env import RecommendationVectorEnv

    world = small_world(tmp_path, state={"mode": state_mode})
    n = 4
    fast = RecommendationVectorEnv(world=world, num_envs=n, autoreset_mode=mode)
    slow = gym.vector.SyncVectorEnv(
        [lambda: RecommendationEnv(world=world)] * n,
        autoreset_mode=gym.vector.AutoresetMode(mode),
    )
    assert fast.observation_space == slow.observation_space
    assert fast.action_space == slow.action_space
    obs_f, info_f = fast.reset(seed=21)
    obs_s, info_s = slow.reset(seed=21)
    assert data_equivalence(obs_f, obs_s, exact=True)
    assert data_equivalence(info_f, info_s, exact=True)
    actions = np.random.default_rng(3).integers(0, world.scenario.candidates.k, size=(40, n))
    n_done = 0
    for t in range(40):
        out_f = fast.step(actions[t])
        out_s = slow.step(actions[t])
        assert data_equivalence(out_f[0], out_s[0], exact=True), t
        for j in (1, 2, 3):
            np.testing.assert_array_equal(out_f[j], out_s[j], err_msg=f"step {t} item {j}")
        # Infos too: step signals, the reset info of restarted sub-envs, final_obs/final_info,
        # masks and dtypes, as SyncVectorEnv batches the single envs' dicts.
        assert out_f[4].keys() == out_s[4].keys(), (t, set(out_f[4]) ^ set(out_s[4]))
        for key in out_s[4]:
            assert data_equivalence(out_f[4][key], out_s[4][key], exact=True), (t, key)
        n_done += int((out_s[2] | out_s[3]).sum())
    assert n_done >= n


def test_gymnasium_vector_env_reset_mask_as_sync_vector_env(tmp_path: Any) -> None:
    import gymnasium as gym
    from gymnasium.utils.env_checker import data_equivalence

    from lmrecsim.envs.vector_env import RecommendationVectorEnv

    world = small_world(tmp_path)
    fast = RecommendationVectorEnv(world=world, num_envs=3)
    slow = gym.vector.SyncVectorEnv([lambda: RecommendationEnv(world=world)] * 3)
    fast.reset(seed=5)
    slow.reset(seed=5)
    mask = np.array([True, False, True])
    out_f = fast.reset(seed=[9, 8, 7], options={"reset_mask": mask})
    out_s = slow.reset(seed=[9, 8, 7], options={"reset_mask": mask.copy()})
    assert data_equivalence(out_f, out_s, exact=True)
    # Sub-env indices ([0, 2]) or ints used to be cast to bool and reset other sub-envs (here
    # sub-env 1 alone); a mask with nothing set reset nothing. SyncVectorEnv refuses them too.
    for bad in (np.array([0, 2, 0]), np.array([1, 0, 1]), np.zeros(3, bool), np.ones(2, bool)):
        with pytest.raises(ValueError, match="reset_mask.*expected a bool array of shape \\(3,\\)"):
            fast.reset(options={"reset_mask": bad})


@pytest.mark.parametrize("state_mode", ["pooled", "events"])
def test_gymnasium_vector_env_with_autoreset_disabled_matches_sync_vector_env(
    tmp_path: Any, state_mode: str
) -> None:
    # AutoresetMode.DISABLED: nothing restarts on its own; the caller resets the finished
    # sub-envs with a reset_mask, and stepping one before that is refused, as SyncVectorEnv does.
    import gymnasium as gym
    from gymnasium.utils.env_checker import data_equivalence

    from lmrecsim.envs.vector_env import RecommendationVectorEnv

    world = small_world(tmp_path, state={"mode": state_mode})
    n = 4
    fast = RecommendationVectorEnv(world=world, num_envs=n, autoreset_mode="Disabled")
    slow = gym.vector.SyncVectorEnv(
        [lambda: RecommendationEnv(world=world)] * n,
        autoreset_mode=gym.vector.AutoresetMode.DISABLED,
    )
    assert fast.metadata["autoreset_mode"] == gym.vector.AutoresetMode.DISABLED
    assert data_equivalence(fast.reset(seed=21), slow.reset(seed=21), exact=True)
    actions = np.random.default_rng(3).integers(0, world.scenario.candidates.k, size=(40, n))
    n_done = 0
    for t in range(40):
        out_f = fast.step(actions[t])
        out_s = slow.step(actions[t])
        assert data_equivalence(out_f, out_s, exact=True), t
        ended = out_s[2] | out_s[3]
        if ended.any():
            n_done += int(ended.sum())
            with pytest.raises(RuntimeError, match=r"have ended and autoreset_mode is DISABLED"):
                fast.step(actions[t])
            again_f = fast.reset(options={"reset_mask": ended})
            again_s = slow.reset(options={"reset_mask": ended.copy()})
            assert data_equivalence(again_f, again_s, exact=True), t
    assert n_done >= n


@pytest.mark.parametrize("mode", ["NextStep", "SameStep"])
def test_gymnasium_vector_env_staggered_ends_and_unseeded_reset(tmp_path: Any, mode: str) -> None:
    import gymnasium as gym
    from gymnasium.utils.env_checker import data_equivalence

    from lmrecsim.envs.vector_env import RecommendationVectorEnv

    # Impatient users: sub-envs finish at different steps, then an unseeded reset mid-stream.
    world = small_world(tmp_path, users={"patience": {"skip_cost": 0.3}})
    n = 4
    fast = RecommendationVectorEnv(world=world, num_envs=n, autoreset_mode=mode)
    slow = gym.vector.SyncVectorEnv(
        [lambda: RecommendationEnv(world=world)] * n,
        autoreset_mode=gym.vector.AutoresetMode(mode),
    )
    fast.reset(seed=50)
    slow.reset(seed=50)
    actions = np.random.default_rng(13).integers(0, world.scenario.candidates.k, size=(36, n))
    for t in range(36):
        if t == 25:
            assert data_equivalence(fast.reset()[0], slow.reset()[0], exact=True)
        out_f, out_s = fast.step(actions[t]), slow.step(actions[t])
        assert data_equivalence(out_f[0], out_s[0], exact=True), t
        for j in (1, 2, 3):
            np.testing.assert_array_equal(out_f[j], out_s[j], err_msg=f"step {t} item {j}")


@pytest.mark.parametrize("mode", ["NextStep", "SameStep"])
def test_gymnasium_vector_env_max_episode_steps_and_render(tmp_path: Any, mode: str) -> None:
    import gymnasium as gym
    from gymnasium.utils.env_checker import data_equivalence

    from lmrecsim.envs.vector_env import RecommendationVectorEnv

    world = small_world(tmp_path)
    n, limit = 3, 4
    fast = RecommendationVectorEnv(
        world=world, num_envs=n, autoreset_mode=mode, max_episode_steps=limit, render_mode="ansi"
    )
    slow = gym.vector.SyncVectorEnv(
        [lambda: gym.wrappers.TimeLimit(RecommendationEnv(world=world, render_mode="ansi"), limit)]
        * n,
        autoreset_mode=gym.vector.AutoresetMode(mode),
    )
    fast.reset(seed=5)
    slow.reset(seed=5)
    n_trunc = 0
    for t in range(3 * limit):
        out_f, out_s = fast.step(np.full(n, t % 3)), slow.step(np.full(n, t % 3))
        assert data_equivalence(out_f[:4], out_s[:4], exact=True), t
        n_trunc += int(out_s[3].sum())
        assert fast.render() == slow.render()
    assert n_trunc >= n
    with pytest.raises(ValueError, match="render_mode"):
        RecommendationVectorEnv(world=world, num_envs=2, render_mode="human")


def test_make_vec_uses_the_batched_vector_env():
    import gymnasium as gym

    from lmrecsim.envs import ENV_ID
    from lmrecsim.envs.vector_env import RecommendationVectorEnv

    venv = gym.make_vec(
        ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", scenario="default"
    )
    assert isinstance(venv.unwrapped, RecommendationVectorEnv)
    obs, _ = venv.reset(seed=0)
    assert obs["action_mask"].shape[0] == 3
    # The keywords gym.make_vec passes on (as it does to Gymnasium's own vector envs).
    limited = gym.make_vec(
        ENV_ID,
        num_envs=2,
        vectorization_mode="vector_entry_point",
        render_mode="ansi",
        max_episode_steps=2,
    )
    limited.reset(seed=0)
    limited.step(np.zeros(2, dtype=np.int64))
    assert limited.step(np.zeros(2, dtype=np.int64))[3].all()
    assert len(limited.render()) == 2


def test_set_attr_with_indices_sets_those_sub_envs_only(tmp_path: Any) -> None:
    venv = BatchedRecommendationVecEnv(world=small_world(tmp_path), n_envs=3)
    venv.set_attr("tag", "a")
    venv.set_attr("tag", "b", indices=[1])
    assert venv.get_attr("tag") == ["a", "b", "a"]
    assert venv.get_attr("tag", indices=2) == ["a"]
    venv.set_attr("tag", "c")
    assert venv.get_attr("tag") == ["c", "c", "c"]
    with pytest.raises(IndexError):
        venv.get_attr("tag", indices=[3])
    # A sub-env's own render_mode is the one it renders with, as on DummyVecEnv's env objects.
    venv.seed(0)
    venv.reset()
    venv.set_attr("render_mode", "ansi", indices=[0])
    texts = venv.env_method("render")
    assert texts[1:] == [None, None] and texts[0] == venv.users.history_text(0) and texts[0]


def test_env_method_answers_per_sub_env_or_refuses(tmp_path: Any) -> None:
    # env_method("reset", indices=[1]) used to call the VecEnv's own reset once per index,
    # resetting every sub-env and returning batched observations.
    from sb3_contrib.common.maskable.utils import get_action_masks

    venv = BatchedRecommendationVecEnv(world=small_world(tmp_path), n_envs=3)
    venv.seed(0)
    venv.reset()
    masks = venv.action_masks()
    assert np.array_equal(get_action_masks(venv), masks)
    got = venv.env_method("action_masks", indices=[2])
    assert len(got) == 1 and np.array_equal(got[0], masks[2])
    assert venv.env_method("render", indices=[0, 1]) == [None, None]
    with pytest.raises(AttributeError, match="env_method\\('reset'\\).*no per-sub-env objects"):
        venv.env_method("reset", indices=[1])


def test_vec_env_renders_and_answers_get_attr_as_a_dummy_vec_env(tmp_path: Any) -> None:
    # The history texts of render_mode="ansi" through episode ends, and a sub-env's metadata
    # and spec, as DummyVecEnv over RecommendationEnv gives them (spec was an AttributeError,
    # metadata hid the ansi mode, and make_vec_env refused render_mode).
    from stable_baselines3.common.vec_env import DummyVecEnv

    world = small_world(tmp_path, users={"patience": {"skip_cost": 0.3}})
    n = 3
    fast = BatchedRecommendationVecEnv(world=world, n_envs=n, render_mode="ansi")
    slow = DummyVecEnv([lambda: RecommendationEnv(world=world, render_mode="ansi")] * n)
    for venv in (fast, slow):
        venv.seed(7)
        venv.reset()
    actions = np.random.default_rng(3).integers(0, world.scenario.candidates.k, size=(40, n))
    n_done, n_texts = 0, 0
    for t in range(len(actions)):
        n_done += int(fast.step(actions[t])[2].sum())
        slow.step(actions[t])
        texts = fast.env_method("render")
        assert texts == slow.env_method("render"), t
        n_texts += sum(bool(text) for text in texts)
    assert n_done >= n and n_texts > 0
    assert fast.env_method("render", indices=[2]) == slow.env_method("render", indices=[2])
    for name in ("metadata", "spec", "render_mode"):
        assert fast.get_attr(name) == slow.get_attr(name), name
    assert fast.metadata == slow.metadata
    fast.set_attr("spec", "mine")
    assert fast.get_attr("spec") == ["mine"] * n
    with pytest.raises(ValueError, match="render_mode: 'human'"):
        BatchedRecommendationVecEnv(world=world, n_envs=2, render_mode="human")


def test_vec_env_seed_takes_numpy_integers_and_refuses_bad_seeds_where_given(
    tmp_path: Any,
) -> None:
    # SB3's VecEnv.seed kept any value: np.int64(0), -1 and 1.5 failed at the next reset inside
    # Gymnasium's seeding ("Seed must be a python integer"), far from the call that passed them.
    world = small_world(tmp_path)
    venv = BatchedRecommendationVecEnv(world=world, n_envs=2)
    assert venv.seed(np.int64(7)) == [7, 8] and all(type(s) is int for s in venv._seeds)
    first = venv.reset()
    venv.seed(7)
    again = venv.reset()
    assert all(np.array_equal(first[k], again[k]) for k in first)
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match=r"^seed: .* \(expected None or an integer >= 0\)$"):
            venv.seed(bad)  # type: ignore[arg-type]
    from lmrecsim.envs import make_vec_env

    with pytest.raises(ValueError, match=r"^seed: -1 "):
        make_vec_env(small_scenario(tmp_path), n_envs=2, seed=-1)


def test_vec_env_seed_none_draws_fresh_entropy_and_leaves_numpy_global_state_alone(
    tmp_path: Any,
) -> None:
    # SB3's VecEnv.seed(None) drew the base seed with np.random.randint, which shifted the
    # global stream of a caller who had seeded np.random for their own work.
    venv = BatchedRecommendationVecEnv(world=small_world(tmp_path), n_envs=3)
    np.random.seed(123)
    expected = np.random.random(4)
    np.random.seed(123)
    seeds = venv.seed(None)
    assert np.array_equal(np.random.random(4), expected)
    assert len(seeds) == 3 and all(type(s) is int for s in seeds)
    assert list(seeds) == list(range(seeds[0], seeds[0] + 3)) and 0 <= seeds[0] < 2**32
    # Fresh entropy: 20 draws from 2^32 values collide with probability below 1e-7.
    assert len({venv.seed(None)[0] for _ in range(20)}) == 20
    venv.reset()  # the drawn seeds are valid Gymnasium seeds


def test_stepping_before_reset_is_refused_as_by_the_single_env(tmp_path: Any) -> None:
    # The first step acted on empty users (every candidate item 0) and the seed given before it
    # was never applied, so two identical runs differed.
    from lmrecsim.envs.vector_env import RecommendationVectorEnv

    world = small_world(tmp_path)
    venv = BatchedRecommendationVecEnv(world=world, n_envs=2)
    venv.seed(0)
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        venv.step(np.zeros(2, dtype=np.int64))
    venv.reset()
    venv.step(np.zeros(2, dtype=np.int64))
    vector = RecommendationVectorEnv(world=world, num_envs=3)
    with pytest.raises(RuntimeError, match=r"sub-envs \[0, 1, 2\] have not been reset"):
        vector.step(np.zeros(3, dtype=np.int64))
    vector.reset(seed=0, options={"reset_mask": np.array([True, False, True])})
    with pytest.raises(RuntimeError, match=r"sub-envs \[1\] have not been reset"):
        vector.step(np.zeros(3, dtype=np.int64))
    vector.reset(seed=0)
    vector.step(np.zeros(3, dtype=np.int64))
