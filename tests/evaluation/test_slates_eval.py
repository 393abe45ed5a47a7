"""Slates (``candidates.slate_size`` > 1) in evaluation: rollouts, item metrics, step logs (schema
version 2, version 1 still read), replay, the OPE refusal and training logs."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lmrecsim.agents.baselines import make_policy  # noqa: E402
from lmrecsim.envs.env import RecommendationEnv  # noqa: E402
from lmrecsim.envs.world import World, build_world  # noqa: E402
from lmrecsim.evaluation.errors import EvaluationError  # noqa: E402
from lmrecsim.evaluation.logs import (  # noqa: E402
    COLUMNS,
    META_VERSION,
    SCHEMA_VERSION,
    LogError,
    build_step_table,
    matrix,
    read_step_log,
    write_step_log,
)
from lmrecsim.evaluation.ope import evaluate_off_policy  # noqa: E402
from lmrecsim.evaluation.replay import load_world as load_world_of  # noqa: E402
from lmrecsim.evaluation.replay import replay, replay_with_policy  # noqa: E402
from lmrecsim.evaluation.rollout import run_policy  # noqa: E402
from lmrecsim.evaluation.runner import evaluate  # noqa: E402
from lmrecsim.scenarios import load_scenario, scenario_from_dict  # noqa: E402
from lmrecsim.scenarios.loader import deep_merge, scenario_to_dict  # noqa: E402
from tests.fakes import fake_observation as _obs

# A small world whose slates of three are cheap to evaluate. Measured (seeds 0, 1, 2, 5; 10
# episodes each): the oracle beats random and greedy by about 3 per episode on every seed, while
# greedy and random are within 0.7 of each other, either way round.
SLATE = {
    "name": "tiny-slate",
    "catalog": {"n_items": 200},
    "candidates": {"k": 10, "slate_size": 3},
    "episode": {"horizon": 30},
    "users": {"patience": {"skip_cost": 0.03}},
    "encoder": {"project_dim": 16},
}


def slate_scenario(**override: Any) -> Any:
    data = deep_merge(scenario_to_dict(load_scenario("default")), SLATE)
    return scenario_from_dict(deep_merge(data, override))


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(slate_scenario(), show_progress=False)


@pytest.fixture(scope="module")
def small_world() -> World:
    """K = 6 candidates, slates of 3: 20 distinct sets, few enough to try them all."""
    sc = slate_scenario(name="tiny-slate-6", candidates={"k": 6}, episode={"horizon": 8})
    return build_world(sc, show_progress=False)


@pytest.fixture(scope="module")
def evaluated(world: World):
    return evaluate(
        world.scenario,
        ["random", "greedy", "oracle"],
        seeds=[0, 1],
        episodes=6,
        progress=False,
        n_resamples=200,
    )


@pytest.fixture(scope="module")
def slate_log(world: World, tmp_path_factory: pytest.TempPathFactory):
    steps, arrays = run_policy(
        world,
        make_policy("random", world, seed=4)[1],
        label="random",
        seeds=[3, 4],
        episodes=2,
        deterministic=False,
    )
    greedy_steps, greedy_arrays = run_policy(
        world, make_policy("greedy", world)[1], label="greedy", seeds=[3], episodes=1
    )
    steps = pd.concat([steps, greedy_steps], ignore_index=True)
    arrays.extend(greedy_arrays)
    path = tmp_path_factory.mktemp("slate-log") / "episodes.parquet"
    write_step_log(path, steps, arrays, scenario=world.scenario, world=world)
    return steps, arrays, path


# ------------------------------------------------------------------------------------ baselines


@pytest.mark.parametrize("name", ["random", "popular", "greedy", "egreedy", "linucb"])
def test_baselines_recommend_distinct_valid_slots_and_fill_short_slates(world, name) -> None:
    _, pol = make_policy(name, world, seed=1)
    assert pol.slate_size == 3  # from the scenario, through make_policy
    obs = _obs()
    for _ in range(20):
        slate = np.asarray(pol.predict(obs, deterministic=False)[0])
        assert slate.shape == (3,) and slate.dtype.kind in "iu"
        assert len(set(slate.tolist())) == 3
        assert all(obs["action_mask"][s] for s in slate)
    # Two valid slots for a slate of three: both shown, the last position repeats the first.
    short = _obs(valid=(1, 4))
    slate = np.asarray(pol.predict(short)[0]).tolist()
    assert sorted(slate[:2]) == [1, 4] and slate[2] == slate[0]
    if name != "random" and name != "egreedy":
        scores = pol.scores(obs)
        top = sorted(np.flatnonzero(obs["action_mask"]), key=lambda s: -scores[s])[:3]
        assert np.asarray(pol.predict(obs)[0]).tolist() == top
        assert pol.slate_probability(obs, np.asarray(top)) == 1.0


def test_scoring_ties_go_to_the_lowest_slot_as_for_single_items(world) -> None:
    obs = _obs(valid=(0, 1, 2, 3, 4, 5))
    obs["candidate_features"][:, 0] = [0.2, 0.5, 0.5, 0.1, 0.5, 0.2]
    assert make_policy("popular", world)[1].predict(obs)[0].tolist() == [1, 2, 4]


def test_random_slates_are_uniform_without_replacement(world) -> None:
    _, pol = make_policy("random", world, seed=7)
    obs = _obs(k=10, valid=(0, 1, 2, 4, 5, 7, 8, 9))
    n = 3000
    slates = np.stack([pol.predict(obs)[0] for _ in range(n)])
    valid = np.flatnonzero(obs["action_mask"])
    assert set(np.unique(slates)) <= set(valid.tolist())
    assert all(len(set(row)) == 3 for row in slates.tolist())
    p = 1.0 / valid.size
    tol = 4.5 * np.sqrt(p * (1 - p) / n)  # per-cell binomial sd, 4.5 sigma over 24 cells
    for j in range(3):
        freq = np.bincount(slates[:, j], minlength=10)[valid] / n
        assert np.all(np.abs(freq - p) < tol), (j, freq)
    assert pol.slate_probability(obs, slates[0]) == pytest.approx(1 / (8 * 7 * 6))
    assert pol.slate_probability(obs, np.array([0, 0, 1])) == 0.0


def test_egreedy_slate_probabilities_sum_to_one_and_match_draws(world) -> None:
    from lmrecsim.agents.baselines import EpsilonGreedyPolicy

    pol = EpsilonGreedyPolicy(epsilon=0.3, seed=2, slate_size=2)
    obs = _obs(k=5, valid=(0, 1, 3, 4))
    probs = {
        s: pol.slate_probability(obs, np.array(s)) for s in itertools.permutations(range(5), 2)
    }
    assert sum(probs.values()) == pytest.approx(1.0)
    assert all(probs[s] == 0.0 for s in probs if 2 in s)
    # The first position's distribution is the single-item one, and a slate's first prefix
    # probability that of its first slot; the second the slate's own.
    first = pol.action_probabilities(obs)
    for slot in range(5):
        assert sum(v for s, v in probs.items() if s[0] == slot) == pytest.approx(first[slot])
    for slate, p in probs.items():
        prefix = pol.prefix_probabilities(obs, np.array(slate))
        assert prefix[0] == pytest.approx(first[slate[0]]) and prefix[1] == pytest.approx(p)
    n = 4000
    draws = [tuple(pol.predict(obs)[0].tolist()) for _ in range(n)]
    best = max(probs, key=probs.get)
    share = draws.count(best) / n
    assert abs(share - probs[best]) < 4 * np.sqrt(probs[best] * (1 - probs[best]) / n)


def test_linucb_learns_from_every_shown_position(world) -> None:
    from lmrecsim.agents.baselines import LinUCBPolicy

    obs = _obs(valid=(0, 1, 2, 3, 4, 5))
    pol = LinUCBPolicy(alpha=0.0, slate_size=3)
    slate = np.array([4, 0, 2])
    info = {"invalid_action": False, "slate_items": np.array([11, 12, -1]), "clicked_position": 0}
    for _ in range(30):
        pol.observe(obs, slate, 1.0, info)
    assert pol.n_updates == 60  # two shown positions per step; the empty one is skipped
    # The clicked slot ranks first; slot 0, shown and passed over as often, ranks below it.
    ranked = pol.predict(obs)[0].tolist()
    assert ranked[0] == 4 and pol.scores(obs)[4] > pol.scores(obs)[0]


def test_oracle_slate_is_the_top_hidden_affinities(small_world) -> None:
    env = RecommendationEnv(world=small_world)
    _, oracle = make_policy("oracle", small_world)
    oracle.bind(env)
    obs, _ = env.reset(seed=11)
    size = 3
    for _ in range(4):
        hidden = env.users.candidate_affinity(np.zeros(1, dtype=np.int64))[0]
        aff = np.where(obs["action_mask"] > 0, hidden, -np.inf)
        slate = oracle.predict(obs)[0]
        assert len(set(slate.tolist())) == size
        # Best first, and no slot left out has a higher affinity than one chosen.
        assert (np.diff(aff[slate]) <= 0).all()
        rest = np.setdiff1d(np.flatnonzero(obs["action_mask"]), slate)
        assert aff[rest].max(initial=-np.inf) <= aff[slate].min()
        obs, _, term, trunc, _ = env.step(slate)
        if term or trunc:
            break


# ----------------------------------------------------------------------------------- evaluation


def test_item_metrics_count_every_item_a_slate_showed(world, evaluated) -> None:
    res = evaluated
    n_items = world.n_items
    # An independent count from the step infos of a fresh run of the same policy and seeds.
    env = RecommendationEnv(world=world)
    _, pol = make_policy("random", world)
    shown: list[int] = []
    for seed in (0, 1):
        for episode in range(6):
            obs, _ = env.reset(seed=seed if episode == 0 else None)
            pol.reseed(seed, episode)
            done = False
            while not done:
                obs, _, term, trunc, info = env.step(pol.predict(obs)[0])
                shown.extend(int(i) for i in info["slate_items"] if i >= 0)
                done = term or trunc
    summary = res.summary.set_index("policy")
    assert summary.at["random", "catalog_coverage"] == pytest.approx(len(set(shown)) / n_items)
    exposure = res.exposure("random")
    assert exposure.sum() == len(shown)
    np.testing.assert_array_equal(exposure, np.bincount(shown, minlength=n_items))
    # The lead items alone (what a single-item count would see) cover less.
    steps = res.steps[res.steps["policy"] == "random"]
    lead = steps.loc[~steps["invalid_action"], "item_index"].nunique() / n_items
    assert summary.at["random", "catalog_coverage"] > lead
    # Novelty: the mean surprisal of every shown item of the episode.
    episodes = res.episodes.set_index(["policy", "seed", "episode"])
    pop = np.maximum(world.popularity, world.scenario.response.popularity_floor / n_items)
    share = pop / pop.sum()
    rows = res.shown[(res.shown["policy"] == "random") & (res.shown["seed"] == 0)]
    first = rows[rows["episode"] == 0]["item_index"].to_numpy()
    assert len(first) > (steps["seed"].eq(0) & steps["episode"].eq(0)).sum()
    assert episodes.at[("random", 0, 0), "novelty"] == pytest.approx(
        np.mean(-np.log2(share[first]))
    )


def test_step_figures_are_per_step_and_the_oracle_beats_greedy_and_random(evaluated) -> None:
    res = evaluated
    for label, part in res.steps.groupby("policy"):
        assert part["clicked"].eq(part["clicked_position"] >= 0).all(), label
    summary = res.summary.set_index("policy")
    first = res.episodes.iloc[0]
    part = res.steps[
        (res.steps["policy"] == first["policy"]) & (res.steps["seed"] == first["seed"])
    ]
    part = part[part["episode"] == first["episode"]]
    assert first["ctr"] == pytest.approx(part["clicked"].mean())
    assert first["return"] == pytest.approx(part["reward"].sum())
    # Measured (see SLATE): the oracle leads by about 3 per episode on every seed tried; greedy and
    # random are too close to order.
    assert summary.at["oracle", "return"] > summary.at["greedy", "return"] + 1.0
    assert summary.at["oracle", "return"] > summary.at["random", "return"] + 1.0
    assert summary.at["oracle", "ctr"] > max(
        summary.at["greedy", "ctr"], summary.at["random", "ctr"]
    )


class _Fixed:
    def __init__(self, action: Any) -> None:
        self.action = action

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None, deterministic=False):
        return np.asarray(self.action), state


@pytest.mark.parametrize("action", [[1, 2], [1, 2, 10], [0.0, 1.0, 2.0]])
def test_a_wrong_slate_is_one_line_naming_the_policy(world, action) -> None:
    with pytest.raises(EvaluationError) as err:
        run_policy(world, _Fixed(action), label="mine", seeds=[0], episodes=1)
    message = str(err.value)
    assert "\n" not in message and message.startswith("policy 'mine': predict returned")
    assert "slate of 3" in message


def test_a_policy_without_probabilities_logs_propensity_one(world) -> None:
    steps, arrays = run_policy(world, _Fixed([2, 0, 2]), label="fixed", seeds=[0], episodes=1)
    assert (steps["propensity"] == 1.0).all()
    np.testing.assert_array_equal(arrays.stacked()["slate_slots"], [[2, 0, 2]] * len(steps))
    # The repeated slot shows nothing at its position.
    assert (arrays.stacked()["slate_items"][:, 2] == -1).all()


# ------------------------------------------------------------------------------------------ logs


def test_slate_log_round_trips(world, slate_log) -> None:
    steps, arrays, path = slate_log
    log = read_step_log(path)
    assert log.schema_version == SCHEMA_VERSION == 5
    assert list(log.steps.columns) == list(COLUMNS)
    got = log.steps
    np.testing.assert_array_equal(
        matrix(got["slate_slots"], np.int64), arrays.stacked()["slate_slots"]
    )
    for name in ("action", "clicked_position", "propensity", "reward", "clicked", "item_id"):
        assert got[name].tolist() == steps[name].tolist(), name
    cands = matrix(got["candidate_item_ids"], object)
    slots = matrix(got["slate_slots"], np.int64)
    rows = np.arange(len(got))
    # action is the slot of item_id: the clicked position's, else the first shown.
    assert (cands[rows, got["action"].to_numpy()] == got["item_id"].to_numpy()).all()
    clicked = got["clicked_position"].to_numpy()
    hit = clicked >= 0
    assert (slots[rows[hit], clicked[hit]] == got["action"].to_numpy()[hit]).all()
    assert not hit.all() and hit.any()
    random = got[got["policy"] == "random"]
    n_valid = matrix(random["candidate_mask"], bool).sum(axis=1)
    np.testing.assert_allclose(
        random["propensity"], 1.0 / (n_valid * (n_valid - 1) * (n_valid - 2))
    )
    assert (got.loc[got["policy"] == "greedy", "propensity"] == 1.0).all()
    # The prefixes' probabilities: random's 1/n, 1/(n (n-1)), then the whole slate's; greedy's 1.
    prefix = matrix(random["prefix_propensities"])
    np.testing.assert_allclose(prefix[:, 0], 1.0 / n_valid)
    np.testing.assert_allclose(prefix[:, 1], 1.0 / (n_valid * (n_valid - 1)))
    np.testing.assert_array_equal(prefix[:, 2], random["propensity"])
    assert (matrix(got.loc[got["policy"] == "greedy", "prefix_propensities"]) == 1.0).all()
    # Each position's slot is at its position with probability 1/n for random (any valid slot,
    # at any position), 1 for greedy.
    np.testing.assert_allclose(
        matrix(random["position_propensities"]), np.repeat(1.0 / n_valid[:, None], 3, axis=1)
    )
    assert (matrix(got.loc[got["policy"] == "greedy", "position_propensities"]) == 1.0).all()
    # The first position's probabilities.
    np.testing.assert_allclose(matrix(random["action_probabilities"]).sum(axis=1), 1.0)


def _write_v1(path: Path, table: pd.DataFrame, scenario: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lmrecsim.evaluation.logs import META_SCENARIO_HASH, META_SCENARIO_YAML, _arrow_schema
    from lmrecsim.scenarios import scenario_hash, scenario_to_yaml

    later = (
        "slate_slots",
        "clicked_position",
        "prefix_propensities",
        "position_propensities",
        "drift_event",
        "drift_phase",
    )
    v1 = [c for c in COLUMNS if c not in later]
    schema = pa.schema([_arrow_schema().field(c) for c in v1])
    arrow = pa.Table.from_pandas(table[v1], schema=schema, preserve_index=False)
    meta = {
        META_VERSION: b"1",
        META_SCENARIO_YAML: scenario_to_yaml(scenario).encode(),
        META_SCENARIO_HASH: scenario_hash(scenario).encode(),
    }
    pq.write_table(arrow.replace_schema_metadata(meta), path)


def test_version_1_logs_are_read_and_replay(tmp_path: Path) -> None:
    sc = slate_scenario(name="tiny-single", candidates={"slate_size": 1}, episode={"horizon": 6})
    w = build_world(sc, show_progress=False)
    steps, arrays = run_policy(
        w, make_policy("random", w)[1], label="random", seeds=[2], episodes=2
    )
    table = build_step_table(steps, arrays, scenario=sc, world=w)
    path = tmp_path / "v1.parquet"
    _write_v1(path, table, sc)
    log = read_step_log(path)
    assert log.schema_version == 1
    assert list(log.steps.columns) == list(COLUMNS)
    assert [list(s) for s in log.steps["slate_slots"]] == [[a] for a in steps["action"]]
    assert log.steps["clicked_position"].tolist() == np.where(steps["clicked"], 0, -1).tolist()
    assert replay(path, tmp_path / "replay").reproduced
    # Version 2 writes the same two columns for single-item steps, version 3 the propensity as
    # the prefix propensity of a single item.
    assert table["clicked_position"].tolist() == log.steps["clicked_position"].tolist()
    assert [list(p) for p in log.steps["prefix_propensities"]] == [[p] for p in steps["propensity"]]
    # ... and version 4 as its position propensity. Drift (version 5) was not recorded.
    assert [list(p) for p in log.steps["position_propensities"]] == [
        [p] for p in steps["propensity"]
    ]
    assert log.steps["drift_event"].isna().all() and log.steps["drift_phase"].isna().all()
    # An unknown version is still refused.
    import pyarrow.parquet as pq

    raw = pq.read_table(path)
    meta = dict(raw.schema.metadata)
    meta[META_VERSION] = b"6"
    pq.write_table(raw.replace_schema_metadata(meta), tmp_path / "v6.parquet")
    with pytest.raises(LogError, match=r"schema_version is '6' \(expected 1 or 2 or 3 or 4 or 5"):
        read_step_log(tmp_path / "v6.parquet")
    # A version-1 file without one of its own columns names that column, not a version-2 one.
    v1 = pq.read_table(path)
    pq.write_table(v1.drop(["clicked"]), tmp_path / "v1_no_clicked.parquet")
    with pytest.raises(LogError, match=r"column 'clicked' is missing \(expected the columns of "):
        read_step_log(tmp_path / "v1_no_clicked.parquet")


# ---------------------------------------------------------------------------------- replay, OPE


def test_a_slate_log_replays_exactly_and_a_changed_slate_is_found(slate_log, tmp_path) -> None:
    _, _, path = slate_log
    result = replay(path, tmp_path / "exact")
    assert result.reproduced, result.first_difference
    assert result.n_steps == len(read_step_log(path).steps)
    # Change one slate of an episode the log continues after: the replay must notice.
    log = read_step_log(path)
    table = log.steps.copy()
    row = int(np.flatnonzero(table["step"].to_numpy() == 1)[0])
    slots = np.asarray(table.at[row, "slate_slots"]).copy()
    valid = np.flatnonzero(np.asarray(table.at[row, "candidate_mask"]))
    slots[:] = [s for s in valid if s not in slots][:3]
    table.at[row, "slate_slots"] = slots
    # The action is the slot of the clicked item, or the first shown (all three are valid).
    clicked = int(table.at[row, "clicked_position"])
    table.at[row, "action"] = int(slots[max(clicked, 0)])
    from lmrecsim.evaluation.logs import LogError, write_step_table

    changed = tmp_path / "changed.parquet"
    write_step_table(changed, table, scenario=log.scenario())
    diff = replay(changed, tmp_path / "changed").first_difference
    assert diff is not None and diff.step == 1
    # An action that is not the slate's slot for the row's item is refused when read: replay
    # steps a slate with slate_slots and would not see it ("reproduced exactly" before).
    table = log.steps.copy()
    slots = np.asarray(table.at[0, "slate_slots"])
    table.at[0, "action"] = int(next(s for s in range(10) if s not in slots))
    write_step_table(changed, table, scenario=log.scenario())
    with pytest.raises(LogError, match=r"column 'action' is \d+ in row 0 \(expected \d+, the"):
        replay(changed, tmp_path / "wrong_action")


def test_side_by_side_replay_of_another_policy_on_a_slate_log(slate_log, tmp_path) -> None:
    _, _, path = slate_log
    result = replay_with_policy(path, "oracle", tmp_path, logged_policy="random")
    table = pd.read_csv(tmp_path / "side_by_side.csv")
    assert {"logged_slate_slots", "policy_slate_slots", "policy_clicked_position"} <= set(table)
    assert table["policy_slate_slots"].dropna().str.split().map(len).eq(3).all()
    assert result.return_difference is not None


def test_ope_of_a_slate_log_weights_whole_slates_and_models_the_rest(slate_log, tmp_path) -> None:
    _, _, path = slate_log
    result = evaluate_off_policy(path, "greedy", logged_policy="random", with_ground_truth=False)
    table = result.table().set_index("estimator")
    # the default on slates
    assert list(table.index) == ["ips", "snips", "iips", "sniips", "rips", "snrips", "dm", "dr"]
    assert np.isfinite(table.loc[["dm", "dr"], "estimate"]).all()
    assert table.at["dr", "ess"] == table.at["rips", "ess"]  # Cascade-DR weighs as RIPS does
    assert any("Cascade-DR" in note for note in result.notes)
    # A uniform logger shows greedy's ordered slate of 3 among 10 candidates with probability
    # 1/720 at most, so few rounds weigh anything (here none: IPS is 0 and SNIPS, 0/0, is NaN)
    # and the warning must say so.
    assert np.isfinite(table.at["ips", "estimate"]) and table.at["ips", "estimate"] >= 0
    assert table.loc[["ips", "snips"], "ess"].max() < 100
    assert any("low overlap" in note for note in result.notes)
    assert any("slate log" in note for note in result.notes)
    # The warning does not depend on the order the estimators are asked for in (IIPS first hid
    # IPS's low overlap): it names the weighted estimator that overlaps least.
    for order in (("iips", "ips"), ("ips", "iips")):
        again = evaluate_off_policy(
            path, "greedy", logged_policy="random", with_ground_truth=False, estimators=order
        )
        low = [note for note in again.notes if note.startswith("warning: low overlap")]
        assert len(low) == 1 and "ips's, under" in low[0] and "iips's" not in low[0], low
    # Asked for alone, DR is the same figure (the model's folds do not depend on the others).
    alone = evaluate_off_policy(
        path, "greedy", logged_policy="random", with_ground_truth=False, estimators=("dr",)
    )
    assert alone.estimates[0].estimate == table.at["dr", "estimate"]


@pytest.mark.slow  # 12 x 150 one-step episodes logged, re-simulated and run by the target: ~15 s
def test_slate_estimators_cover_the_truth_on_a_slate_bandit(tmp_path) -> None:
    from lmrecsim.agents.baselines import EpsilonGreedyPolicy, GreedyPolicy

    from .test_ope import _log, _max_misses

    sc = slate_scenario(
        name="slate-bandit", candidates={"k": 5, "slate_size": 2}, episode={"horizon": 1}
    )
    world = build_world(sc, show_progress=False)
    reps, rounds, rows = 12, 150, []
    for rep in range(reps):
        logger = EpsilonGreedyPolicy(epsilon=0.5, seed=rep, slate_size=2)
        path = _log(
            (sc, world), logger, tmp_path / f"log{rep}.parquet", seed=200 + rep, rounds=rounds
        )
        result = evaluate_off_policy(path, ("greedy", GreedyPolicy(slate_size=2)))
        assert result.support.supported
        rows.append(result.table().assign(rep=rep))
    res = pd.concat(rows, ignore_index=True)
    truth = res.groupby("rep")["ground_truth"].first().mean()
    limit = _max_misses(reps, 0.05)  # 3 of 12 nominal 95% intervals
    for name, group in res.groupby("estimator"):
        if name == "dm":  # its interval leaves out the model's own error (the DM note)
            continue
        misses = int(((group["ci_low"] > truth) | (truth > group["ci_high"])).sum())
        assert misses <= limit, f"{name}: {misses} of {reps} intervals miss {truth:.3f}"
    # The logger shows greedy's slate with probability (0.5 + 0.5/5)(0.5 + 0.5/4) = 0.375 at
    # most, so about a third of the rounds carry weight.
    assert (res["ess"] > rounds / 6).all()
    # RIPS and SNRIPS weigh a click at the first position by the first slot's ratio alone,
    # IIPS and SNIIPS a click at any position by that position's slot's ratio alone.
    # Measured (these 12 logs): mean ESS 68 (IIPS) and 61 (RIPS) against 54 for the whole-slate
    # weights; estimates 0.499 / 0.517 (IIPS / SNIIPS) and 0.492 / 0.513 (RIPS / SNRIPS)
    # against a truth of 0.497 (IPS 0.474, SNIPS 0.500).
    ess = res.groupby("estimator")["ess"].mean()
    assert ess["iips"] > ess["rips"] > ess["ips"] and ess["snrips"] == ess["rips"]
    assert ess["sniips"] == ess["iips"]


# ---------------------------------------------------------------------------------- training log


def _slate_training_env(name: str, *, horizon: int) -> tuple[Any, World, Any]:
    """A tiny slate scenario, its world and a 2-user batched training env with full infos (what
    an episode-log callback reads)."""
    from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv

    sc = slate_scenario(name=name, episode={"horizon": horizon})
    w = build_world(sc, show_progress=False)
    return sc, w, BatchedRecommendationVecEnv(sc, 2, world=w, full_info=True)


def test_training_log_records_slates_with_their_propensities(world, tmp_path) -> None:
    import torch as th
    from stable_baselines3 import PPO

    from lmrecsim.evaluation.replay import load_world, resimulate
    from lmrecsim.evaluation.training_log import EpisodeLogCallback

    sc, w, venv = _slate_training_env("tiny-slate-train", horizon=5)
    # learning_rate 0: the policy never changes, so its propensities can be recomputed after.
    model = PPO(
        "MultiInputPolicy",
        venv,
        n_steps=16,
        batch_size=16,
        n_epochs=1,
        learning_rate=0.0,
        seed=0,
        device="cpu",
    )
    path = tmp_path / "episodes.parquet"
    cb = EpisodeLogCallback(path, scenario=sc, world=w, seed=0, label="ppo-training")
    model.learn(32, callback=cb)
    log = read_step_log(path)
    rows = log.steps
    assert len(rows) > 0 and cb.written_steps == len(rows)
    assert (matrix(rows["slate_slots"], np.int64).shape[1]) == 3
    # Each logged slate's propensity is the product of its positions' probabilities, and the
    # logged distribution is the first position's.
    expected = np.full(len(rows), np.nan)
    prefix = np.full((len(rows), 3), np.nan)
    positions = np.full((len(rows), 3), np.nan)
    first = np.full((len(rows), w.scenario.candidates.k), np.nan)

    def visit(pos: int, env: Any, obs: dict[str, np.ndarray]) -> None:
        obs_t, _ = model.policy.obs_to_tensor(obs)
        with th.no_grad():
            dists = model.policy.get_distribution(obs_t).distribution
        probs = [d.probs.numpy()[0].astype(np.float64) for d in dists]
        slate = np.asarray(rows.at[pos, "slate_slots"])
        expected[pos] = float(np.prod([p[s] for p, s in zip(probs, slate, strict=True)]))
        prefix[pos] = np.cumprod([p[s] for p, s in zip(probs, slate, strict=True)])
        # Independent positions: each position's marginal is its own probability of its slot.
        positions[pos] = [p[s] for p, s in zip(probs, slate, strict=True)]
        first[pos] = probs[0]

    assert resimulate(load_world(log), rows, visit=visit) is None
    np.testing.assert_allclose(rows["propensity"], expected, rtol=1e-5)
    np.testing.assert_allclose(matrix(rows["prefix_propensities"]), prefix, rtol=1e-5)
    np.testing.assert_allclose(matrix(rows["position_propensities"]), positions, rtol=1e-5)
    np.testing.assert_allclose(matrix(rows["action_probabilities"]), first, rtol=1e-5)
    assert replay(path, tmp_path / "replay").reproduced


def test_a_candidate_scorer_training_log_records_plackett_luce_marginals(tmp_path) -> None:
    # PPO's candidate scorer draws Plackett-Luce slates (learning rate 1e-10: the parameters stay
    # put, so the propensities can be recomputed after): each logged position's propensity is the
    # probability that a slate has that slot there, by enumerating every slate it can draw.
    import torch as th

    from lmrecsim.agents.build import build_model
    from lmrecsim.agents.slate import PlackettLuceDistribution
    from lmrecsim.evaluation.replay import load_world, resimulate
    from lmrecsim.evaluation.training_log import EpisodeLogCallback

    sc, w, venv = _slate_training_env("tiny-slate-pl", horizon=4)
    model = build_model(
        "ppo",
        venv,
        seed=0,
        hyperparameters={"n_steps": 16, "batch_size": 16, "n_epochs": 1, "learning_rate": 1e-10},
    )
    path = tmp_path / "episodes.parquet"
    model.learn(32, callback=EpisodeLogCallback(path, scenario=sc, world=w, seed=0, label="pl"))
    rows = read_step_log(path).steps
    assert len(rows) > 0
    want = np.full((len(rows), 3), np.nan)

    def visit(pos: int, env: Any, obs: dict[str, np.ndarray]) -> None:
        obs_t, _ = model.policy.obs_to_tensor(obs)
        with th.no_grad():
            dist = model.policy.get_distribution(obs_t)
        assert isinstance(dist, PlackettLuceDistribution)
        mask = obs["action_mask"] > 0
        valid = np.flatnonzero(mask).tolist()
        n = min(len(valid), 3)
        slate = np.asarray(rows.at[pos, "slate_slots"])
        slates = [
            (*s, *np.flatnonzero(~mask)[: 3 - n].tolist()) for s in itertools.permutations(valid, n)
        ]
        with th.no_grad():
            probs = [float(dist.log_prob(th.tensor([s])).exp()) for s in slates]
        pairs = list(zip(slates, probs, strict=True))
        want[pos] = [sum(p for s, p in pairs if s[j] == slate[j]) for j in range(3)]

    assert resimulate(load_world(read_step_log(path)), rows, visit=visit) is None
    np.testing.assert_allclose(matrix(rows["position_propensities"]), want, atol=1e-6)


def test_a_baseline_subclass_that_skips_init_still_recommends_single_items() -> None:
    # Written against the single-item API, before baselines took slate_size.
    from lmrecsim.agents.baselines import GreedyPolicy

    class Mine(GreedyPolicy):
        def __init__(self) -> None:
            pass

        def scores(self, observation):
            return np.where(observation["action_mask"] > 0, np.arange(5.0), -np.inf)

    obs = {"action_mask": np.array([1, 1, 1, 0, 0], dtype=np.int8)}
    assert int(Mine().predict(obs)[0]) == 2


def test_clicks_by_slate_position_follow_the_position_bias(tmp_path: Path) -> None:
    # Position j's click logit is lowered by 1.5 * j: random slates, whose items are alike at
    # every position, must show click-through falling from the first position to the last.
    biased = build_world(
        slate_scenario(name="tiny-slate-bias", response={"position_bias": 1.5}),
        show_progress=False,
    )
    res = evaluate(
        biased.scenario,
        ["random", "greedy"],
        seeds=[0, 1],
        episodes=20,
        progress=False,
        n_resamples=100,
        out=tmp_path / "report",
    )
    table = res.position_clicks()
    assert table is not None and list(table["position"]) == [0, 1, 2, 0, 1, 2]
    for label, part in table.groupby("policy", sort=False):
        steps = res.steps[res.steps["policy"] == label]
        shown = res.shown[res.shown["policy"] == label]
        assert part["clicks"].sum() == steps["clicked"].sum()
        np.testing.assert_array_equal(part["shown"], np.bincount(shown["position"], minlength=3))
        np.testing.assert_array_equal(
            part["clicks"],
            np.bincount(steps.loc[steps["clicked"], "clicked_position"], minlength=3),
        )
        assert part["click_share"].sum() == pytest.approx(1.0)
    ctr = table[table["policy"] == "random"]["ctr"].to_numpy()
    assert ctr[0] > ctr[1] > ctr[2], ctr
    out = tmp_path / "report"
    pd.testing.assert_frame_equal(pd.read_csv(out / "positions.csv"), table, check_dtype=False)
    assert (out / "positions.png").is_file()
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Clicks by slate position" in md and f"{ctr[0]:.3f}" in md
    assert "Clicks by slate position" in (out / "report.html").read_text(encoding="utf-8")


def test_single_item_evaluations_have_no_position_table(tmp_path: Path) -> None:
    single = build_world(
        slate_scenario(name="tiny-single", candidates={"slate_size": 1}), show_progress=False
    )
    res = evaluate(single.scenario, ["random"], seeds=[0], episodes=2, progress=False, out=tmp_path)
    assert res.position_clicks() is None
    assert not (tmp_path / "positions.csv").exists() and not (tmp_path / "positions.png").exists()
    assert "slate position" not in (tmp_path / "report.md").read_text(encoding="utf-8")


def _hand_rounds(reward: np.ndarray, clicked: np.ndarray, **slate: np.ndarray) -> Any:
    """Slate rounds of two positions and three candidates by hand: only the rewards, clicks and
    the given per-position propensities (``logged_prefix``, ``target_position``, ...) matter."""
    from lmrecsim.evaluation.ope import Rounds

    n, k = len(reward), 3
    return Rounds(
        reward=reward,
        action=np.zeros(n, dtype=np.int64),
        pscore=np.full(n, 0.1),
        logger_dist=np.full((n, k), 1 / k),
        target_dist=np.full((n, k), 1 / k),
        mask=np.ones((n, k), dtype=bool),
        user=np.zeros((n, 1), dtype=np.float32),
        candidates=np.zeros((n, k, 1), dtype=np.float32),
        features=np.zeros((n, k, 0), dtype=np.float32),
        cluster=np.arange(n),
        slate=np.zeros((n, 2), dtype=np.int64),
        target_slate_prob=np.full(n, 0.05),
        clicked_position=clicked,
        **slate,
    )


def test_rips_and_snrips_by_hand() -> None:
    from lmrecsim.evaluation.ope import estimate_all

    # Four rounds of slates of two: clicks at position 0, 1, none (reward 0.5 anyway: a reward
    # without a click is weighted by the whole slate), and 0.
    logged = np.array([[0.5, 0.25], [0.5, 0.1], [0.2, 0.1], [0.4, 0.2]])
    target = np.array([[1.0, 0.5], [0.5, 0.5], [1.0, 0.0], [0.0, 0.0]])
    clicked = np.array([0, 1, -1, 0])
    reward = np.array([1.0, 1.0, 0.5, 1.0])
    n, k = 4, 3
    rounds = _hand_rounds(reward, clicked, logged_prefix=logged, target_prefix=target)
    rounds.pscore, rounds.target_slate_prob = logged[:, -1], target[:, -1]
    w = target / logged
    # Per round: w[0, 0] * 1, w[1, 1] * 1, w[2, 1] * 0.5, w[3, 0] * 1.
    terms = np.array([w[0, 0], w[1, 1], 0.5 * w[2, 1], w[3, 0]])
    by_position = [
        (w[0, 0] + w[3, 0]) / w[:, 0].sum(),  # position 0's clicks over its weights
        (w[1, 1] + 0.5 * w[2, 1]) / w[:, 1].sum(),  # position 1's, with the no-click reward
    ]
    used = np.array([w[0, 0], w[1, 1], w[2, 1], w[3, 0]])
    got = {e.estimator: e for e in estimate_all(rounds, np.zeros((n, k)), ("rips", "snrips"))}
    assert got["rips"].estimate == pytest.approx(terms.mean())
    assert got["snrips"].estimate == pytest.approx(sum(by_position))
    assert got["rips"].ess == pytest.approx(used.sum() ** 2 / (used**2).sum())
    # Whole-slate IPS of the same rounds weighs only the full slates.
    ips = estimate_all(rounds, np.zeros((n, k)), ("ips",))[0]
    assert ips.estimate == pytest.approx(np.mean(w[:, 1] * reward))


def _older_log(path: Path, version: int, dest: Path) -> Path:
    """``path`` rewritten as a log of schema ``version``, without the columns added after it."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = {**table.schema.metadata, META_VERSION: str(version).encode()}
    later = {2: ["prefix_propensities", "position_propensities"], 3: ["position_propensities"]}
    pq.write_table(table.drop(later[version]).replace_schema_metadata(meta), dest)
    return dest


def test_rips_needs_the_prefixes(slate_log, tmp_path) -> None:
    # A schema-2 log (no shorter prefixes) or a target without prefix_probabilities: by default
    # the whole-slate estimators only, with a note; asked for, one line.
    old = _older_log(slate_log[2], 2, tmp_path / "v2.parquet")
    log = read_step_log(old)
    assert np.isnan(matrix(log.steps["prefix_propensities"])[:, :2]).all()
    np.testing.assert_array_equal(
        matrix(log.steps["prefix_propensities"])[:, 2], log.steps["propensity"]
    )
    assert np.isnan(matrix(log.steps["position_propensities"])).all()
    result = evaluate_off_policy(old, "greedy", logged_policy="random", with_ground_truth=False)
    # DM needs the target's tables only; Cascade-DR the logger's prefixes too.
    assert list(result.table()["estimator"]) == ["ips", "snips", "dm"]
    assert any("no rips or snrips" in note for note in result.notes)
    assert any("no dr:" in note for note in result.notes)
    assert any("no iips or sniips" in note for note in result.notes)
    with pytest.raises(LogError, match="gives no probability of the slate's shorter prefixes"):
        evaluate_off_policy(
            old, "greedy", logged_policy="random", estimators=("rips",), with_ground_truth=False
        )


def test_iips_needs_the_item_position_marginals(slate_log, tmp_path) -> None:
    # A schema-3 log has the prefixes but not the other positions' marginals: by default every
    # estimator but iips and sniips, with a note; asked for, one line naming the round.
    old = _older_log(slate_log[2], 3, tmp_path / "v3.parquet")
    log = read_step_log(old)
    positions = matrix(log.steps["position_propensities"])
    # The first position's marginal is the first prefix's probability; the others are unknown.
    np.testing.assert_array_equal(positions[:, 0], matrix(log.steps["prefix_propensities"])[:, 0])
    assert np.isnan(positions[:, 1:]).all()
    result = evaluate_off_policy(old, "greedy", logged_policy="random", with_ground_truth=False)
    assert list(result.table()["estimator"]) == ["ips", "snips", "rips", "snrips", "dm", "dr"]
    assert any("no iips or sniips" in note for note in result.notes)
    for estimators, export in ((("iips",), None), (("ips",), tmp_path / "obp")):
        with pytest.raises(LogError) as err:
            evaluate_off_policy(
                old,
                "greedy",
                logged_policy="random",
                estimators=estimators,
                export_dir=export,
                with_ground_truth=False,
            )
        message = str(err.value)
        assert "\n" not in message and str(old) in message
        assert "column 'position_propensities' gives no probability of the slot at each later " in (
            message
        )
    assert not (tmp_path / "obp" / "bandit_feedback.npz").exists()


def test_iips_and_sniips_by_hand() -> None:
    from lmrecsim.evaluation.ope import estimate_all

    # Three rounds of slates of two: a click at position 1, at position 0, none (reward 0.5
    # anyway: a reward without a click goes to the last position).
    logged = np.array([[0.5, 0.4], [0.25, 0.5], [0.2, 0.8]])
    target = np.array([[1.0, 0.2], [0.5, 0.5], [0.0, 1.0]])
    clicked = np.array([1, 0, -1])
    reward = np.array([1.0, 1.0, 0.5])
    n, k = 3, 3
    rounds = _hand_rounds(reward, clicked, logged_position=logged, target_position=target)
    w = target / logged
    terms = np.array([w[0, 1], w[1, 0], 0.5 * w[2, 1]])
    by_position = [w[1, 0] / w[:, 0].sum(), (w[0, 1] + 0.5 * w[2, 1]) / w[:, 1].sum()]
    used = np.array([w[0, 1], w[1, 0], w[2, 1]])
    got = {e.estimator: e for e in estimate_all(rounds, np.zeros((n, k)), ("iips", "sniips"))}
    assert got["iips"].estimate == pytest.approx(terms.mean())
    assert got["sniips"].estimate == pytest.approx(sum(by_position))
    assert got["iips"].ess == pytest.approx(used.sum() ** 2 / (used**2).sum())


def test_cascade_dr_and_slate_dm_by_hand() -> None:
    from lmrecsim.evaluation.ope import estimate_all

    # Two rounds of slates of two among three slots: a click at position 1, then none (reward
    # 0.5 anyway: it goes to the last position).
    logged = np.array([[0.5, 0.25], [0.2, 0.1]])
    target = np.array([[1.0, 0.5], [0.5, 0.0]])
    reward = np.array([1.0, 0.5])
    cond = np.array(
        [
            [[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]],
            [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]],
        ]
    )
    rounds = _hand_rounds(
        reward,
        np.array([1, -1]),
        logged_prefix=logged,
        target_prefix=target,
        target_conditional=cond,
    )
    rounds.slate = np.array([[1, 0], [0, 2]])
    q = np.array(
        [
            [[0.1, 0.6, 0.2], [0.8, 0.3, 0.4]],
            [[0.3, 0.5, 0.9], [0.2, 0.7, 0.1]],
        ]
    )
    w = target / logged
    # Round 0: position 0 holds slot 1 (q 0.6), position 1 slot 0 (q 0.8), the click at 1.
    dr0 = (
        (1.0 * 0.6) + w[0, 0] * (0 - 0.6) + w[0, 0] * (0.5 * 0.8 + 0.5 * 0.4) + w[0, 1] * (1 - 0.8)
    )
    # Round 1: slots 0 then 2; the reward without a click at position 1.
    dr1 = (0.5 * 0.3 + 0.5 * 0.5) + w[1, 0] * (0 - 0.3) + w[1, 0] * 0.1 + w[1, 1] * (0.5 - 0.1)
    got = {e.estimator: e for e in estimate_all(rounds, np.zeros((2, 3)), ("dm", "dr"), slate_q=q)}
    assert got["dr"].estimate == pytest.approx((dr0 + dr1) / 2)
    assert got["dm"].estimate == pytest.approx((0.6 + 0.4) / 2)
    # Without a model (Q = 0), Cascade-DR is RIPS.
    none = estimate_all(rounds, np.zeros((2, 3)), ("dr", "rips"), slate_q=np.zeros_like(q))
    assert none[0].estimate == pytest.approx(none[1].estimate)
    with pytest.raises(ValueError, match="slate_q"):
        estimate_all(rounds, np.zeros((2, 3)), ("dr",))


def test_the_slate_q_model_recovers_a_linear_reward(monkeypatch) -> None:
    # Synthetic rounds: the user always clicks position 0 and the reward is the dot product of
    # the user and that item, so Q_0(x, a) = user . candidate_a and Q_1 = 0; a uniform target's
    # value is then the mean over valid slots, and DM must find it from the logged slates.
    from lmrecsim.evaluation.ope import Rounds, estimate_all, fit_slate_q_model

    gen = np.random.default_rng(7)
    n, k, p = 600, 4, 3
    user = gen.normal(size=(n, p)).astype(np.float32)
    cands = gen.normal(size=(n, k, p)).astype(np.float32)
    slate = np.stack([gen.permutation(k)[:2] for _ in range(n)])
    dots = np.einsum("np,nkp->nk", user.astype(np.float64), cands.astype(np.float64))
    reward = dots[np.arange(n), slate[:, 0]]
    cond = np.zeros((n, 2, k))
    cond[:, 0] = 1 / k
    cond[np.arange(n), 1] = 1 / (k - 1)
    cond[np.arange(n), 1, slate[:, 0]] = 0.0
    rounds = Rounds(
        reward=reward,
        action=slate[:, 0],
        pscore=np.full(n, 1 / 12),
        logger_dist=np.full((n, k), 1 / k),
        target_dist=np.full((n, k), 1 / k),
        mask=np.ones((n, k), dtype=bool),
        user=user,
        candidates=cands,
        features=np.zeros((n, k, 1), dtype=np.float32),
        cluster=np.arange(n) // 10,
        slate=slate,
        target_slate_prob=np.full(n, 1 / 12),
        logged_prefix=np.tile([1 / k, 1 / 12], (n, 1)),
        target_prefix=np.tile([1 / k, 1 / 12], (n, 1)),
        clicked_position=np.zeros(n, dtype=np.int64),
        target_conditional=cond,
    )
    q = fit_slate_q_model(rounds, n_folds=2, rng=0)
    # Well inside the training targets' range (each fold's predictions are clipped to its own)
    # the fit is exact.
    low, high = np.quantile(reward, [0.02, 0.98])
    inside = (dots > low) & (dots < high)
    np.testing.assert_allclose(q[:, 0][inside], dots[inside], atol=0.02)
    np.testing.assert_allclose(q[:, 1], 0.0, atol=1e-9)
    dm = estimate_all(rounds, np.zeros((n, k)), ("dm",), slate_q=q)[0]
    assert dm.estimate == pytest.approx(dots.mean(), abs=0.01)
    # Predicted a block of rounds at a time (memory), the model is the same bit for bit.
    from lmrecsim.evaluation import ope

    monkeypatch.setattr(ope, "_PREDICT_ROUNDS", 7)
    np.testing.assert_array_equal(fit_slate_q_model(rounds, n_folds=2, rng=0), q)


def test_dm_and_dr_need_the_targets_tables(slate_log, tmp_path) -> None:
    # A target that says how likely its slates are, but not each position given the slots above:
    # by default DM and DR are left out with a note; asked for, one line naming the round.
    _, _, path = slate_log

    class NoTables:
        def __init__(self, world: World) -> None:
            self.inner = make_policy("egreedy", world)[1]

        def action_probabilities(self, obs: dict[str, np.ndarray]) -> np.ndarray:
            return self.inner.action_probabilities(obs)

        def prefix_probabilities(self, obs: dict[str, np.ndarray], slate: np.ndarray) -> Any:
            return self.inner.prefix_probabilities(obs, slate)

        def predict(self, obs: Any, state: Any = None, episode_start: Any = None, **_: Any) -> Any:
            return self.inner.predict(obs, state, episode_start)

    world = load_world_of(read_step_log(path))
    target = ("custom", NoTables(world))
    result = evaluate_off_policy(path, target, logged_policy="random", with_ground_truth=False)
    assert "dm" not in list(result.table()["estimator"])
    assert "dr" not in list(result.table()["estimator"])
    assert any(n.startswith("note: no dm:") for n in result.notes)
    with pytest.raises(LogError) as err:
        evaluate_off_policy(
            path, target, logged_policy="random", estimators=("dr",), with_ground_truth=False
        )
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert "gives no distribution of a position's slot given the slots above it" in message


def test_a_slate_log_exports_in_the_open_bandit_pipelines_slate_layout(slate_log, tmp_path) -> None:
    _, _, path = slate_log
    result = evaluate_off_policy(
        path, "egreedy", logged_policy="random", with_ground_truth=False, export_dir=tmp_path
    )
    assert tmp_path / "bandit_feedback.npz" in result.files
    data = np.load(tmp_path / "bandit_feedback.npz")
    log = read_step_log(path)
    rows = log.steps[log.steps["policy"] == "random"].reset_index(drop=True)
    n, size = len(rows), 3
    assert int(data["n_rounds"]) == n == result.n_rounds and int(data["len_list"]) == size
    assert int(data["n_unique_action"]) == len(rows["candidate_item_ids"].iloc[0])
    np.testing.assert_array_equal(data["slate_id"], np.repeat(np.arange(n), size))
    np.testing.assert_array_equal(data["position"], np.tile(np.arange(size), n))
    np.testing.assert_array_equal(data["action"], matrix(rows["slate_slots"], np.int64).ravel())
    np.testing.assert_array_equal(data["pscore"], np.repeat(rows["propensity"], size))
    np.testing.assert_array_equal(
        data["pscore_cascade"], matrix(rows["prefix_propensities"]).ravel()
    )
    np.testing.assert_array_equal(
        data["pscore_item_position"], matrix(rows["position_propensities"]).ravel()
    )
    # Each round's reward sits at its clicked position (a reward without a click: the last).
    reward = data["reward"].reshape(n, size)
    np.testing.assert_array_equal(reward.sum(axis=1), rows["reward"])
    clicked = rows["clicked_position"].to_numpy()
    at = np.where(clicked >= 0, clicked, size - 1)
    np.testing.assert_array_equal(reward[np.arange(n), at], rows["reward"])
    # The target's propensities, and the estimates OBP's slate estimators would compute from
    # these arrays: sum over positions of weight x reward, averaged over the slates.
    table = result.table().set_index("estimator")
    for name, logged_key, target_key in (
        ("ips", "pscore", "evaluation_policy_pscore"),
        ("iips", "pscore_item_position", "evaluation_policy_pscore_item_position"),
        ("rips", "pscore_cascade", "evaluation_policy_pscore_cascade"),
    ):
        weighted = data[target_key] / data[logged_key] * data["reward"]
        assert weighted.sum() / n == pytest.approx(table.at[name, "estimate"], rel=1e-12), name
    assert data["context"].shape[0] == n
    # What OBP's SlateCascadeDoublyRobust reads: the Q-model and the target's distribution of
    # each position's slot given the logged slots above, per (round, position, slot). Its
    # formula on these arrays gives this command's DR.
    k = int(data["n_unique_action"])
    q_hat = data["q_hat"].reshape(n * size, k)
    dist = data["evaluation_policy_action_dist"].reshape(n * size, k)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0)
    w = data["evaluation_policy_pscore_cascade"] / data["pscore_cascade"]
    w_before = np.where(data["position"] == 0, 1.0, np.roll(w, 1))
    q_logged = q_hat[np.arange(n * size), data["action"]]
    terms = w * (data["reward"] - q_logged) + w_before * (dist * q_hat).sum(axis=1)
    assert terms.sum() / n == pytest.approx(table.at["dr", "estimate"], rel=1e-12)
    assert (dist[data["position"] == 0] * q_hat[data["position"] == 0]).sum() / n == (
        pytest.approx(table.at["dm", "estimate"], rel=1e-12)
    )


@pytest.mark.parametrize(
    ("column", "change", "expected"),
    [
        ("prefix_propensities", "rise", "probabilities that do not grow with the prefix"),
        ("prefix_propensities", "last", "its last entry equal to the propensity"),
        ("position_propensities", "range", "probabilities in [0, 1]"),
        ("position_propensities", "length", "3 entries, one per slate position"),
        ("position_propensities", "below", "each entry at least prefix_propensities'"),
        ("position_propensities", "first", "its first entry equal to prefix_propensities' first"),
    ],
)
def test_inconsistent_slate_propensities_are_one_line_naming_the_row(
    slate_log, tmp_path, column: str, change: str, expected: str
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, _, path = slate_log
    table = pq.read_table(path)
    frame = table.to_pandas()
    row = int(np.flatnonzero(frame["policy"].to_numpy() == "random")[3])
    prefix = [float(v) for v in frame.at[row, "prefix_propensities"]]
    positions = [float(v) for v in frame.at[row, "position_propensities"]]
    new = {
        "rise": [prefix[0], prefix[0] * 2, prefix[2]],
        "last": [prefix[0], prefix[1], prefix[2] / 2],
        "range": [positions[0], 1.5, positions[2]],
        "length": positions[:2],
        "below": [positions[0], prefix[1] / 2, positions[2]],
        "first": [positions[0] * 1.5, *positions[1:]],
    }[change]
    frame.at[row, column] = new
    out = pa.Table.from_pandas(frame, schema=table.schema.remove_metadata(), preserve_index=False)
    bad = tmp_path / "bad.parquet"
    pq.write_table(out.replace_schema_metadata(table.schema.metadata), bad)
    with pytest.raises(LogError) as err:
        read_step_log(bad)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{bad}: column {column!r}") and f"in row {row}" in message
    assert expected in message, message


class _FirstThreeOfUniform:
    """A custom stochastic slate policy that gives only its first position's distribution
    (uniform over the valid slots), and optionally the whole slate's probability."""

    def __init__(self, whole: float | None = None) -> None:
        self.whole = whole

    def action_probabilities(self, obs: Any) -> np.ndarray:
        valid = obs["action_mask"] > 0
        return valid / valid.sum()

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None, deterministic=False):
        return np.flatnonzero(obs["action_mask"] > 0)[:3], state

    def __getattr__(self, name: str) -> Any:
        if name == "slate_probability" and self.whole is not None:
            return lambda obs, slate: self.whole
        raise AttributeError(name)


@pytest.mark.parametrize("whole", [None, 0.125])
def test_a_custom_policy_with_first_position_probabilities_logs_the_first_prefix(
    world, whole
) -> None:
    # Its first prefix is its first-position distribution's entry for the slate's first slot
    # (docs/logs.md), and so is its first item-position marginal; the rest are unknown, but for
    # the whole slate's when the policy gives slate_probability.
    steps, arrays = run_policy(
        world, _FirstThreeOfUniform(whole), label="mine", seeds=[0], episodes=1
    )
    stacked = arrays.stacked()
    n_valid = stacked["mask"].astype(bool).sum(axis=1)
    np.testing.assert_allclose(stacked["probabilities"].max(axis=1), 1.0 / n_valid)
    prefix, positions = stacked["prefix_propensities"], stacked["position_propensities"]
    np.testing.assert_allclose(prefix[:, 0], 1.0 / n_valid)
    np.testing.assert_array_equal(positions[:, 0], prefix[:, 0])
    assert np.isnan(prefix[:, 1]).all() and np.isnan(positions[:, 1:]).all()
    if whole is None:
        assert np.isnan(prefix[:, 2]).all() and steps["propensity"].isna().all()
    else:
        assert (prefix[:, 2] == whole).all() and (steps["propensity"] == whole).all()
