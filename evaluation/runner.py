"""Evaluating several policies on one scenario: rollouts, metric tables, report files.

:func:`evaluate` runs every policy on the same seeds and episodes (common random numbers, see
:mod:`lmrecsim.evaluation.rollout`), turns the step log into an episode table and a per-policy
summary with bootstrap intervals, compares every policy with a reference policy on paired
episodes, and (with ``out``) writes ``summary.csv``, ``comparison.csv``, ``episodes.csv``
(``positions.csv`` too on slates), the
step log (when :mod:`lmrecsim.evaluation.logs` is available), the plots and the reports.

Intervals: episode-level metrics are bootstrapped over episodes (:func:`bootstrap.summarise`).
Per-policy aggregates (catalog coverage, the drift metrics) are recomputed on bootstrap resamples
of the policy's episodes (each resample draws E episodes with replacement and weights each
episode's exposure and drift counts by how often it was drawn); their interval is the resamples'
spread re-centred on the full-sample estimate (see ``_interval``). The exposure Gini's interval is
a delete-a-group jackknife instead (``_jackknife_interval``; the bootstrap's was too narrow).
Paired differences use the same resample (or left-out group) for both policies, which is possible
because episodes are aligned by ``(seed, episode)``.

Slates: the item metrics (exposure, coverage, Gini, novelty, long-tail and new-item shares,
intra-list diversity, the Lorenz plot and the most recommended items) count every item a slate
showed (:func:`shown_items`); return, click-through and the other step metrics stay per step.
Clicks by slate position (``positions.csv`` and a plot) show where in its slates each policy's
clicks land.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pandas as pd

from ..atomic import output_folder_problem
from ..envs.world import World, build_world
from ..scenarios import Scenario, ScenarioRef, load_scenario
from ..scenarios.schema import MAX_EVALUATION_EPISODES, MAX_EVALUATION_SEED, MetricName
from .bootstrap import keyed_rng, paired_difference_ci, summarise
from .errors import EvaluationError
from .logs import write_step_log
from .metrics import (
    DRIFT_SMOOTH,
    SHOWN_COLUMNS,
    ctr_around_events,
    episode_table,
    ndcg_at_k,
    position_clicks,
    precision_at_k,
    recall_at_k,
)
from .rollout import StepArrays, run_policy

__all__ = [
    "AGGREGATE_METRICS",
    "EPISODE_METRICS",
    "METRICS",
    "EvaluationResult",
    "PolicyInfo",
    "check_episodes",
    "evaluate",
    "shown_items",
]

#: Metrics with one value per episode (intervals: bootstrap over episodes).
EPISODE_METRICS: tuple[str, ...] = (
    "return",
    "ctr",
    "mean_rating",
    "mean_dwell",
    "session_length",
    "churned",
    "long_tail_share",
    "novelty",
    "intra_list_diversity",
    "new_user_return_k",
    "new_user_ctr_k",
    "new_item_share",
    "precision_at_k",
    "recall_at_k",
    "ndcg_at_k",
)
#: Metrics with one value per policy (intervals: bootstrap resamples of the policy's episodes).
AGGREGATE_METRICS: tuple[str, ...] = (
    "catalog_coverage",
    "gini",
    "ctr_before_drift",
    "ctr_after_drift",
    "recovery_steps",
)
#: The aggregates of drift events: each policy pools the events of its own sessions that were
#: still going when the taste changed, so the two sides of a comparison can rest on different
#: episodes; their ``n_pairs`` counts the episodes with an event under either policy.
DRIFT_METRICS: tuple[str, ...] = ("ctr_before_drift", "ctr_after_drift", "recovery_steps")
#: Every metric, in the order the tables list them (after the scenario's own metrics).
METRICS: tuple[str, ...] = get_args(MetricName)


@dataclass(frozen=True)
class PolicyInfo:
    """What the report says about one evaluated policy."""

    label: str
    spec: str
    privileged: bool = False
    run_dir: Path | None = None
    # Seeds of the users a trained policy learned from (its run's train.json), when known.
    training_seeds: tuple[int, ...] | None = None
    # Why the training seeds are not known although the run folder has a train.json.
    training_seeds_error: str | None = None
    # The training steps behind a saved model (SB3's ``num_timesteps``: a checkpoint's, not the
    # whole run's), which cut its learning curve; None for other policies.
    trained_steps: int | None = None
    # For a run's best_model.zip: the seeds of the validation users it was chosen on (train.json).
    validation_seeds: tuple[int, ...] | None = None


@dataclass
class EvaluationResult:
    """Everything :func:`evaluate` produced.

    Attributes:
        scenario: the resolved scenario.
        world: its world (catalog, embeddings, popularity).
        steps: the step log, one row per step of every policy (columns of ``rollout.STEP_FIELDS``).
        arrays: per-step candidate arrays aligned with ``steps`` (shapes (n_steps, K)).
        episodes: one row per (policy, seed, episode) with every episode-level metric.
        summary: one row per policy: ``policy, privileged, n`` then ``<metric>, <metric>_low,
            <metric>_high`` for every metric of :data:`METRICS`.
        comparison: one row per (policy, metric) for every non-reference policy: ``policy,
            reference, metric, difference, low, high, n_pairs`` (policy minus reference, paired
            over ``n_pairs`` episodes).
        policies: label -> :class:`PolicyInfo`, in evaluation order.
        reference: the reference policy's label.
        metric_order: metrics in report order (the scenario's ``evaluation.metrics`` first).
        settings: seeds, episodes and metric parameters used.
        files: files written (empty without ``out``).
        warnings: one line each, shown in the reports and by ``lmrecsim evaluate`` (a trained
            policy evaluated on seeds it was trained on).
        shown: one row per item shown (:func:`shown_items`; every item of a slate), the rows the
            item metrics count; built from ``steps`` and ``arrays`` when not given.
    """

    scenario: Scenario
    world: World
    steps: pd.DataFrame
    arrays: StepArrays
    episodes: pd.DataFrame
    summary: pd.DataFrame
    comparison: pd.DataFrame
    policies: dict[str, PolicyInfo]
    reference: str
    metric_order: list[str]
    settings: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    shown: pd.DataFrame | None = None

    def gap_shares(self) -> pd.DataFrame | None:
        """The share of the random-to-oracle gap each other policy closes, or None unless both
        ``random`` and ``oracle`` were evaluated.

        One row per policy (evaluation order): ``policy, gap_closed, low, high``, where
        ``gap_closed`` is (policy - random) / (oracle - random) of the mean returns (nan when the
        oracle does not beat random) and ``low``/``high`` its paired bootstrap interval over the
        (seed, episode) pairs, with the evaluation's resamples and coverage.
        """
        from .bootstrap import gap_ci, gap_fraction, keyed_rng

        if not {"random", "oracle"} <= set(self.policies):
            return None
        returns = self.episodes.pivot_table(
            index=["seed", "episode"], columns="policy", values="return"
        ).dropna()
        random, oracle = returns["random"].to_numpy(), returns["oracle"].to_numpy()
        s = self.settings
        rows = []
        for label in self.policies:
            if label in ("random", "oracle"):
                continue
            agent = returns[label].to_numpy()
            rng = keyed_rng(s["bootstrap_seed"], "gap", label)
            lo, hi = gap_ci(agent, random, oracle, rng, s["n_resamples"], s["confidence"])
            rows.append((label, gap_fraction(agent, random, oracle), lo, hi))
        return pd.DataFrame(rows, columns=["policy", "gap_closed", "low", "high"])

    def _shown_items(self) -> pd.DataFrame:
        """:attr:`shown`, built from ``steps`` and ``arrays`` on first use."""
        if self.shown is None:
            self.shown = shown_items(self.steps, self.arrays, self.world)
        return self.shown

    def position_clicks(self) -> pd.DataFrame | None:
        """Clicks by slate position (:func:`~lmrecsim.evaluation.metrics.position_clicks`: per
        policy and position, ``shown``, ``clicks``, ``ctr`` and ``click_share``), or None on a
        single-item scenario."""
        size = self.scenario.candidates.slate_size
        if size <= 1:
            return None
        return position_clicks(self._shown_items(), self.steps, size)

    def exposure(self, label: str) -> np.ndarray:
        """(n_items,) how often each catalog item was recommended (shown) by ``label``: every item
        of a slate counts; a step (or slate position) whose slot was masked or repeated showed
        nothing and counts for no item.

        Raises:
            EvaluationError: a label this result did not evaluate (all zeros would read as a
                policy that recommended nothing).
        """
        if label not in self.policies:
            raise EvaluationError(
                f"exposure: no policy {label!r} in this evaluation (expected one of "
                f"{', '.join(map(repr, self.policies))})"
            )
        shown = self._shown_items()
        idx = shown.loc[shown["policy"] == label, "item_index"].to_numpy(np.int64)
        return np.bincount(idx, minlength=self.world.n_items)


def shown_items(steps: pd.DataFrame, arrays: StepArrays, world: World) -> pd.DataFrame:
    """One row per item shown, in step order then slate position (columns of
    :data:`lmrecsim.evaluation.metrics.SHOWN_COLUMNS` and ``position``).

    A single-item step shows its item unless its slot was masked; a slate step shows the item of
    every position whose slot was valid and not repeated (``arrays.slate_items`` >= 0). Popularity
    rank and newness are the item's (``world.pop_rank``, ``world.arrival > 0``), as in the info.
    """
    items = arrays.stacked()["slate_items"]
    if items.size == 0:
        empty = pd.DataFrame({c: steps[c].iloc[:0] for c in ("policy", "seed", "episode", "step")})
        r = np.zeros(0, dtype=np.int64)
        return empty.assign(
            item_index=r, popularity_rank=r, is_new_item=np.zeros(0, dtype=bool), position=r
        )[[*SHOWN_COLUMNS, "position"]]
    items = items.astype(np.int64)
    if items.shape[0] != len(steps):
        raise EvaluationError(
            f"shown_items: steps has {len(steps)} rows but arrays hold {items.shape[0]} slate rows "
            "(expected aligned rows)"
        )
    row, position = np.nonzero(items >= 0)
    idx = items[row, position]
    out = {c: steps[c].to_numpy()[row] for c in ("policy", "seed", "episode", "step")}
    out["item_index"] = idx
    out["popularity_rank"] = np.asarray(world.pop_rank)[idx].astype(np.int64)
    out["is_new_item"] = np.asarray(world.arrival)[idx] > 0
    out["position"] = position.astype(np.int64)
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------------------------
# Policies
# ----------------------------------------------------------------------------------------------


def refuse_shadowed_baseline(spec: str, label: str) -> None:
    """Raise EvaluationError for a spec whose label is a baseline's name but whose policy is not
    that baseline (``random=greedy``): every table, summary line and reference would name the
    wrong policy."""
    from ..agents.baselines import BASELINES

    text = spec.strip()
    body = text.partition("=")[2].strip() if "=" in text.partition(":")[0] else text
    if label in BASELINES and body != label:
        raise EvaluationError(
            f"policy {spec!r}: label {label!r} is the name of a baseline (expected another "
            "label, or the baseline itself)"
        )


def _resolve_policies(
    policies: Sequence[str | tuple[str, Any]] | Mapping[str, Any],
    world: World,
    reference: str,
) -> list[tuple[PolicyInfo, Any]]:
    from ..agents.baselines import BASELINES, SB3Policy, _check_spaces, make_policy, sb3_algo_name

    items: list[tuple[str, Any]] | list[str | tuple[str, Any]]
    if isinstance(policies, Mapping):
        # A spec string under a label is that label's LABEL=SPEC ({"mine": "ppo:runs/a"}).
        items = [
            f"{label}={policy}"
            if isinstance(label, str) and isinstance(policy, str)
            else (label, policy)
            for label, policy in policies.items()
        ]
    else:
        items = list(policies)
    if not items:
        raise EvaluationError("policies: empty (expected at least one policy spec)")
    out: list[tuple[PolicyInfo, Any]] = []
    for item in items:
        if isinstance(item, str):
            label, policy = make_policy(item, world)
            spec = item
            refuse_shadowed_baseline(item, label)
        else:
            if not (
                isinstance(item, tuple)
                and len(item) == 2
                and isinstance(item[0], str)
                and callable(getattr(item[1], "predict", None))
            ):
                raise EvaluationError(
                    f"policies: {item!r} is invalid (expected a spec string or a (label, policy) "
                    "pair whose policy has the SB3 predict method)"
                )
            label, policy = item
            if not label.strip() or not label.isprintable():
                # A blank row in every table, or a label that splits the tables and messages.
                raise EvaluationError(
                    f"policies: label {label!r} is invalid (expected a non-blank label without "
                    "control characters, as a LABEL=SPEC label)"
                )
            spec = type(policy).__name__
            algo = sb3_algo_name(policy)
            if algo is not None:
                # A model passed as it is: behind SB3Policy it is checked against the scenario
                # and acts with the action mask (MaskablePPO's predict ignores it unless told).
                _check_spaces(policy, world, repr(label))
                policy = SB3Policy(policy, algo)
            where = getattr(policy, "model_path", None) or getattr(policy, "run_dir", None)
            if isinstance(policy, SB3Policy) and where is not None:
                spec = f"{policy.algo}:{where}"  # as the command line would name that model
            if label in BASELINES and type(policy) is not type(make_policy(label, world)[1]):
                # As for `random=greedy`: the label would stand for another policy in every table
                # (the reference "random" included).
                raise EvaluationError(
                    f"policies: label {label!r} is the name of a baseline, but its policy is a "
                    f"{spec} (expected another label, or that baseline itself)"
                )
        run_dir = policy.run_dir if isinstance(policy, SB3Policy) else None
        privileged = bool(getattr(policy, "privileged", False))
        seeds, seeds_error, val_seeds = None, None, None
        if run_dir is not None:
            from ..agents.train import training_seeds, validation_seeds

            try:
                seeds = training_seeds(run_dir)
            except ValueError as exc:
                seeds_error = str(exc)
            # Only the model validation chose was chosen on those users.
            if getattr(policy, "model_path", None) is not None and policy.model_path.name == (
                "best_model.zip"
            ):
                val_seeds = validation_seeds(run_dir)
        trained = (
            int(policy.model.num_timesteps)
            if isinstance(policy, SB3Policy) and getattr(policy.model, "num_timesteps", 0)
            else None
        )
        out.append(
            (
                PolicyInfo(
                    label, spec, privileged, run_dir, seeds, seeds_error, trained, val_seeds
                ),
                policy,
            )
        )
    labels = [info.label for info, _ in out]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise EvaluationError(
            f"policies: label {dupes[0]!r} is used twice (expected unique labels; use LABEL=SPEC)"
        )
    if reference not in labels:
        if reference in BASELINES:
            label, policy = make_policy(reference, world)
            out.append(
                (PolicyInfo(label, reference, bool(getattr(policy, "privileged", False))), policy)
            )
        else:
            raise EvaluationError(
                f"reference: {reference!r} is not one of the evaluated policies "
                f"({', '.join(labels)}) nor a baseline name"
            )
    return out


#: Below this many episodes per policy the evaluation warns that its intervals are too narrow.
FEW_EPISODES = 10


def sample_warnings(n_episodes: int) -> list[str]:
    """A line when each policy ran fewer than :data:`FEW_EPISODES` episodes: the percentile
    bootstrap's intervals are then too narrow, and with one episode they have no width at all."""
    if n_episodes >= FEW_EPISODES:
        return []
    if n_episodes < 2:
        return [
            f"each policy ran {n_episodes} episode, so every interval has zero width and says "
            "nothing about uncertainty (expected at least 2 episodes; intervals need many more "
            "to be tight)"
        ]
    # Measured by `python -m benchmarks.bootstrap_coverage` (normal data; skewed data is worse).
    return [
        f"each policy ran {n_episodes} episodes, and bootstrap intervals from fewer than "
        f"{FEW_EPISODES} are too narrow (a nominal 95% covers a mean about 73% of the time at 3 "
        "episodes, less below, 90% at 10); run more episodes for intervals that hold"
    ]


def event_episodes(steps: pd.DataFrame) -> dict[str, set[tuple[int, int]]]:
    """Per policy, the ``(seed, episode)`` pairs with a drift event (what the drift metrics rest
    on)."""
    events = steps.loc[steps["drift_event"].astype(bool), ["policy", "seed", "episode"]]
    return {
        str(label): set(zip(part["seed"], part["episode"], strict=True))
        for label, part in events.groupby("policy", sort=False)
    }


def metric_counts(
    metric: str, episodes: pd.DataFrame, events: Mapping[str, set[tuple[int, int]]]
) -> dict[str, int] | None:
    """Per policy, the episodes ``metric`` rests on: those with a value (episode metrics), or
    with a drift event (drift metrics; ``events`` is :func:`event_episodes` of the steps); None
    for the other aggregates (every episode)."""
    if metric in DRIFT_METRICS:
        return {label: len(keys) for label, keys in events.items()}
    if metric in EPISODE_METRICS and metric in episodes.columns:
        return {str(k): int(v) for k, v in episodes.groupby("policy")[metric].count().items()}
    return None


def subset_warnings(
    episodes: pd.DataFrame, steps: pd.DataFrame, metrics: Sequence[str], n_episodes: int
) -> list[str]:
    """A line for each of the scenario's own ``metrics`` that some policy has in fewer than
    :data:`FEW_EPISODES` of its ``n_episodes`` episodes (a new-user metric needs a new user, say),
    so its interval rests on that few (``n_episodes`` itself below the floor has
    :func:`sample_warnings`' line)."""
    if n_episodes < FEW_EPISODES:
        return []
    out = []
    events = event_episodes(steps)
    for metric in metrics:
        counts = metric_counts(metric, episodes, events)
        few = {k: v for k, v in (counts or {}).items() if 0 < v < FEW_EPISODES}
        if not few:
            continue
        label = min(few, key=few.__getitem__)
        count = few[label]
        out.append(
            f"{metric} rests on {count} of {label}'s {n_episodes} episodes (the ones that have "
            f"it), and bootstrap intervals from fewer than {FEW_EPISODES} are too narrow; run "
            "more episodes for intervals that hold"
        )
    return out


def _overlap(used: Sequence[int] | None, seeds: Sequence[int]) -> tuple[str, int, str] | None:
    """``(lo-hi of used, how many evaluated seeds are used, the first five)``, or None."""
    overlap = sorted(set(used or ()) & set(seeds))
    if not overlap:
        return None
    shown = ", ".join(map(str, overlap[:5])) + (", ..." if len(overlap) > 5 else "")
    return f"{min(used)}-{max(used)}", len(overlap), shown


def scenario_warnings(
    infos: Sequence[PolicyInfo], scenario: Scenario, *, log: str | os.PathLike[str] | None = None
) -> list[str]:
    """A line for each trained policy whose run (its ``train.json``) trained on a scenario of
    another name than the evaluated one: its figures then describe users it was not trained for,
    which is worth doing on purpose (a default model on cold_start) and a slip otherwise (a
    forgotten ``--scenario``). With ``log``, the scenario is that step log's (``replay``,
    ``ope``), which the command cannot change."""
    from ..agents.build import trained_scenario

    out = []
    for info in infos:
        # None for an unreadable train.json: seed_warnings reports it.
        trained_on = None if info.run_dir is None else trained_scenario(info.run_dir)
        if trained_on is not None and trained_on != scenario.name:
            assert info.run_dir is not None
            trained = (
                f"{info.label} was trained on scenario {trained_on!r} ({info.run_dir}/train.json)"
            )
            if log is not None:
                out.append(
                    f"{trained} and runs on the scenario of {log}, {scenario.name!r} (expected a "
                    "model trained on that scenario, unless on purpose)"
                )
                continue
            own = info.run_dir / "scenario.yaml"
            suggest = f"{own}, or a scenario of that name" if own.is_file() else repr(trained_on)
            out.append(
                f"{trained} and is evaluated on {scenario.name!r} (expected --scenario {suggest}, "
                "unless on purpose)"
            )
    return out


def seed_warnings(infos: Sequence[PolicyInfo], seeds: Sequence[int]) -> list[str]:
    """A line for each trained policy whose training (or validation) seeds meet the evaluation
    ``seeds``.

    A seed names a sequence of users, so a policy evaluated on a seed it was trained on is
    scored on users it learned from.
    """
    out = []
    for info in infos:
        val = _overlap(info.validation_seeds, seeds)
        if val is not None:
            span, n, shown = val
            out.append(
                f"{info.label} is the best_model.zip its run chose on validation seeds {span} "
                f"({info.run_dir}/train.json), and {n} of them are evaluated ({shown}): a model "
                "chosen on users scores them better than new ones (expected evaluation seeds "
                "apart from the validation seeds)"
            )
        if info.training_seeds_error is not None:
            out.append(f"{info.label}: training seeds unknown: {info.training_seeds_error}")
            continue
        trained = _overlap(info.training_seeds, seeds)
        if trained is not None:
            span, n, shown = trained
            out.append(
                f"{info.label} was trained on seeds {span} ({info.run_dir}/train.json) and is "
                f"evaluated on {n} of them ({shown}): its figures include users it "
                "trained on (expected evaluation seeds disjoint from the training seeds)"
            )
    return out


# ----------------------------------------------------------------------------------------------
# Metric tables
# ----------------------------------------------------------------------------------------------


def _novelty_popularity(world: World) -> np.ndarray:
    # New items have a prior of 0 (infinite surprisal); give them the response model's floor.
    floor = world.scenario.response.popularity_floor / world.n_items
    return np.maximum(world.popularity, floor)


# The counter-based stream of the tie-breaking noise (any constant; the env's streams are others).
_TIE_STREAM = 901


def tie_noise(steps: pd.DataFrame, width: int, seed: int) -> np.ndarray:
    """(n_steps, width) uniforms in [0, 1e-9) that break exact score ties in ranking metrics.

    Each row's noise is a function of (``seed``, its evaluation seed, episode and step) alone:
    every policy meets the same noise on the same step, and a policy's figures do not depend on
    which other policies were evaluated with it (one generator over all policies' stacked steps
    made them depend on the policies before it).
    """
    from ..envs import rng as crng

    pairs = steps[["seed", "episode"]].to_numpy(dtype=np.int64)
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    keys = np.array(
        [
            np.random.SeedSequence([seed, 1, int(s), int(e)]).generate_state(1, np.uint64)[0]
            for s, e in unique
        ],
        dtype=np.uint64,
    )
    step = steps["step"].to_numpy(dtype=np.int64)
    return crng.uniform(keys[inverse.ravel()], step, _TIE_STREAM, width) * 1e-9


def _ranking_columns(
    steps: pd.DataFrame,
    arrays: StepArrays,
    *,
    k: int,
    n_relevant: int,
    seed: int,
) -> pd.DataFrame:
    """Per-step precision/recall/NDCG of the policy's scores against the hidden affinities."""
    stacked = arrays.stacked()
    scores = stacked["scores"].astype(np.float64)
    truth = stacked["candidate_affinity"].astype(np.float64)
    mask = stacked["mask"].astype(bool)
    if scores.size == 0:
        return pd.DataFrame({c: [] for c in ("precision_at_k", "recall_at_k", "ndcg_at_k")})
    # Exact ties (a uniform policy, equal popularities) are broken at random rather than by slot:
    # slots are ordered by candidate source, so a slot-order tie rule would favour some sources.
    scores = scores + tie_noise(steps, scores.shape[1], seed)
    scores = np.where(mask, scores, np.nan_to_num(scores, neginf=-1e300))
    truth = np.where(mask, truth, 0.0)
    return pd.DataFrame(
        {
            "precision_at_k": precision_at_k(scores, truth, mask, k, n_relevant=n_relevant),
            "recall_at_k": recall_at_k(scores, truth, mask, k, n_relevant=n_relevant),
            "ndcg_at_k": ndcg_at_k(scores, truth, mask, k),
        },
        index=steps.index,
    )


def _episode_frame(
    steps: pd.DataFrame,
    arrays: StepArrays,
    world: World,
    settings: dict[str, Any],
    shown: pd.DataFrame,
) -> pd.DataFrame:
    table = episode_table(
        steps,
        new_user_k=settings["new_user_k"],
        head_rank=world.head_rank,
        popularity=_novelty_popularity(world),
        item_embeddings=world.item_emb,
        shown=shown,
    )
    ranking = _ranking_columns(
        steps,
        arrays,
        k=settings["ranking_k"],
        n_relevant=settings["ranking_relevant"],
        seed=settings["bootstrap_seed"],
    )
    keys = ["policy", "seed", "episode"]
    per_episode = pd.concat([steps[keys], ranking], axis=1).groupby(keys, sort=True).mean()
    table = table.merge(per_episode.reset_index(), on=keys, how="left")
    table["churned"] = table["churned"].astype(float)
    return table


@dataclass
class _AggregateInputs:
    """Per-episode counts from which the per-policy aggregates are recomputed on resamples.

    Shapes: E episodes (sorted by seed, episode), n items, O = 2 * window + 1 drift offsets.
    """

    exposure: np.ndarray  # (E, m) recommendations of each of the m items ever shown, per episode
    n_items: int  # catalog size n (the other n - m items were never shown: zeros)
    clicks: np.ndarray | None  # (E, O) clicks at each offset around drift events
    counts: np.ndarray | None  # (E, O) steps at each offset around drift events


def _aggregate_inputs(
    steps: pd.DataFrame,
    episode_keys: pd.DataFrame,
    n_items: int,
    window: int,
    shown: pd.DataFrame,
) -> _AggregateInputs:
    """``shown``: the policy's rows of :func:`shown_items` (every item shown, slates included)."""
    code = pd.MultiIndex.from_frame(episode_keys[["seed", "episode"]])
    row = code.get_indexer(pd.MultiIndex.from_frame(steps[["seed", "episode"]]))
    n_ep = len(code)
    shown_row = code.get_indexer(pd.MultiIndex.from_frame(shown[["seed", "episode"]]))
    # Only the items ever shown get a column: a catalog of a million items would otherwise cost
    # a million columns per resample, however few steps ran.
    items, column = np.unique(shown["item_index"].to_numpy(np.int64), return_inverse=True)
    exposure = np.zeros((n_ep, items.size))
    np.add.at(exposure, (shown_row, column.ravel()), 1.0)
    if not steps["drift_event"].astype(bool).any():
        return _AggregateInputs(exposure, n_items, None, None)
    # ctr_around_events groups by the 'policy' column: give every episode its own "policy".
    per_episode = steps.assign(policy=row)
    curve = ctr_around_events(per_episode, window)
    n_off = 2 * window + 1
    counts = np.zeros((n_ep, n_off))
    clicks = np.zeros((n_ep, n_off))
    ep = curve["policy"].to_numpy(np.int64)
    off = curve["offset"].to_numpy(np.int64) + window
    counts[ep, off] = curve["n"].to_numpy(float)
    clicks[ep, off] = np.nan_to_num(curve["ctr"].to_numpy(float)) * counts[ep, off]
    return _AggregateInputs(exposure, n_items, clicks, counts)


def _gini_rows(exposure: np.ndarray, n_items: int) -> np.ndarray:
    """Gini of each row of (B, m) exposure counts of m of the ``n_items`` catalog items, the
    others never shown (formula of ``metrics.gini``: the n - m zeros take the lowest ranks and
    add nothing, so the m counts sorted ascending take ranks n - m + 1 .. n)."""
    x = np.sort(exposure, axis=1)
    n, m = n_items, x.shape[1]
    total = x.sum(axis=1)
    weights = 2.0 * np.arange(n - m + 1, n + 1) - n - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, (x @ weights) / (n * total), np.nan)


# Bytes of resampled exposure counts held at once (resamples are processed in blocks).
_AGGREGATE_BLOCK_BYTES = 32 * 2**20


def _aggregate_stats(
    inputs: _AggregateInputs, weights: np.ndarray, window: int, tolerance: float, smooth: int
) -> dict[str, np.ndarray]:
    """Aggregate metrics for each row of episode weights (B, E) -> name: (B,)."""
    b = weights.shape[0]
    coverage, gini = np.empty(b), np.empty(b)
    block = max(1, _AGGREGATE_BLOCK_BYTES // (8 * max(inputs.exposure.shape[1], 1)))
    for start in range(0, b, block):
        part = weights[start : start + block] @ inputs.exposure
        coverage[start : start + block] = (part > 0).sum(axis=1) / inputs.n_items
        gini[start : start + block] = _gini_rows(part, inputs.n_items)
    out = {"catalog_coverage": coverage, "gini": gini}
    if inputs.clicks is None or inputs.counts is None:
        for name in ("ctr_before_drift", "ctr_after_drift", "recovery_steps"):
            out[name] = np.full(b, np.nan)
        return out
    clicks, counts = weights @ inputs.clicks, weights @ inputs.counts
    before, after = slice(0, window), slice(window, 2 * window + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ctr_before = clicks[:, before].sum(1) / counts[:, before].sum(1)
        ctr_after = clicks[:, after].sum(1) / counts[:, after].sum(1)
        post = clicks[:, after] / counts[:, after]
    # Same rule as metrics.drift_recovery: first offset whose forward mean of `smooth` offsets is
    # back within `tolerance` of the pre-event click-through.
    windows = np.lib.stride_tricks.sliding_window_view(post, smooth, axis=1).mean(axis=2)
    ok = windows >= (ctr_before - tolerance)[:, None]
    first = np.argmax(ok, axis=1).astype(float)
    # Not back within the window: censored at window + 1 (as metrics.drift_recovery).
    recovery = np.where(
        np.isfinite(ctr_before), np.where(ok.any(axis=1), first, window + 1.0), np.nan
    )
    out.update(ctr_before_drift=ctr_before, ctr_after_drift=ctr_after, recovery_steps=recovery)
    return out


def _resample_weights(n_episodes: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(B, E) how often each episode is drawn in each bootstrap resample."""
    idx = rng.integers(0, n_episodes, size=(n_resamples, n_episodes))
    weights = np.zeros((n_resamples, n_episodes))
    np.add.at(weights, (np.arange(n_resamples)[:, None], idx), 1.0)
    return weights


def _interval(
    values: np.ndarray, estimate: float, confidence: float, bounds: tuple[float, float]
) -> tuple[float, float]:
    """Percentile interval of bootstrap values, re-centred on the full-sample estimate.

    A resample repeats some episodes and leaves others out, which by itself lowers coverage and
    raises Gini (fewer distinct sessions); the spread of the resamples measures the sampling
    variability, so the interval is that spread placed around the estimate:
    ``estimate + quantiles(values - mean(values))``. The interval always contains the estimate
    (resamples with no spread left rounding errors of 1e-16 that could put both bounds beside it)
    and stays within ``bounds``, the range the quantity can take (re-centring could reach a
    recovery of -1 steps).
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0 or not np.isfinite(estimate):
        return float("nan"), float("nan")
    alpha = 1.0 - confidence
    low, high = np.quantile(finite - finite.mean(), [alpha / 2.0, 1.0 - alpha / 2.0])
    bottom, top = bounds
    low = min(max(estimate + min(low, 0.0), bottom), top)
    high = min(max(estimate + max(high, 0.0), bottom), top)
    return float(low), float(high)


#: Aggregates whose intervals come from a delete-a-group jackknife instead of the bootstrap. A
#: bootstrap resample repeats some sessions and omits others, and for the exposure Gini its spread
#: is too narrow (a nominal 95% interval covered 84-90% on synthetic catalogs of known Gini,
#: 20-60 episodes); the jackknife's covered 94-96%.
JACKKNIFE_METRICS: tuple[str, ...] = ("gini",)
# Most groups of the delete-a-group jackknife (one episode per group up to this many episodes).
_JACKKNIFE_GROUPS = 200


def _jackknife_weights(n_episodes: int, n_groups: int = _JACKKNIFE_GROUPS) -> np.ndarray:
    """(G, E) episode weights of the delete-a-group jackknife, ``G = min(E, n_groups)``: row g
    leaves out the episodes ``i`` with ``i % G == g`` (one episode each when ``E <= n_groups``)."""
    g = max(min(n_episodes, n_groups), 1)
    member = (np.arange(n_episodes)[None, :] % g) == np.arange(g)[:, None]
    return (~member).astype(np.float64)


def _jackknife_interval(
    values: np.ndarray, estimate: float, confidence: float, bounds: tuple[float, float]
) -> tuple[float, float]:
    """Normal-theory interval from delete-a-group jackknife values (one per left-out group).

    With G finite values ``v_g`` of mean ``m``: ``se = sqrt((G - 1) / G * sum_g (v_g - m)^2)`` and
    the interval is ``estimate -+ t * se``, t the ``(1 + confidence) / 2`` quantile of Student's t
    with G - 1 degrees of freedom, clipped to ``bounds``. Fewer than two groups: zero width.
    """
    from scipy.stats import t as student_t

    if not np.isfinite(estimate):
        return float("nan"), float("nan")
    finite = values[np.isfinite(values)]
    g = finite.size
    bottom, top = bounds
    if g < 2:
        return float(estimate), float(estimate)
    se = float(np.sqrt((g - 1) / g * np.sum((finite - finite.mean()) ** 2)))
    half = float(student_t.ppf(0.5 + confidence / 2.0, g - 1)) * se
    low = min(max(estimate - half, bottom), top)
    high = min(max(estimate + half, bottom), top)
    return float(min(low, estimate)), float(max(high, estimate))


def _tables(
    steps: pd.DataFrame,
    episodes: pd.DataFrame,
    infos: list[PolicyInfo],
    world: World,
    reference: str,
    settings: dict[str, Any],
    shown: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    labels = [info.label for info in infos]
    n_res, conf = settings["n_resamples"], settings["confidence"]
    window, tol, smooth = (
        settings["drift_window"],
        settings["drift_tolerance"],
        settings["drift_smooth"],
    )
    seed_seq = np.random.SeedSequence([settings["bootstrap_seed"], 2])
    s_epi, s_agg, s_cmp = seed_seq.spawn(3)

    summary = summarise(
        episodes,
        list(EPISODE_METRICS),
        by="policy",
        rng=np.random.default_rng(s_epi),
        n_resamples=n_res,
        confidence=conf,
    )
    summary = summary.set_index("policy").loc[labels].reset_index()

    keys = episodes[episodes["policy"] == labels[0]][["seed", "episode"]].reset_index(drop=True)
    n_ep = len(keys)
    weights = _resample_weights(n_ep, n_res, np.random.default_rng(s_agg))
    jack_weights = _jackknife_weights(n_ep)
    ones = np.ones((1, n_ep))
    agg_boot: dict[str, dict[str, np.ndarray]] = {}
    for label in labels:
        part = steps[steps["policy"] == label]
        part_shown = shown[shown["policy"] == label]
        inputs = _aggregate_inputs(part, keys, world.n_items, window, part_shown)
        point = _aggregate_stats(inputs, ones, window, tol, smooth)
        boot = _aggregate_stats(inputs, weights, window, tol, smooth)
        jack = _aggregate_stats(inputs, jack_weights, window, tol, smooth)
        agg_boot[label] = {
            **{f"point:{k}": v for k, v in point.items()},
            **{f"jack:{k}": jack[k] for k in JACKKNIFE_METRICS},
            **boot,
        }
    # Each aggregate's natural range, which its intervals never leave.
    ranges = {
        "catalog_coverage": (0.0, 1.0),
        "gini": (0.0, 1.0),
        "ctr_before_drift": (0.0, 1.0),
        "ctr_after_drift": (0.0, 1.0),
        "recovery_steps": (0.0, float(window + 1)),
    }
    for name in AGGREGATE_METRICS:
        est, low, high = [], [], []
        for label in labels:
            point = float(agg_boot[label][f"point:{name}"][0])
            est.append(point)
            if name in JACKKNIFE_METRICS:
                lo, hi = _jackknife_interval(
                    agg_boot[label][f"jack:{name}"], point, conf, ranges[name]
                )
            else:
                lo, hi = _interval(agg_boot[label][name], point, conf, ranges[name])
            low.append(lo)
            high.append(hi)
        summary[name], summary[f"{name}_low"], summary[f"{name}_high"] = est, low, high
    summary.insert(1, "privileged", [info.privileged for info in infos])
    columns = ["policy", "privileged", "n"] + [
        f"{m}{s}" for m in METRICS for s in ("", "_low", "_high")
    ]
    summary = summary[columns]

    rows = []
    ref = episodes[episodes["policy"] == reference].sort_values(["seed", "episode"])
    with_event = event_episodes(steps)
    # Each (policy, metric) comparison draws from its own keyed generator (see keyed_rng).
    cmp_base = int(np.random.default_rng(s_cmp).integers(2**63))
    for label in labels:
        if label == reference:
            continue
        mine = episodes[episodes["policy"] == label].sort_values(["seed", "episode"])
        for metric in METRICS:
            if metric in AGGREGATE_METRICS:
                diff = agg_boot[label][metric] - agg_boot[reference][metric]
                est = float(
                    agg_boot[label][f"point:{metric}"][0]
                    - agg_boot[reference][f"point:{metric}"][0]
                )
                # A difference of two values in [bottom, top] lies in [bottom - top, top - bottom].
                bottom, top = ranges[metric]
                if metric in JACKKNIFE_METRICS:
                    # The same episodes left out of both policies: a paired jackknife.
                    jack_diff = (
                        agg_boot[label][f"jack:{metric}"] - agg_boot[reference][f"jack:{metric}"]
                    )
                    low, high = _jackknife_interval(
                        jack_diff, est, conf, (bottom - top, top - bottom)
                    )
                else:
                    low, high = _interval(diff, est, conf, (bottom - top, top - bottom))
                # Without a value on both sides there is no pair (no drift event: no drift metric).
                if not np.isfinite(est):
                    n_pairs = 0
                elif metric in DRIFT_METRICS:
                    # Each side pools its own events: the episodes with an event under either
                    # policy are the ones the difference rests on.
                    either = with_event.get(label, set()) | with_event.get(reference, set())
                    n_pairs = len(either)
                else:
                    n_pairs = len(mine)
            else:
                a, b = mine[metric].to_numpy(float), ref[metric].to_numpy(float)
                # A pair counts only where both episodes have the metric (mean_rating needs a
                # click in each), so the difference can differ from the summary's two means.
                n_pairs = int((np.isfinite(a) & np.isfinite(b)).sum())
                est, low, high = paired_difference_ci(
                    a,
                    b,
                    n_resamples=n_res,
                    confidence=conf,
                    rng=keyed_rng(cmp_base, label, metric),
                )
            rows.append(
                {
                    "policy": label,
                    "reference": reference,
                    "metric": metric,
                    "difference": est,
                    "low": low,
                    "high": high,
                    "n_pairs": n_pairs,
                }
            )
    comparison = pd.DataFrame(
        rows, columns=["policy", "reference", "metric", "difference", "low", "high", "n_pairs"]
    )
    return summary, comparison


def _metric_order(scenario: Scenario) -> list[str]:
    first = [m for m in scenario.evaluation.metrics if m in METRICS]
    return first + [m for m in METRICS if m not in first]


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------


def _is_integer(value: Any) -> bool:
    """An int or a numpy integer, not a bool (``True`` is not a count) nor an integral float."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    """An int or a float (Python's or numpy's), not a bool."""
    return _is_integer(value) or isinstance(value, (float, np.floating))


def _shown(value: Any) -> str:
    """A value as an error message shows it: numbers plainly (``5``, not ``np.int64(5)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def check_episodes(episodes: int) -> None:
    """Refuse an episode count per seed that is not an integer in 1 .. ``MAX_EVALUATION_EPISODES``.

    Raises:
        EvaluationError: one line naming ``episodes``, the value and the bounds.
    """
    if not _is_integer(episodes) or not 1 <= int(episodes) <= MAX_EVALUATION_EPISODES:
        raise EvaluationError(
            f"episodes: {_shown(episodes)} (expected an integer >= 1 and "
            f"<= {MAX_EVALUATION_EPISODES})"
        )


def _check_seeds(seeds: Any) -> list[int]:
    """Evaluation seeds (any iterable of integers: a list, a range, a numpy array) as a list of
    distinct ints in 0 .. ``MAX_EVALUATION_SEED``.

    Raises:
        EvaluationError: one line naming ``seeds``: not a collection of integers (a bare int, a
            string, a float seed that would have been truncated), empty, repeated or out of range.
    """
    if isinstance(seeds, (str, bytes, Mapping)) or not isinstance(seeds, Iterable):
        raise EvaluationError(
            f"seeds: {seeds!r} is invalid (expected a list of integer seeds, such as [1000])"
        )
    given = list(seeds)
    bad = [s for s in given if not _is_integer(s)]
    if bad:
        raise EvaluationError(f"seeds: {_shown(bad[0])} is invalid (expected integer seeds)")
    seed_list = [int(s) for s in given]
    if not seed_list:
        raise EvaluationError("seeds: empty (expected at least one seed)")
    if len(set(seed_list)) != len(seed_list):
        raise EvaluationError(f"seeds: {seed_list} repeats a seed (expected distinct seeds)")
    out_of_range = [s for s in seed_list if not 0 <= s <= MAX_EVALUATION_SEED]
    if out_of_range:  # before the evaluation: the step log's int64 seed column refuses it after
        raise EvaluationError(
            f"seeds: {out_of_range[0]} is invalid (expected integers >= 0 and "
            f"<= {MAX_EVALUATION_SEED})"
        )
    return seed_list


def _check_metric_settings(settings: Mapping[str, Any]) -> None:
    """Refuse metric and interval settings the tables cannot use, before any rollout.

    They used to be checked by the metric functions after every policy had run (a one-line error
    naming an internal function, ``precision_at_k: k must be >= 1``), or not at all (numpy's
    ``window shape cannot be larger than input array shape`` for ``drift_window=0``).

    Raises:
        EvaluationError: one line naming the argument, its value and what was expected.
    """

    def refuse(name: str, expected: str) -> EvaluationError:
        return EvaluationError(f"{name}: {_shown(settings[name])} (expected {expected})")

    for name in ("new_user_k", "ranking_k", "ranking_relevant", "drift_window", "n_resamples"):
        value = settings[name]
        if not _is_integer(value) or value < 1:
            raise refuse(name, "an integer >= 1")
    window = int(settings["drift_window"])
    smooth = settings["drift_smooth"]
    if not _is_integer(smooth) or not 1 <= smooth <= window + 1:
        raise refuse("drift_smooth", f"an integer >= 1 and <= drift_window + 1 = {window + 1}")
    tolerance = settings["drift_tolerance"]
    if not _is_real(tolerance) or not 0 <= tolerance < float("inf"):
        raise refuse("drift_tolerance", "a finite number >= 0")
    confidence = settings["confidence"]
    if not _is_real(confidence) or not 0 < confidence < 1:
        raise refuse("confidence", "a number > 0 and < 1, such as 0.95")
    seed = settings["bootstrap_seed"]
    if not _is_integer(seed) or seed < 0:
        raise refuse("bootstrap_seed", "an integer >= 0")


def _run_log_in_the_way(folder: Path) -> str | None:
    """Why ``folder`` cannot take an evaluation's files because it is the folder of a training
    run that logs its episodes (``lmrecsim train --log-episodes``: its ``train.json`` says
    ``"log_episodes": true``), whose ``episodes.parquet`` the evaluation's own would replace,
    or which the run (still training, or resumed later) would write over the evaluation's; None
    otherwise. A ``train.json`` that cannot be read says nothing either way."""
    from ..agents.train import run_record

    try:
        record = run_record(folder) or {}
    except ValueError:
        return None
    if record.get("log_episodes") is not True:
        return None
    return (
        f"'{folder}' holds a training run that logs its episodes to episodes.parquet (train.json: "
        "log_episodes), which the evaluation's own would replace (expected another folder, such "
        f"as '{folder / 'report'}')"
    )


def evaluate(
    scenario: ScenarioRef,
    policies: Sequence[str | tuple[str, Any]] | Mapping[str, Any],
    *,
    seeds: Sequence[int] | None = None,
    episodes: int | None = None,
    reference: str = "random",
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
    new_user_k: int = 10,
    ranking_k: int = 5,
    ranking_relevant: int = 3,
    drift_window: int = 10,
    drift_tolerance: float = 0.05,
    drift_smooth: int = DRIFT_SMOOTH,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    bootstrap_seed: int = 0,
    plots: bool = True,
) -> EvaluationResult:
    """Evaluate policies on a scenario with common random numbers; optionally write a report.

    Args:
        scenario: a shipped scenario name, a YAML path, a :class:`Scenario` or a mapping of scenario keys.
        policies: policy specs (``"greedy"``, ``"ppo:runs/x"``, ``"mine=dqn:runs/y"``; see
            :func:`lmrecsim.agents.baselines.make_policy`), ``(label, policy)`` pairs, or a mapping
            label -> policy object or spec string (``{"mine": "ppo:runs/x"}`` is
            ``"mine=ppo:runs/x"``).
        seeds: evaluation seeds (default: the scenario's ``evaluation.seeds``).
        episodes: episodes per seed (default: the scenario's ``evaluation.episodes``), at most
            ``MAX_EVALUATION_EPISODES``.
        reference: label of the policy every other one is compared with; a baseline name that is
            not among ``policies`` is added.
        out: folder for the files (none written when None).
        progress: show a progress bar.
        new_user_k: leading steps of new users' sessions the cold-start metrics look at.
        ranking_k: list length of precision/recall/NDCG@k.
        ranking_relevant: size of the relevant set (top candidates by hidden affinity).
        drift_window: steps each side of a drift event for the drift metrics and plot.
        drift_tolerance: click-through shortfall still counted as recovered.
        drift_smooth: forward smoothing window of the recovery rule.
        n_resamples: bootstrap resamples per interval.
        confidence: interval coverage.
        bootstrap_seed: seed of every bootstrap and tie-breaking draw.
        plots: make the PNG plots (only with ``out``).

    Returns:
        An :class:`EvaluationResult` with the step log, episode table, summary and comparison.
    """
    if out is not None:
        problem = output_folder_problem(out) or _run_log_in_the_way(Path(out))
        if problem is not None:  # before the evaluation, not after it
            raise EvaluationError(f"out: {problem}")
    sc = load_scenario(scenario)
    if episodes is None:
        episodes = sc.evaluation.episodes
    if isinstance(policies, (str, bytes)) or not isinstance(policies, (Iterable, Mapping)):
        # A bare spec string would be taken one character at a time ("--policy 'g': unknown").
        raise EvaluationError(
            f"policies: {_shown(policies)} is invalid (expected a list of policy specs or "
            "(label, policy) pairs, such as ['greedy'], or a mapping label -> policy)"
        )
    check_episodes(episodes)
    seed_list = _check_seeds(sc.evaluation.seeds if seeds is None else seeds)
    settings: dict[str, Any] = {
        "seeds": seed_list,
        "episodes": int(episodes),
        "new_user_k": new_user_k,
        "ranking_k": ranking_k,
        "ranking_relevant": ranking_relevant,
        "drift_window": drift_window,
        "drift_tolerance": drift_tolerance,
        "drift_smooth": drift_smooth,
        "n_resamples": n_resamples,
        "confidence": confidence,
        "bootstrap_seed": bootstrap_seed,
    }
    _check_metric_settings(settings)
    from .replay import precheck_policy

    if not isinstance(policies, Mapping):
        policies = list(policies)  # a generator is read once, here
        for item in policies:
            precheck_policy(item)  # before the world and its language model's loading bar
    world = build_world(sc, show_progress=progress)
    resolved = _resolve_policies(policies, world, reference)
    infos = [info for info, _ in resolved]

    bar = None
    per_policy = len(seed_list) * int(episodes) * sc.episode.horizon
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=per_policy * len(resolved), desc="evaluating", unit="step")
    frames: list[pd.DataFrame] = []
    arrays = StepArrays()
    try:
        for i, (info, policy) in enumerate(resolved):
            if bar is not None:
                bar.set_postfix_str(info.label)
            steps_i, arrays_i = run_policy(
                world,
                policy,
                label=info.label,
                seeds=seed_list,
                episodes=int(episodes),
                on_step=bar.update if bar is not None else None,
            )
            frames.append(steps_i)
            arrays.extend(arrays_i)
            if bar is not None:
                # Sessions end early on churn; jump to this policy's share of the bar.
                bar.update(per_policy * (i + 1) - bar.n)
    finally:
        if bar is not None:
            bar.close()
    steps = pd.concat(frames, ignore_index=True)
    shown = shown_items(steps, arrays, world)
    episode_frame = _episode_frame(steps, arrays, world, settings, shown)
    summary, comparison = _tables(steps, episode_frame, infos, world, reference, settings, shown)
    result = EvaluationResult(
        scenario=sc,
        world=world,
        steps=steps,
        arrays=arrays,
        episodes=episode_frame,
        summary=summary,
        comparison=comparison,
        policies={info.label: info for info in infos},
        reference=reference,
        metric_order=_metric_order(sc),
        settings=settings,
        warnings=scenario_warnings(infos, sc)
        + seed_warnings(infos, seed_list)
        + sample_warnings(len(seed_list) * episodes)
        + subset_warnings(episode_frame, steps, sc.evaluation.metrics, len(seed_list) * episodes),
        shown=shown,
    )
    if out is not None:
        result.files = _write_outputs(result, Path(out), make_plots=plots)
    return result


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


def _write_outputs(result: EvaluationResult, out: Path, *, make_plots: bool) -> list[Path]:
    """Write the CSVs, the step log, the plots and both reports, all or nothing.

    Through :func:`lmrecsim.atomic.staged_folder`: an evaluation stopped midway (Ctrl-C, SIGTERM,
    a full disk) leaves an earlier report in the folder whole, never new tables beside old plots
    and an old report; the reports are moved into place last.
    """
    from ..atomic import staged_folder
    from .plots import PLOT_NAMES
    from .report import render_html, render_markdown

    had_report = (out / "report.md").is_file()  # an earlier evaluation wrote this folder
    with staged_folder(out) as staged:
        staged.write("summary.csv", _csv_bytes(result.summary))
        staged.write("comparison.csv", _csv_bytes(result.comparison))
        staged.write("episodes.csv", _csv_bytes(result.episodes))
        positions = result.position_clicks()
        if positions is not None:
            staged.write("positions.csv", _csv_bytes(positions))
        write_step_log(
            staged.path("episodes.parquet"),
            result.steps,
            result.arrays,
            scenario=result.scenario,
            world=result.world,
        )
        plots = []
        if make_plots:
            from .plots import all_plots, curve_file_problems, learning_curve, validation_curve

            privileged = {label: info.privileged for label, info in result.policies.items()}
            curves, validations = {}, {}
            for label, info in result.policies.items():
                curve = learning_curve(info.run_dir, until=info.trained_steps)
                if curve is not None:
                    curves[label] = curve
                checked = validation_curve(info.run_dir, until=info.trained_steps)
                if checked is not None:
                    validations[label] = checked
                for problem in curve_file_problems(info.run_dir, label):
                    if problem not in result.warnings:
                        result.warnings.append(problem)
            plots = all_plots(
                result.summary,
                result.steps,
                {label: result.exposure(label) for label in result.policies},
                privileged,
                drift_window=result.settings["drift_window"],
                new_user_k=result.settings["new_user_k"],
                curves=curves,
                validation=validations,
                positions=positions,
            )
            for plot in plots:
                staged.write(f"{plot.name}.png", plot.png)
        staged.write("report.md", render_markdown(result, plots))
        staged.write("report.html", render_html(result, plots))
    # A plot an earlier evaluation into this folder made and this one did not (no learning curves
    # this time, another scenario) would sit next to a report that does not show it; never a
    # plain folder's own files.
    made = {plot.name for plot in plots}
    for name in PLOT_NAMES if had_report else ():
        if name not in made:
            (out / f"{name}.png").unlink(missing_ok=True)
    return staged.files()
