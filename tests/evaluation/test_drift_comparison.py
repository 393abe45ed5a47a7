"""The drift metrics say on how many episodes (those with a drift event) they rest."""

from __future__ import annotations

from lmrecsim.evaluation import evaluate


def test_drift_figures_say_on_how_many_episodes_with_events_they_rest(tmp_path) -> None:
    # n_pairs was the number of episodes (20) for every aggregate, while the drift events came
    # from the 7 and 11 sessions of each policy still going at the drift step.
    scenario = {"extends": "interest_drift", "episode": {"horizon": 30}}
    res = evaluate(
        scenario, ["greedy"], seeds=[1000], episodes=12, out=tmp_path / "rep", progress=False
    )
    steps = res.steps
    events = steps[steps["drift_event"]]
    sessions = {
        label: set(zip(part["seed"], part["episode"], strict=True))
        for label, part in events.groupby("policy")
    }
    either = len(sessions["greedy"] | sessions["random"])
    assert 0 < either < 12  # some users left before the drift step under both policies
    cmp = res.comparison.set_index(["policy", "metric"])
    for metric in ("ctr_before_drift", "ctr_after_drift", "recovery_steps"):
        assert cmp.loc[("greedy", metric), "n_pairs"] == either
    assert cmp.loc[("greedy", "gini"), "n_pairs"] == 12
    # The report marks them as resting on fewer episodes.
    report = (tmp_path / "rep" / "report.md").read_text()
    lines = [x for x in report.splitlines() if x.startswith("| ctr_after_drift")]
    summary_row, comparison_row = lines  # the summary's row, then the comparison's
    assert f"; n={either}" in comparison_row
    # The summary says how many episodes each policy's figure pools events from.
    for label in ("greedy", "random"):
        assert f"; n={len(sessions[label])}" in summary_row
    # interest_drift's own metrics are the drift metrics: resting on few episodes, they warn.
    if min(len(v) for v in sessions.values()) < 10:
        assert any("drift" in w and "rests on" in w for w in res.warnings), res.warnings


def test_the_drift_plot_leaves_out_offsets_few_events_reach(monkeypatch) -> None:
    # Random's curve jumped to 1.0 at +9 from a single session still going there.
    import numpy as np
    import pandas as pd
    from matplotlib.axes import Axes

    from lmrecsim.evaluation import plots

    rows = []
    for user in range(6):  # six events at step 5; only user 0's session goes past step 7
        last = 12 if user == 0 else 7
        for step in range(last + 1):
            rows.append(
                {
                    "policy": "p",
                    "seed": 0,
                    "episode": user,
                    "user_id": user,
                    "step": step,
                    "clicked": step == last,
                    "drift_event": step == 5,
                }
            )
    drawn = []
    real_plot = Axes.plot

    def spy(self, x, y, *args, **kwargs):
        drawn.append(np.asarray(x))
        return real_plot(self, x, y, *args, **kwargs)

    monkeypatch.setattr(Axes, "plot", spy)
    plot = plots.plot_drift(pd.DataFrame(rows), window=4, privileged={})
    assert plot is not None and "fewer than 5 events" in plot.caption
    # Offsets -4..+2 have six events each; +3 and +4 only user 0's.
    assert drawn[0].tolist() == [-4, -3, -2, -1, 0, 1, 2]


def test_a_metric_few_episodes_have_says_on_how_many(tmp_path) -> None:
    # cold_start's headline new-user metrics rested on the 6 new-user sessions of 10, with no
    # count in the summary and no warning (the few-episodes warning counted all episodes).
    res = evaluate(
        "cold_start", ["greedy"], seeds=[1000], episodes=10, out=tmp_path / "rep", progress=False
    )
    have = res.episodes.groupby("policy")["new_user_return_k"].count()
    assert 0 < have["greedy"] < 10
    report = (tmp_path / "rep" / "report.md").read_text()
    row = next(x for x in report.splitlines() if x.startswith("| new_user_return_k"))
    assert f"; n={have['greedy']}" in row
    assert any(w.startswith("new_user_return_k rests on ") for w in res.warnings), res.warnings
    # A metric every episode has carries no count.
    row = next(x for x in report.splitlines() if x.startswith("| return "))
    assert "n=" not in row
