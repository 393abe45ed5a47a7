"""Episode logs: one Parquet row per step, versioned, written atomically.

A step log (``DIR/episodes.parquet``) holds everything needed to replay the logged episodes and to
evaluate other policies off-policy: the scenario (name, content hash and the resolved YAML in the
file metadata), the policy, the (seed, episode, step) coordinates that key the simulator's common
random numbers, the candidates shown, the action with its propensity and the policy's full action
distribution, and the feedback. The schema is documented in ``docs/logs.md``.

Readers refuse logs of an unknown schema version; a truncated or corrupt file is one
:class:`LogError` line naming the file, never a half-read table, and so is corrupt content (a
wrong type, a null, a value out of range, a list of the wrong length: :func:`check_content`),
named down to the column and row. Version 1 logs (before slates)
are still read: their rows get ``slate_slots = [action]`` and ``clicked_position`` 0 on a click,
-1 otherwise, exactly what version 2 writes for a single-item step.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lmrecsim.exceptions import LmrecsimError

from ..atomic import atomic_file
from ..scenarios.schema import MAX_EVALUATION_EPISODES, MAX_STEPS

if TYPE_CHECKING:
    from ..envs.world import World
    from ..scenarios import Scenario
    from .rollout import StepArrays

#: Version of the step-log schema; bump on any incompatible change and keep readers strict.
SCHEMA_VERSION = 5
#: Versions :func:`read_step_log` reads (older ones are upgraded to the current columns).
READABLE_VERSIONS = (1, 2, 3, 4, 5)

# Keys of the Parquet file (key-value) metadata.
META_VERSION = b"lmrecsim.schema_version"
META_PACKAGE = b"lmrecsim.package_version"
META_SCENARIO_YAML = b"lmrecsim.scenario_yaml"
META_SCENARIO_HASH = b"lmrecsim.scenario_hash"
META_SCENARIO_NAME = b"lmrecsim.scenario_name"
META_BASE_DIR = b"lmrecsim.scenario_base_dir"
# The keys read as (UTF-8) text; a missing optional one reads as "".
META_TEXT_KEYS = (META_SCENARIO_YAML, META_SCENARIO_HASH, META_BASE_DIR, META_PACKAGE)

#: Columns of schema version 2, in order, with their pandas dtypes ("list" = Arrow list column).
COLUMNS: dict[str, str] = {
    "scenario": "string",
    "scenario_hash": "string",
    "lmrecsim_version": "string",
    "policy": "string",
    "seed": "int64",
    "episode": "int64",
    "step": "int64",
    "user_id": "int64",
    "is_new_user": "bool",
    "candidate_item_ids": "list<string>",
    "candidate_mask": "list<bool>",
    "action": "int64",
    "slate_slots": "list<int64>",
    "item_id": "string",
    "propensity": "float64",
    "prefix_propensities": "list<float64>",
    "position_propensities": "list<float64>",
    "action_probabilities": "list<float64>",
    "clicked": "bool",
    "clicked_position": "int64",
    "rating": "float64",
    "dwell": "float64",
    "reward": "float64",
    "terminated": "bool",
    "truncated": "bool",
    "invalid_action": "bool",
    "is_new_item": "bool",
    "popularity_rank": "int64",
    "affinity": "float64",
    "drift_event": "bool",
    "drift_phase": "float64",
}

#: Columns version 2 added: version 1 logs are read with them derived from ``action``/``clicked``.
V2_COLUMNS = ("slate_slots", "clicked_position")
#: The column version 3 added: the policy's probability of each prefix of the slate.
V3_COLUMNS = ("prefix_propensities",)
#: The column version 4 added: the policy's probability of each position's slot at that position.
V4_COLUMNS = ("position_propensities",)
#: The columns version 5 added: the user's interest drift at the step. Older logs did not record
#: it: they are read with ``drift_event`` missing (pandas' nullable ``boolean``, all ``<NA>``)
#: and ``drift_phase`` NaN, which replay does not compare and the drift metrics refuse.
V5_COLUMNS = ("drift_event", "drift_phase")

# Row order of a log: the order the simulator produced the steps in.
SORT_KEYS = ["policy", "seed", "episode", "step"]


class LogError(LmrecsimError):
    """An unreadable, corrupt or incompatible step log (one line naming the file)."""


@dataclass
class StepLog:
    """A step log read back from disk.

    Attributes:
        path: the file it was read from.
        steps: one row per step with the columns of :data:`COLUMNS`; list columns hold numpy
            arrays of length K (``slate_slots``: length L, 1 without slates).
        scenario_yaml: the resolved scenario the log was made on.
        scenario_hash: its content hash.
        scenario_base_dir: folder that relative paths in the scenario resolve against (or None).
        package_version: the lmrecsim version that wrote the log.
        schema_version: the log's schema version.
    """

    path: Path
    steps: pd.DataFrame
    scenario_yaml: str
    scenario_hash: str
    scenario_base_dir: str | None
    package_version: str
    schema_version: int = SCHEMA_VERSION
    _scenario: Scenario | None = field(default=None, repr=False)
    # K (candidates per row) and L (slate_slots per row) found in the file; None without rows.
    _shape: tuple[int, int] | None = field(default=None, repr=False)

    @property
    def policies(self) -> list[str]:
        """Policy labels in the log, in order of first appearance."""
        return list(dict.fromkeys(self.steps["policy"].tolist()))

    def scenario(self) -> Scenario:
        """Rebuild the logged scenario (checked against the stored content hash)."""
        if self._scenario is None:
            import yaml

            from ..scenarios import ScenarioError, scenario_from_dict, scenario_hash
            from ..scenarios.yaml_text import safe_load, yaml_error_parts

            try:
                data = safe_load(self.scenario_yaml)
            except yaml.YAMLError as exc:  # the hash is of the scenario, so it cannot go first
                where, problem = yaml_error_parts(exc)
                raise LogError(
                    f"{self.path}: {META_SCENARIO_YAML.decode()} is not valid YAML{where}"
                    f" ({problem or _one_line(exc)}; expected the scenario as lmrecsim wrote it)"
                ) from None
            if not isinstance(data, dict):
                raise LogError(f"{self.path}: {META_SCENARIO_YAML.decode()} is not a YAML mapping")
            try:
                scenario = scenario_from_dict(
                    data, base_dir=self.scenario_base_dir, source=str(self.path)
                )
            except ScenarioError as exc:  # e.g. a reward registered when the log was written
                raise LogError(f"{exc} (the scenario stored in this log)") from None
            if scenario_hash(scenario) != self.scenario_hash:
                raise LogError(
                    f"{self.path}: the stored scenario does not match its hash "
                    f"{self.scenario_hash[:12]} (expected an unmodified log)"
                )
            self._check_shape(scenario)
            self._scenario = scenario
        return self._scenario

    def _check_shape(self, scenario: Scenario) -> None:
        """Raise LogError when the rows' K or L is not the scenario's (``candidates.k``,
        ``candidates.slate_size``); :func:`read_step_log` made sure every row has the same."""
        if self._shape is None:
            return
        k, size = self._shape
        if k != scenario.candidates.k:
            raise LogError(
                f"{self.path}: column 'candidate_item_ids' has {k} entries per row (expected "
                f"candidates.k = {scenario.candidates.k} of the stored scenario)"
            )
        if size != scenario.candidates.slate_size:
            raise LogError(
                f"{self.path}: column 'slate_slots' has {size} entries per row (expected "
                f"candidates.slate_size = {scenario.candidates.slate_size} of the stored scenario)"
            )

    def require_steps(self) -> None:
        """Raise LogError for a log with no steps (nothing to replay or evaluate)."""
        if len(self.steps) == 0:
            raise LogError(
                f"{self.path}: holds no steps (expected at least one episode; a training log "
                "keeps complete episodes only, so a run too short to finish one logs none)"
            )

    def for_policy(self, label: str | None) -> pd.DataFrame:
        """The rows of one policy; ``None`` means the only policy in the log.

        Raises:
            LogError: the label is not in the log, or ``None`` with several policies logged.
        """
        self.require_steps()
        labels = self.policies
        if label is None:
            if len(labels) != 1:
                raise LogError(
                    f"{self.path}: holds {len(labels)} policies ({', '.join(labels)}); "
                    "choose one (expected a logged policy label: --logged-policy LABEL, logged_policy= in Python)"
                )
            label = labels[0]
        if label not in labels:
            raise LogError(
                f"{self.path}: policy {label!r} is not in the log (expected one of: {', '.join(labels)})"
            )
        rows = self.steps[self.steps["policy"] == label]
        return rows.reset_index(drop=True)


def matrix(column: pd.Series, dtype: Any = np.float64) -> np.ndarray:
    """Stack a list column of equal-length rows into an array of shape (n_rows, K)."""
    if len(column) == 0:
        return np.zeros((0, 0), dtype=dtype)
    return np.stack([np.asarray(v, dtype=dtype) for v in column])


def _arrow_schema() -> Any:
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int64": pa.int64(),
        "bool": pa.bool_(),
        "float64": pa.float64(),
        "list<string>": pa.list_(pa.string()),
        "list<bool>": pa.list_(pa.bool_()),
        "list<float64>": pa.list_(pa.float64()),
        "list<int64>": pa.list_(pa.int64()),
    }
    return pa.schema([pa.field(name, types[kind]) for name, kind in COLUMNS.items()])


def build_step_table(
    steps: pd.DataFrame,
    arrays: StepArrays,
    *,
    scenario: Scenario,
    world: World | None = None,
) -> pd.DataFrame:
    """The log rows (columns of :data:`COLUMNS`) from a rollout's steps and arrays.

    Args:
        steps: the step frame of :func:`lmrecsim.evaluation.rollout.run_policy` (``STEP_FIELDS``).
        arrays: the aligned per-step arrays; ``candidate_items`` are catalog indices (n_steps, K),
            ``slate_slots`` the actions' slots (n_steps, L).
        scenario: the scenario the steps were run on.
        world: its world (to map candidate indices to item ids); built (memoised) when omitted.
    """
    from lmrecsim import __version__

    from ..scenarios import scenario_hash

    n = len(steps)
    if (
        len(arrays.candidate_items) != n
        or len(arrays.probabilities) != n
        or len(arrays.mask) != n
        or len(arrays.slate_slots) != n
    ):
        raise ValueError(
            f"write_step_log: steps has {n} rows but arrays hold {len(arrays.candidate_items)} "
            f"candidate rows, {len(arrays.probabilities)} probability rows, {len(arrays.mask)} "
            f"mask rows and {len(arrays.slate_slots)} slate rows (expected aligned rows)"
        )
    if world is None:
        from ..envs.world import build_world

        world = build_world(scenario)
    ids = np.asarray(world.catalog.item_ids).astype(str)
    out = pd.DataFrame(
        {
            "scenario": scenario.name,
            "scenario_hash": scenario_hash(scenario),
            "lmrecsim_version": __version__,
            "policy": steps["policy"].astype(str).to_numpy(),
        },
        index=range(n),
    )
    for name in ("seed", "episode", "step", "user_id", "is_new_user"):
        out[name] = steps[name].to_numpy()
    # Object columns even when empty: a log of no steps (a training run that finished no
    # episode) would otherwise get float64 columns that Arrow cannot write as lists.
    out["candidate_item_ids"] = pd.Series(
        [ids[np.asarray(c, dtype=np.int64)].tolist() for c in arrays.candidate_items],
        index=out.index,
        dtype=object,
    )
    out["candidate_mask"] = pd.Series(
        [np.asarray(m, dtype=bool).tolist() for m in arrays.mask], index=out.index, dtype=object
    )
    out["action"] = steps["action"].to_numpy()
    out["slate_slots"] = pd.Series(
        [np.asarray(v, dtype=np.int64).tolist() for v in arrays.slate_slots],
        index=out.index,
        dtype=object,
    )
    for name in ("item_id", "propensity"):
        out[name] = steps[name].to_numpy()
    out["prefix_propensities"] = pd.Series(
        [np.asarray(v, dtype=np.float64).tolist() for v in arrays.prefix_propensities],
        index=out.index,
        dtype=object,
    )
    out["position_propensities"] = pd.Series(
        [np.asarray(v, dtype=np.float64).tolist() for v in arrays.position_propensities],
        index=out.index,
        dtype=object,
    )
    out["action_probabilities"] = pd.Series(
        [np.asarray(p, dtype=np.float64).tolist() for p in arrays.probabilities],
        index=out.index,
        dtype=object,
    )
    for name in (
        "clicked",
        "clicked_position",
        "rating",
        "dwell",
        "reward",
        "terminated",
        "truncated",
        "invalid_action",
        "is_new_item",
        "popularity_rank",
        "affinity",
        "drift_event",
        "drift_phase",
    ):
        out[name] = steps[name].to_numpy()
    return out


def write_step_table(
    path: str | os.PathLike[str], table: pd.DataFrame, *, scenario: Scenario
) -> None:
    """Write log rows atomically (temp file in the same folder, then ``os.replace``).

    Args:
        path: destination ``.parquet`` file (its folder is created).
        table: rows with exactly the columns of :data:`COLUMNS`.
        scenario: the scenario; its resolved YAML, hash and base folder go into the file metadata.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lmrecsim import __version__

    from ..scenarios import scenario_hash, scenario_to_yaml

    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"write_step_table: missing columns {missing}")
    arrow = pa.Table.from_pandas(table[list(COLUMNS)], schema=_arrow_schema(), preserve_index=False)
    meta = {
        META_VERSION: str(SCHEMA_VERSION).encode(),
        META_PACKAGE: __version__.encode(),
        META_SCENARIO_YAML: scenario_to_yaml(scenario).encode("utf-8"),
        META_SCENARIO_HASH: scenario_hash(scenario).encode(),
        META_SCENARIO_NAME: scenario.name.encode("utf-8"),
        META_BASE_DIR: (scenario._base_dir or "").encode("utf-8"),
    }
    # pandas' own metadata would restore list columns differently across versions; ours is enough.
    arrow = arrow.replace_schema_metadata(meta)
    with atomic_file(path, fsync=True) as fh:
        pq.write_table(arrow, fh, compression="zstd")


def write_step_log(
    path: str | os.PathLike[str],
    steps: pd.DataFrame,
    arrays: StepArrays,
    *,
    scenario: Scenario,
    world: World | None = None,
) -> None:
    """Write a rollout's steps as a versioned step log (``DIR/episodes.parquet``), atomically.

    Args:
        path: destination file.
        steps: the step frame of :func:`lmrecsim.evaluation.rollout.run_policy` (one or several
            policies concatenated; columns ``STEP_FIELDS``).
        arrays: the aligned :class:`~lmrecsim.evaluation.rollout.StepArrays` (n_steps, K).
        scenario: the scenario the steps were run on.
        world: its world, to map candidate catalog indices to item ids (memoised build if omitted).
    """
    table = build_step_table(steps, arrays, scenario=scenario, world=world)
    write_step_table(path, table, scenario=scenario)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def read_step_log(path: str | os.PathLike[str]) -> StepLog:
    """Read a step log completely, or raise.

    Raises:
        LogError: (one line naming the file) the file is missing, truncated or corrupt, is not a
            step log, or has a schema version this lmrecsim does not read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = Path(path)
    if p.is_dir():
        raise LogError(
            f"{p}: is a folder (expected a step log file, such as {p / 'episodes.parquet'})"
        )
    if p.exists() and not p.is_file():  # a device or a pipe: there, but not a log
        raise LogError(f"{p}: not a regular file (expected a step log file)")
    if not p.is_file():
        raise LogError(f"{p}: no such step log (expected a file written by lmrecsim evaluate)")
    try:
        schema = pq.read_schema(p)
        meta = schema.metadata or {}
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise LogError(f"{p}: truncated or corrupt Parquet file ({_one_line(exc)})") from None
    version = meta.get(META_VERSION)
    if version is None:
        raise LogError(
            f"{p}: {META_VERSION.decode()} is missing from the file metadata "
            "(expected a step log written by lmrecsim)"
        )
    try:
        version_num = int(version.decode())
    except ValueError:
        version_num = -1
    if version_num not in READABLE_VERSIONS:
        readable = " or ".join(str(v) for v in READABLE_VERSIONS)
        raise LogError(
            f"{p}: {META_VERSION.decode()} is {version.decode(errors='replace')!r} "
            f"(expected {readable}; this lmrecsim cannot read that log version)"
        )
    for key in (META_SCENARIO_YAML, META_SCENARIO_HASH):
        if key not in meta:
            raise LogError(f"{p}: {key.decode()} is missing from the file metadata")
    text = {key: _meta_text(p, meta, key) for key in META_TEXT_KEYS}
    repeated = [name for i, name in enumerate(schema.names) if name in schema.names[:i]]
    if repeated:  # Arrow's own words: "Multiple matches for FieldRef...", and the whole schema
        raise LogError(f"{p}: column {repeated[0]!r} appears twice (expected each column once)")
    try:
        table = pq.read_table(p)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise LogError(f"{p}: truncated or corrupt Parquet file ({_one_line(exc)})") from None
    # An older file is checked against its own columns, then given the newer ones.
    expected = [
        c
        for c in COLUMNS
        if (version_num > 1 or c not in V2_COLUMNS)
        and (version_num > 2 or c not in V3_COLUMNS)
        and (version_num > 3 or c not in V4_COLUMNS)
        and (version_num > 4 or c not in V5_COLUMNS)
    ]
    missing = [c for c in expected if c not in table.column_names]
    if missing:
        raise LogError(
            f"{p}: column {missing[0]!r} is missing (expected the columns of schema v{version_num})"
        )
    shape = check_content(p, table, expected)
    try:
        steps = table.to_pandas()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise LogError(f"{p}: truncated or corrupt Parquet file ({_one_line(exc)})") from None
    if version_num == 1:
        steps = _upgrade_v1(steps)
    if version_num <= 2:
        steps = _upgrade_v2(steps)
    if version_num <= 3:
        steps = _upgrade_v3(steps)
    if version_num <= 4:
        steps = _upgrade_v4(steps)
    # Arrow strings come back as python objects or the string dtype depending on pandas; normalise.
    for name, kind in COLUMNS.items():
        if kind == "string":
            steps[name] = steps[name].astype(str)
    # A step logged twice (logs concatenated, a table edited) cannot be replayed: say which.
    repeated = steps.duplicated(SORT_KEYS).to_numpy()
    if repeated.any():
        row = int(np.argmax(repeated))
        key = steps.loc[row, SORT_KEYS]
        first = int(np.argmax(steps[SORT_KEYS].eq(key).all(axis=1).to_numpy()))
        raise LogError(
            f"{p}: rows {first} and {row} are both step {int(key['step'])} of episode "
            f"{int(key['episode'])} of seed {int(key['seed'])} of policy {str(key['policy'])!r} "
            "(expected each step once)"
        )
    # Rows of another scenario (logs concatenated) would be replayed, and compared side by
    # side, in the stored scenario's world.
    foreign = (steps["scenario_hash"] != text[META_SCENARIO_HASH]).to_numpy()
    if foreign.any():
        row = int(np.argmax(foreign))
        raise LogError(
            f"{p}: column 'scenario_hash' is {steps['scenario_hash'].iloc[row][:12]!r} in row "
            f"{row} (expected {text[META_SCENARIO_HASH][:12]!r}, the stored scenario's in the file "
            f"metadata {META_SCENARIO_HASH.decode()}: a log holds the steps of one scenario)"
        )
    return StepLog(
        path=p,
        steps=steps,
        scenario_yaml=text[META_SCENARIO_YAML],
        scenario_hash=text[META_SCENARIO_HASH],
        scenario_base_dir=text[META_BASE_DIR] or None,
        package_version=text[META_PACKAGE],
        schema_version=version_num,
        _shape=shape,
    )


def _meta_text(p: Path, meta: dict[bytes, bytes], key: bytes) -> str:
    try:
        return meta.get(key, b"").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LogError(
            f"{p}: {key.decode()} in the file metadata is not UTF-8 text ({_one_line(exc)})"
        ) from None


# Columns whose rows hold one entry per candidate slot (K of them).
K_COLUMNS = ("candidate_item_ids", "candidate_mask", "action_probabilities")
# Columns that must be >= 0: they key the simulator's random numbers (a seed must be >= 0).
NON_NEGATIVE = ("seed", "episode", "step")
# Slack on the upper bound of a probability (float rounding of a normalised distribution).
_PROB_TOL = 1e-9
#: How far an item-position marginal may fall below the prefix's probability at its position: a
#: model's marginals come from its float32 probabilities, its prefixes from float32 log-softmaxes.
_MARGINAL_TOL = 1e-6


def _check_action_in_slate(
    p: Path, action: np.ndarray, slots: np.ndarray, position: np.ndarray, cols: Any, k: int
) -> None:
    """``action`` is the slot of the row's ``item_id``: ``[action]`` is ``slate_slots`` on a
    single-item row; on a slate, the slot at ``clicked_position``, or without a click the first
    slot the slate showed (valid, not repeated), or position 0's when it showed nothing. Replay
    steps a slate with ``slate_slots``, so an ``action`` that disagrees would go unseen."""
    import pyarrow.compute as pc

    from ..envs.simulator import slate_shown

    n, size = slots.shape
    rows = np.arange(n)
    if size == 1:
        expected_slot = slots[:, 0]
        why = "its slate_slots entry"
    else:
        mask = pc.list_flatten(cols["candidate_mask"]).to_numpy(zero_copy_only=False)
        shown = slate_shown(slots, mask.reshape(n, k).astype(bool))
        first = np.where(shown.any(axis=1), np.argmax(shown, axis=1), 0)
        at = np.where(position >= 0, position, first)
        expected_slot = slots[rows, at]
        why = "the slate_slots entry at clicked_position, or the first shown without a click"
    bad = action != expected_slot
    if bad.any():
        i = int(np.argmax(bad))
        raise LogError(
            f"{p}: column 'action' is {int(action[i])} in row {i} (expected "
            f"{int(expected_slot[i])}, {why})"
        )


def _arrow_kind(t: Any) -> str | None:
    """The kind of :data:`COLUMNS` an Arrow type reads as (any integer width is an
    ``int64``, a dictionary its values' kind), or None."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_integer(t):
        return "int64"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_floating(t):
        return "float64"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = _arrow_kind(t.value_type)
        return f"list<{inner}>" if inner is not None and "list" not in inner else None
    return None


def check_content(p: Path, table: Any, columns: Sequence[str]) -> tuple[int, int] | None:
    """Check the columns' content of a step log's Arrow table, vectorised; the first problem is
    one :class:`LogError` line naming the file, the column, the row and what was expected.

    Checked: each column's type; no nulls outside the float columns (there a null reads as
    NaN: ``rating`` is null without a click, and replay compares the others exactly);
    ``seed``, ``episode`` and ``step`` >= 0, ``episode`` below 1,000,000 and ``step`` below
    100,000; the same number K of entries in every row of ``candidate_item_ids``,
    ``candidate_mask`` and ``action_probabilities``; ``action`` and the ``slate_slots`` entries
    in ``[0, K)``; the same number L of ``slate_slots`` in every row; ``clicked_position`` in
    ``[-1, L)``; ``action`` the slot of the row's item (:func:`_check_action_in_slate`); ``action_probabilities`` entries and ``propensity`` (NaN allowed: a slate's may
    be unknown) in ``[0, 1]``, and without slates ``propensity`` the ``action_probabilities``
    entry of the action; ``prefix_propensities`` (version 3) L entries in ``[0, 1]`` (NaN:
    unknown) that do not grow, the last equal to ``propensity`` where both are known;
    ``position_propensities`` (version 4) L entries in ``[0, 1]`` (NaN: unknown), each at least
    the prefix's at its position and the first equal to the first prefix's where both are known
    (within :data:`_MARGINAL_TOL`); ``reward`` finite; ``drift_phase`` (version 5) in
    ``[0, 1]``. Whole columns at a time, so a log of millions of rows
    costs a fraction of reading it.

    Returns:
        ``(K, L)`` of the rows (L is 1 for a version-1 log), or None for a log of no rows;
        :meth:`StepLog.scenario` checks them against the stored scenario.
    """
    import pyarrow.compute as pc

    def fail(name: str, row: int, what: str, expected: str) -> LogError:
        return LogError(f"{p}: column {name!r} {what} in row {row} (expected {expected})")

    cols: dict[str, Any] = {}
    for name in columns:
        col = table.column(name)
        kind = _arrow_kind(col.type)
        if kind != COLUMNS[name]:
            raise LogError(f"{p}: column {name!r} has type {col.type} (expected {COLUMNS[name]})")
        if col.null_count and kind != "float64":  # float nulls read as NaN (rating: no click)
            row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise fail(name, row, "is null", f"a non-null {COLUMNS[name]} in every row")
        if kind.startswith("list") and pc.list_flatten(col).null_count:
            whole = col.combine_chunks()
            flat = int(np.flatnonzero(pc.is_null(pc.list_flatten(whole)))[0])
            row = int(pc.list_parent_indices(whole)[flat].as_py())
            raise fail(name, row, "holds a null entry", f"a list of {kind[5:-1]} values")
        cols[name] = col
    if table.num_rows == 0:
        return None

    def refuse(
        name: str, bad: np.ndarray, values: np.ndarray, what: str, expected: str, per_row: int = 1
    ) -> None:
        """Raise for the first entry of ``values`` that is ``bad`` (``per_row`` entries a row);
        ``what`` words it, with ``{}`` for the value."""
        if bad.any():
            i = int(np.argmax(bad))
            raise fail(name, i // per_row, what.format(values[i].item()), expected)

    for name in NON_NEGATIVE:
        v = cols[name].to_numpy()
        refuse(name, v < 0, v, "is {}", "an integer >= 0")
    # A replay reaches episode e of a seed by running the e before it, so a number no run
    # writes (a damaged file) would keep it busy for hours: bounded as evaluations and horizons.
    for name, top, what in (
        ("episode", MAX_EVALUATION_EPISODES, "episodes per seed"),
        ("step", MAX_STEPS, "steps per episode"),
    ):
        v = cols[name].to_numpy()
        refuse(name, v >= top, v, "is {}", f"an integer below {top:,}, the most {what}")

    def lengths(name: str) -> np.ndarray:
        return pc.list_value_length(cols[name]).to_numpy(zero_copy_only=False)

    k = int(lengths("candidate_item_ids")[0])
    for name in K_COLUMNS:
        source = "row 0" if name == K_COLUMNS[0] else K_COLUMNS[0]
        n = lengths(name)
        refuse(
            name,
            n != k,
            n,
            "has {} entries",
            f"{k} entries, one per candidate slot, as {source} has",
        )
    action = cols["action"].to_numpy()
    refuse("action", (action < 0) | (action >= k), action, "is {}", f"a candidate slot in [0, {k})")
    size = 1
    if "slate_slots" in cols:
        n = lengths("slate_slots")
        size = int(n[0])
        expected = f"{size} entries, one per slate position, as row 0 has"
        refuse("slate_slots", n != size, n, "has {} entries", expected)
        slots = pc.list_flatten(cols["slate_slots"]).to_numpy()
        bad = (slots < 0) | (slots >= k)
        refuse("slate_slots", bad, slots, "holds {}", f"candidate slots in [0, {k})", size)
        position = cols["clicked_position"].to_numpy()
        bad = (position < -1) | (position >= size)
        expected = f"-1 (no click) or a slate position in [0, {size})"
        refuse("clicked_position", bad, position, "is {}", expected)
        _check_action_in_slate(p, action, slots.reshape(-1, size), position, cols, k)
    propensity = cols["propensity"].to_numpy(zero_copy_only=False)
    probs = pc.list_flatten(cols["action_probabilities"]).to_numpy()
    bad = ~((probs >= 0) & (probs <= 1 + _PROB_TOL))  # NaN is bad too
    refuse("action_probabilities", bad, probs, "holds {!r}", "probabilities in [0, 1]", k)
    bad = (propensity < 0) | (propensity > 1 + _PROB_TOL)  # NaN: unknown, allowed
    refuse("propensity", bad, propensity, "is {!r}", "a probability in [0, 1]")
    if size == 1:  # a single item's propensity is its slot's entry in the distribution
        chosen = probs[np.arange(len(action)) * k + action]
        bad = np.abs(propensity - chosen) > _PROB_TOL  # NaN: unknown, allowed
        if bad.any():
            i = int(np.argmax(bad))
            expected = f"{float(chosen[i])!r}, the row's action_probabilities entry for its action"
            raise fail("propensity", i, f"is {float(propensity[i])!r}", expected)

    def per_position(name: str) -> np.ndarray:
        """(rows, L) a column of L probabilities per row, each in [0, 1] or NaN (unknown)."""
        n = lengths(name)
        refuse(
            name,
            n != size,
            n,
            "has {} entries",
            f"{size} entries, one per slate position, as slate_slots has",
        )
        values = pc.list_flatten(cols[name]).to_numpy()
        bad = (values < 0) | (values > 1 + _PROB_TOL)  # NaN: unknown, allowed
        refuse(name, bad, values, "holds {!r}", "probabilities in [0, 1]", size)
        return values.reshape(-1, size)

    if "prefix_propensities" in cols:
        prefix = per_position("prefix_propensities")
        # A longer prefix is no more likely than a shorter one, and the whole slate's is the
        # propensity where both are known (NaN: the policy did not say).
        rising = (np.diff(prefix, axis=1) > _PROB_TOL).any(axis=1)
        apart = np.abs(prefix[:, -1] - propensity) > _PROB_TOL
        if rising.any() or apart.any():
            i = int(np.argmax(rising | apart))
            what = f"is {prefix[i].tolist()!r}"
            expected = (
                "probabilities that do not grow with the prefix"
                if rising[i]
                else f"its last entry equal to the propensity, {float(propensity[i])!r}"
            )
            raise fail("prefix_propensities", i, what, expected)
    if "position_propensities" in cols:
        marginal = per_position("position_propensities")
        if "prefix_propensities" in cols:
            # A slot is at its position at least as often as the whole prefix up to it is drawn,
            # and the first position's marginal is the first prefix's probability.
            below = (marginal < prefix - _MARGINAL_TOL).any(axis=1)
            apart = np.abs(marginal[:, 0] - prefix[:, 0]) > _MARGINAL_TOL
            if below.any() or apart.any():
                i = int(np.argmax(below | apart))
                what = f"is {marginal[i].tolist()!r}"
                expected = (
                    f"each entry at least prefix_propensities' at its position, {prefix[i].tolist()!r}"
                    if below[i]
                    else f"its first entry equal to prefix_propensities' first, {float(prefix[i, 0])!r}"
                )
                raise fail("position_propensities", i, what, expected)
    # The env's rewards are finite (a registered reward's are checked); a side-by-side replay
    # sums them without replaying them, so NaN or inf would go into its returns unseen.
    reward = cols["reward"].to_numpy(zero_copy_only=False)
    refuse("reward", ~np.isfinite(reward), reward, "is {!r}", "a finite number")
    if "drift_phase" in cols:  # how far the taste has drifted: 0 at home, 1 away
        phase = cols["drift_phase"].to_numpy(zero_copy_only=False)
        bad = ~((phase >= 0) & (phase <= 1))
        refuse("drift_phase", bad, phase, "is {!r}", "a drift phase in [0, 1]")
    return k, size


def _upgrade_v1(steps: pd.DataFrame) -> pd.DataFrame:
    """A version-1 table with the version-2 columns: every v1 step is a single-item step, so
    ``slate_slots = [action]`` and ``clicked_position`` is 0 on a click, -1 otherwise (the
    table has every version-1 column)."""
    steps = steps.copy()
    steps["slate_slots"] = pd.Series(
        [np.array([a], dtype=np.int64) for a in steps["action"].to_numpy(np.int64)],
        index=steps.index,
        dtype=object,
    )
    steps["clicked_position"] = np.where(steps["clicked"].to_numpy(bool), 0, -1).astype(np.int64)
    return steps


def _upgrade_v2(steps: pd.DataFrame) -> pd.DataFrame:
    """A version-2 (or upgraded version-1) table with the version-3 column: a single item's
    prefix propensity is its propensity; a slate's shorter prefixes were not recorded (NaN),
    its whole-slate one is the propensity."""
    steps = steps.copy()
    sizes = [len(v) for v in steps["slate_slots"]]
    steps["prefix_propensities"] = pd.Series(
        [
            np.append(np.full(size - 1, np.nan), p)
            for size, p in zip(sizes, steps["propensity"].to_numpy(np.float64), strict=True)
        ],
        index=steps.index,
        dtype=object,
    )
    return steps


def _upgrade_v3(steps: pd.DataFrame) -> pd.DataFrame:
    """A version-3 (or upgraded older) table with the version-4 column: the first position's
    marginal is the first prefix's probability; the other positions' were not recorded (NaN)."""
    steps = steps.copy()
    steps["position_propensities"] = pd.Series(
        [np.append(p[:1], np.full(len(p) - 1, np.nan)) for p in steps["prefix_propensities"]],
        index=steps.index,
        dtype=object,
    )
    return steps


def _upgrade_v4(steps: pd.DataFrame) -> pd.DataFrame:
    """A version-4 (or upgraded older) table with the version-5 columns, which it did not
    record: ``drift_event`` missing (nullable ``boolean``, all ``<NA>``), ``drift_phase`` NaN."""
    steps = steps.copy()
    steps["drift_event"] = pd.Series(pd.NA, index=steps.index, dtype="boolean")
    steps["drift_phase"] = np.full(len(steps), np.nan)
    return steps[list(COLUMNS)]


class StepRecorder:
    """Collects steps from a (vectorised) training loop in the log's rollout layout.

    Training code calls :meth:`add` once per env per step (with the info dict the env returned)
    and :meth:`frames` at the end, then :func:`write_step_log` on the result. Sub-env ``i`` of a
    batched training env seeded ``seed`` meets the users of a single env reset with ``seed + i``,
    so recorded under that seed, with episodes numbered from 0, its complete episodes replay
    exactly (``lmrecsim replay``) and serve off-policy evaluation.
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self._rows: list[tuple[Any, ...]] = []
        from .rollout import StepArrays

        self.arrays = StepArrays()

    def add(
        self,
        *,
        seed: int,
        episode: int,
        action: int | np.ndarray,
        probabilities: np.ndarray,
        mask: np.ndarray,
        reward: float,
        terminated: bool,
        truncated: bool,
        info: dict[str, Any],
        propensity: float | None = None,
        prefix_propensities: np.ndarray | None = None,
        position_propensities: np.ndarray | None = None,
    ) -> None:
        """Record one step.

        Args:
            seed: the run's seed (training seed).
            episode: a running episode number, unique per (seed, env).
            action: the slot taken, or the (L,) slate on a slate scenario.
            probabilities: (K,) the policy's action distribution at this step (slates: the first
                position's).
            mask: (K,) the action mask of the observation the action was taken on.
            reward: the step's reward.
            terminated: the user left.
            truncated: the horizon was reached.
            info: the env's step info (``item_index``, ``item_id``, ``candidate_items``, ...).
            propensity: the policy's probability of the action; by default the last of
                ``prefix_propensities``, else ``probabilities[action]`` (a slate needs one of
                the two: the whole slate's probability).
            prefix_propensities: (L,) the policy's probability of the slate's first 1, 2, ...,
                L slots (the last is ``propensity``); by default unknown (NaN) but for the
                whole slate.
            position_propensities: (L,) the policy's probability that position l holds the
                slate's slot l (item-position marginals); by default unknown (NaN) but for the
                first position, whose is the first prefix's.
        """
        probs = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        from .rollout import slate_record, step_row

        slot, slate_slots, slate_items = slate_record(action, info)
        if propensity is None and prefix_propensities is not None:
            propensity = float(np.asarray(prefix_propensities).reshape(-1)[-1])
        if propensity is None:
            if slate_slots.size > 1:
                raise ValueError("StepRecorder.add: a slate step needs its propensity")
            propensity = float(probs[slot])
        if prefix_propensities is None:
            prefix = np.full(slate_slots.size, np.nan)
            prefix[-1] = propensity
        else:
            prefix = np.asarray(prefix_propensities, dtype=np.float64).reshape(-1)
        if position_propensities is None:
            positions = np.full(slate_slots.size, np.nan)
            positions[0] = prefix[0]
        else:
            positions = np.asarray(position_propensities, dtype=np.float64).reshape(-1)
        self._rows.append(
            step_row(
                label=self.label,
                seed=seed,
                episode=episode,
                action=slot,
                propensity=float(propensity),
                reward=reward,
                terminated=terminated,
                truncated=truncated,
                info=info,
            )
        )
        cand = np.asarray(info["candidate_items"], dtype=np.int64)
        self.arrays.candidate_items.append(cand)
        self.arrays.candidate_affinity.append(
            np.asarray(info.get("candidate_affinity", np.zeros(cand.shape)))
        )
        self.arrays.mask.append(np.asarray(mask, dtype=bool))
        self.arrays.scores.append(probs)
        self.arrays.probabilities.append(probs)
        self.arrays.slate_slots.append(slate_slots)
        self.arrays.slate_items.append(slate_items)
        self.arrays.prefix_propensities.append(prefix)
        self.arrays.position_propensities.append(positions)

    def frames(self, drop: Collection[tuple[int, int]] = ()) -> tuple[pd.DataFrame, StepArrays]:
        """``(steps, arrays)`` as :func:`write_step_log` takes them, without the steps of the
        ``(seed, episode)`` pairs in ``drop`` (episodes still open when training stopped)."""
        from .rollout import STEP_FIELDS

        steps = pd.DataFrame.from_records(self._rows, columns=list(STEP_FIELDS))
        if not drop or steps.empty:
            return steps, self.arrays
        pairs = pd.MultiIndex.from_arrays([steps["seed"], steps["episode"]])
        keep = ~pairs.isin(list(drop))
        return steps[keep].reset_index(drop=True), self.arrays.take(np.flatnonzero(keep))


def episode_groups(steps: pd.DataFrame) -> Sequence[tuple[tuple[int, int], pd.DataFrame]]:
    """Rows of one policy grouped by (seed, episode), in log order, each sorted by step."""
    out = []
    for key, group in steps.groupby(["seed", "episode"], sort=False):
        out.append(((int(key[0]), int(key[1])), group.sort_values("step")))
    return out
