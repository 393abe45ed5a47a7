"""Step logs: round trip, version check, one-line errors for truncated files, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lmrecsim.agents.base import RandomPolicy
from lmrecsim.envs.world import build_world
from lmrecsim.evaluation.logs import (
    COLUMNS,
    META_SCENARIO_YAML,
    META_VERSION,
    SCHEMA_VERSION,
    LogError,
    matrix,
    read_step_log,
    write_step_log,
)
from lmrecsim.evaluation.rollout import run_policy
from lmrecsim.scenarios import scenario_from_dict, scenario_hash


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory):
    scenario = scenario_from_dict(
        {
            "extends": "default",
            "name": "log-test",
            "episode": {"horizon": 4},
            "candidates": {"k": 5},
        }
    )
    world = build_world(scenario)
    steps, arrays = run_policy(
        world, RandomPolicy(seed=3), label="random", seeds=[7, 8], episodes=3, deterministic=False
    )
    path = tmp_path_factory.mktemp("log") / "episodes.parquet"
    write_step_log(path, steps, arrays, scenario=scenario)
    return scenario, world, steps, arrays, path


def test_round_trip_keeps_every_column_and_the_scenario(logged) -> None:
    scenario, world, steps, arrays, path = logged
    log = read_step_log(path)
    assert list(log.steps.columns) == list(COLUMNS)
    assert len(log.steps) == len(steps)
    assert log.schema_version == SCHEMA_VERSION
    assert log.scenario_hash == scenario_hash(scenario)
    assert scenario_hash(log.scenario()) == scenario_hash(scenario)
    assert set(log.steps["scenario"]) == {"log-test"}
    for name in (
        "seed",
        "episode",
        "step",
        "user_id",
        "action",
        "clicked",
        "terminated",
        "truncated",
    ):
        np.testing.assert_array_equal(log.steps[name].to_numpy(), steps[name].to_numpy())
    np.testing.assert_array_equal(
        log.steps["item_id"].to_numpy(), steps["item_id"].astype(str).to_numpy()
    )
    np.testing.assert_array_equal(log.steps["reward"].to_numpy(), steps["reward"].to_numpy())
    np.testing.assert_array_equal(log.steps["rating"].isna(), steps["rating"].isna())
    stacked = arrays.stacked()
    ids = np.asarray(world.catalog.item_ids).astype(str)
    np.testing.assert_array_equal(
        matrix(log.steps["candidate_item_ids"], dtype=str), ids[stacked["candidate_items"]]
    )
    np.testing.assert_array_equal(
        matrix(log.steps["action_probabilities"]), stacked["probabilities"]
    )
    # The propensity is the probability of the logged action under the logged distribution.
    probs = matrix(log.steps["action_probabilities"])
    np.testing.assert_allclose(
        probs[np.arange(len(probs)), log.steps["action"]], log.steps["propensity"]
    )
    assert log.policies == ["random"]


def _rewrite_metadata(src: Path, dst: Path, update: dict[bytes, bytes]) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(src)
    meta = dict(table.schema.metadata)
    meta.update(update)
    pq.write_table(table.replace_schema_metadata(meta), dst)


def test_unknown_version_is_refused(logged, tmp_path: Path) -> None:
    *_, path = logged
    bad = tmp_path / "future.parquet"
    _rewrite_metadata(path, bad, {META_VERSION: b"99"})
    with pytest.raises(LogError, match=r"future\.parquet.*99.*expected 1"):
        read_step_log(bad)


def test_a_stored_scenario_invalid_here_names_the_log(logged, tmp_path: Path) -> None:
    # E.g. a reward registered (register_reward) in the process that wrote the log, not in this
    # one: the error used to name "<dict>".
    *_, path = logged
    yaml_text = read_step_log(path).scenario_yaml.replace("name: click", "name: liked")
    bad = tmp_path / "liked.parquet"
    _rewrite_metadata(path, bad, {META_SCENARIO_YAML: yaml_text.encode()})
    with pytest.raises(LogError, match=r"liked\.parquet: reward\.name: 'liked' is invalid") as err:
        read_step_log(bad).scenario()
    assert "\n" not in str(err.value) and "<dict>" not in str(err.value)


def test_plain_parquet_is_not_a_log(tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "plain.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(path)
    with pytest.raises(LogError, match="plain.parquet.*schema_version is missing"):
        read_step_log(path)


@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_truncated_file_is_one_line_naming_the_file(logged, tmp_path: Path, keep: float) -> None:
    *_, path = logged
    data = path.read_bytes()
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(LogError) as err:
        read_step_log(cut)
    message = str(err.value)
    assert "\n" not in message
    assert str(cut) in message and "truncated or corrupt" in message


def test_corrupt_body_is_reported_not_half_read(logged, tmp_path: Path) -> None:
    *_, path = logged
    data = bytearray(path.read_bytes())
    # Overwrite the middle of the data pages (the footer stays intact).
    mid = len(data) // 3
    data[mid : mid + 200] = b"\xff" * 200
    bad = tmp_path / "corrupt.parquet"
    bad.write_bytes(bytes(data))
    with pytest.raises(LogError, match="corrupt.parquet"):
        read_step_log(bad)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="nope.parquet: no such step log"):
        read_step_log(tmp_path / "nope.parquet")


def test_a_path_that_is_not_a_regular_file_is_not_called_missing(tmp_path: Path) -> None:
    # `lmrecsim replay /dev/null` used to say "no such step log".
    with pytest.raises(LogError, match=r"^/dev/null: not a regular file \(expected a step log"):
        read_step_log("/dev/null")


def test_write_is_atomic_and_leaves_no_temp_files(logged, tmp_path: Path) -> None:
    scenario, world, steps, arrays, _ = logged
    dest = tmp_path / "out" / "episodes.parquet"
    write_step_log(dest, steps, arrays, scenario=scenario, world=world)
    first = dest.read_bytes()
    # A failed write (misaligned arrays) leaves the previous file untouched.
    with pytest.raises(ValueError):
        write_step_log(dest, steps.iloc[:-1], arrays, scenario=scenario, world=world)
    assert dest.read_bytes() == first
    assert [p.name for p in dest.parent.iterdir()] == ["episodes.parquet"]


def test_log_error_is_a_user_error() -> None:
    from lmrecsim.errors import user_errors

    assert issubclass(LogError, user_errors())
