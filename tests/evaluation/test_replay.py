"""Replay: exact re-simulation of a step log, tamper detection, paired replay with another policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lmrecsim.agents.base import RandomPolicy
from lmrecsim.envs.world import build_world
from lmrecsim.evaluation.logs import LogError, read_step_log, write_step_log, write_step_table
from lmrecsim.evaluation.replay import replay, replay_with_policy
from lmrecsim.evaluation.rollout import run_policy
from lmrecsim.scenarios import scenario_from_dict
from tests.fakes import other_warnings


class FirstSlot:
    def predict(
        self,
        obs: dict[str, np.ndarray],
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ):
        return np.asarray(int(np.argmax(obs["action_mask"]))), state


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory):
    scenario = scenario_from_dict(
        {
            "extends": "default",
            "name": "replay-test",
            "episode": {"horizon": 6},
            "candidates": {"k": 5},
        }
    )
    world = build_world(scenario)
    steps, arrays = run_policy(
        world, RandomPolicy(seed=1), label="random", seeds=[3, 4], episodes=3, deterministic=False
    )
    path = tmp_path_factory.mktemp("replay") / "episodes.parquet"
    write_step_log(path, steps, arrays, scenario=scenario, world=world)
    return scenario, path


def test_replay_reproduces_the_log_exactly(logged, tmp_path: Path) -> None:
    _, path = logged
    result = replay(path, tmp_path)
    assert result.reproduced and result.first_difference is None
    assert result.n_episodes == 6
    data = json.loads((tmp_path / "replay.json").read_text())
    assert data["reproduced"] is True


def test_replay_of_a_subset_of_episodes(logged, tmp_path: Path) -> None:
    scenario, path = logged
    log = read_step_log(path)
    later = log.steps[log.steps["episode"] >= 1]  # episode 0 missing: must still be keyed right
    sub = tmp_path / "sub.parquet"
    write_step_table(sub, later.reset_index(drop=True), scenario=scenario)
    assert replay(sub, tmp_path / "out").reproduced


@pytest.mark.parametrize(
    ("column", "change"),
    [
        ("reward", lambda v: v + 1.0),
        ("clicked", lambda v: not v),
        ("candidate_item_ids", lambda v: list(reversed(list(v)))),
        ("action", lambda v: (int(v) + 1) % 5),
    ],
)
def test_tampered_log_diverges_at_the_tampered_step(
    logged, tmp_path: Path, column: str, change: Any
) -> None:
    scenario, path = logged
    steps = read_step_log(path).steps.copy()
    # Tamper with a step in the middle of the second seed's second episode.
    target = steps.index[(steps["seed"] == 4) & (steps["episode"] == 1)][1]
    steps.at[target, column] = change(steps.at[target, column])
    if column == "action":  # a single item's slate_slots is [action] (the reader checks it)
        steps["slate_slots"] = [
            np.array([a], dtype=np.int64) for a in steps["action"].to_numpy(np.int64)
        ]
    bad = tmp_path / "tampered.parquet"
    write_step_table(bad, steps, scenario=scenario)
    result = replay(bad, tmp_path / "out")
    assert not result.reproduced
    diff = result.first_difference
    assert (diff.seed, diff.episode, diff.step) == (4, 1, int(steps.at[target, "step"]))
    if column in ("reward", "clicked", "candidate_item_ids"):
        assert diff.column == column
    assert "DIVERGES" in result.summary()


@pytest.mark.parametrize("edit", ["drop", "repeat"])
def test_a_missing_or_repeated_step_is_named_as_such(logged, tmp_path: Path, edit: str) -> None:
    # A row dropped from an episode used to be reported as a difference in its candidates: the
    # replay compared the log's next row with its own earlier step. A row repeated (logs
    # concatenated) is no log a simulator wrote: the reader refuses it, naming both rows.
    scenario, path = logged
    steps = read_step_log(path).steps.copy()
    lengths = steps.groupby(["seed", "episode"]).size()
    seed, episode = lengths[lengths >= 3].index[0]
    rows = steps.index[(steps["seed"] == seed) & (steps["episode"] == episode)]
    target = rows[1]  # the episode's step 1
    if edit == "drop":
        steps = steps.drop(index=target)
    else:
        steps = pd.concat([steps, steps.loc[[target]]])
    bad = tmp_path / "gap.parquet"
    write_step_table(bad, steps.reset_index(drop=True), scenario=scenario)
    if edit == "repeat":
        with pytest.raises(LogError) as err:
            replay(bad, tmp_path / "out")
        assert str(err.value) == (
            f"{bad}: rows {target} and {len(steps) - 1} are both step 1 of episode {episode} of "
            f"seed {seed} of policy 'random' (expected each step once)"
        )
        return
    result = replay(bad, tmp_path / "out")
    diff = result.first_difference
    assert (diff.seed, diff.episode, diff.step, diff.column) == (seed, episode, 2, "step")
    assert diff.describe() == (
        f"policy 'random' seed {seed} episode {episode} step 2: the log is at step 2, the "
        "replay at step 1"
    )


def test_an_action_outside_the_slots_is_a_corrupt_log(logged, tmp_path: Path) -> None:
    # Not a slot of K=5: no simulator wrote it, so the reader refuses the log in one line (it
    # used to be reported as a divergence at that step).
    scenario, path = logged
    steps = read_step_log(path).steps.copy()
    steps.at[3, "action"] = 7
    bad = tmp_path / "tampered.parquet"
    write_step_table(bad, steps, scenario=scenario)
    with pytest.raises(LogError, match=r"tampered\.parquet: column 'action' is 7 in row 3 "):
        replay(bad, tmp_path / "out")


def test_replay_with_another_policy_is_paired(logged, tmp_path: Path) -> None:
    _, path = logged
    result = replay_with_policy(path, ("first<slot>", FirstSlot()), tmp_path, n_resamples=200)
    comparison = pd.read_csv(tmp_path / "side_by_side.csv")
    log = read_step_log(path).steps
    # Same users: step 0 of every episode shows the same user and candidates to both policies.
    first = comparison[comparison["step"] == 0]
    assert len(first) == 6 and first["policy_item_id"].notna().all()
    assert result.n_episodes == 6
    logged_returns = log.groupby(["seed", "episode"])["reward"].sum().to_numpy()
    est, lo, hi = result.return_difference
    other = comparison.groupby(["seed", "episode"])["policy_reward"].sum().to_numpy()
    assert est == pytest.approx(np.mean(other - logged_returns))
    assert lo <= est <= hi
    page = (tmp_path / "side_by_side.html").read_text()
    assert "first&lt;slot&gt;" in page and "first<slot>" not in page

    # An exact replay into the same folder afterwards: the side-by-side files describe another
    # run and used to stay beside its replay.json.
    assert replay(path, tmp_path).reproduced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["replay.json"]


def test_replay_of_one_logged_policy_and_an_unknown_label(logged, tmp_path: Path) -> None:
    # --logged-policy used to be ignored without --policy: every policy was replayed, and a
    # label not in the log still reported "reproduced exactly".
    scenario, path = logged
    steps = read_step_log(path).steps
    other = steps.copy()
    other["policy"] = "other"
    other["reward"] = other["reward"] + 1.0  # this policy's rows would not reproduce
    two = tmp_path / "two.parquet"
    write_step_table(two, pd.concat([steps, other], ignore_index=True), scenario=scenario)
    result = replay(two, tmp_path / "a", logged_policy="random")
    assert result.reproduced and result.n_steps == len(steps) and result.n_episodes == 6
    assert not replay(two, tmp_path / "b", logged_policy="other").reproduced
    assert not replay(two, tmp_path / "c").reproduced
    with pytest.raises(LogError, match="policy 'nobody' is not in the log"):
        replay(two, tmp_path / "d", logged_policy="nobody")


def test_a_log_without_steps_is_refused(logged, tmp_path: Path) -> None:
    scenario, path = logged
    empty = tmp_path / "empty.parquet"
    write_step_table(empty, read_step_log(path).steps.iloc[:0], scenario=scenario)
    with pytest.raises(LogError, match="holds no steps"):
        replay(empty, tmp_path / "a")
    with pytest.raises(LogError, match="holds no steps"):
        replay_with_policy(empty, ("first", FirstSlot()), tmp_path / "b")


def test_side_by_side_keeps_integer_columns_integer(logged, tmp_path: Path) -> None:
    _, path = logged
    replay_with_policy(path, ("first", FirstSlot()), tmp_path, n_resamples=50)
    table = pd.read_csv(tmp_path / "side_by_side.csv")
    for column in ("user_id", "logged_action", "policy_action"):
        values = table[column].dropna()
        assert (values == values.round()).all()
        assert not table[column].astype(str).str.contains(r"\.0$").any(), column


def test_an_empty_policy_spec_is_refused_not_an_exact_replay(
    logged, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `--policy "$POLICY"` with an empty variable used to replay the log exactly and exit 0.
    from lmrecsim.cli import main

    _, path = logged
    out = tmp_path / "out"
    assert main(["replay", str(path), "--policy", "", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("lmrecsim: error: --policy '': unknown policy"), captured.err
    assert captured.err.count("\n") == 1
    assert "reproduced" not in captured.out
    assert not (out / "replay.json").exists()


def test_a_side_by_side_of_one_episode_warns_that_its_interval_says_nothing(
    logged, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # As `evaluate` does: the interval of one paired episode is [d, d], which read as certainty.
    from lmrecsim.cli import main

    scenario, path = logged
    steps = read_step_log(path).steps
    one = tmp_path / "one.parquet"
    first = steps[(steps["seed"] == 3) & (steps["episode"] == 0)]
    write_step_table(one, first, scenario=scenario)
    assert main(["replay", str(one), "--policy", "greedy", "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("lmrecsim: warning: each policy ran 1 episode, so every interval has")
    assert "zero width" in (tmp_path / "a" / "side_by_side.html").read_text()
    assert main(["replay", str(path), "--policy", "greedy", "--out", str(tmp_path / "b")]) == 0
    assert other_warnings(capsys.readouterr().err) == []


@pytest.mark.parametrize("command", ["replay", "ope"])
def test_a_baseline_name_as_the_label_of_another_policy_is_refused(
    logged, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    # As evaluate refuses it: `--policy random=greedy` against a log of random printed
    # "return per episode, random - random: +11".
    from lmrecsim.cli import main

    _, path = logged
    extra = ["--out", str(tmp_path / "a")] if command == "replay" else ["--no-ground-truth"]
    assert main([command, str(path), "--policy", "random=greedy", *extra]) == 2
    err = capsys.readouterr().err
    assert err == (
        "lmrecsim: error: --policy 'random=greedy': label 'random' is the name of a baseline "
        "(expected another label, or the baseline itself)\n"
    )


def test_the_same_item_share_counts_the_steps_both_sessions_reached() -> None:
    # It divided by every row of the outer merge, steps only one side reached included.
    import pandas as pd

    from lmrecsim.evaluation.replay import _same_item_line

    table = pd.DataFrame(
        {
            "logged_item_id": ["a", "b", "c", None],
            "policy_item_id": ["a", "x", None, "d"],
        }
    )
    table["same_item"] = table["logged_item_id"] == table["policy_item_id"]
    assert (
        _same_item_line(table) == "same item chosen at 50.0% of the 2 steps both sessions reached"
    )
