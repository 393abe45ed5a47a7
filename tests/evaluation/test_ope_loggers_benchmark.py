"""``benchmarks.ope_estimators loggers``: every logger is scored on the same users, so their
truths agree, and a logger that is the target itself is estimated exactly."""

from __future__ import annotations

import pytest

from benchmarks.ope_estimators import main, run


def test_loggers_share_users_and_the_target_as_logger_is_exact(capsys) -> None:
    import argparse

    args = argparse.Namespace(
        logger=["softmax:0.3:0.2", "greedy"], target="softmax:0.3:0.2", k=4, episodes=30, logs=1
    )
    table = run("loggers", args).set_index(["logger", "estimator"])
    assert set(table.index) == {
        (lg, e) for lg in ("softmax:0.3:0.2", "greedy") for e in ("snips", "dr")
    }
    assert table["truth"].nunique() == 1  # the same users under every logger
    # Logged by the target itself with the same seed (log 0: the logger's seed 0, as the target's;
    # its generator restarts per episode, as in the truth run): every weight is 1 and the
    # logged draws are the truth run's, so SNIPS is the truth.
    own = table.loc[("softmax:0.3:0.2", "snips")]
    assert own["mean"] == pytest.approx(own["truth"], abs=1e-12) and own["missed"] == "0/1"
    assert own["ess"] == pytest.approx(30.0)
    # greedy is deterministic and the target is not: no overlap, the weights are mostly 0.
    assert table.loc[("greedy", "snips"), "ess"] < 30.0
    assert main(["loggers", "--logger", "egreedy", "--logs", "1", "--episodes", "10"]) == 0
    assert "--logger egreedy --target greedy" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["loggers", "--logger", "nosuch"], "policy 'nosuch': unknown policy"),
        (["loggers", "--target", "softmax:0.1:2"], "softmax: epsilon 2.0 (expected a number"),
        (["episodes", "--slate", "9"], "--slate: 9 (expected 1 to 5"),
        # Counts below 1 ended in pandas' "No objects to concatenate" traceback.
        (["slates", "--logs", "0"], "argument --logs: 0 (expected an integer >= 1"),
        (["loggers", "--k", "-1"], "argument --k: -1 (expected an integer >= 1"),
        (["episodes", "--episodes", "0"], "argument --episodes: 0 (expected an integer >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, expected, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        # The test's own options last: they override these small budgets.
        main([argv[0], "--logs", "1", "--episodes", "5", *argv[1:]])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and expected in err[0], err
