"""A step log whose content is corrupt (edited metadata, nulls, out-of-range values, list columns
of the wrong length): ``lmrecsim replay`` and ``lmrecsim ope`` say so in one line naming the file
and the column or key, with exit code 2 -- never a traceback, never "reproduced exactly"."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lmrecsim.agents.base import RandomPolicy
from lmrecsim.cli import main
from lmrecsim.envs.world import build_world
from lmrecsim.evaluation.logs import (
    META_BASE_DIR,
    META_SCENARIO_YAML,
    LogError,
    read_step_log,
    write_step_log,
)
from lmrecsim.evaluation.rollout import run_policy
from lmrecsim.scenarios import scenario_from_dict

K = 5


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scenario = scenario_from_dict(
        {
            "extends": "default",
            "name": "log-content",
            "episode": {"horizon": 3},
            "candidates": {"k": K},
        }
    )
    steps, arrays = run_policy(
        build_world(scenario),
        RandomPolicy(seed=1),
        label="random",
        seeds=[2],
        episodes=2,
        deterministic=False,
    )
    path = tmp_path_factory.mktemp("log") / "episodes.parquet"
    write_step_log(path, steps, arrays, scenario=scenario)
    return path


def _rewrite(
    src: Path,
    dst: Path,
    edit: Callable[[pd.DataFrame], None] | None = None,
    *,
    meta: dict[bytes, bytes] | None = None,
    keep_types: bool = True,
) -> Path:
    """Copy a log with its rows edited in pandas and/or metadata keys replaced; the file keeps
    its schema (and metadata) unless ``keep_types`` is False (Arrow infers the edited types)."""
    table = pq.read_table(src)
    frame = table.to_pandas()
    if edit is not None:
        edit(frame)
    schema = table.schema.remove_metadata() if keep_types else None
    out = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    out = out.replace_schema_metadata({**table.schema.metadata, **(meta or {})})
    pq.write_table(out, dst)
    return dst


def _set(column: str, row: int, value: object) -> Callable[[pd.DataFrame], None]:
    def edit(frame: pd.DataFrame) -> None:
        if value is None:
            frame[column] = frame[column].astype(object)
        frame.at[row, column] = value

    return edit


def _cut_probabilities(frame: pd.DataFrame) -> None:
    frame["action_probabilities"] = [list(p[:3]) for p in frame["action_probabilities"]]


def _two_more_slots_everywhere(frame: pd.DataFrame) -> None:
    # Consistent from row to row, so only the stored scenario's candidates.k shows it.
    extra = {"candidate_item_ids": ["x", "y"], "candidate_mask": [False] * 2}
    for name in ("candidate_item_ids", "candidate_mask", "action_probabilities"):
        frame[name] = [[*v, *extra.get(name, [0.0, 0.0])] for v in frame[name]]


def _seed_as_text(frame: pd.DataFrame) -> None:
    frame["seed"] = frame["seed"].astype(str)


def _null_in_mask(frame: pd.DataFrame) -> None:
    frame.at[1, "candidate_mask"] = [True, None, True, True, True]


CASES = {
    # The walkthrough's four.
    "invalid_yaml": (None, {META_SCENARIO_YAML: b"name: [unclosed\n  foo: : :"}, True),
    "negative_seed": (_set("seed", 1, -3), None, True),
    "short_probabilities": (_cut_probabilities, None, True),
    "null_policy": (_set("policy", 1, None), None, True),
    # Generalised checks.
    "negative_step": (_set("step", 2, -1), None, True),
    # A replay would run a billion episodes to reach this one.
    "episode_too_large": (_set("episode", 1, 10**9), None, True),
    "step_too_large": (_set("step", 1, 100_000), None, True),
    "action_out_of_range": (_set("action", 1, K), None, True),
    "probability_above_one": (_set("action_probabilities", 0, [1.5, 0, 0, 0, 0]), None, True),
    "propensity_above_one": (_set("propensity", 0, 2.0), None, True),
    "seed_as_text": (_seed_as_text, None, False),
    "null_in_a_list": (_null_in_mask, None, True),
    "k_not_the_scenarios": (_two_more_slots_everywhere, None, True),
    "metadata_not_utf8": (None, {META_BASE_DIR: b"\xff\xfe"}, True),
    "infinite_reward": (_set("reward", 1, float("inf")), None, True),
    "nan_reward": (_set("reward", 2, float("nan")), None, True),
    "row_of_another_scenario": (_set("scenario_hash", 1, "0" * 64), None, True),
    "propensity_not_the_actions": (_set("propensity", 0, 0.5), None, True),
    # A replay used to report a divergence (exit code 1) at the repeated step.
    "step_twice": (_set("step", 1, 0), None, True),
    "deeply_nested_yaml": (None, {META_SCENARIO_YAML: b"[" * 3000 + b"]" * 3000}, True),
}

#: What each case's line must name (after the file): the key or column, and what was expected.
EXPECTED = {
    "invalid_yaml": ("lmrecsim.scenario_yaml is not valid YAML", "expected"),
    "negative_seed": ("column 'seed' is -3 in row 1", "expected an integer >= 0"),
    "short_probabilities": (
        "column 'action_probabilities' has 3 entries in row 0",
        f"expected {K} entries, one per candidate slot",
    ),
    "null_policy": ("column 'policy' is null in row 1", "expected a non-null string"),
    "negative_step": ("column 'step' is -1 in row 2", "expected an integer >= 0"),
    "episode_too_large": (
        "column 'episode' is 1000000000 in row 1",
        "expected an integer below 1,000,000, the most episodes per seed",
    ),
    "step_too_large": (
        "column 'step' is 100000 in row 1",
        "expected an integer below 100,000, the most steps per episode",
    ),
    "action_out_of_range": (f"column 'action' is {K} in row 1", f"in [0, {K})"),
    "probability_above_one": (
        "column 'action_probabilities' holds 1.5 in row 0",
        "expected probabilities in [0, 1]",
    ),
    "propensity_above_one": ("column 'propensity' is 2.0 in row 0", "in [0, 1]"),
    "seed_as_text": ("column 'seed' has type ", "expected int64"),
    "null_in_a_list": ("column 'candidate_mask' holds a null entry in row 1", "expected a list"),
    "k_not_the_scenarios": (
        f"column 'candidate_item_ids' has {K + 2} entries per row",
        f"expected candidates.k = {K} of the stored scenario",
    ),
    "metadata_not_utf8": ("lmrecsim.scenario_base_dir", "is not UTF-8 text"),
    "infinite_reward": ("column 'reward' is inf in row 1", "expected a finite number"),
    "nan_reward": ("column 'reward' is nan in row 2", "expected a finite number"),
    "row_of_another_scenario": (
        "column 'scenario_hash' is '000000000000' in row 1",
        "the stored scenario's in the file metadata lmrecsim.scenario_hash: a log holds the steps "
        "of one scenario",
    ),
    "propensity_not_the_actions": (
        "column 'propensity' is 0.5 in row 0",
        "the row's action_probabilities entry for its action",
    ),
    "step_twice": (
        "rows 0 and 1 are both step 0 of episode 0 of seed 2 of policy 'random'",
        "expected each step once",
    ),
    "deeply_nested_yaml": (
        "lmrecsim.scenario_yaml is not valid YAML (collections nested too deeply",
        "expected the scenario",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("command", ["replay", "replay_policy", "ope"])
def test_a_corrupt_log_is_one_line_naming_the_file_and_the_column(
    log_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, command: str
) -> None:
    edit, meta, keep_types = CASES[case]
    bad = _rewrite(log_path, tmp_path / f"{case}.parquet", edit, meta=meta, keep_types=keep_types)
    out = tmp_path / "out"
    argv = {
        "replay": ["replay", str(bad), "--out", str(out)],
        # Side by side: the logged steps are read, not replayed (their rewards are summed).
        "replay_policy": ["replay", str(bad), "--policy", "greedy", "--out", str(out)],
        "ope": ["ope", str(bad), "--policy", "greedy", "--no-ground-truth"],
    }[command]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, captured.err
    what, expected = EXPECTED[case]
    assert err[0].startswith(f"lmrecsim: error: {bad}: {what}"), err[0]
    assert expected in err[0]
    assert "reproduced" not in captured.out
    assert not (out / "replay.json").exists()


def test_the_uncorrupted_copy_still_reads_and_replays(
    log_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The rewrite itself changes nothing: the corruption is what the cases above catch.
    copy = _rewrite(log_path, tmp_path / "copy.parquet")
    original, again = read_step_log(log_path), read_step_log(copy)
    pd.testing.assert_frame_equal(original.steps, again.steps)
    assert main(["replay", str(copy), "--out", str(tmp_path / "out")]) == 0
    assert "replay: reproduced exactly" in capsys.readouterr().out


def test_null_floats_and_an_unknown_propensity_are_not_corruption(
    log_path: Path, tmp_path: Path
) -> None:
    # rating is null without a click; a slate's propensity may be NaN (unknown).
    def edit(frame: pd.DataFrame) -> None:
        frame.at[0, "propensity"] = np.nan

    log = read_step_log(_rewrite(log_path, tmp_path / "nan.parquet", edit))
    assert np.isnan(log.steps.at[0, "propensity"])
    assert log.steps["rating"].isna().any() or log.steps["clicked"].all()


def test_ope_refuses_a_nan_propensity_of_a_logged_action(log_path: Path, tmp_path: Path) -> None:
    from lmrecsim.evaluation.ope import evaluate_off_policy

    def edit(frame: pd.DataFrame) -> None:
        frame.at[1, "propensity"] = np.nan

    bad = _rewrite(log_path, tmp_path / "nan.parquet", edit)
    with pytest.raises(
        LogError, match=r"nan\.parquet: column 'propensity' is nan in row 1 \(expected > 0"
    ):
        evaluate_off_policy(bad, "greedy", with_ground_truth=False)

    # The row is the file's, not the position among the logged policy's rows (it said "row 1"
    # for file row 4), and it is found before the log is replayed.
    def other_first(frame: pd.DataFrame) -> None:
        first = frame["episode"] == 0
        frame.loc[first, "policy"] = "other"
        frame.at[int(np.flatnonzero(~first)[1]), "propensity"] = np.nan

    two = _rewrite(log_path, tmp_path / "two.parquet", other_first)
    steps = read_step_log(two).steps
    row = int(np.flatnonzero((steps["policy"] == "random").to_numpy())[1])
    assert row > 1
    with pytest.raises(LogError, match=rf"column 'propensity' is nan in row {row} \(expected"):
        evaluate_off_policy(two, "greedy", logged_policy="random", with_ground_truth=False)


def test_a_column_given_twice_is_named(
    log_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It was "truncated or corrupt Parquet file (Multiple matches for FieldRef.Name(reward) in
    # scenario: string scenario_hash: string ...", cut off in the middle of the schema.
    table = pq.read_table(log_path)
    bad = tmp_path / "twice.parquet"
    twice = table.append_column("reward", table.column("reward"))
    pq.write_table(twice.replace_schema_metadata(table.schema.metadata), bad)
    assert main(["replay", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        f"lmrecsim: error: {bad}: column 'reward' appears twice (expected each column once)\n"
    )


def test_ope_warnings_are_lmrecsim_warnings_on_stderr(log_path: Path, capsys) -> None:
    # Six rounds of a uniform logger: a low overlap, said as every command's warnings are.
    assert main(["ope", str(log_path), "--policy", "greedy", "--no-ground-truth"]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in out and "  ips" in out
    assert err.startswith("lmrecsim: warning: low overlap (effective sample size")
    assert all(line.startswith("lmrecsim: warning: ") for line in err.strip().splitlines())


def test_an_action_that_is_not_its_slate_slots_entry_is_refused(
    log_path: Path, tmp_path: Path
) -> None:
    # A single item's slate_slots is [action]; an edited action was replayed "exactly" (replay
    # steps with the slots) on slates, and here named a propensity instead.
    def edit(frame: pd.DataFrame) -> None:
        frame.at[0, "action"] = (int(frame.at[0, "action"]) + 1) % K

    bad = _rewrite(log_path, tmp_path / "action.parquet", edit)
    with pytest.raises(
        LogError, match=r"column 'action' is \d+ in row 0 \(expected \d+, its slate_slots entry\)"
    ):
        read_step_log(bad)
