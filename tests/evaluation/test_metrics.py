"""Hand-computed checks of lmrecsim.evaluation.metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lmrecsim.evaluation.metrics import (
    STEP_COLUMNS,
    MetricInputError,
    catalog_coverage,
    churn_rate,
    ctr_around_events,
    drift_recovery,
    episode_table,
    exposure_counts,
    gini,
    lorenz_curve,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    retention_curve,
)

NAN = float("nan")


def _step(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "policy": "a",
        "seed": 0,
        "episode": 0,
        "step": 0,
        "user_id": 1,
        "is_new_user": False,
        "item_index": 0,
        "clicked": False,
        "rating": NAN,
        "dwell": 0.0,
        "reward": 0.0,
        "terminated": False,
        "truncated": False,
        "popularity_rank": 0,
        "is_new_item": False,
        "affinity": 0.0,
        "drift_event": False,
    }
    row.update(overrides)
    return row


def _log(rows: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(STEP_COLUMNS))


# Catalog of 4 items for the episode-table example.
# popularity shares 1/2, 1/4, 1/8, 1/8  ->  -log2 p = 1, 2, 3, 3
POPULARITY = np.array([0.5, 0.25, 0.125, 0.125])
# 2-D unit embeddings: e0 = (1, 0), e1 = (0, 1), e2 = (1, 0), e3 = (-1, 0)
EMBEDDINGS = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])


@pytest.fixture
def example_steps() -> pd.DataFrame:
    rows = [
        # Episode A = (a, 0, 0): returning user, 3 steps, churns at the last one.
        # Rows are deliberately out of step order: the table must sort them.
        _step(step=2, item_index=2, clicked=True, rating=2.0, dwell=5.0, reward=0.5,
              terminated=True, popularity_rank=3, is_new_item=True),
        _step(step=0, item_index=0, clicked=True, rating=4.0, dwell=10.0, reward=1.0,
              popularity_rank=0),
        _step(step=1, item_index=1, popularity_rank=1),
        # Episode B = (a, 0, 1): new user, 4 steps, reaches the horizon.
        _step(episode=1, user_id=2, is_new_user=True, step=0, item_index=3, popularity_rank=2),
        _step(episode=1, user_id=2, is_new_user=True, step=1, item_index=3, clicked=True,
              rating=5.0, dwell=8.0, reward=2.0, popularity_rank=2),
        _step(episode=1, user_id=2, is_new_user=True, step=2, item_index=0, popularity_rank=0),
        _step(episode=1, user_id=2, is_new_user=True, step=3, item_index=1, clicked=True,
              rating=3.0, dwell=4.0, reward=1.0, popularity_rank=1, truncated=True),
        # Episode C = (b, 1, 0): new user, a single unclicked step, churns.
        _step(policy="b", seed=1, user_id=3, is_new_user=True, item_index=2,
              popularity_rank=3, terminated=True),
    ]  # fmt: skip
    return _log(rows)


def test_episode_table_hand_computed(example_steps: pd.DataFrame) -> None:
    table = episode_table(
        example_steps,
        new_user_k=2,
        head_rank=2,
        popularity=POPULARITY,
        item_embeddings=EMBEDDINGS,
    )
    assert list(table[["policy", "seed", "episode"]].itertuples(index=False, name=None)) == [
        ("a", 0, 0),
        ("a", 0, 1),
        ("b", 1, 0),
    ]
    a, b, c = (table.iloc[i] for i in range(3))

    # Episode A: rewards 1, 0, 0.5; clicks 1, 0, 1; ratings of clicks 4, 2; dwell 10, 0, 5.
    assert a["return"] == pytest.approx(1.5)
    assert a["ctr"] == pytest.approx(2 / 3)
    assert a["mean_rating"] == pytest.approx(3.0)
    assert a["mean_dwell"] == pytest.approx(5.0)
    assert a["session_length"] == 3
    assert bool(a["churned"]) is True
    assert bool(a["new_user"]) is False
    assert math.isnan(a["new_user_return_k"]) and math.isnan(a["new_user_ctr_k"])
    assert a["new_item_share"] == pytest.approx(1 / 3)
    # popularity ranks 0, 1, 3 with a head of 2 items -> one tail recommendation in three.
    assert a["long_tail_share"] == pytest.approx(1 / 3)
    # items 0, 1, 2 -> surprisal 1, 2, 3 -> mean 2.
    assert a["novelty"] == pytest.approx(2.0)
    # pairs (0,1): 1 - 0 = 1, (0,2): 1 - 1 = 0, (1,2): 1 -> 2/3.
    assert a["intra_list_diversity"] == pytest.approx(2 / 3)

    # Episode B: rewards 0, 2, 0, 1; clicks 0, 1, 0, 1; ratings 5, 3; dwell 0, 8, 0, 4.
    assert b["return"] == pytest.approx(3.0)
    assert b["ctr"] == pytest.approx(0.5)
    assert b["mean_rating"] == pytest.approx(4.0)
    assert b["mean_dwell"] == pytest.approx(3.0)
    assert b["session_length"] == 4
    assert bool(b["churned"]) is False
    assert bool(b["new_user"]) is True
    # first k = 2 steps: rewards 0 + 2, clicks 0, 1.
    assert b["new_user_return_k"] == pytest.approx(2.0)
    assert b["new_user_ctr_k"] == pytest.approx(0.5)
    assert b["new_item_share"] == pytest.approx(0.0)
    # ranks 2, 2, 0, 1 -> 2 of 4 in the tail.
    assert b["long_tail_share"] == pytest.approx(0.5)
    # items 3, 3, 0, 1 -> surprisal 3, 3, 1, 2 -> 9/4.
    assert b["novelty"] == pytest.approx(2.25)
    # pairs (3,3): 0, (3,0): 2 twice, (3,1): 1 twice, (0,1): 1 -> 7 / 6 pairs.
    assert b["intra_list_diversity"] == pytest.approx(7 / 6)

    # Episode C: one step, nothing clicked.
    assert c["return"] == 0.0 and c["ctr"] == 0.0
    assert math.isnan(c["mean_rating"])
    assert c["session_length"] == 1
    assert bool(c["churned"]) is True
    # a new user shorter than k: sums over the steps there are.
    assert c["new_user_return_k"] == 0.0 and c["new_user_ctr_k"] == 0.0
    assert c["long_tail_share"] == 1.0
    assert c["novelty"] == pytest.approx(3.0)
    assert math.isnan(c["intra_list_diversity"])


def test_episode_table_optional_inputs_left_nan(example_steps: pd.DataFrame) -> None:
    table = episode_table(example_steps)
    for column in ("long_tail_share", "novelty", "intra_list_diversity"):
        assert column in table.columns
        assert table[column].isna().all()
    # Default k = 10 covers the whole 4-step episode B: rewards sum to 3, ctr 1/2.
    assert table.loc[1, "new_user_return_k"] == pytest.approx(3.0)
    assert table.loc[1, "new_user_ctr_k"] == pytest.approx(0.5)


def test_episode_table_diversity_normalises_embeddings(example_steps: pd.DataFrame) -> None:
    scaled = EMBEDDINGS * np.array([[2.0], [3.0], [0.5], [7.0]])
    table = episode_table(example_steps, item_embeddings=scaled)
    assert table["intra_list_diversity"].iloc[:2].tolist() == pytest.approx([2 / 3, 7 / 6])


def test_episode_table_diversity_matches_pairwise_loop() -> None:
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(30, 5))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    items = rng.integers(0, 30, size=12)
    steps = _log([_step(step=t, item_index=int(i)) for t, i in enumerate(items)])
    got = episode_table(steps, item_embeddings=emb)["intra_list_diversity"].iloc[0]
    e = emb[items]
    pairs = [1 - e[s] @ e[t] for s in range(12) for t in range(s + 1, 12)]
    assert got == pytest.approx(np.mean(pairs))


def test_one_repeated_item_has_zero_diversity_not_a_rounding_error() -> None:
    # The shortcut formula gave -6.7e-16 for a session of one item shown again and again.
    rng = np.random.default_rng(5)
    emb = rng.normal(size=(40, 32))
    got = []
    for item in range(40):
        steps = _log([_step(step=t, item_index=item) for t in range(7)])
        got.append(episode_table(steps, item_embeddings=emb)["intra_list_diversity"].iloc[0])
    assert min(got) >= 0.0 and max(got) < 1e-12


def test_episode_table_rejects_bad_input(example_steps: pd.DataFrame) -> None:
    with pytest.raises(MetricInputError, match="missing columns"):
        episode_table(example_steps.drop(columns=["reward"]))
    with pytest.raises(MetricInputError, match="new_user_k"):
        episode_table(example_steps, new_user_k=0)
    with pytest.raises(MetricInputError, match="popularity is 0"):
        episode_table(example_steps, popularity=np.array([0.5, 0.5, 0.0, 0.0]))
    with pytest.raises(MetricInputError, match="item_index must lie"):
        episode_table(example_steps, item_embeddings=EMBEDDINGS[:2])


# ---------------------------------------------------------------------------------------------
# Aggregates
# ---------------------------------------------------------------------------------------------


def test_exposure_counts_and_coverage() -> None:
    # items 0, 1, 1, 3 in a catalog of 5 -> counts 1, 2, 0, 1, 0; 3 distinct -> 3/5.
    items = np.array([0, 1, 1, 3])
    assert exposure_counts(items, 5).tolist() == [1, 2, 0, 1, 0]
    assert catalog_coverage(items, 5) == pytest.approx(0.6)
    assert catalog_coverage(np.array([], dtype=int), 5) == 0.0
    with pytest.raises(MetricInputError, match="item_index"):
        catalog_coverage(np.array([5]), 5)


def test_gini_hand_computed() -> None:
    # one item takes all: weights (2i - n - 1) = -3, -1, 1, 3 -> 3 * 10 / (4 * 10) = 0.75.
    assert gini(np.array([0, 0, 0, 10])) == pytest.approx(0.75)
    # equal exposure -> 0.
    assert gini(np.array([5, 5, 5, 5])) == pytest.approx(0.0)
    # 1, 2, 3, 4: (-3 - 2 + 3 + 12) / (4 * 10) = 0.25.
    assert gini(np.array([4, 1, 3, 2])) == pytest.approx(0.25)
    assert math.isnan(gini(np.zeros(3)))
    with pytest.raises(MetricInputError, match="counts"):
        gini(np.array([1.0, -1.0]))


def test_lorenz_curve_hand_computed() -> None:
    pop, exp = lorenz_curve(np.array([0, 0, 0, 10]))
    assert pop.tolist() == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert exp.tolist() == pytest.approx([0, 0, 0, 0, 1.0])

    # 1, 2, 3, 4 of total 10 -> cumulative 0, .1, .3, .6, 1.
    pop, exp = lorenz_curve(np.array([4, 1, 3, 2]))
    assert exp.tolist() == pytest.approx([0, 0.1, 0.3, 0.6, 1.0])
    # Gini = 1 - 2 * area under the Lorenz curve.
    area = np.sum((exp[1:] + exp[:-1]) / 2 * np.diff(pop))
    assert 1 - 2 * area == pytest.approx(gini(np.array([4, 1, 3, 2])))

    pop, exp = lorenz_curve(np.zeros(3))
    assert (pop[0], pop[-1], exp[0], exp[-1]) == (0.0, 1.0, 0.0, 1.0)


def test_churn_rate(example_steps: pd.DataFrame) -> None:
    table = episode_table(example_steps)
    # churned: A yes, B no, C yes.
    assert churn_rate(table) == pytest.approx(2 / 3)
    assert churn_rate(table[table["policy"] == "a"]) == pytest.approx(0.5)
    assert math.isnan(churn_rate(table.iloc[:0]))


def _retention_steps() -> pd.DataFrame:
    # Policy "a": episode (0, 0) stays 3 steps (rewards 1, 0, 1), episode (0, 1) leaves after
    # one step (reward 1), episode (1, 0) stays 2 steps (0, 2). Policy "b": one 2-step episode.
    rows = [
        ("a", 0, 0, 0, 1.0),
        ("a", 0, 0, 1, 0.0),
        ("a", 0, 0, 2, 1.0),
        ("a", 0, 1, 0, 1.0),
        ("a", 1, 0, 0, 0.0),
        ("a", 1, 0, 1, 2.0),
        ("b", 0, 0, 0, 0.5),
        ("b", 0, 0, 1, 0.5),
    ]
    return pd.DataFrame(rows, columns=["policy", "seed", "episode", "step", "reward"])


def test_retention_curve_by_hand() -> None:
    steps = _retention_steps()
    curve = retention_curve(steps.sample(frac=1.0, random_state=0))  # row order does not matter
    a = curve[curve["policy"] == "a"]
    assert list(curve["policy"].unique()) == list(
        pd.unique(steps.sample(frac=1.0, random_state=0)["policy"])
    )
    assert a["step"].tolist() == [0, 1, 2]
    assert a["sessions"].tolist() == [3, 2, 1]
    assert a["still_there"].tolist() == pytest.approx([1.0, 2 / 3, 1 / 3])
    assert a["reward_per_session"].tolist() == pytest.approx([2 / 3, 1.0, 1.0])
    b = curve[curve["policy"] == "b"]
    assert b["still_there"].tolist() == [1.0, 1.0]
    # The mean return is the sum over steps of still_there * reward_per_session.
    for policy, part in curve.groupby("policy"):
        mean_return = steps[steps["policy"] == policy].groupby(["seed", "episode"])["reward"].sum()
        total = (part["still_there"] * part["reward_per_session"]).sum()
        assert total == pytest.approx(mean_return.mean())


def test_retention_curve_fills_steps_no_session_reached() -> None:
    # A log that starts at step 1 for some episode (a hand-cut log): step 0 is still a row.
    steps = pd.DataFrame(
        [("a", 0, 0, 1, 1.0)], columns=["policy", "seed", "episode", "step", "reward"]
    )
    curve = retention_curve(steps)
    assert curve["sessions"].tolist() == [0, 1]
    assert math.isnan(curve["reward_per_session"].iloc[0])
    empty = retention_curve(steps.iloc[:0])
    assert empty.empty and list(empty.columns) == [
        "policy",
        "step",
        "sessions",
        "still_there",
        "reward_per_session",
    ]


def test_retention_curve_refuses_bad_steps() -> None:
    steps = _retention_steps()
    with pytest.raises(MetricInputError, match="retention_curve: steps is missing columns"):
        retention_curve(steps.drop(columns="reward"))
    with pytest.raises(MetricInputError, match="repeated"):
        retention_curve(pd.concat([steps, steps.iloc[:1]]))
    bad = steps.copy()
    bad.loc[0, "step"] = -1
    with pytest.raises(MetricInputError, match="negative step"):
        retention_curve(bad)


# ---------------------------------------------------------------------------------------------
# Ranking
# ---------------------------------------------------------------------------------------------

# Five candidates, candidate 2 invalid (it has the best score: it must still never be ranked).
TRUTH = np.array([[0.9, 0.1, 0.5, 0.8, 0.3]])
SCORES = np.array([[0.2, 0.9, 1.0, 0.7, 0.1]])
MASK = np.array([[True, True, False, True, True]])
# valid by truth: c0 .9, c3 .8, c4 .3, c1 .1    valid by score: c1, c3, c0, c4


def test_precision_recall_hand_computed() -> None:
    # k = 2: P = {1, 3}, R = {0, 3} -> 1 hit -> 1/2 for both.
    assert precision_at_k(SCORES, TRUTH, MASK, 2).tolist() == [0.5]
    assert recall_at_k(SCORES, TRUTH, MASK, 2).tolist() == [0.5]
    # k = 3: P = {1, 3, 0}, R = {0, 3, 4} -> 2 hits -> 2/3.
    assert precision_at_k(SCORES, TRUTH, MASK, 3) == pytest.approx([2 / 3])
    # k = 2 against a relevant set of 3 = {0, 3, 4}: 1 hit -> precision 1/2, recall 1/3.
    assert precision_at_k(SCORES, TRUTH, MASK, 2, n_relevant=3) == pytest.approx([0.5])
    assert recall_at_k(SCORES, TRUTH, MASK, 2, n_relevant=3) == pytest.approx([1 / 3])
    # Without the mask candidate 2 (score 1.0) enters P at k = 2: P = {2, 1}, R = {0, 3}.
    assert precision_at_k(SCORES, TRUTH, None, 2).tolist() == [0.0]


def test_precision_ties_rows_and_short_rows() -> None:
    scores = np.array(
        [
            [0.0, 0.0, 0.0],  # all tied: ranked 0, 1, 2 -> P@1 = {0}
            [0.0, 0.0, 1.0],
            [3.0, 2.0, 1.0],
            [1.0, 2.0, 3.0],
        ]
    )
    truth = np.array(
        [
            [0.1, 0.2, 0.3],  # R@1 = {2} -> 0
            [0.5, 0.5, 0.5],  # tie: R@1 = {0}; P@1 = {2} -> 0
            [0.3, 0.2, 0.1],  # same order -> 1
            [0.3, 0.2, 0.1],  # anything, but no valid candidate -> NaN
        ]
    )
    mask = np.array([[True] * 3, [True] * 3, [True] * 3, [False] * 3])
    got = precision_at_k(scores, truth, mask, 1)
    assert got[:3].tolist() == [0.0, 0.0, 1.0] and math.isnan(got[3])
    # k above the number of valid candidates: both lists are all valid candidates -> 1.
    two_valid = np.array([[True, False, True]])
    assert precision_at_k(scores[:1], truth[:1], two_valid, 5).tolist() == [1.0]


def test_ndcg_hand_computed() -> None:
    # k = 2, gains = truth clipped at 0: policy list c1 (.1), c3 (.8); ideal c0 (.9), c3 (.8).
    dcg = 0.1 / 1 + 0.8 / math.log2(3)
    idcg = 0.9 / 1 + 0.8 / math.log2(3)
    assert ndcg_at_k(SCORES, TRUTH, MASK, 2) == pytest.approx([dcg / idcg])  # 0.4305
    # Negative affinities count as 0 gain: list c0 (.6), c1 (-.5 -> 0) at k = 2 vs ideal same
    # first item: DCG = IDCG = .6 -> 1.
    assert ndcg_at_k(np.array([[2.0, 1.0, 0.0]]), np.array([[0.6, -0.5, -0.1]]), None, 2) == [1.0]


def test_ndcg_is_one_when_scores_equal_truth() -> None:
    rng = np.random.default_rng(0)
    truth = rng.uniform(-1, 1, size=(50, 8))
    mask = rng.uniform(size=(50, 8)) < 0.8
    mask[:, 0] = True
    truth[:, 0] = 0.5  # at least one positive valid gain per row -> IDCG > 0
    for k in (1, 3, 8):
        assert ndcg_at_k(truth, truth, mask, k) == pytest.approx(np.ones(50))
        assert precision_at_k(truth, truth, mask, k) == pytest.approx(np.ones(50))
    # Reversed scores are worse than perfect for most rows.
    assert np.mean(ndcg_at_k(-truth, truth, mask, 3)) < 0.8


def test_ndcg_nan_rows() -> None:
    got = ndcg_at_k(
        np.array([[1.0, 0.0], [1.0, 0.0]]),
        np.array([[-0.2, -0.1], [0.5, 0.4]]),
        np.array([[True, True], [False, False]]),
        1,
    )
    assert np.isnan(got).all()


def test_ranking_rejects_bad_input() -> None:
    with pytest.raises(MetricInputError, match="shape"):
        precision_at_k(SCORES, TRUTH[:, :4], None, 2)
    with pytest.raises(MetricInputError, match="k must be"):
        ndcg_at_k(SCORES, TRUTH, MASK, 0)
    with pytest.raises(MetricInputError, match="mask"):
        recall_at_k(SCORES, TRUTH, MASK[:, :3], 2)
    with pytest.raises(MetricInputError, match="NaN"):
        precision_at_k(np.array([[np.nan, 1.0]]), np.array([[0.1, 0.2]]), None, 1)


# ---------------------------------------------------------------------------------------------
# Drift
# ---------------------------------------------------------------------------------------------


def _clicks(policy: str, episode: int, clicks: list[int], event_step: int) -> list[dict]:
    return [
        _step(policy=policy, episode=episode, step=t, clicked=bool(c), drift_event=t == event_step)
        for t, c in enumerate(clicks)
    ]


def test_ctr_around_events_hand_computed() -> None:
    steps = _log(
        # event at step 4: offsets -2..2 are steps 2..6 with clicks 0, 1, 0, 0, 0
        _clicks("a", 0, [1, 1, 0, 1, 0, 0, 0, 1, 1, 1], event_step=4)
        # event at step 1: offset -2 missing; -1..2 are steps 0..3 with clicks 1, 1, 0, 1
        + _clicks("a", 1, [1, 1, 0, 1], event_step=1)
        # no event at all
        + _clicks("b", 0, [1, 0, 1], event_step=-1)
    )
    out = ctr_around_events(steps, window=2)
    assert list(out.columns) == ["policy", "offset", "ctr", "n"]
    a = out[out["policy"] == "a"]
    assert a["offset"].tolist() == [-2, -1, 0, 1, 2]
    assert a["n"].tolist() == [1, 2, 2, 2, 2]
    # -2: 0/1; -1: (1 + 1)/2; 0: (0 + 1)/2; 1: (0 + 0)/2; 2: (0 + 1)/2
    assert a["ctr"].tolist() == pytest.approx([0.0, 1.0, 0.5, 0.0, 0.5])
    b = out[out["policy"] == "b"]
    assert len(b) == 5 and (b["n"] == 0).all() and b["ctr"].isna().all()


def test_drift_recovery_hand_computed() -> None:
    before = [1, 1, 1, 0]  # offsets -4..-1 -> ctr_before = 0.75
    steps = _log(
        # after: 0, 0, 1, 1, 0 -> ctr_after 0.4; forward means (width 2): 0, .5, 1, .5
        _clicks("a", 0, before + [0, 0, 1, 1, 0], event_step=4)
        # after: all clicked -> recovered at once
        + _clicks("b", 0, before + [1, 1, 1, 1, 1], event_step=4)
        # after: nothing clicked -> never recovers
        + _clicks("c", 0, before + [0, 0, 0, 0, 0], event_step=4)
        # no drift event at all
        + _clicks("d", 0, before + [0, 0, 0, 0, 0], event_step=-1)
    )
    out = drift_recovery(steps, window=4, tolerance=0.1, smooth=2).set_index("policy")
    assert out["ctr_before"].tolist()[:3] == pytest.approx([0.75] * 3)
    assert out["ctr_after"].tolist()[:3] == pytest.approx([0.4, 1.0, 0.0])
    assert out["n_events"].tolist() == [1, 1, 1, 0]
    # threshold .75 - .1 = .65: a first reaches it at offset 2, b at 0, c never: censored at
    # window + 1 = 5 (it used to be NaN, the same "n/a" as d, which met no event at all).
    assert out.loc["a", "recovery_steps"] == 2.0
    assert out.loc["b", "recovery_steps"] == 0.0
    assert out.loc["c", "recovery_steps"] == 5.0
    assert math.isnan(out.loc["d", "recovery_steps"])
    # a looser tolerance (threshold .45) lets a recover at offset 1 (mean .5).
    loose = drift_recovery(steps, window=4, tolerance=0.3, smooth=2).set_index("policy")
    assert loose.loc["a", "recovery_steps"] == 1.0
    with pytest.raises(MetricInputError, match="smooth"):
        drift_recovery(steps, window=4, tolerance=0.1, smooth=6)
