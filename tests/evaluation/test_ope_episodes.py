"""Off-policy estimates of the target's return per episode: per-decision importance sampling
(PDIS) and its weighted form (WPDIS) along the logged episodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lmrecsim.agents.base import RandomPolicy
from lmrecsim.envs.world import build_world
from lmrecsim.evaluation.logs import LogError, read_step_log
from lmrecsim.evaluation.ope import Rounds, estimate_all, evaluate_off_policy
from lmrecsim.scenarios import scenario_from_dict

from .test_ope import SoftLogger, _log, _max_misses


def _rounds(cluster: list[int], step: list[int], w: list[float], reward: list[float]) -> Rounds:
    """Single-item rounds of two slots whose importance weights are ``w`` (the target's
    probability of the logged slot 0 over a propensity of 0.5)."""
    n, k = len(cluster), 2
    target = np.zeros((n, k))
    target[:, 0] = 0.5 * np.asarray(w)
    target[:, 1] = 1.0 - target[:, 0]
    return Rounds(
        reward=np.asarray(reward, dtype=np.float64),
        action=np.zeros(n, dtype=np.int64),
        pscore=np.full(n, 0.5),
        logger_dist=np.full((n, k), 0.5),
        target_dist=target,
        mask=np.ones((n, k), dtype=bool),
        user=np.zeros((n, 1), dtype=np.float32),
        candidates=np.zeros((n, k, 1), dtype=np.float32),
        features=np.zeros((n, k, 0), dtype=np.float32),
        cluster=np.asarray(cluster, dtype=np.int64),
        step=np.asarray(step, dtype=np.int64),
    )


def test_pdis_and_wpdis_by_hand() -> None:
    # Episode 0: two steps, weights 1.6 then 0.5, rewards 1 and 1; episode 1: one step (the user
    # left), weight 0.4, reward 2. Rounds out of order: the estimators sort them.
    rounds = _rounds([1, 0, 0], [0, 1, 0], [0.4, 0.5, 1.6], [2.0, 1.0, 1.0])
    got = {e.estimator: e for e in estimate_all(rounds, np.zeros((3, 2)), ("pdis", "wpdis"))}
    # Cumulative weights: episode 0 [1.6, 0.8], episode 1 [0.4, 0.4 carried past its end].
    assert got["pdis"].estimate == pytest.approx(((1.6 + 0.8) + 0.4 * 2) / 2)
    step0 = (1.6 * 1 + 0.4 * 2) / (1.6 + 0.4)
    step1 = (0.8 * 1) / (0.8 + 0.4)
    assert got["wpdis"].estimate == pytest.approx(step0 + step1)
    # ESS of the whole episodes' weights (0.8 and 0.4).
    assert got["pdis"].ess == pytest.approx(1.2**2 / (0.8**2 + 0.4**2))
    assert {e.unit for e in got.values()} == {"episode"}
    # Two independent episodes: the interval is the normal one over their two terms.
    g = np.array([1.6 + 0.8, 0.8])
    se = np.sqrt(2 / 1 * np.sum((g - g.mean()) ** 2)) / 2
    assert got["pdis"].ci_high - got["pdis"].ci_low == pytest.approx(2 * 1.959963984540054 * se)


def test_no_rounds_give_nan_not_an_error() -> None:
    from lmrecsim.evaluation.ope import fit_value_model

    rounds = _rounds([], [], [], [])
    rounds.ended = np.zeros(0, dtype=bool)
    model = fit_value_model(rounds)
    got = estimate_all(
        rounds, np.zeros((0, 2)), ("pdis", "wpdis", "fqe", "pddr"), value_model=model
    )
    assert all(np.isnan(e.estimate) and e.ess == 0 for e in got)


def test_rounds_that_are_not_whole_episodes_are_named() -> None:
    rounds = _rounds([0, 0, 1], [0, 2, 0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="round 1 is step 2 of its episode, where step 1"):
        estimate_all(rounds, np.zeros((3, 2)), ("pdis",))
    rounds = _rounds([0, 0, 1], [0, 1, 0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    rounds.ended = np.array([False, False, True])
    with pytest.raises(ValueError, match=r"round 1 \(step 1\) ends its episode but is neither"):
        estimate_all(rounds, np.zeros((3, 2)), ("wpdis",))
    rounds.ended = np.array([True, True, True])
    with pytest.raises(ValueError, match=r"round 0 \(step 0\) is terminated or truncated but"):
        estimate_all(rounds, np.zeros((3, 2)), ("pdis",))


def test_pddr_and_fqe_by_hand() -> None:
    from lmrecsim.evaluation.ope import ValueModel

    # The rounds of the PDIS test, with a value model given by hand.
    rounds = _rounds([1, 0, 0], [0, 1, 0], [0.4, 0.5, 1.6], [2.0, 1.0, 1.0])
    q = np.array([1.5, 0.7, 1.2])  # Q(x, a) of each round's logged slot, in the rounds' order
    v = np.array([1.0, 0.9, 1.8])  # V(x) of each round
    model = ValueModel(q, v)
    got = {
        e.estimator: e
        for e in estimate_all(rounds, np.zeros((3, 2)), ("fqe", "pddr", "pdis"), value_model=model)
    }
    # Episode 0: steps with weights 1.6, then 0.8 (cumulative); episode 1: one step, 0.4.
    e0 = 1.6 * (1 - 1.2) + 1.8 + 0.8 * (1 - 0.7) + 1.6 * 0.9
    e1 = 0.4 * (2 - 1.5) + 1.0
    assert got["pddr"].estimate == pytest.approx((e0 + e1) / 2)
    assert got["fqe"].estimate == pytest.approx((1.8 + 1.0) / 2)  # V at each episode's start
    assert got["fqe"].ess == 2 and got["pddr"].ess == got["pdis"].ess
    # WDR: each step's corrections and values divided by the mean of their weights (episode 1
    # has ended by step 1: reward, Q and V 0 there, its weight carried).
    wdr = next(e for e in estimate_all(rounds, np.zeros((3, 2)), ("wdr",), value_model=model))
    step0 = (1.6 * (1 - 1.2) + 0.4 * (2 - 1.5)) / (1.6 + 0.4) + (1.8 + 1.0) / 2
    step1 = (0.8 * (1 - 0.7)) / (0.8 + 0.4) + (1.6 * 0.9) / (1.6 + 0.4)
    assert wdr.estimate == pytest.approx(step0 + step1)
    # Without a model, PDDR is PDIS and WDR is WPDIS.
    zero = ValueModel(np.zeros(3), np.zeros(3))
    both = estimate_all(
        rounds, np.zeros((3, 2)), ("pddr", "pdis", "wdr", "wpdis"), value_model=zero
    )
    assert both[0].estimate == pytest.approx(both[1].estimate)
    assert both[2].estimate == pytest.approx(both[3].estimate)
    with pytest.raises(ValueError, match="value_model"):
        estimate_all(rounds, np.zeros((3, 2)), ("pddr",))


def test_fitted_q_evaluation_counts_the_steps_left() -> None:
    # A reward of 1 at every step of sessions that all last the horizon (4 steps): the return
    # from step t on is 4 - t, which the model sees (as the share of the horizon ahead), so it
    # must find it through its refits, whatever the weights and the other features.
    from lmrecsim.evaluation.ope import fit_value_model

    gen = np.random.default_rng(3)
    m, h = 120, 4
    cluster = np.repeat(np.arange(m), h)
    step = np.tile(np.arange(h), m)
    n = cluster.size
    rounds = _rounds(cluster.tolist(), step.tolist(), gen.uniform(0.5, 1.5, n).tolist(), [1.0] * n)
    rounds.user = gen.normal(size=(n, 2)).astype(np.float32)
    rounds.candidates = gen.normal(size=(n, 2, 2)).astype(np.float32)
    model = fit_value_model(rounds, horizon=h, n_folds=2, rng=0)
    np.testing.assert_allclose(model.q_logged, h - step, atol=0.02)
    np.testing.assert_allclose(model.v, h - step, atol=0.02)
    # Values never exceed what a session can still earn: here every session earns all of it.
    assert (model.v <= h - step).all()


@pytest.fixture(scope="module")
def short():
    """Sessions of at most three steps among five candidates."""
    scenario = scenario_from_dict(
        {"extends": "default", "name": "short", "episode": {"horizon": 3}, "candidates": {"k": 5}}
    )
    return scenario, build_world(scenario)


def test_with_one_step_episodes_pdis_is_ips_and_wpdis_is_snips(tmp_path: Path) -> None:
    scenario = scenario_from_dict(
        {"extends": "default", "name": "bandit", "episode": {"horizon": 1}, "candidates": {"k": 5}}
    )
    bandit = (scenario, build_world(scenario))
    log = _log(bandit, SoftLogger(0.6, seed=3), tmp_path / "log.parquet", seed=11, rounds=60)
    result = evaluate_off_policy(
        log,
        ("uniform", RandomPolicy(0)),
        estimators=("ips", "snips", "pdis", "wpdis"),
        with_ground_truth=True,
    )
    table = result.table().set_index("estimator")
    for episodic, step in (("pdis", "ips"), ("wpdis", "snips")):
        assert table.at[episodic, "estimate"] == pytest.approx(table.at[step, "estimate"])
        assert table.at[episodic, "ci_low"] == pytest.approx(table.at[step, "ci_low"])
        # One step per episode: the return per episode is the reward per step.
        assert table.at[episodic, "ground_truth"] == pytest.approx(table.at[step, "ground_truth"])
    assert list(table["unit"]) == ["step", "step", "episode", "episode"]
    assert "(return per episode)" in result.summary()


def test_the_logger_evaluated_on_its_own_log_is_its_mean_return(short, tmp_path: Path) -> None:
    log = _log(short, SoftLogger(0.6, seed=3), tmp_path / "log.parquet", seed=11, rounds=40)
    same = ("same", SoftLogger(0.6, seed=99))  # its probabilities are the logged ones
    result = evaluate_off_policy(log, same, estimators=("pdis", "wpdis"), with_ground_truth=False)
    steps = read_step_log(log).steps
    mean_return = steps.groupby(["seed", "episode"])["reward"].sum().mean()
    for e in result.estimates:
        assert e.estimate == pytest.approx(mean_return) and e.ess == pytest.approx(40)
    assert result.summary().splitlines()[0].startswith("off-policy estimate of 'same' return per")
    assert not any("low overlap" in n for n in result.notes)
    assert any("return per episode" in n for n in result.notes)


def _slate_rounds(n: int, k: int, size: int, gen: np.random.Generator) -> Rounds:
    """One-step slate rounds of ``k`` slots (slot 2 masked), uniformly random logged slates of
    distinct slots, with one candidate feature per slot."""
    mask = np.ones((n, k), dtype=bool)
    mask[:, 2] = False
    valid = np.flatnonzero(mask[0])
    slate = np.stack([gen.permutation(valid)[:size] for _ in range(n)])
    return Rounds(
        reward=np.zeros(n),
        action=slate[:, 0].copy(),
        pscore=np.ones(n),
        logger_dist=mask / mask.sum(axis=1, keepdims=True),
        target_dist=mask / mask.sum(axis=1, keepdims=True),
        mask=mask,
        user=np.zeros((n, 1), dtype=np.float32),
        candidates=np.zeros((n, k, 1), dtype=np.float32),
        features=gen.uniform(0.0, 1.0, size=(n, k, 1)).astype(np.float32),
        cluster=np.arange(n, dtype=np.int64),
        slate=slate,
        target_slate_prob=np.ones(n),
        step=np.zeros(n, dtype=np.int64),
        ended=np.ones(n, dtype=bool),
    )


def test_the_slate_value_model_reads_each_position_the_target_fills() -> None:
    # The reward is the feature of the item at position 1 (a position effect: position 0's item
    # earns nothing). A target that shows slot 4 at position 1 is worth that slot's feature; one
    # that shows it at position 0 and slot 3 at position 1 is worth slot 3's. The model learns
    # the position blocks from random logged slates and averages them under the target's
    # probability of showing each slot at each position.
    from lmrecsim.evaluation.ope import fit_value_model

    gen = np.random.default_rng(0)
    n, k, size = 1500, 6, 3
    rounds = _slate_rounds(n, k, size, gen)
    feats = rounds.features[:, :, 0].astype(np.float64)
    rounds.reward = feats[np.arange(n), rounds.slate[:, 1]]
    for layout, worth in (({0: 0, 1: 4, 2: 5}, 4), ({0: 4, 1: 3, 2: 0}, 3)):
        shown = np.zeros((n, size, k))
        for pos, slot in layout.items():
            shown[:, pos, slot] = 1.0
        rounds.target_shown = shown
        model = fit_value_model(rounds, horizon=1, n_folds=2, rng=0)
        np.testing.assert_allclose(model.v, feats[:, worth], atol=0.02)
    # A stochastic target: the mean over what it shows at position 1 (slots 0 and 5, 0.3 / 0.7),
    # and a position that shows nothing (a masked slot) adds nothing.
    shown = np.zeros((n, size, k))
    shown[:, 0, 1] = 1.0
    shown[:, 1, [0, 5]] = [0.3, 0.7]
    rounds.target_shown = shown
    model = fit_value_model(rounds, horizon=1, n_folds=2, rng=0)
    np.testing.assert_allclose(model.v, 0.3 * feats[:, 0] + 0.7 * feats[:, 5], atol=0.02)
    # The logged slates' own values: the feature at their position 1.
    np.testing.assert_allclose(model.q_logged, rounds.reward, atol=0.02)


def test_fqe_pddr_and_wdr_run_on_slate_sessions(tmp_path: Path) -> None:
    from .test_slates_eval import slate_scenario

    sc = slate_scenario(name="slate-short", episode={"horizon": 3})
    world = build_world(sc, show_progress=False)
    logger = RandomPolicy(0, slate_size=3)
    log = _log((sc, world), logger, tmp_path / "s.parquet", seed=1, rounds=60)
    result = evaluate_off_policy(
        log, "random", estimators=("pdis", "fqe", "pddr", "wdr"), with_ground_truth=False
    )
    got = {e.estimator: e for e in result.estimates}
    assert {e.unit for e in got.values()} == {"episode"}
    # The target is the logger (every whole-slate weight is 1): PDIS is the logged mean return,
    # WDR is PDDR (its normalisers are all 1), and PDDR and FQE land within PDDR's own
    # interval's half-width of that mean.
    steps = read_step_log(log).steps
    mean_return = steps.groupby(["seed", "episode"])["reward"].sum().mean()
    assert got["pdis"].estimate == pytest.approx(mean_return)
    assert got["fqe"].ess == 60 and got["pddr"].ess == pytest.approx(60)
    assert got["wdr"].estimate == pytest.approx(got["pddr"].estimate)
    half = (got["pddr"].ci_high - got["pddr"].ci_low) / 2
    for name in ("pddr", "fqe"):
        assert abs(got[name].estimate - mean_return) < half, (name, got[name], mean_return)

    # A custom stochastic target that cannot say what it shows: one line naming the method.
    class Custom(RandomPolicy):
        shown_probabilities = None

    with pytest.raises(LogError) as err:
        evaluate_off_policy(
            log, ("custom", Custom(0, slate_size=3)), estimators=("pddr",), with_ground_truth=False
        )
    message = str(err.value)
    assert "\n" not in message and "shown_probabilities" in message and str(log) in message

    # One that says it in the wrong shape: one line, not numpy's reshape error.
    class Misshapen(RandomPolicy):
        def shown_probabilities(self, observation):
            return np.zeros((2, 5))

    with pytest.raises(LogError) as err:
        evaluate_off_policy(
            log, ("odd", Misshapen(0, slate_size=3)), estimators=("fqe",), with_ground_truth=False
        )
    assert "returned shape (2, 5) (expected (L, K) = (3, " in str(err.value)


def test_a_log_without_an_episodes_end_is_refused_by_the_replay(short, tmp_path: Path) -> None:
    # The last step of an episode cut off: the replay, which recovers the contexts, finds it (so
    # the episode estimators only ever see whole episodes).
    import pyarrow.parquet as pq

    log = _log(short, SoftLogger(0.6, seed=3), tmp_path / "log.parquet", seed=11, rounds=10)
    table = pq.read_table(log)
    ended = table.column("terminated").to_numpy() | table.column("truncated").to_numpy()
    keep = np.ones(len(ended), dtype=bool)
    keep[int(np.flatnonzero(ended & (table.column("step").to_numpy() > 0))[0])] = False
    cut = tmp_path / "cut.parquet"
    pq.write_table(table.filter(keep), cut)
    with pytest.raises(LogError) as err:
        evaluate_off_policy(
            cut, ("uniform", RandomPolicy(0)), estimators=("pdis",), with_ground_truth=False
        )
    message = str(err.value)
    assert "\n" not in message and str(cut) in message and "the log ends before it" in message


@pytest.mark.slow  # 16 x 100 sessions of up to 3 steps, logged, re-simulated and run: ~15 s
def test_the_weighted_and_doubly_robust_estimates_cover_the_targets_return(
    short, tmp_path: Path
) -> None:
    reps, episodes, rows = 16, 100, []
    for rep in range(reps):
        log = _log(
            short,
            SoftLogger(0.7, seed=rep),
            tmp_path / f"log{rep}.parquet",
            seed=300 + rep,
            rounds=episodes,
        )
        result = evaluate_off_policy(
            log, ("uniform", RandomPolicy(rep)), estimators=("ips", "pdis", "wpdis", "pddr", "wdr")
        )
        rows.append(result.table().assign(rep=rep))
    res = pd.concat(rows, ignore_index=True)
    episodic = res[res["unit"] == "episode"]
    truth = episodic.groupby("rep")["ground_truth"].first().mean()
    limit = _max_misses(reps, 0.05)
    for name, group in episodic.groupby("estimator"):
        misses = int(((group["ci_low"] > truth) | (truth > group["ci_high"])).sum())
        assert misses <= limit, f"{name}: {misses} of {reps} intervals miss {truth:.3f}"
    # Unbiased: PDIS's mean over the logs is within three of its standard errors of the truth.
    pdis = episodic[episodic["estimator"] == "pdis"]["estimate"]
    assert abs(pdis.mean() - truth) < 3 * pdis.std() / np.sqrt(reps)


def test_a_stateful_target_is_reset_once_per_episode_of_a_training_log(tmp_path: Path) -> None:
    # A training log's rows interleave its envs' episodes; the episode start was judged from the
    # row before in the file, so a target's reset() ran at almost every step (252 for 84).
    from lmrecsim.cli import main

    sc = tmp_path / "short.yaml"
    sc.write_text("extends: default\nepisode: {horizon: 3}\ncandidates: {k: 5}\n")
    out = tmp_path / "run"
    argv = ["train", "--scenario", str(sc), "--timesteps", "128", "--n-envs", "2"]
    hp = ["--hp", "n_steps=32", "--hp", "batch_size=64", "--validate-every", "0"]
    assert main([*argv, *hp, "--log-episodes", "--no-progress", "--out", str(out)]) == 0

    class Counting:
        def __init__(self) -> None:
            self.resets = 0

        def reset(self) -> None:
            self.resets += 1

        def predict(self, obs, state=None, episode_start=None, deterministic=True):
            return np.asarray(int(np.argmax(obs["action_mask"]))), state

    log = read_step_log(out / "episodes.parquet")
    n_episodes = len(log.steps.groupby(["seed", "episode"]))
    assert n_episodes > 10
    # The log interleaves episodes: the file's order is not one episode after another.
    keys = list(zip(log.steps["seed"], log.steps["episode"], strict=True))
    assert sum(a != b for a, b in zip(keys, keys[1:], strict=False)) > n_episodes
    target = Counting()
    evaluate_off_policy(
        out / "episodes.parquet", ("mine", target), estimators=["ips"], with_ground_truth=False
    )
    assert target.resets == n_episodes
