"""Training a policy on a scenario: the function behind ``lmrecsim train``."""

from __future__ import annotations

import csv
import functools
import json
import math
import numbers
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback
from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat
from stable_baselines3.common.vec_env import VecMonitor

from ..atomic import (
    FolderInUse,
    atomic_file,
    atomic_write,
    folder_in_use,
    folder_lock,
    output_folder_problem,
    signals_deferred,
)
from ..envs.features import N_FEATURES
from ..envs.vec_env import BatchedRecommendationVecEnv, sub_env_seeds
from ..envs.world import World, build_world
from ..scenarios import Scenario, ScenarioRef, load_scenario, scenario_to_yaml
from ..scenarios.loader import deep_merge, scenario_from_dict, scenario_to_dict
from ..scenarios.schema import (
    MAX_N_ENVS,
    MAX_TORCH_THREADS,
    MAX_TRAINING_SEED,
    has_algorithm_sections,
)
from .build import PPO_DEFAULTS, build_agent, check_agent, load_model
from .errors import AgentError
from .validation import (
    ValidationCallback,
    ValidationRow,
    check_validation_seeds,
    read_validation,
    validation_file_problem,
)


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    ``model`` is the trained model on its training env: ``model.learn(n,
    reset_num_timesteps=False)`` goes on training it in memory, with a logger that writes nothing
    (the run's files are closed; ``model.set_logger`` gives it one). To go on with the run's own
    files (checkpoints, ``progress.csv``, validation), use :func:`resume`.
    """

    model: BaseAlgorithm
    out_dir: Path
    scenario: Scenario
    timesteps: int
    seconds: float
    #: ``train.json``'s ``validation`` record (best step and return), None without validation.
    validation: dict[str, Any] | None = None
    #: The steps the model had trained before this call (a resumed run's checkpoint), else 0;
    #: ``seconds`` and ``steps_per_second`` cover the steps after it.
    resumed_from: int = 0

    @property
    def steps_per_second(self) -> float:
        steps = self.timesteps - self.resumed_from
        return steps / self.seconds if self.seconds > 0 else float("nan")


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file through a temp file and a rename (never a half-written file)."""
    atomic_write(path, text)


def with_agent_overrides(scenario: Scenario, **overrides: Any) -> Scenario:
    """A copy of the scenario with non-None ``agent`` fields replaced."""
    agent = {k: v for k, v in overrides.items() if v is not None}
    if not agent:
        return scenario
    data = deep_merge(scenario_to_dict(scenario), {"agent": agent})
    # An out-of-range override is named after the scenario it overrides, not "<dict>".
    source = f"{scenario.source} (agent overrides)"
    out = scenario_from_dict(data, base_dir=scenario._base_dir, source=source)
    out._source = scenario._source
    return out


def torch_thread_count(n: int | None = None) -> int:
    """The torch thread count ``n``, else ``$LMRECSIM_TORCH_THREADS``, else 1, checked.

    Raises:
        AgentError: not an integer >= 1 (one line naming the argument or the variable).
    """
    if n is None:
        text = os.environ.get("LMRECSIM_TORCH_THREADS", "1")
        # ASCII digits only: int() also reads other scripts' digits ("\u0662" is 2).
        text_ok = text.strip().isascii() and text.strip().lstrip("+-").isdigit()
        n = int(text) if text_ok else 0
        if not 1 <= n <= MAX_TORCH_THREADS:
            raise AgentError(
                f"$LMRECSIM_TORCH_THREADS: {text!r} (expected an integer >= 1 and <= "
                f"{MAX_TORCH_THREADS})"
            )
    elif isinstance(n, bool) or int(n) != n or not 1 <= n <= MAX_TORCH_THREADS:
        raise AgentError(
            f"torch_threads: {n!r} is invalid (expected an integer >= 1 and <= {MAX_TORCH_THREADS})"
        )
    return int(n)


def set_torch_threads(n: int | None = None) -> int:
    """Set torch's intra-op thread count to :func:`torch_thread_count`'s; returns it."""
    import torch

    n = torch_thread_count(n)
    torch.set_num_threads(n)
    return n


class _SortedKeys(list):
    """A key list whose new keys arrive sorted (SB3 adds them as a set, in hash order)."""

    def extend(self, keys: Any) -> None:
        super().extend(sorted(keys))


class SortedCSVOutputFormat(CSVOutputFormat):
    """SB3's CSV logger with a reproducible column order: keys that appear together are added in
    sorted order, so ``progress.csv`` has the same header in every run of the same command (SB3
    adds them in set order, which changes with the interpreter's hash seed).

    Args:
        filename: the CSV file.
        keep_below: ``None`` starts the file afresh; an integer continues it (a resumed run):
            the rows logged at ``time/total_timesteps`` below it stay, later ones go (they were
            logged after the checkpoint the run resumes from), and new rows are appended under
            the file's header (which grows as SB3's does when new keys appear).
    """

    def __init__(self, filename: str, keep_below: int | None = None) -> None:
        if keep_below is None or not Path(filename).is_file():
            super().__init__(filename)
            self.keys = _SortedKeys()
            return
        lines = Path(filename).read_text(encoding="utf-8").splitlines(keepends=True)
        header = next(csv.reader(lines[:1]), [])
        column = header.index("time/total_timesteps") if "time/total_timesteps" in header else -1
        kept = [lines[0]] if lines else []
        for line, row in zip(lines[1:], csv.reader(lines[1:]), strict=True):
            step = row[column] if 0 <= column < len(row) else ""
            if step.strip().isdigit() and int(step) < keep_below:
                kept.append(line)
        atomic_write(filename, "".join(kept))
        self.file = open(filename, "r+", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.file.seek(0, os.SEEK_END)
        self.keys = _SortedKeys()
        list.extend(self.keys, header)  # the file's order, not sorted again
        self.separator = ","
        self.quotechar = '"'


def save_model_atomic(model: Any, path: Path) -> None:
    """``model.save`` through :func:`lmrecsim.atomic.atomic_file` (SB3 saves to a file object as
    well as to a name): a failed save (a full disk) leaves no half-written zip under the final
    name, and no temp file.

    Ctrl-C and SIGTERM wait for the save to end (:func:`lmrecsim.atomic.signals_deferred`): one
    that cut torch's zip writer short made it raise its own ``RuntimeError`` ("unexpected pos")
    in place of the interrupt, so the run ended in a traceback and a ``"failed"`` train.json.
    """
    with signals_deferred(), atomic_file(path) as fh:
        model.save(fh)


class AtomicCheckpointCallback(CheckpointCallback):
    """SB3's checkpoints, each written through :func:`save_model_atomic` (SB3 writes straight to
    the final name, so a run stopped mid-save left a truncated ``model_N_steps.zip``).

    With validation, each checkpoint also copies the run's ``best_model.zip`` as it is then to
    ``best_model_N_steps.zip``: a run resumed from the checkpoint restores it (a later validation
    of the stopped run may have replaced it with a model the resumed run never trained).
    """

    def _on_step(self) -> bool:
        if self.n_calls % self.save_freq == 0:
            Path(self.save_path).mkdir(parents=True, exist_ok=True)
            save_model_atomic(self.model, Path(self._checkpoint_path(extension="zip")))
            best = Path(self.save_path).parent / "best_model.zip"
            if best.is_file():
                copy = Path(self.save_path) / f"best_model_{self.num_timesteps}_steps.zip"
                with signals_deferred():
                    atomic_write(copy, best.read_bytes())
        return True


class _ProgressBar(BaseCallback):
    """A tqdm bar over environment steps (SB3's own bar needs rich's live display)."""

    def __init__(self, total: int, enabled: bool) -> None:
        super().__init__()
        self.total = total
        self.enabled = enabled
        self.bar: Any = None

    def _on_training_start(self) -> None:
        if self.enabled:
            # SB3 stops at the end of a rollout (n_steps per env) or of an env step (n_envs
            # users), so the budget is rounded up to what will really run.
            from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
            from tqdm.auto import tqdm

            chunk = self.training_env.num_envs
            freq = getattr(self.model, "train_freq", None)
            total: int | None
            if isinstance(self.model, OnPolicyAlgorithm):  # PPO, MaskablePPO: whole rollouts
                chunk *= self.model.n_steps
            elif freq is not None and getattr(freq.unit, "value", "step") == "step":
                chunk *= int(freq.frequency)  # DQN: train_freq steps of every env per round
            elif freq is not None:
                chunk = 0  # per-episode rounds: the total is not known in advance
            total = -(-self.total // chunk) * chunk if chunk else None
            self.bar = tqdm(total=total, unit="step", desc="training", dynamic_ncols=True)

    def _on_step(self) -> bool:
        if self.bar is not None:
            self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()


def resolve_run(
    scenario: ScenarioRef,
    *,
    algo: str | None = None,
    policy: str | None = None,
    timesteps: int | None = None,
    seed: int | None = None,
    n_envs: int | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    validate_every: int | None = None,
) -> Scenario:
    """The scenario a :func:`train` call with these arguments trains (its run's ``scenario.yaml``).

    The arguments are :func:`train`'s; ``None`` keeps the scenario's own setting.
    """
    if hyperparameters is not None and not isinstance(hyperparameters, Mapping):
        # A list of pairs used to end in deep_merge's AttributeError ('list' has no 'items').
        raise AgentError(
            f"hyperparameters: {type(hyperparameters).__name__} {hyperparameters!r:.60} is invalid "
            "(expected a mapping of SB3 constructor arguments, such as {'learning_rate': 0.001})"
        )
    sc = load_scenario(scenario)
    hyperparameters = _plain_numbers(dict(hyperparameters or {}))
    # Command-line hyperparameters merge over those of the algorithm that runs. Mappings
    # (policy_kwargs) merge key by key, as under `extends`: `--hp policy_kwargs=...` changes the
    # keys it names and keeps the scenario's others (e.g. a shipped `dueling`).
    hp = deep_merge(sc.agent.hyperparameters_for(algo or sc.agent.algo), hyperparameters)
    # With per-algorithm sections, the resolved scenario keeps them: the section of the algorithm
    # that runs holds the merged settings and the others stay, so the run's scenario.yaml trains
    # another algorithm (--algo) as the original file did (and build_agent names an error's key
    # in its section).
    section = (algo or sc.agent.algo) if has_algorithm_sections(sc.agent.hyperparameters) else None
    resolved = hp if section is None else {**sc.agent.hyperparameters, section: hp}
    sc = with_agent_overrides(
        sc,
        algo=algo,
        policy=policy,
        timesteps=timesteps,
        seed=seed,
        n_envs=n_envs,
        validation=None if validate_every is None else {"every": validate_every},
    )
    if resolved != sc.agent.hyperparameters:
        update = {"hyperparameters": resolved}
        sc = sc.model_copy(update={"agent": sc.agent.model_copy(update=update)})
    return sc


def _plain_numbers(value: Any) -> Any:
    """``value`` with numpy scalars (``np.int64(64)``, ``np.float32(3e-4)``) as Python numbers,
    in nested mappings and lists too: the scenario holds what YAML and JSON can (a numpy value
    passed the hyperparameter checks and then failed deep in pydantic's serialiser)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {k: _plain_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain_numbers(v) for v in value)
    return value


def train(
    scenario: ScenarioRef = "default",
    *,
    out: str | os.PathLike[str],
    algo: str | None = None,
    policy: str | None = None,
    timesteps: int | None = None,
    seed: int | None = None,
    n_envs: int | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    checkpoint_freq: int | None = None,
    progress: bool = True,
    callback_factory: Callable[[Scenario, World], list[BaseCallback]] | None = None,
    full_info: bool = False,
    torch_threads: int | None = None,
    validate_every: int | None = None,
    record: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train an SB3 agent on a scenario and write its run folder.

    Args:
        scenario: a shipped scenario name, a YAML path, a ``Scenario`` or a mapping of scenario keys.
        out: run folder; receives ``model.zip``, ``scenario.yaml`` (resolved, with the overrides
            below applied), ``progress.csv`` (SB3's CSV logger), ``tb/`` (TensorBoard),
            ``checkpoints/`` and ``train.json`` (timing); with ``agent.validation.every`` > 0
            also ``best_model.zip`` and ``validation.csv`` (:mod:`.validation`).
        algo, policy, timesteps, seed, n_envs: override the scenario's ``agent`` block.
        hyperparameters: merged over ``agent.hyperparameters`` (a mapping value such as
            ``policy_kwargs`` key by key, as under ``extends``; anything else replaced).
        checkpoint_freq: save a checkpoint every this many environment steps (default: a tenth of
            the budget, for PPO at least one rollout; :func:`default_checkpoint_freq`).
        progress: show a progress bar.
        callback_factory: called with the resolved scenario and its world; returns extra SB3
            callbacks (e.g. the episode logger of ``lmrecsim train --log-episodes``).
        full_info: give the training env's step infos every per-step signal (for loggers).
        torch_threads: torch intra-op threads while training (default ``$LMRECSIM_TORCH_THREADS``
            or 1). The policy networks are small: one thread is as fast as several on an idle
            machine, and on a busy one spinning OpenMP threads slowed PPO from ~600 to ~50 steps/s.
        validate_every: override ``agent.validation.every`` (0: no validation).
        record: more entries for ``train.json`` (``{"log_episodes": true}`` from ``lmrecsim
            train --log-episodes``, which ``--resume`` reads to go on logging).

    Returns:
        A :class:`TrainResult` with the trained model and the measured steps per second.
    """
    problem = output_folder_problem(out)
    if problem is not None:  # before any work, not after the world and the model are built
        raise AgentError(f"out: {problem}")
    _check_checkpoint_freq(checkpoint_freq)
    sc = resolve_run(
        scenario,
        algo=algo,
        policy=policy,
        timesteps=timesteps,
        seed=seed,
        n_envs=n_envs,
        hyperparameters=hyperparameters,
        validate_every=validate_every,
    )
    agent = sc.agent
    problem = check_validation_seeds(agent.validation, agent.seed, agent.n_envs)
    if problem is not None:
        raise AgentError(f"{sc.source}: {problem}")
    problem = run_outputs_problem(out, validation=agent.validation.every > 0)
    if problem is not None:
        raise AgentError(f"out: {problem}")
    torch_thread_count(torch_threads)  # a bad count fails before the catalog is encoded
    # A hyperparameter out of range too (SB3's constructor checks the rest, after the world).
    check_agent(sc, name_file=not hyperparameters and policy is None)
    busy = folder_in_use(out)  # a folder another run is writing: refused now, not after the world
    if busy is not None:
        raise _folder_busy(busy)
    # Build the world first: a missing model or bad catalog fails before the run folder exists.
    world = build_world(sc, show_progress=progress)
    threads = set_torch_threads(torch_threads)
    venv = VecMonitor(
        BatchedRecommendationVecEnv(sc, agent.n_envs, world=world, full_info=full_info)
    )
    venv.seed(agent.seed)
    # And the model: settings SB3 rejects fail before the run folder exists, too. An error names
    # the scenario's file unless command-line hyperparameters or a policy were given.
    model = build_agent(sc, venv, name_file=not hyperparameters and policy is None)
    # The caller's callbacks and entries too: the earlier run in the folder is cleared next.
    extra_callbacks = _extra_callbacks(callback_factory, sc, world)
    run_info = _run_info(sc, threads, checkpoint_freq, **_extra_record(record))
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with run_folder_lock(out_dir):  # before the earlier run's files are cleared
        clear_previous_run(out_dir)
        _record_start(out_dir, sc, run_info)
        return _learn(
            model,
            sc,
            out_dir,
            run_info,
            csv_format=SortedCSVOutputFormat(str(out_dir / "progress.csv")),
            validation=_validation_callback(sc, world, out_dir),
            progress=progress,
            extra_callbacks=extra_callbacks,
        )


@contextmanager
def run_folder_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir``'s lock for a run (:func:`~lmrecsim.atomic.folder_lock`): a second run
    into a folder that a run is writing is refused, instead of deleting the first one's files
    and mixing its checkpoints with its own.

    Raises:
        AgentError: one line, when another process holds the lock.
    """
    try:
        with folder_lock(out_dir):
            yield
    except FolderInUse as exc:  # only entering the lock raises it
        raise _folder_busy(str(exc)) from None


def _folder_busy(why: str) -> AgentError:
    """The one-line refusal of a run into a folder another run holds (``why``: whose)."""
    return AgentError(
        f"out: {why} (expected a folder no other run is writing: wait for it to end, or train "
        "into another --out)"
    )


#: ``train.json`` entries a run writes itself, which ``record`` may not replace.
_OWN_RECORD = (
    "status",
    "scenario",
    "algo",
    "policy",
    "seed",
    "n_envs",
    "torch_threads",
    "checkpoint_freq",
    "validation",
    "timesteps",
    "seconds",
    "steps_per_second",
    "resumed_from",
)


def _extra_record(record: Mapping[str, Any] | None) -> dict[str, Any]:
    """``train(record=...)``'s entries, checked: a mapping of string keys that the run does not
    write itself, with values JSON can hold.

    Raises:
        AgentError: one line naming ``record`` and the entry.
    """
    if record is None:
        return {}
    if not isinstance(record, Mapping):
        raise AgentError(
            f"record: {type(record).__name__} is invalid (expected a mapping of extra train.json "
            "entries, such as {'log_episodes': True})"
        )
    for key, value in record.items():
        if not isinstance(key, str) or key in _OWN_RECORD:
            raise AgentError(
                f"record: entry {key!r} is invalid (expected a string key other than the run's "
                f"own entries: {', '.join(_OWN_RECORD)})"
            )
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise AgentError(
                f"record: entry {key!r} holds {type(value).__name__} {value!r:.60} (expected a "
                "value JSON can hold: a string, a finite number, a bool, None, a list or a "
                "mapping of them)"
            ) from None
    return dict(record)


def _extra_callbacks(
    factory: Callable[[Scenario, World], Any] | None, sc: Scenario, world: World
) -> list[BaseCallback]:
    """The callbacks ``callback_factory`` returns for this run, checked before the run changes
    its folder.

    Raises:
        AgentError: a factory that returns anything but a list (or tuple) of SB3 callbacks.
    """
    if factory is None:
        return []
    made = factory(sc, world)
    if not isinstance(made, (list, tuple)) or not all(isinstance(c, BaseCallback) for c in made):
        raise AgentError(
            f"callback_factory: returned {type(made).__name__} {made!r:.60} (expected a list of "
            "stable-baselines3 callbacks, such as [] or [CheckpointCallback(...)])"
        )
    return list(made)


def _run_info(
    sc: Scenario, threads: int, checkpoint_freq: int | None, **extra: Any
) -> dict[str, Any]:
    """``train.json`` of a run that starts (``"status": "running"``)."""
    agent = sc.agent
    info: dict[str, Any] = {
        "status": "running",
        "scenario": sc.name,
        "algo": agent.algo,
        "policy": agent.policy,
        "seed": agent.seed,
        "n_envs": agent.n_envs,
        "torch_threads": threads,  # part of the run's identity: another count, another model
        "checkpoint_freq": checkpoint_freq or default_checkpoint_freq(sc),  # kept by --resume
        **extra,
    }
    if agent.validation.every > 0:  # known from the start: a stopped run's best model was chosen
        info["validation"] = agent.validation.model_dump()
    return info


def _record_start(out_dir: Path, sc: Scenario, run_info: dict[str, Any]) -> None:
    """Write ``train.json`` (``run_info``, "running") and the run's ``scenario.yaml``, before the
    run changes anything else in its folder.

    train.json says "running" until the run has finished: a run stopped midway leaves a folder
    that says so (and that the next run into it clears or resumes), never one whose model.zip and
    train.json belong to an earlier run while its checkpoints and scenario.yaml are new.
    """
    write_text_atomic(out_dir / "train.json", json.dumps(run_info, indent=2) + "\n")
    write_text_atomic(out_dir / "scenario.yaml", scenario_to_yaml(sc))


def _validation_callback(sc: Scenario, world: World, out_dir: Path) -> ValidationCallback | None:
    """The run's validation (None when ``agent.validation.every`` is 0)."""
    if sc.agent.validation.every == 0:
        return None
    return ValidationCallback(
        world,
        sc.agent.validation,
        out_dir,
        maskable=sc.agent.algo == "maskable_ppo",
        save=save_model_atomic,
    )


def default_checkpoint_freq(sc: Scenario) -> int:
    """Steps between checkpoints when none is asked for: a tenth of the budget, and for PPO at
    least one rollout (``n_steps`` x ``n_envs``), as its policy changes only once per rollout
    (a tenth of a small budget used to save the same policy dozens of times)."""
    agent = sc.agent
    freq = max(agent.timesteps // 10, 1)
    if agent.algo in ("ppo", "maskable_ppo"):
        # What build_model trains with: lmrecsim's PPO defaults under the scenario's settings.
        n_steps = {**PPO_DEFAULTS, **agent.hyperparameters_for(agent.algo)}["n_steps"]
        if isinstance(n_steps, numbers.Integral) and not isinstance(n_steps, bool) and n_steps >= 1:
            freq = max(freq, int(n_steps) * agent.n_envs)
    return freq


def _check_checkpoint_freq(checkpoint_freq: Any) -> None:
    """A one-line AgentError unless ``checkpoint_freq`` is None or an integer >= 1."""
    if checkpoint_freq is not None and (
        isinstance(checkpoint_freq, bool)
        or not isinstance(checkpoint_freq, numbers.Integral)
        or checkpoint_freq < 1
    ):
        # 0 used to mean the default and a negative number a checkpoint every step.
        raise AgentError(
            f"checkpoint_freq: {checkpoint_freq!r} is invalid (expected None or an integer >= 1)"
        )


def _learn(
    model: BaseAlgorithm,
    sc: Scenario,
    out_dir: Path,
    run_info: dict[str, Any],
    *,
    csv_format: CSVOutputFormat,
    validation: ValidationCallback | None,
    progress: bool,
    extra_callbacks: list[BaseCallback],
    resumed_from: int = 0,
) -> TrainResult:
    """Train ``model`` from ``resumed_from`` steps up to ``sc.agent.timesteps`` with the run's
    logger, checkpoints (every ``run_info["checkpoint_freq"]`` steps), validation and progress bar;
    save ``model.zip`` and record the end in ``train.json``: complete, or stopped/failed when
    the run ends early (:func:`_record_start` recorded its start)."""
    agent = sc.agent
    model.set_logger(
        Logger(
            folder=str(out_dir),
            output_formats=[csv_format, TensorBoardOutputFormat(str(out_dir / "tb"))],
        )
    )
    freq = int(run_info["checkpoint_freq"])
    callbacks = CallbackList(
        [
            AtomicCheckpointCallback(
                save_freq=max(freq // agent.n_envs, 1),
                save_path=str(out_dir / "checkpoints"),
                name_prefix="model",
            ),
            *([validation] if validation is not None else []),
            _ProgressBar(agent.timesteps - resumed_from, progress),
            *extra_callbacks,
        ]
    )
    learning_starts = getattr(model, "learning_starts", None)
    if resumed_from and learning_starts is not None:
        # A saved DQN has no replay buffer: refill it before the first gradient step, as a new
        # run does (SB3 counts learning_starts from step 0).
        model.learning_starts = resumed_from + learning_starts
    start = time.perf_counter()
    try:
        model.learn(
            total_timesteps=agent.timesteps - resumed_from,
            callback=callbacks,
            reset_num_timesteps=resumed_from == 0,
        )
        seconds = time.perf_counter() - start
        model.logger.close()
        # The run's files are closed: a model.learn() that goes on in the caller's hands (SB3 keeps
        # a set logger across calls) writes nothing rather than fail on them.
        model.set_logger(Logger(folder=None, output_formats=[]))
        if learning_starts is not None:
            model.learning_starts = learning_starts
        save_model_atomic(model, out_dir / "model.zip")
    except BaseException as exc:
        _record_unfinished(
            out_dir / "train.json",
            run_info,
            int(model.num_timesteps),
            exc,
            validation=None if validation is None else validation.summary(),
        )
        if not isinstance(exc, Exception):  # stopped: callbacks keep what the run has done
            _callbacks_stopped(extra_callbacks)
        raise
    result = TrainResult(
        model=model,
        out_dir=out_dir,
        scenario=sc,
        timesteps=int(model.num_timesteps),
        seconds=seconds,
        validation=None if validation is None else validation.summary(),
        resumed_from=resumed_from,
    )
    with signals_deferred():  # a Ctrl-C now would leave a finished run saying "running"
        _write_complete(out_dir / "train.json", run_info, result)
    return result


def _callbacks_stopped(callbacks: Sequence[BaseCallback]) -> None:
    """Call ``on_stopped()`` of the callbacks that have one (the episode logger writes the
    episodes that completed) when Ctrl-C or SIGTERM stopped the run. A failure is a warning line:
    the stop is what the command reports."""
    for cb in callbacks:
        stopped = getattr(cb, "on_stopped", None)
        if stopped is None:
            continue
        try:
            with signals_deferred():  # a second Ctrl-C must not cut the write short
                stopped()
        except Exception as exc:  # noqa: BLE001 - reported, and the stop goes on
            warnings.warn(f"{type(cb).__name__}: not saved at the stop ({exc})", stacklevel=2)


def _progress_problem(path: Path) -> str | None:
    """Why a resumed run cannot go on with ``progress.csv`` (SB3's CSV log), or None."""
    if not path.is_file():
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        header = next(csv.reader(lines[:1]), [])
        rows = list(csv.reader(lines[1:]))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return (
            f"{path}: unreadable ({type(exc).__name__}; expected SB3's CSV log); delete it to "
            "resume without the earlier rows"
        )
    if lines and "time/total_timesteps" not in header or any(len(r) > len(header) for r in rows):
        return (
            f"{path}: not SB3's CSV log (expected a header with time/total_timesteps and no row "
            "longer than it); delete it to resume without the earlier rows"
        )
    return None


def _checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    """``(steps, path)`` of the run's ``checkpoints/model_N_steps.zip``, most steps first."""
    found = []
    for path in (out_dir / "checkpoints").glob("model_*_steps.zip"):
        middle = path.name[len("model_") : -len("_steps.zip")]
        if middle.isascii() and middle.isdigit():
            found.append((int(middle), path))
    return sorted(found, reverse=True)


def stopped_checkpoint_steps(out: str | os.PathLike[str]) -> int | None:
    """The steps of the newest checkpoint of the run in ``out`` (what :func:`resume` continues
    a stopped run from), or None when it has none."""
    found = _checkpoints(Path(out))
    return found[0][0] if found else None


def _holding_run_lock(fn: Callable[..., TrainResult]) -> Callable[..., TrainResult]:
    """``fn(out, ...)`` called with the lock of the run folder ``out`` held (when it exists: a
    folder that does not exist holds no run, which ``fn`` says)."""

    @functools.wraps(fn)
    def locked(out: str | os.PathLike[str], *args: Any, **kwargs: Any) -> TrainResult:
        out_dir = Path(out)
        with run_folder_lock(out_dir) if out_dir.is_dir() else nullcontext():
            return fn(out, *args, **kwargs)

    return locked


@_holding_run_lock
def resume(
    out: str | os.PathLike[str],
    *,
    timesteps: int | None = None,
    checkpoint_freq: int | None = None,
    progress: bool = True,
    torch_threads: int | None = None,
    callback_factory: Callable[[Scenario, World], list[BaseCallback]] | None = None,
    full_info: bool = False,
) -> TrainResult:
    """Continue the run in ``out`` to its budget (or to ``timesteps``) and finish its folder.

    A run that stopped (Ctrl-C, a failure, a machine that went down) continues from its newest
    checkpoint; a complete run continues from its ``model.zip`` when ``timesteps`` is above the
    steps it trained. The run's own ``scenario.yaml`` is trained (``timesteps`` replaces its
    ``agent.timesteps``), with its ``train.json``'s torch thread count unless ``torch_threads``
    is given. ``progress.csv`` and ``validation.csv`` keep what was recorded before the
    checkpoint and go on from there; the checkpoint's copy of ``best_model.zip`` comes back.
    Schedules over training progress (a linear learning rate, DQN's exploration) follow the new
    budget, as if the run had had it from the start.

    What a resumed run does not repeat of the run it continues: the episodes in progress at the
    checkpoint (its users start new ones, drawn again from the start of the run's seeds, so the
    run's users stay apart from validation and evaluation users), PPO's rollout in progress, and
    DQN's replay buffer, which SB3 does not save with a model: it is filled again for
    ``learning_starts`` steps before the first gradient step. So a resumed run is reproducible
    (the same checkpoint and command give the same model, bit for bit) but is not the run that
    would have gone on without the stop.

    ``callback_factory`` and ``full_info`` are :func:`train`'s (``lmrecsim train --resume``
    passes its episode logger's for a run whose ``train.json`` says ``"log_episodes": true``);
    the entries of the run's ``train.json`` named in :data:`KEPT_RECORD` are kept.

    The run holds the folder's lock (:func:`~lmrecsim.atomic.folder_lock`) until it ends.

    Raises:
        AgentError: ``out`` holds no run, is in use by another run, holds no checkpoint to
            resume from, a checkpoint that does not load, or a budget the run has reached (one
            line naming the file).
    """
    _check_checkpoint_freq(checkpoint_freq)
    out_dir = Path(out)
    try:
        record = run_record(out_dir)
    except ValueError as exc:
        raise AgentError(str(exc)) from None
    if record is None or not (out_dir / "scenario.yaml").is_file():
        raise AgentError(
            f"out: '{out_dir}' holds no run to resume (expected the train.json and scenario.yaml "
            "lmrecsim train writes; train into it without --resume)"
        )
    sc = load_scenario(out_dir / "scenario.yaml")
    sc = with_agent_overrides(sc, timesteps=timesteps)
    agent = sc.agent
    start, path = _resume_source(out_dir, record)
    # What was recorded at a checkpoint's step came after it; every record of a complete run
    # belongs to its model.zip.
    kept = start + 1 if path.name == "model.zip" else start
    if agent.timesteps <= start:
        raise AgentError(
            f"{path}: the run has trained {start} steps, its budget is {agent.timesteps} "
            "(expected --timesteps above it to train further)"
        )
    validating = agent.validation.every > 0
    best_copy = out_dir / "checkpoints" / f"best_model_{start}_steps.zip"
    rows = []
    if validating:
        table = read_validation(out_dir)
        problem = None if table is not None else validation_file_problem(out_dir)
        if problem is not None:
            raise AgentError(f"{problem}; delete it to resume without the earlier validations")
        if table is not None:
            rows = [
                ValidationRow(
                    int(r.timesteps),
                    float(r.mean_return),
                    float(r.std_error),
                    int(r.users),
                    bool(r.best),
                )
                for r in table.itertuples()
                if r.timesteps < kept
            ]
        if any(r.best for r in rows) and path.name != "model.zip" and not best_copy.is_file():
            raise AgentError(
                f"{best_copy}: missing (expected the copy of best_model.zip that checkpoints of "
                "validated runs keep; train again without --resume)"
            )
    # Before the world is built: a folder where the run writes a file, a damaged progress.csv.
    problem = run_outputs_problem(out_dir, validation=validating)
    if problem is not None:
        raise AgentError(f"out: {problem}")
    problem = _progress_problem(out_dir / "progress.csv")
    if problem is not None:
        raise AgentError(problem)
    freq_before = record.get("checkpoint_freq")
    freq_before = freq_before if _is_int(freq_before) and freq_before >= 1 else None
    if torch_threads is None:  # the run's own count (a hand-edited one: the default)
        recorded = record.get("torch_threads")
        if _is_int(recorded) and not 1 <= recorded <= MAX_TORCH_THREADS:
            raise AgentError(
                f"{out_dir / 'train.json'}: torch_threads: {recorded} is invalid (expected an "
                f"integer >= 1 and <= {MAX_TORCH_THREADS}, or --torch-threads N)"
            )
        torch_threads = recorded if _is_int(recorded) else None
    torch_thread_count(torch_threads)  # a bad count fails before the world is built
    world = build_world(sc, show_progress=progress)
    threads = set_torch_threads(torch_threads)
    venv = VecMonitor(
        BatchedRecommendationVecEnv(sc, agent.n_envs, world=world, full_info=full_info)
    )
    venv.seed(agent.seed)
    try:
        model = load_model(agent.algo, path, env=venv)
    except AgentError as exc:
        if path.name == "model.zip":
            raise
        raise AgentError(f"{exc} (delete it to resume from the checkpoint before it)") from None
    space = getattr(model.observation_space, "spaces", {}).get("candidate_features")
    if space is None or space.shape[-1] != N_FEATURES:
        raise AgentError(
            f"{path}: its model sees {'no' if space is None else space.shape[-1]} candidate "
            f"features, this version of lmrecsim {N_FEATURES} (trained by another version; train "
            "again without --resume)"
        )
    if int(model.num_timesteps) != start:
        raise AgentError(
            f"{path}: the model has trained {model.num_timesteps} steps, its name or train.json "
            f"says {start} (expected them to agree)"
        )
    if validating and path.name != "model.zip" and any(r.best for r in rows):
        # It becomes best_model.zip below, before train.json says "running" again.
        try:
            load_model(agent.algo, best_copy)
        except AgentError as exc:
            raise AgentError(
                f"{exc} (the copy of best_model.zip the checkpoint keeps; train again without "
                "--resume)"
            ) from None
    # Before train.json says "running" again: a callback that cannot start refuses the resume.
    extra_callbacks = _extra_callbacks(callback_factory, sc, world)
    kept_entries = {key: record[key] for key in KEPT_RECORD if key in record}
    run_info = _run_info(
        sc, threads, checkpoint_freq or freq_before, resumed_from=start, **kept_entries
    )
    _record_start(out_dir, sc, run_info)
    validation = _validation_callback(sc, world, out_dir)
    if validation is not None:
        validation.restore(rows)
        if path.name != "model.zip":
            if any(r.best for r in rows):
                atomic_write(out_dir / "best_model.zip", best_copy.read_bytes())
            else:
                (out_dir / "best_model.zip").unlink(missing_ok=True)
    return _learn(
        model,
        sc,
        out_dir,
        run_info,
        csv_format=SortedCSVOutputFormat(str(out_dir / "progress.csv"), keep_below=kept),
        validation=validation,
        progress=progress,
        extra_callbacks=extra_callbacks,
        resumed_from=start,
    )


def _resume_source(out_dir: Path, record: Mapping[str, Any]) -> tuple[int, Path]:
    """``(steps, model file)`` a resume of the run in ``out_dir`` (its ``train.json`` record)
    starts from: a complete run's ``model.zip``, else its newest checkpoint (AgentError: none)."""
    if record.get("status") == "complete" and _is_int(record.get("timesteps")):
        return int(record["timesteps"]), out_dir / "model.zip"
    found = _checkpoints(out_dir)
    if not found:
        raise AgentError(
            f"{out_dir / 'checkpoints'}: no model_N_steps.zip to resume from (the run stopped "
            "before its first checkpoint; train again without --resume)"
        )
    return found[0]


def resume_point(out: str | os.PathLike[str]) -> int:
    """The steps :func:`resume` would continue the run in ``out`` from, read before it starts
    (the resume rewrites ``train.json``).

    Raises:
        AgentError: as :func:`resume` for a folder without a run or a checkpoint.
    """
    try:
        record = run_record(out)
    except ValueError as exc:
        raise AgentError(str(exc)) from None
    if record is None:
        raise AgentError(f"out: '{out}' holds no run to resume")
    return _resume_source(Path(out), record)[0]


#: ``train.json`` entries of a run (given to :func:`train` as ``record``) that a resumed run
#: keeps.
KEPT_RECORD = ("log_episodes",)

#: What a run writes into its folder: files, and folders (TensorBoard logs, checkpoints).
RUN_FILES = ("train.json", "scenario.yaml", "progress.csv", "model.zip")
VALIDATION_FILES = ("best_model.zip", "validation.csv")
RUN_FOLDERS = {"tb": "TensorBoard logs", "checkpoints": "checkpoints"}


def run_outputs_problem(out: str | os.PathLike[str], *, validation: bool) -> str | None:
    """Why the run folder ``out`` cannot take a run's outputs, or None: a folder where one of its
    files goes (``model.zip`` is written at the end, so the run failed after all its training)
    or a file where one of its folders goes (the run died before recording that it failed)."""
    folder = Path(out)
    for name in RUN_FILES + (VALIDATION_FILES if validation else ()):
        if (folder / name).is_dir():
            return f"'{folder / name}' is a folder (expected a file of the run, or nothing)"
    for name, holds in RUN_FOLDERS.items():
        path = folder / name
        if path.exists() and not path.is_dir():
            return f"'{path}' is a file (expected the run's folder of {holds}, or nothing)"
    return None


def _write_complete(path: Path, run_info: dict[str, Any], result: TrainResult) -> None:
    """Rewrite ``train.json`` for a run that finished: ``"complete"`` with its speed."""
    write_text_atomic(
        path,
        json.dumps(
            {
                **run_info,
                "status": "complete",
                "timesteps": result.timesteps,
                "seconds": round(result.seconds, 3),
                "steps_per_second": round(result.steps_per_second, 1),
                **({"resumed_from": result.resumed_from} if result.resumed_from else {}),
                **({"validation": result.validation} if result.validation is not None else {}),
            },
            indent=2,
        )
        + "\n",
    )


def _is_int(value: object) -> bool:
    """An integer as JSON has it (``true`` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def finished_run(
    out: str | os.PathLike[str], scenario: Scenario, torch_threads: int
) -> TrainResult | None:
    """The complete earlier run of ``scenario`` in the folder ``out``, or None: nothing to reuse.

    A run is reused only when its ``train.json`` says ``"complete"`` with the same torch thread
    count, its ``scenario.yaml`` is ``scenario`` (as :func:`resolve_run` gives it: settings,
    seed and budget) byte for byte, and its models load. A ``train.json`` of another shape (a
    hand-edited one) is not reused either. The code that trained it is not compared: after
    changing the simulator or the agents, train again. :func:`reuse_run` also says why not.
    """
    return reuse_run(out, scenario, torch_threads)[0]


def reuse_run(
    out: str | os.PathLike[str], scenario: Scenario, torch_threads: int
) -> tuple[TrainResult | None, str]:
    """:func:`finished_run` with its reason: ``(run, "")``, ``(None, "")`` for a folder without
    a run (no ``train.json``), or ``(None, why not)`` in a few words, for a user who asked to
    resume and sees a run trained again."""
    out_dir = Path(out)
    try:
        record = run_record(out_dir)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        return None, f"its train.json cannot be read ({exc})"
    if record is None:
        return None, ""
    status = record.get("status")
    if status != "complete":
        return None, f"its train.json says status {status!r}, not 'complete'"
    threads = record.get("torch_threads")
    if not _is_int(threads) or threads != torch_threads:
        return None, f"it was trained with torch_threads {threads!r}, not {torch_threads}"
    difference = scenario_difference(out_dir, scenario)
    if difference is not None:
        return None, difference
    # Any other shape (a hand-edited train.json) is a run to train again, never an exception.
    timesteps, seconds = record.get("timesteps"), record.get("seconds")
    if not _is_int(timesteps) or timesteps < 0:
        return None, f"its train.json has timesteps {timesteps!r} (expected an integer >= 0)"
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not 0 <= seconds < math.inf  # JSON as Python reads it allows NaN and Infinity
    ):
        return None, f"its train.json has seconds {seconds!r} (expected a number >= 0)"
    validation = None
    if scenario.agent.validation.every > 0:  # a complete validated run records its best step
        validation = record.get("validation")
        if not isinstance(validation, dict) or not _is_int(validation.get("best_timesteps")):
            return None, "its train.json has no validation record with best_timesteps"
        if not (out_dir / "best_model.zip").is_file():
            return None, "it has no best_model.zip"
    try:
        model = load_model(scenario.agent.algo, out_dir / "model.zip")
    except AgentError:
        return None, "its model.zip does not load"
    # The scenario fixes every observation shape but the number of candidate features, which
    # belongs to the version of lmrecsim that trained the model.
    space = getattr(model, "observation_space", None)
    shape = getattr(getattr(space, "spaces", {}).get("candidate_features"), "shape", None)
    if shape is None or shape[-1] != N_FEATURES:
        seen = "no" if shape is None else shape[-1]
        return None, (
            f"its model sees {seen} candidate features, this version of lmrecsim {N_FEATURES} "
            "(trained by another version)"
        )
    resumed = record.get("resumed_from", 0)  # seconds cover the steps after it
    resumed = resumed if _is_int(resumed) and 0 <= resumed <= timesteps else 0
    result = TrainResult(model, out_dir, scenario, timesteps, float(seconds), validation, resumed)
    return result, ""


def scenario_difference(out: str | os.PathLike[str], scenario: Scenario) -> str | None:
    """Why the run in ``out`` is not a run of ``scenario`` (its ``scenario.yaml`` is not
    ``scenario`` byte for byte: the first differing line), or None when it is."""
    out_dir = Path(out)
    try:
        text = (out_dir / "scenario.yaml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"its scenario.yaml cannot be read ({exc})"
    wanted = scenario_to_yaml(scenario)
    if text == wanted:
        return None
    old, new = text.splitlines(), wanted.splitlines()
    line = next(
        (k for k, (a, b) in enumerate(zip(old, new, strict=False)) if a != b),
        min(len(old), len(new)),
    )
    was = old[line].strip() if line < len(old) else "(end of file)"
    now = new[line].strip() if line < len(new) else "(end of file)"
    return (
        f"its scenario.yaml differs from this run's at line {line + 1} ({was!r}, this run "
        f"{now!r}): other settings, seed or budget, or a file written by an older version"
    )


def stopped_run(
    out: str | os.PathLike[str], scenario: Scenario, torch_threads: int
) -> tuple[bool, str]:
    """Whether the run in ``out`` is a stopped run of ``scenario`` that :func:`resume` can
    continue: its ``train.json`` says it did not complete, with ``torch_threads``, its
    ``scenario.yaml`` is ``scenario`` byte for byte, and it has a checkpoint. ``(False, why
    not)`` otherwise (``why`` empty for a folder without a run)."""
    out_dir = Path(out)
    try:
        record = run_record(out_dir)
    except ValueError as exc:
        return False, f"its train.json cannot be read ({exc})"
    if record is None:
        return False, ""
    if record.get("status") == "complete":
        return False, "it is complete"
    if record.get("torch_threads") != torch_threads:
        return False, f"it was trained with torch_threads {record.get('torch_threads')!r}"
    difference = scenario_difference(out_dir, scenario)
    if difference is not None:
        return False, difference
    steps = stopped_checkpoint_steps(out_dir)
    if steps is None:
        return False, "it stopped before its first checkpoint"
    if steps >= scenario.agent.timesteps:  # trained out, stopped before model.zip
        return False, f"its newest checkpoint is at its budget ({steps} steps)"
    return True, ""


def _record_unfinished(
    path: Path,
    run_info: dict[str, Any],
    timesteps: int,
    exc: BaseException,
    *,
    validation: dict[str, Any] | None = None,
) -> None:
    """Rewrite ``train.json`` for a run that ended without a model: ``"stopped"`` (Ctrl-C,
    SIGTERM) or ``"failed"`` (an error, named in ``"error"``), with the steps it had trained
    and, for a validated run, its validation so far (``validation``: the best step and return,
    as a complete run records them; its ``best_model.zip`` is already saved).

    A run killed outright (SIGKILL, a power cut) cannot say so: its ``train.json`` keeps
    ``"running"``. Writing is best effort: the exception that ended the run is what matters.
    """
    # Ctrl-C, the command line's SIGTERM (lmrecsim.errors.Terminated) and SystemExit are not
    # Exceptions: they stop a run; an Exception is a failure.
    stopped = not isinstance(exc, Exception)
    info = {**run_info, "status": "stopped" if stopped else "failed", "timesteps": timesteps}
    if validation is not None:
        info["validation"] = validation
    if not stopped:
        text = str(exc).strip()
        info["error"] = (
            f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
        )
    try:
        with signals_deferred():  # a second Ctrl-C or a SIGTERM now must not leave "running"
            write_text_atomic(path, json.dumps(info, indent=2) + "\n")
    except Exception:  # noqa: BLE001,S110 - e.g. a full disk: the "running" record stays
        pass


#: Outputs of an earlier run in the same folder: its model, checkpoints, TensorBoard event files,
#: step log, demo summary and demo report (and temp files a stopped save left). They describe the
#: old model, so a new run removes them when it starts; train.json is rewritten at once, saying
#: "running".
STALE_RUN_OUTPUTS = (
    "model.zip",
    ".model.zip.*.tmp",
    ".model.tmp.zip",  # the temp name of versions before atomic_file saved models
    "checkpoints/model_*_steps.zip",
    "checkpoints/.model_*_steps.zip.*.tmp",
    "checkpoints/model_replay_buffer_*_steps.pkl",
    "checkpoints/model_vecnormalize_*_steps.pkl",
    "checkpoints/best_model_*_steps.zip",
    "checkpoints/.best_model_*_steps.zip.*.tmp",
    "best_model.zip",
    ".best_model.zip.*.tmp",
    "validation.csv",
    ".validation.csv.*.tmp",
    "tb/events.out.tfevents.*",
    "episodes.parquet",
    ".episodes.parquet.*.tmp",
    "summary.txt",
    # The demo's evaluation report (evaluation.runner's outputs and evaluation.plots' PLOT_NAMES).
    *(
        f"report/{name}"
        for name in (
            "report.html",
            "report.md",
            "summary.csv",
            "comparison.csv",
            "episodes.csv",
            "episodes.parquet",
            "return_ctr.png",
            "lorenz.png",
            "retention.png",
            "drift.png",
            "new_users.png",
            "learning_curves.png",
        )
    ),
)


def clear_previous_run(out_dir: Path) -> list[Path]:
    """Remove the :data:`STALE_RUN_OUTPUTS` of an earlier run in ``out_dir``; returns them.

    Only in a folder that holds an earlier run (its ``train.json``), and only those files:
    anything else in the folder is the user's and stays, and a folder that never held a run
    (``--out .`` in a project with a ``summary.txt`` of its own) is left alone.
    """
    if not (out_dir / "train.json").is_file():
        return []
    removed = []
    for pattern in STALE_RUN_OUTPUTS:
        for path in sorted(out_dir.glob(pattern)):
            if path.is_file():
                path.unlink()
                removed.append(path)
    return removed


def run_record(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A run folder's ``train.json`` (written by :func:`train`), or None when it has none.

    Raises:
        ValueError: ``train.json`` exists but is not a readable JSON object (one line, naming
            the file).
    """
    path = Path(run_dir) / "train.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable ({type(exc).__name__}; expected JSON)") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with 'seed' and 'n_envs'")
    return data


def training_seeds(run_dir: str | os.PathLike[str]) -> tuple[int, ...] | None:
    """The seeds a run's users came from: sub-env i of ``n_envs`` used ``seed + i``.

    Read from the run folder's ``train.json`` (written by :func:`train`).

    Returns:
        The seeds, or None when the folder has no ``train.json`` (a model saved elsewhere).

    Raises:
        ValueError: ``train.json`` exists but is not what :func:`train` writes (one line, naming
            the file and the key).
    """
    data = run_record(run_dir)
    if data is None:
        return None
    path = Path(run_dir) / "train.json"
    values = {}
    for key, minimum, maximum in (("seed", 0, MAX_TRAINING_SEED), ("n_envs", 1, MAX_N_ENVS)):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise ValueError(
                f"{path}: {key}: {value!r} (expected an integer in [{minimum}, {maximum}], as "
                "lmrecsim train writes)"
            )
        values[key] = value
    return tuple(sub_env_seeds(values["seed"], values["n_envs"]))


def validation_seeds(run_dir: str | os.PathLike[str]) -> tuple[int, ...] | None:
    """The seeds of the users a run chose its ``best_model.zip`` on (from ``train.json``, which
    records them from the start, so a stopped run's too), or None when the run did not validate
    (or has no readable ``train.json``: :func:`training_seeds` reports that)."""
    try:
        data = run_record(run_dir)
    except ValueError:
        return None
    val = None if data is None else data.get("validation")
    if not isinstance(val, dict):
        return None
    seed, users = val.get("seed"), val.get("users")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (seed, users)):
        return None
    if not 1 <= users <= MAX_N_ENVS:  # not what train writes: a hand-edited record
        return None
    return tuple(range(seed, seed + users))
