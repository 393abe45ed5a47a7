"""Step logs of schema version 5 record interest drift, so the drift figures can be recomputed
from ``episodes.parquet`` alone; version-4 logs read with the drift columns missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lmrecsim.agents.baselines import make_policy
from lmrecsim.envs.world import build_world
from lmrecsim.evaluation.logs import (
    COLUMNS,
    META_VERSION,
    SCHEMA_VERSION,
    V5_COLUMNS,
    LogError,
    read_step_log,
    write_step_log,
)
from lmrecsim.evaluation.metrics import MetricInputError, drift_recovery
from lmrecsim.evaluation.replay import replay
from lmrecsim.evaluation.rollout import run_policy
from lmrecsim.scenarios import scenario_from_dict


@pytest.fixture(scope="module")
def drift_log(tmp_path_factory: pytest.TempPathFactory):
    scenario = scenario_from_dict(
        {
            "extends": "interest_drift",
            "name": "drift-log-test",
            "episode": {"horizon": 10},
            "users": {"drift": {"step": 4}},
            "candidates": {"k": 6},
        }
    )
    world = build_world(scenario, show_progress=False)
    frames, arrays = [], None
    for spec in ("random", "greedy"):
        label, policy = make_policy(spec, world, seed=1)
        steps, arr = run_policy(world, policy, label=label, seeds=[3, 4], episodes=2)
        frames.append(steps)
        if arrays is None:
            arrays = arr
        else:
            arrays.extend(arr)
    steps = pd.concat(frames, ignore_index=True)
    path = tmp_path_factory.mktemp("drift") / "episodes.parquet"
    write_step_log(path, steps, arrays, scenario=scenario, world=world)
    return scenario, world, steps, path


def test_the_log_keeps_drift_events_and_phases(drift_log) -> None:
    _, _, steps, path = drift_log
    log = read_step_log(path)
    assert log.schema_version == SCHEMA_VERSION == 5
    assert list(log.steps.columns) == list(COLUMNS)
    assert log.steps["drift_event"].dtype == bool
    np.testing.assert_array_equal(log.steps["drift_event"], steps["drift_event"])
    np.testing.assert_array_equal(log.steps["drift_phase"], steps["drift_phase"])
    # The abrupt switch (drift.step 4) is the event on step 4, the first the new taste serves:
    # one per episode (every user drifts), phase 0 before it and 1 from it on.
    events = log.steps[log.steps["drift_event"]]
    assert len(events) == 8 and set(events["step"]) == {4}
    assert set(log.steps.loc[log.steps["step"] >= 4, "drift_phase"]) == {1.0}
    assert set(log.steps.loc[log.steps["step"] < 4, "drift_phase"]) == {0.0}
    # The drift figures come out of the log as out of the rollout.
    pd.testing.assert_frame_equal(
        drift_recovery(log.steps, window=3, tolerance=0.05),
        drift_recovery(steps, window=3, tolerance=0.05),
    )


def test_replay_compares_the_drift_columns(drift_log, tmp_path: Path) -> None:
    _, _, _, path = drift_log
    assert replay(path, tmp_path / "same").reproduced
    table = pq.read_table(path)
    frame = table.to_pandas()
    row = int(np.flatnonzero(frame["drift_event"].to_numpy())[0])
    frame.loc[row, "drift_event"] = False
    bad = tmp_path / "tampered.parquet"
    pq.write_table(pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False), bad)
    result = replay(bad, tmp_path / "tampered")
    assert not result.reproduced
    assert result.first_difference is not None
    assert result.first_difference.column == "drift_event"


def test_a_version_4_log_reads_with_the_drift_columns_missing(drift_log, tmp_path: Path) -> None:
    _, _, _, path = drift_log
    table = pq.read_table(path)
    meta = dict(table.schema.metadata)
    meta[META_VERSION] = b"4"
    v4 = table.drop(list(V5_COLUMNS)).replace_schema_metadata(meta)
    old = tmp_path / "v4.parquet"
    pq.write_table(v4, old)
    log = read_step_log(old)
    assert log.schema_version == 4
    assert list(log.steps.columns) == list(COLUMNS)
    assert log.steps["drift_event"].isna().all()
    assert log.steps["drift_phase"].isna().all()
    # What it did not record is not compared: it still replays exactly ...
    assert replay(old, tmp_path / "replay").reproduced
    # ... and the drift figures say why they cannot be computed from it.
    with pytest.raises(MetricInputError, match="drift_event is missing in .* schema version 5"):
        drift_recovery(log.steps, window=3, tolerance=0.05)


def test_a_drift_phase_outside_0_1_is_refused(drift_log, tmp_path: Path) -> None:
    _, _, _, path = drift_log
    table = pq.read_table(path)
    frame = table.to_pandas()
    frame.loc[2, "drift_phase"] = 1.5
    bad = tmp_path / "phase.parquet"
    pq.write_table(pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False), bad)
    with pytest.raises(LogError, match=r"column 'drift_phase' is 1.5 in row 2 \(expected a drift"):
        read_step_log(bad)
