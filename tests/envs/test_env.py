"""The Gymnasium contract, determinism and the response model of the default scenario."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from lmrecsim.envs import ENV_ID, make_env
from lmrecsim.envs.env import RecommendationEnv
from lmrecsim.envs.features import FEATURE_NAMES
from lmrecsim.envs.simulator import UserBatch
from lmrecsim.envs.world import build_world
from lmrecsim.scenarios import load_scenario, scenario_from_dict


@pytest.fixture(scope="module")
def world():
    return build_world(load_scenario("default"))


def test_gymnasium_check_env(world):
    gym_check_env(RecommendationEnv(world=world), skip_render_check=True)


def test_ansi_rendering_passes_gymnasiums_checks_without_warnings(world):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Made through gym.make so the checker can try the render modes too.
        gym_check_env(gym.make(ENV_ID, scenario="default", render_mode="ansi").unwrapped)
        wrapped = gym.make(ENV_ID, scenario="default", render_mode="ansi")
        wrapped.reset(seed=0)
        _, _, _, _, info = wrapped.step(0)
        text = wrapped.render()
    # The rendering is the user's history text, which ends with the step's click if there was one.
    assert isinstance(text, str)
    if info["clicked"]:
        title = world.catalog.titles[int(info["item_index"])]
        assert f"Clicked '{title}'" in text


def test_sb3_check_env(world):
    sb3_check_env(RecommendationEnv(world=world), warn=True)


def test_registered_id_builds_the_env():
    env = gym.make(ENV_ID, scenario="default")
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert env.action_space.n == load_scenario("default").candidates.k


def test_spaces_have_the_documented_shapes(world):
    env = RecommendationEnv(world=world)
    sc = world.scenario
    k, p = sc.candidates.k, sc.encoder.project_dim
    obs, _ = env.reset(seed=0)
    assert obs["user"].shape == (p,) and obs["user"].dtype == np.float32
    assert obs["candidates"].shape == (k, p)
    assert obs["candidate_features"].shape == (k, len(FEATURE_NAMES))
    assert obs["action_mask"].shape == (k,)
    # One observation is far smaller than the 8,064 floats of unprojected 384-d embeddings.
    size = sum(v.size for v in obs.values())
    assert size == p + k * p + k * len(FEATURE_NAMES) + k and size < 8_064 / 4


def _rollout(env: RecommendationEnv, seed: int, n: int) -> list:
    obs, info = env.reset(seed=seed)
    out = [obs]
    rng = np.random.default_rng(123)  # the same action sequence for both envs
    for _ in range(n):
        action = int(rng.integers(env.action_space.n))
        obs, reward, term, trunc, info = env.step(action)
        out.append((obs, reward, term, trunc, info))
        if term or trunc:
            obs, info = env.reset()
            out.append(obs)
    return out


def _equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, float) and np.isnan(a):
        return isinstance(b, float) and np.isnan(b)
    return a == b


def test_same_seed_same_trajectory_bit_for_bit(world):
    a = _rollout(RecommendationEnv(world=world), seed=7, n=100)
    b = _rollout(RecommendationEnv(world=world), seed=7, n=100)
    assert _equal(a, b)


def test_different_seed_differs(world):
    a = _rollout(RecommendationEnv(world=world), seed=7, n=100)
    b = _rollout(RecommendationEnv(world=world), seed=8, n=100)
    assert not _equal(a, b)


def test_step_before_reset_is_an_error(world):
    with pytest.raises(RuntimeError):
        RecommendationEnv(world=world).step(0)


@pytest.mark.parametrize("action", [20, 100, -1, 3.0, True, np.array([1, 2])])
def test_an_action_outside_the_action_space_is_refused(world, action):
    # Out-of-range slots used to be clamped to slot 0 or K-1 and reported as valid actions.
    env = RecommendationEnv(world=world)
    env.reset(seed=0)
    assert not env.action_space.contains(action) or isinstance(action, bool)
    with pytest.raises(ValueError, match=r"action|actions"):
        env.step(action)
    # The env is unchanged: a valid action still steps from the first state.
    ref = RecommendationEnv(world=world)
    ref.reset(seed=0)
    assert _equal(env.step(5), ref.step(5))
    for good in (0, 19, np.int64(7), np.array(7), np.array([7])):
        env.reset(seed=0)
        env.step(good)


def test_vec_envs_refuse_out_of_range_actions(world):
    from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv
    from lmrecsim.envs.vector_env import RecommendationVectorEnv

    venv = BatchedRecommendationVecEnv(world=world, n_envs=2)
    venv.reset()
    with pytest.raises(ValueError, match="not a candidate slot"):
        venv.step(np.array([0, 20]))
    vector = RecommendationVectorEnv(world=world, num_envs=2)
    vector.reset(seed=0)
    with pytest.raises(ValueError, match="not a candidate slot"):
        vector.step(np.array([-1, 0]))


def test_an_unsupported_render_mode_is_refused(world):
    with pytest.raises(ValueError, match="render_mode"):
        RecommendationEnv(world=world, render_mode="rgb_array")


def test_a_subclass_may_add_render_modes(world):
    class Drawn(RecommendationEnv):
        metadata = {**RecommendationEnv.metadata, "render_modes": ["ansi", "rgb_array"]}

    assert Drawn(world=world, render_mode="rgb_array").render_mode == "rgb_array"


# gym.make warns about the rgb_array request before the env refuses it and SB3 retries without.
@pytest.mark.filterwarnings("ignore:.*render_mode='rgb_array' that is not in the possible")
def test_sb3_make_vec_env_builds_the_registered_env():
    # make_vec_env asks for render_mode="rgb_array" and retries without it on a TypeError only;
    # a plain ValueError made it fail on the registered id.
    import numpy as np
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(ENV_ID, n_envs=2, env_kwargs={"scenario": "default"}, seed=0)
    obs = venv.reset()
    assert obs["action_mask"].shape[0] == 2
    _, rewards, _, _ = venv.step(np.array([0, 1]))
    assert rewards.shape == (2,)
    venv.close()


def _topic_items(world, topic: str, n: int) -> np.ndarray:
    t = world.topic_names.index(topic)
    items = np.flatnonzero((world.primary_topic == t) & (world.catalog.appeal < 0.5))
    return items[:n]


def _forced_batch(world, n_users: int, items: np.ndarray, seed: int) -> UserBatch:
    """A batch whose users all get the given item in slot 0 (the response model in isolation)."""
    batch = UserBatch(world, n_users)
    keys = (
        np.random.default_rng(seed)
        .integers(0, 2**62, size=n_users, dtype=np.int64)
        .astype(np.uint64)
    )
    batch.reset_users(np.arange(n_users), keys)
    batch.cand[:, 0] = items
    batch.mask[:, 0] = True
    return batch


def _persona_world(persona: str, **overrides):
    sc = scenario_from_dict(
        {
            "extends": "default",
            "users": {"personas": [persona], "exposure_drift": 0.0, **overrides},
        }
    )
    return build_world(sc)


def test_users_click_their_topic_more_than_an_unrelated_one():
    w = _persona_world("space_nerd") if _has_persona("space_nerd") else None
    if w is None:
        pytest.skip("persona space_nerd not shipped")
    liked = w.personas[0].liked[0]
    unrelated = next(
        t for t in w.topic_names if t not in w.personas[0].liked and t not in ("technology",)
    )
    n = 2000
    liked_items = np.resize(_topic_items(w, liked, 40), n)
    other_items = np.resize(_topic_items(w, unrelated, 40), n)
    clicks = {}
    for name, items in (("liked", liked_items), ("other", other_items)):
        batch = _forced_batch(w, n, items, seed=1)
        _, _, _, info = batch.step(np.zeros(n, dtype=np.int64))
        clicks[name] = info["clicked"].mean()
    # Difference of two proportions of n=2000 each: standard error <= sqrt(2 * 0.25 / n) = 0.016;
    # demand a gap of 5 standard errors (a chance gap that large has probability < 1e-6) and a ratio.
    se = np.sqrt(2 * 0.25 / n)
    assert clicks["liked"] - clicks["other"] > 5 * se, clicks
    assert clicks["liked"] > 1.5 * clicks["other"], clicks


def _has_persona(name: str) -> bool:
    from lmrecsim.envs.personas import load_default_personas

    return any(p.name == name for p in load_default_personas())


def test_fatigue_lowers_click_probability_on_repeats(world):
    n = 1000
    items = np.resize(_topic_items(world, world.topic_names[0], 50), n)
    batch = _forced_batch(world, n, items, seed=2)
    probs = []
    for _ in range(6):
        batch.cand[:, 0] = items
        batch.mask[:, 0] = True
        _, _, _, info = batch.step(np.zeros(n, dtype=np.int64))
        probs.append(info["click_probability"].mean())
    # Same items, same topic every step: fatigue accumulates, so the mean click probability falls
    # (exposure drift toward clicked items could only raise it, so the fall is fatigue's doing).
    # After 5 exposures fatigue is gain * (1 + 0.8 + ... + 0.8^4) = 0.34 logits: for small click
    # probabilities that scales them by about exp(-0.34) = 0.71.
    assert probs[-1] < 0.85 * probs[0], probs
    assert np.all(np.diff(probs) < 0), probs


def test_patience_ends_sessions(world):
    """Always showing the user's least-liked candidate ends sessions early (churn)."""
    env = RecommendationEnv(world=world)
    lengths = {"worst": [], "best": []}
    for which in lengths:
        for ep in range(30):
            env.reset(seed=500 + ep)
            steps, done, term = 0, False, False
            while not done:
                aff = np.where(env.users.mask[0], env.users.candidate_affinity()[0], np.nan)
                a = int(np.nanargmin(aff) if which == "worst" else np.nanargmax(aff))
                _, _, term, trunc, _ = env.step(a)
                steps += 1
                done = term or trunc
            lengths[which].append((steps, term))
    worst_len = np.mean([s for s, _ in lengths["worst"]])
    best_len = np.mean([s for s, _ in lengths["best"]])
    churned = np.mean([t for _, t in lengths["worst"]])
    assert churned > 0.9  # nearly every badly served user leaves before the horizon
    assert worst_len < 0.6 * best_len, (worst_len, best_len)


def test_make_env_accepts_a_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nextends: default\nepisode:\n  horizon: 5\n")
    env = make_env(str(path))
    env.reset(seed=0)
    done, n = False, 0
    while not done:
        _, _, term, trunc, _ = env.step(0)
        done, n = term or trunc, n + 1
    assert n <= 5


# Users who never lose patience: every session lasts the horizon.
PATIENT = {"skip_cost": 0.0, "clickbait_cost": 0.0, "satisfaction_threshold": -100.0}


def test_changing_a_scenario_in_place_changes_no_env_built_from_it():
    def session_length(env) -> int:
        env.reset(seed=0)
        n = 0
        while True:
            _, _, term, trunc, _ = env.step(0)
            n += 1
            if term or trunc:
                return n

    sc = load_scenario({"extends": "default", "users": {"patience": PATIENT}})
    built = make_env(sc)
    assert session_length(built) == 50
    # Worlds are shared within a process, and the world held the caller's object: the env built
    # before, and every later env of an equal scenario, used horizon 3.
    sc.episode.horizon = 3
    assert session_length(make_env(sc)) == 3
    assert session_length(built) == 50
    fresh = make_env({"extends": "default", "users": {"patience": PATIENT}})
    assert fresh.scenario.episode.horizon == 50 and session_length(fresh) == 50
    # Nor does changing an env's own scenario (its world's) change the next env built.
    fresh.scenario.episode.horizon = 3
    after = make_env({"extends": "default", "users": {"patience": PATIENT}})
    assert after.world is not fresh.world
    assert after.scenario.episode.horizon == 50 and session_length(after) == 50
