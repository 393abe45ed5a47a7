"""The learning benchmark's training runs as Ray tasks (``--ray``): this machine's cores or a cluster.

:class:`RayPool` stands in for the benchmark's process pool. A training run goes to a Ray task
that trains into a temporary folder on whichever node runs it and sends the run folder back as a
gzipped tar; the driver unpacks it into ``--out`` (``train.json`` last, so ``--resume`` never
takes a half-unpacked run for a complete one). Nodes need no shared file system, only the same
lmrecsim installed; the ``benchmarks`` package travels with the job (Ray's ``py_modules``), and
scenarios travel as loaded objects, so a scenario file need not exist on the nodes (files it
names, such as a catalog CSV, must). A scenario's evaluation is a Ray task too, sent the saved
models of its runs. Every run is seeded and sets its own torch threads, and an evaluation reads
only the saved models, so the results are those of ``--jobs 1``.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from lmrecsim.errors import UsageError

BENCHMARKS_DIR = Path(__file__).resolve().parent
# What an evaluation reads of a run folder: the models and the record of the training seeds.
EVALUATED_FILES = ("model.zip", "best_model.zip", "train.json")


def train_archived(
    sc: Any, algo: str, policy: str, seed: int, *, timesteps: int, torch_threads: int
) -> tuple[Any, bytes]:
    """Train one run into a temporary folder (on a Ray worker); returns its
    :class:`~benchmarks.learning.AgentRun` and the run folder as gzipped tar bytes."""
    from benchmarks.learning import train_run

    with tempfile.TemporaryDirectory(prefix="lmrecsim-run-") as tmp:
        run = train_run(
            sc, algo, policy, seed, timesteps=timesteps, out=Path(tmp), torch_threads=torch_threads
        )
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            # Not the run's lock file: moved over the target folder's, it would hide a lock
            # held there (the holder's flock stays on the file it opened).
            tar.add(run.folder, arcname=".", filter=_without_lock)
    return run, buffer.getvalue()


def _without_lock(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
    from lmrecsim.atomic import LOCK_NAME

    return None if Path(member.name).name == LOCK_NAME else member


def task_error(exc: BaseException) -> BaseException:
    """The error a Ray task raised, unwrapped from Ray's ``RayTaskError`` (whose text carries
    the worker's whole traceback), so the benchmark reports it in one line as it would
    locally."""
    from ray.exceptions import RayTaskError

    cause = getattr(exc, "cause", None)
    return cause if isinstance(exc, RayTaskError) and isinstance(cause, BaseException) else exc


def pack_models(runs: list[Any]) -> bytes:
    """The :data:`EVALUATED_FILES` of every run, as gzipped tar bytes (``<label>/<file>``)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for run in runs:
            for name in EVALUATED_FILES:
                path = Path(run.folder) / name
                if path.is_file():
                    tar.add(path, arcname=f"{run.label}/{name}")
    return buffer.getvalue()


def evaluate_archived(
    sc: Any, runs: list[dict[str, Any]], data: bytes, *, eval_seeds: Any, episodes: Any
) -> Any:
    """Evaluate one scenario's runs (fields of :class:`~benchmarks.learning.AgentRun`; their
    models in ``data``, from :func:`pack_models`) on a Ray worker; returns the
    :class:`~benchmarks.learning.ScenarioResult`, whose runs name the worker's folders."""
    from benchmarks.learning import AgentRun, evaluate_runs

    with tempfile.TemporaryDirectory(prefix="lmrecsim-eval-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data")
        here = [AgentRun(**{**run, "folder": str(Path(tmp) / run["label"])}) for run in runs]
        return evaluate_runs(sc, here, eval_seeds=eval_seeds, episodes=episodes)


def unpack_run(run: Any, data: bytes, folder: Path) -> Any:
    """Unpack a run folder sent by :func:`train_archived` into ``folder``; returns ``run``
    pointing there.

    The earlier run's outputs in ``folder`` are removed first, as a run trained there would
    (:func:`lmrecsim.agents.train.clear_previous_run`); files are moved in from a staging folder
    beside it, ``train.json`` last, with the folder's lock held as a run trained there holds it.
    """
    from lmrecsim.agents.train import run_folder_lock

    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(staging, filter="data")
        with run_folder_lock(folder):  # as a run trained there holds it
            _move_in(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    run.folder = str(folder)
    return run


def _move_in(staging: Path, folder: Path) -> None:
    """Replace the earlier run in ``folder`` with the run unpacked in ``staging``."""
    from lmrecsim.agents.train import clear_previous_run

    clear_previous_run(folder)
    record = staging / "train.json"
    for path in sorted(staging.rglob("*")):  # a folder before what it holds
        target = folder / path.relative_to(staging)
        if path.is_dir():
            target.mkdir(exist_ok=True)
        elif path != record:
            os.replace(path, target)
    os.replace(record, folder / "train.json")


class RayPool:
    """``submit``/``shutdown`` as the benchmark uses a ``ProcessPoolExecutor``: training runs and
    evaluations become Ray tasks of ``threads`` CPUs each; a run ``--resume`` reuses is taken
    on the driver at once.

    Args:
        address: a Ray cluster's address (``auto``, ``ray://host:10001``), or None to start Ray
            on this machine (or join the cluster ``RAY_ADDRESS`` names).
        threads: torch threads of each run, the CPUs each task asks Ray for.
        out: the benchmark's ``--out`` folder, where runs are unpacked.
        resume: runs ``--resume`` can reuse stay on the driver.
    """

    def __init__(self, address: str | None, *, threads: int, out: Path, resume: bool) -> None:
        try:
            import ray
        except ImportError:
            raise UsageError(
                "--ray: Ray is not installed (expected `pip install 'ray>=2.9'`, which "
                "`make install` does)"
            ) from None
        self._ray = ray
        self._threads, self._out, self._resume = threads, out, resume
        self._started = not ray.is_initialized()
        if self._started:
            try:
                ray.init(
                    address=address,
                    runtime_env={"py_modules": [str(BENCHMARKS_DIR)]},
                    include_dashboard=False,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise UsageError(
                    f"--ray: cannot start or join Ray at {address!r} ({first})"
                ) from None
        self._task = ray.remote(num_cpus=threads, max_retries=0)(train_archived)
        self._evaluate = ray.remote(num_cpus=threads, max_retries=0)(evaluate_archived)
        self._refs: list[Any] = []

    def cpus(self) -> int:
        """The CPUs of the Ray cluster (at least 1)."""
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)``: a training run (:func:`benchmarks.learning.train_run`)
        as a Ray task, anything else here and now."""
        from benchmarks.learning import run_plan
        from lmrecsim.agents.train import reuse_run

        # By name: run as `python -m benchmarks.learning`, the scheduler's train_run is
        # __main__'s, another object than benchmarks.learning's.
        if fn.__name__ == "train_run":
            name, algo, policy, seed = args
            _, _, folder, run_sc = run_plan(
                name, algo, policy, seed, timesteps=kwargs["timesteps"], out=self._out
            )
            reusable = self._resume and reuse_run(folder, run_sc, self._threads)[0] is not None
            if not reusable:
                return self._remote(name, algo, policy, seed, folder, kwargs["timesteps"])
        elif fn.__name__ == "evaluate_runs":
            return self._remote_evaluation(*args, **kwargs)
        done: Future = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - raised where the scheduler reads the result
            done.set_exception(exc)
        return done

    def _remote(
        self, name: Any, algo: str, policy: str, seed: int, folder: Path, timesteps: int
    ) -> Future:
        from lmrecsim.scenarios import load_scenario

        # The loaded scenario, not its name: a scenario file need not exist on the nodes.
        ref = self._task.remote(
            load_scenario(name),
            algo,
            policy,
            seed,
            timesteps=timesteps,
            torch_threads=self._threads,
        )
        self._refs.append(ref)
        done: Future = Future()

        def unpack(task: Future) -> None:
            try:
                run, data = task.result()
                done.set_result(unpack_run(run, data, folder))
            except BaseException as exc:  # noqa: BLE001 - handed to the scheduler
                done.set_exception(task_error(exc))

        ref.future().add_done_callback(unpack)
        return done

    def _remote_evaluation(self, name: Any, runs: list[Any], **kwargs: Any) -> Future:
        from lmrecsim.scenarios import load_scenario

        # Plain fields, not AgentRun objects: run as `python -m benchmarks.learning`, the
        # driver's AgentRun is __main__'s, which a worker cannot unpickle.
        fields = [dict(vars(run)) for run in runs]
        ref = self._evaluate.remote(load_scenario(name), fields, pack_models(runs), **kwargs)
        self._refs.append(ref)
        done: Future = Future()

        def finish(task: Future) -> None:
            try:
                result = task.result()
                result.runs = list(runs)  # the driver's run folders, not the worker's
                done.set_result(result)
            except BaseException as exc:  # noqa: BLE001 - handed to the scheduler
                done.set_exception(task_error(exc))

        ref.future().add_done_callback(finish)
        return done

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Cancel the tasks still running when ``cancel_futures``; stop Ray if this pool
        started it."""
        if cancel_futures:
            for ref in self._refs:
                try:
                    self._ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001,S110 - finished already, or Ray is going away
                    pass
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
