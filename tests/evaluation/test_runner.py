"""evaluate(): tables, paired comparison, files, popularity-bias exposure, error cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lmrecsim.evaluation.errors import EvaluationError
from lmrecsim.evaluation.metrics import catalog_coverage, gini, retention_curve
from lmrecsim.evaluation.runner import METRICS, evaluate
from lmrecsim.scenarios import scenario_from_dict


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    return evaluate(
        "default",
        ["greedy", "oracle", "pop=popular"],
        seeds=[5, 6],
        episodes=4,
        out=out,
        progress=False,
        n_resamples=300,
    )


def test_tables_have_every_metric_and_the_reference(result) -> None:
    s = result.summary
    # The reference (random) is added because it was not among the policies.
    assert list(s["policy"]) == ["greedy", "oracle", "pop", "random"]
    assert list(s["privileged"]) == [False, True, False, False]
    for m in METRICS:
        assert {m, f"{m}_low", f"{m}_high"} <= set(s.columns)
    assert (s["n"] == 8).all()
    ok = s["return"].notna()
    assert (s.loc[ok, "return_low"] <= s.loc[ok, "return"]).all()
    assert (s.loc[ok, "return"] <= s.loc[ok, "return_high"]).all()
    assert len(result.episodes) == 4 * 8
    assert set(result.comparison["policy"]) == {"greedy", "oracle", "pop"}
    assert (result.comparison["reference"] == "random").all()


def test_aggregates_match_the_metric_functions(result) -> None:
    n_items = result.world.n_items
    for label in ("greedy", "random"):
        idx = result.steps.loc[result.steps["policy"] == label, "item_index"].to_numpy()
        row = result.summary.set_index("policy").loc[label]
        assert row["catalog_coverage"] == pytest.approx(catalog_coverage(idx, n_items))
        assert row["gini"] == pytest.approx(gini(np.bincount(idx, minlength=n_items)))
        assert row["gini_low"] <= row["gini"] <= row["gini_high"]


def test_retention_curve_splits_each_policys_return(result) -> None:
    # The report's retention plot: sum over steps of (share still going) x (reward per session
    # still going) is the summary's mean return, for every policy.
    curve = retention_curve(result.steps)
    summary = result.summary.set_index("policy")
    assert set(curve["policy"]) == set(summary.index)
    for policy, part in curve.groupby("policy"):
        total = (part["still_there"] * part["reward_per_session"]).fillna(0.0).sum()
        assert total == pytest.approx(summary.loc[policy, "return"])
        assert part["still_there"].iloc[0] == 1.0 and part["still_there"].is_monotonic_decreasing


def test_paired_difference_equals_difference_of_means(result) -> None:
    ep = result.episodes.set_index("policy")
    cmp = result.comparison.set_index(["policy", "metric"])
    diff = ep.loc["oracle", "return"].mean() - ep.loc["random", "return"].mean()
    assert cmp.loc[("oracle", "return"), "difference"] == pytest.approx(diff)
    # The oracle reads the hidden taste: it ranks the candidates exactly.
    assert result.summary.set_index("policy").loc["oracle", "ndcg_at_k"] == pytest.approx(1.0)


def test_files_are_written(result) -> None:
    names = {p.name for p in result.files}
    assert {
        "summary.csv",
        "episodes.csv",
        "episodes.parquet",
        "report.md",
        "report.html",
        "return_ctr.png",
        "lorenz.png",
        "retention.png",
    } <= names
    out = result.files[0].parent
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["policy"]) == list(result.summary["policy"])
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temp files
    md = (out / "report.md").read_text()
    assert "oracle (privileged)" in md
    # The scenario's own metrics come first in the summary table.
    first = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| return ")]
    assert first == ["return", "return"]


def test_a_new_evaluation_removes_plots_an_earlier_one_left(tmp_path) -> None:
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.md").write_text("# an earlier report")
    (out / "learning_curves.png").write_bytes(b"old plot")
    (out / "drift.png").write_bytes(b"old plot")
    (out / "notes.txt").write_text("mine")
    res = evaluate("default", ["greedy"], seeds=[1000], episodes=1, progress=False, out=out)
    assert not (out / "learning_curves.png").exists() and not (out / "drift.png").exists()
    assert (out / "return_ctr.png") in res.files and (out / "notes.txt").read_text() == "mine"


def test_popularity_bias_makes_popular_more_concentrated() -> None:
    sc = scenario_from_dict(
        {
            "extends": "default",
            "name": "strong_popularity_bias",
            "catalog": {"popularity": {"zipf_exponent": 1.5}},
            "response": {"gamma": 1.5},
        }
    )
    res = evaluate(
        sc, ["popular", "random"], seeds=[3, 4], episodes=5, progress=False, n_resamples=300
    )
    s = res.summary.set_index("policy")
    assert s.loc["popular", "gini"] > s.loc["random", "gini"]
    assert s.loc["popular", "novelty"] < s.loc["random", "novelty"]
    # Paired interval of the Gini difference excludes 0.
    cmp = res.comparison.set_index(["policy", "metric"]).loc[("popular", "gini")]
    assert cmp["low"] > 0


def test_bad_requests_are_one_line_errors() -> None:
    # They name the Python arguments (they named the command line's flags: --policy, --reference).
    with pytest.raises(EvaluationError, match="^policies: label 'greedy' is used twice"):
        evaluate("default", ["greedy", "greedy"], seeds=[0], episodes=1, progress=False)
    with pytest.raises(EvaluationError, match="^reference: 'nobody' is not one of"):
        evaluate("default", ["greedy"], seeds=[0], episodes=1, reference="nobody", progress=False)
    with pytest.raises(EvaluationError, match="^episodes: 0 "):
        evaluate("default", ["greedy"], seeds=[0], episodes=0, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # Truncated to 2 episodes and to seed 1000 without a word.
        ({"episodes": 2.5}, "episodes: 2.5 (expected an integer >= 1"),
        ({"seeds": [1000.7]}, "seeds: 1000.7 is invalid (expected integer seeds)"),
        # numpy's or Python's TypeError, or a string read one digit per seed.
        ({"episodes": "2"}, "episodes: '2' (expected an integer >= 1"),
        ({"seeds": 1000}, "seeds: 1000 is invalid (expected a list of integer seeds"),
        ({"seeds": "1000"}, "seeds: '1000' is invalid (expected a list of integer seeds"),
        ({"policies": "greedy"}, "policies: 'greedy' is invalid (expected a list of policy specs"),
        # Refused by a metric function after every policy had run, naming that function.
        ({"ranking_k": 0}, "ranking_k: 0 (expected an integer >= 1)"),
        ({"new_user_k": -1}, "new_user_k: -1 (expected an integer >= 1)"),
        ({"n_resamples": 0}, "n_resamples: 0 (expected an integer >= 1)"),
        ({"confidence": 95}, "confidence: 95 (expected a number > 0 and < 1"),
        # numpy's errors after the evaluation.
        ({"drift_window": 0}, "drift_window: 0 (expected an integer >= 1)"),
        ({"drift_smooth": 12}, "drift_smooth: 12 (expected an integer >= 1 and <= drift_window"),
        ({"bootstrap_seed": -1}, "bootstrap_seed: -1 (expected an integer >= 0)"),
    ],
)
def test_bad_arguments_are_refused_before_any_rollout(monkeypatch, kwargs, message) -> None:
    from lmrecsim.evaluation import runner

    def no_rollouts(*args, **kw):
        raise AssertionError("a policy ran before the arguments were checked")

    monkeypatch.setattr(runner, "run_policy", no_rollouts)
    args = {"policies": ["greedy"], "seeds": [1000], "episodes": 1, **kwargs}
    with pytest.raises(EvaluationError) as err:
        evaluate("default", args.pop("policies"), progress=False, **args)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_numpy_integer_seeds_and_counts_are_accepted() -> None:
    res = evaluate(
        "default",
        ["greedy"],
        seeds=np.array([1000, 1001]),
        episodes=np.int64(1),
        ranking_k=np.int64(5),
        bootstrap_seed=np.int64(0),
        progress=False,
    )
    assert res.settings["seeds"] == [1000, 1001] and res.settings["episodes"] == 1


class _FixedAction:
    """A custom policy that always returns the same (possibly invalid) action."""

    def __init__(self, action) -> None:
        self.action = action

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        return np.asarray(self.action), state


@pytest.mark.parametrize("action", [20, -1, 2.0, [1, 2]])
def test_a_policy_returning_a_non_slot_is_a_one_line_error(tmp_path, action) -> None:
    # 20 used to raise a bare IndexError; -1 was logged as action -1 with slot 0's item shown.
    out = tmp_path / "bad"
    with pytest.raises(EvaluationError) as err:
        evaluate(
            "default",
            [("bad", _FixedAction(action))],
            seeds=[1000],
            episodes=1,
            progress=False,
            out=out,
        )
    msg = str(err.value)
    assert "'bad'" in msg and "[0, 20)" in msg and "\n" not in msg
    assert not out.exists()


def test_cli_bad_spec_exits_2(capsys) -> None:
    from lmrecsim.cli import main

    assert main(["evaluate", "--policy", "nonsense", "--out", "unused", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nonsense" in err


def test_the_report_says_what_state_the_policies_saw() -> None:
    from lmrecsim.evaluation.report import scenario_parameters

    def params(**blocks: object) -> dict[str, str]:
        sc = scenario_from_dict({"extends": "default", "name": "p", **blocks})
        fake = type("R", (), {"scenario": sc, "world": _World(), "settings": _SETTINGS})()
        return dict(scenario_parameters(fake))  # type: ignore[arg-type]

    pooled = params()
    assert pooled["state mode"] == "pooled (recency decay 0.95)"
    assert pooled["nearest candidates by"] == "the visible state (exact search)"
    text = params(
        state={"mode": "text", "history_window": 6, "text_events": "all"},
        candidates={"nearest_to": "pooled"},
    )
    assert text["state mode"] == "text (the last 6 events, cut to 128 tokens)"
    assert text["nearest candidates by"] == "the pooled history (exact search)"
    # No raw Python "None" for the catalog's own popularity prior.
    assert pooled["popularity"] == "the catalog's own prior"
    zipf = params(catalog={"popularity": {"zipf_exponent": 1.2}})
    assert zipf["popularity"] == "Zipf, exponent 1.2"


class _World:
    n_items, n_topics, dim, project_dim = 10, 2, 384, 32


_SETTINGS = {"seeds": [1], "episodes": 1}


def test_a_label_that_names_another_baseline_is_refused() -> None:
    # `random=greedy` used to make the reference "random" mean greedy, silently.
    with pytest.raises(EvaluationError, match="label 'random' is the name of a baseline"):
        evaluate("default", ["random=greedy"], seeds=[0], episodes=1, progress=False)
    # A baseline under its own name, or any other label, is fine.
    res = evaluate("default", ["random=random", "g=greedy"], seeds=[0], episodes=1, progress=False)
    assert list(res.summary["policy"]) == ["random", "g"]


def test_a_policy_pair_that_takes_a_baselines_name_is_refused() -> None:
    # ("random", mine) used to replace the reference silently, as `random=greedy` did.
    from lmrecsim.agents.baselines import GreedyPolicy, RandomPolicy

    with pytest.raises(EvaluationError, match="label 'random' is the name of a baseline, but"):
        evaluate("default", [("random", GreedyPolicy()), "greedy"], seeds=[0], episodes=1)
    with pytest.raises(EvaluationError, match="label 'oracle' is the name of a baseline"):
        evaluate("default", {"oracle": GreedyPolicy()}, seeds=[0], episodes=1, progress=False)
    res = evaluate("default", [("random", RandomPolicy())], seeds=[0], episodes=1, progress=False)
    assert list(res.summary["policy"]) == ["random"]


def test_a_predict_that_returns_a_bare_action_is_one_line_naming_the_policy() -> None:
    class Bare:
        def predict(self, obs, state=None, episode_start=None, deterministic=False):
            return np.flatnonzero(obs["action_mask"])[0]  # no ", state"

    with pytest.raises(
        EvaluationError, match="policy 'bare': predict returned a int64, not a pair"
    ):
        evaluate("default", [("bare", Bare())], seeds=[0], episodes=1, progress=False)


def test_a_policy_pair_without_predict_is_a_one_line_error() -> None:
    with pytest.raises(EvaluationError, match="expected a spec string or a \\(label, policy\\)"):
        evaluate("default", [("mine", "greedy")], seeds=[0], episodes=1, progress=False)


def test_only_the_reference_gives_no_empty_comparison_table(tmp_path) -> None:
    res = evaluate(
        "default",
        ["greedy"],
        seeds=[0],
        episodes=1,
        reference="greedy",
        progress=False,
        out=tmp_path,
        plots=False,
    )
    assert len(res.comparison) == 0
    md = (tmp_path / "report.md").read_text()
    section = md.split("## Paired comparison with greedy", 1)[1].split("##", 1)[0]
    assert "nothing to compare" in section and "|" not in section
    assert "nothing to compare" in (tmp_path / "report.html").read_text()


def test_aggregate_intervals_stay_inside_the_metrics_range() -> None:
    # The re-centred bootstrap interval of recovery_steps used to reach -1.04 steps.
    res = evaluate(
        "interest_drift", ["greedy", "oracle"], seeds=[1000, 1001], episodes=5, progress=False
    )
    s = res.summary
    assert s["recovery_steps"].notna().any()
    for name, top in [("recovery_steps", 10 + 1), ("ctr_after_drift", 1), ("gini", 1)]:
        low, high = s[f"{name}_low"].dropna(), s[f"{name}_high"].dropna()
        assert (low >= 0).all() and (high <= top).all(), (name, low.tolist(), high.tolist())
        assert (low <= s[name].dropna()).all() and (s[name].dropna() <= high).all()
    # The public metric with its defaults gives the evaluation's point estimates (its smoothing
    # window used to default to 5 steps against the evaluation's 3).
    from lmrecsim.evaluation.metrics import drift_recovery

    again = drift_recovery(res.steps, 10, 0.05).set_index("policy")
    for name in ("ctr_before_drift", "ctr_after_drift", "recovery_steps"):
        column = name.removesuffix("_drift") if name != "recovery_steps" else name
        assert again.loc[["greedy", "oracle"], column].tolist() == pytest.approx(
            s.set_index("policy").loc[["greedy", "oracle"], name].tolist()
        ), name


def test_paired_aggregate_intervals_stay_inside_the_differences_range() -> None:
    # recovery_steps lies in [0, 11], so a difference lies in [-11, 11]; the paired interval read
    # [-4.03, 16.97] for greedy and [-11.16, 7.84] for the oracle before it was clipped.
    res = evaluate(
        "interest_drift",
        ["greedy", "oracle"],
        seeds=[1000, 1001],
        episodes=10,
        progress=False,
        n_resamples=300,
    )
    cmp = res.comparison.set_index(["policy", "metric"])
    for name, top in [("recovery_steps", 11), ("ctr_after_drift", 1), ("gini", 1)]:
        for policy in ("greedy", "oracle"):
            row = cmp.loc[(policy, name)]
            assert -top <= row["low"] <= row["difference"] <= row["high"] <= top, (policy, name)


def test_one_episode_is_flagged_and_intervals_contain_their_estimates(tmp_path) -> None:
    res = evaluate("default", ["greedy"], seeds=[1000], episodes=1, progress=False, out=tmp_path)
    assert any("zero width" in w for w in res.warnings)
    assert "zero width" in (tmp_path / "report.md").read_text()
    s = res.summary
    # Zero-spread resamples left rounding errors that put both bounds beside the estimate.
    for m in METRICS:
        ok = s[m].notna()
        assert (s.loc[ok, f"{m}_low"] <= s.loc[ok, m]).all(), m
        assert (s.loc[ok, m] <= s.loc[ok, f"{m}_high"]).all(), m
    c = res.comparison
    ok = c["difference"].notna()
    assert (c.loc[ok, "low"] <= c.loc[ok, "difference"]).all()
    assert (c.loc[ok, "difference"] <= c.loc[ok, "high"]).all()
    # No drift in the default scenario: the drift metrics have no pair to compare.
    drift = c[c["metric"].isin(["ctr_before_drift", "ctr_after_drift", "recovery_steps"])]
    assert drift["difference"].isna().all() and (drift["n_pairs"] == 0).all()
    two = evaluate("default", ["greedy"], seeds=[1000], episodes=2, progress=False)
    assert not any("zero width" in w for w in two.warnings)


def test_comparison_counts_the_pairs_it_used() -> None:
    # mean_rating is undefined for an episode without a click: such pairs are left out, and the
    # comparison says how many remained.
    res = evaluate("default", ["greedy"], seeds=[1000], episodes=6, progress=False)
    cmp = res.comparison.set_index("metric")
    eps = res.episodes
    g = eps[eps["policy"] == "greedy"].sort_values(["seed", "episode"])["mean_rating"].to_numpy()
    r = eps[eps["policy"] == "random"].sort_values(["seed", "episode"])["mean_rating"].to_numpy()
    assert cmp.loc["mean_rating", "n_pairs"] == int((np.isfinite(g) & np.isfinite(r)).sum())
    assert cmp.loc["return", "n_pairs"] == 6


def test_the_report_marks_comparisons_on_fewer_pairs_and_explains_na(tmp_path) -> None:
    # One-step sessions: many episodes have no click, so mean_rating compares few pairs.
    sc = scenario_from_dict({"extends": "default", "episode": {"horizon": 1}})
    res = evaluate(sc, ["greedy"], seeds=[1000, 1001], episodes=3, progress=False, out=tmp_path)
    pairs = int(res.comparison.set_index("metric").loc["mean_rating", "n_pairs"])
    assert pairs < 6
    md = (tmp_path / "report.md").read_text()
    # The comparison table comes after the summary table.
    row = [line for line in md.splitlines() if line.startswith("| mean_rating |")][-1]
    assert row.count(f"; n={pairs} |") == (1 if pairs else 0), row
    return_row = [line for line in md.splitlines() if line.startswith("| return |")][-1]
    assert "; n=" not in return_row
    html = (tmp_path / "report.html").read_text()
    assert "n/a: the metric has no value" in md and "n/a: the metric has no value" in html
    assert "counts 11" in md  # the censored recovery value, window 10


def test_a_plain_folder_keeps_its_own_png_files(tmp_path) -> None:
    # Plots an earlier evaluation made are removed only in a folder that holds a report.
    (tmp_path / "drift.png").write_bytes(b"my own figure")
    evaluate("default", ["greedy "], seeds=[1000], episodes=1, progress=False, out=tmp_path)
    assert (tmp_path / "drift.png").read_bytes() == b"my own figure"


def test_figures_do_not_depend_on_seed_order_or_on_the_other_policies() -> None:
    # random and egreedy drew from one generator over the whole evaluation, so --seeds 1000,1001
    # and 1001,1000 gave random returns of 7.33 and 3.33; the ranking metrics' tie noise came
    # from one generator over every policy's steps, so adding greedy changed random's NDCG.
    keys = ["policy", "seed", "episode"]

    def table(policies, seeds):
        res = evaluate("default", policies, seeds=seeds, episodes=2, progress=False)
        return res.episodes.sort_values(keys).reset_index(drop=True)

    a = table(["egreedy"], [1000, 1001])
    b = table(["egreedy"], [1001, 1000])
    pd.testing.assert_frame_equal(a, b)
    c = table(["egreedy", "greedy"], [1000, 1001])
    mine = c[c["policy"].isin(["egreedy", "random"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, mine)


def test_intervals_do_not_depend_on_the_other_policies() -> None:
    # Each (policy, metric) cell drew from a generator spawned by its position in the table, so
    # adding egreedy (sorted before greedy) moved greedy's return interval from 6.5 to 4.75.
    def tables(policies):
        res = evaluate("default", policies, seeds=[1000], episodes=4, progress=False)
        summary = res.summary.set_index("policy")
        comparison = res.comparison.set_index(["policy", "metric"])
        return summary.loc[["greedy"]], comparison.loc[["greedy"]]

    alone = tables(["greedy"])
    crowded = tables(["egreedy", "greedy", "popular"])
    pd.testing.assert_frame_equal(alone[0], crowded[0])
    pd.testing.assert_frame_equal(alone[1], crowded[1])


def test_a_step_that_picked_an_empty_slot_exposes_no_item() -> None:
    # A masked slot shows nothing, but its filler item (catalog row 0) was counted as exposed:
    # 83 invalid steps gave coverage 0.042, Gini 0.958 and a "most recommended" item.
    class PicksEmptySlots:
        def predict(self, observation, state=None, episode_start=None, deterministic=False):
            mask = observation["action_mask"]
            bad = np.flatnonzero(mask == 0)
            return np.asarray(int(bad[0] if bad.size else np.flatnonzero(mask)[0])), state

    sc = scenario_from_dict({"extends": "default", "name": "small", "catalog": {"n_items": 24}})
    res = evaluate(sc, [("empty", PicksEmptySlots())], seeds=[1000], episodes=3, progress=False)
    mine = res.steps[res.steps["policy"] == "empty"]
    assert mine["invalid_action"].mean() > 0.5
    row = res.summary.set_index("policy").loc["empty"]
    shown = mine[~mine["invalid_action"]]
    assert res.exposure("empty").sum() == len(shown)
    assert row["catalog_coverage"] == pytest.approx(shown["item_index"].nunique() / 24)
    eps = res.episodes[res.episodes["policy"] == "empty"].set_index(["seed", "episode"])
    for (seed, episode), group in shown.groupby(["seed", "episode"]):
        assert eps.loc[(seed, episode), "new_item_share"] == pytest.approx(
            group["is_new_item"].mean()
        )


def test_resampled_aggregates_keep_only_the_items_shown() -> None:
    # The resampled exposure had one column per catalog item: (2000 x n_items) float64 per
    # policy, 4 GB of memory for a 100,000-item catalog however few steps ran. The counts of the
    # items shown give the same coverage and Gini (the others are zeros of known rank).
    from lmrecsim.evaluation.runner import _gini_rows

    rng = np.random.default_rng(0)
    full = np.zeros((50, 1000))
    shown = rng.choice(1000, size=40, replace=False)
    full[:, shown] = rng.integers(0, 5, size=(50, 40))
    compact = full[:, shown]
    expected = np.array([gini(row) if row.sum() else np.nan for row in full])
    np.testing.assert_allclose(_gini_rows(compact, 1000), expected, rtol=1e-12)

    res = evaluate("default", ["greedy"], seeds=[1000], episodes=3, progress=False)
    steps = res.steps[res.steps["policy"] == "greedy"]
    row = res.summary.set_index("policy").loc["greedy"]
    idx = steps["item_index"].to_numpy()
    counts = np.bincount(idx, minlength=res.world.n_items)
    assert row["catalog_coverage"] == pytest.approx(catalog_coverage(idx, res.world.n_items))
    assert row["gini"] == pytest.approx(gini(counts), rel=1e-12)


def test_resampled_aggregates_do_not_depend_on_the_block_size(monkeypatch) -> None:
    import lmrecsim.evaluation.runner as runner

    def summary():
        res = evaluate("default", ["greedy"], seeds=[1000], episodes=3, progress=False)
        return res.summary

    whole = summary()
    monkeypatch.setattr(runner, "_AGGREGATE_BLOCK_BYTES", 1)  # one resample per block
    pd.testing.assert_frame_equal(summary(), whole)


def test_gap_shares_are_the_share_of_the_random_to_oracle_gap(result) -> None:
    gap = result.gap_shares().set_index("policy")
    # Every policy but the two ends of the gap, in evaluation order.
    assert list(gap.index) == ["greedy", "pop"]
    mean = result.episodes.groupby("policy")["return"].mean()
    for label in gap.index:
        share = (mean[label] - mean["random"]) / (mean["oracle"] - mean["random"])
        assert gap.at[label, "gap_closed"] == pytest.approx(share)
        assert gap.at[label, "low"] <= gap.at[label, "gap_closed"] <= gap.at[label, "high"]
    # The reports show it, in both forms.
    out = result.files[0].parent
    row = gap.loc["greedy"]
    cell = f"{row['gap_closed']:.0%} [{row['low']:.0%}, {row['high']:.0%}]"
    for name in ("report.md", "report.html"):
        text = (out / name).read_text(encoding="utf-8")
        assert "Share of the random-to-oracle gap" in text and cell in text, name


def test_gap_shares_need_both_random_and_the_oracle(tmp_path) -> None:
    res = evaluate(
        "default", ["greedy"], seeds=[5], episodes=2, out=tmp_path, progress=False, n_resamples=50
    )
    assert res.gap_shares() is None
    assert "random-to-oracle" not in (tmp_path / "report.md").read_text(encoding="utf-8")
    # Alone or among other policies, a policy's share and interval are the same.
    alone = evaluate("default", ["greedy", "oracle"], seeds=[5], episodes=3, progress=False)
    crowded = evaluate(
        "default", ["egreedy", "oracle", "greedy"], seeds=[5], episodes=3, progress=False
    )
    pd.testing.assert_series_equal(
        alone.gap_shares().set_index("policy").loc["greedy"],
        crowded.gap_shares().set_index("policy").loc["greedy"],
    )


def test_cli_prints_the_gap_shares_with_the_returns(tmp_path, capsys) -> None:
    import json

    from lmrecsim.cli import main

    argv = ["evaluate", "--policy", "greedy", "--policy", "oracle", "--seeds", "5"]
    assert main([*argv, "--episodes", "2", "--out", str(tmp_path), "--no-progress"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ret = line["return"]
    share = (ret["greedy"] - ret["random"]) / (ret["oracle"] - ret["random"])
    assert line["gap_closed"] == {"greedy": pytest.approx(share, abs=1e-3)}
    # Without the oracle there is no gap to report.
    argv = ["evaluate", "--policy", "greedy", "--seeds", "5", "--episodes", "2"]
    assert main([*argv, "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    assert "gap_closed" not in json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_the_gini_interval_covers_the_expected_gini_at_its_nominal_rate() -> None:
    # Synthetic sessions of varying length, each drawing items from a taste-tilted Zipf catalog;
    # the estimand is the expected exposure Gini of E such sessions (known by simulation). The
    # re-centred bootstrap interval covered it 84-90% of the time at 95% (too narrow: a resample
    # repeats sessions); the delete-a-group jackknife's interval covers it at the nominal rate.
    from lmrecsim.evaluation.runner import (
        _aggregate_stats,
        _AggregateInputs,
        _jackknife_interval,
        _jackknife_weights,
    )

    n_items, n_episodes, reps = 300, 30, 400
    rng = np.random.default_rng(7)
    prior = 1.0 / np.arange(1, n_items + 1)

    def gini_rows(weights: np.ndarray, exposure: np.ndarray) -> np.ndarray:
        stats = _aggregate_stats(
            _AggregateInputs(exposure, n_items, None, None), weights, 10, 0.05, 3
        )
        return stats["gini"]

    def sessions(n: int) -> np.ndarray:
        tilt = prior * rng.gamma(0.5, size=(n, n_items))
        return rng.multinomial(rng.integers(1, 40, size=n), tilt / tilt.sum(axis=1, keepdims=True))

    truth = np.mean(
        [gini_rows(np.ones((1, n_episodes)), sessions(n_episodes))[0] for _ in range(3000)]
    )
    jack = _jackknife_weights(n_episodes)
    hits = 0
    for _ in range(reps):
        exposure = sessions(n_episodes)
        point = float(gini_rows(np.ones((1, n_episodes)), exposure)[0])
        low, high = _jackknife_interval(gini_rows(jack, exposure), point, 0.95, (0.0, 1.0))
        hits += low <= truth <= high
    # 4 binomial standard errors of a coverage measured on `reps` intervals.
    assert abs(hits / reps - 0.95) < 4 * np.sqrt(0.95 * 0.05 / reps), hits / reps


def test_jackknife_groups_leave_out_every_episode_once() -> None:
    from lmrecsim.evaluation.runner import _jackknife_weights

    w = _jackknife_weights(5)
    assert w.shape == (5, 5) and np.array_equal(w, 1.0 - np.eye(5))
    grouped = _jackknife_weights(7, n_groups=3)  # groups {0, 3, 6}, {1, 4}, {2, 5}
    assert grouped.shape == (3, 7)
    assert np.array_equal((grouped == 0).sum(axis=0), np.ones(7))
    assert grouped[0].tolist() == [0, 1, 1, 0, 1, 1, 0]


def test_policies_may_come_as_a_generator(tmp_path) -> None:
    # Checking the specs before the world is built read a generator once, and the evaluation
    # then found no policy ("policies: empty").
    res = evaluate(
        "default",
        (spec for spec in ["greedy", "egreedy:0.2"]),
        seeds=[5],
        episodes=1,
        out=tmp_path,
        progress=False,
        n_resamples=50,
    )
    assert {"greedy", "egreedy:0.2", "random"} <= set(res.summary["policy"])


def test_an_evaluation_does_not_replace_a_training_runs_step_log(tmp_path) -> None:
    # evaluate --out RUN replaced the episodes.parquet of train --log-episodes, and a resume of
    # the run then went on logging into the evaluation's log. A run still training has not
    # written its log yet: its train.json says it will.
    run = tmp_path / "run"
    run.mkdir()
    (run / "train.json").write_text('{"status": "running", "log_episodes": true}')
    with pytest.raises(EvaluationError) as info:
        evaluate("default", ["greedy"], seeds=[1000], episodes=1, out=run, progress=False)
    assert str(info.value) == (
        f"out: '{run}' holds a training run that logs its episodes to episodes.parquet "
        "(train.json: log_episodes), which the evaluation's own would replace (expected another "
        f"folder, such as '{run / 'report'}')"
    )
    assert sorted(p.name for p in run.iterdir()) == ["train.json"]
    # The folder of a run that does not log takes the report, as before, and again.
    (run / "train.json").write_text('{"status": "complete"}')
    for _ in range(2):
        evaluate("default", ["greedy"], seeds=[1000], episodes=1, out=run, progress=False)
    assert (run / "report.md").is_file() and (run / "episodes.parquet").is_file()
