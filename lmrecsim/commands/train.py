"""``lmrecsim train``: train a DQN or PPO policy on a scenario and write its run folder."""

from __future__ import annotations

import argparse
import json
import sys

from lmrecsim.commands.common import int_at_least, parse_hyperparameters
from lmrecsim.scenarios.schema import MAX_N_ENVS, MAX_TORCH_THREADS, MAX_TRAINING_SEED


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a policy on a scenario",
        description="Train an SB3 agent on a scenario. Writes DIR/model.zip, DIR/scenario.yaml, "
        "DIR/progress.csv, DIR/tb/ (TensorBoard), DIR/checkpoints/ and DIR/train.json; with "
        "validation (agent.validation.every or --validate-every), DIR/best_model.zip and "
        "DIR/validation.csv. With --resume, continue the run in DIR instead.",
    )
    p.add_argument(
        "--scenario", help="shipped scenario name or YAML path (default: the default scenario)"
    )
    p.add_argument("--algo", choices=["ppo", "dqn", "maskable_ppo"], help="override agent.algo")
    p.add_argument("--policy", choices=["candidate_scorer", "mlp"], help="override agent.policy")
    p.add_argument("--timesteps", type=int_at_least(1), help="override agent.timesteps")
    p.add_argument("--seed", type=int_at_least(0, MAX_TRAINING_SEED), help="override agent.seed")
    p.add_argument("--n-envs", type=int_at_least(1, MAX_N_ENVS), help="override agent.n_envs")
    p.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="SB3 hyperparameter over agent.hyperparameters (YAML value; a mapping such as "
        "policy_kwargs merges key by key, null drops the scenario's), repeatable",
    )
    p.add_argument(
        "--checkpoint-freq",
        type=int_at_least(1),
        help="environment steps between checkpoints, counted in steps of all --n-envs together "
        "(so rounded down to a multiple of the env count; default: a tenth of the budget, and "
        "for PPO at least one rollout, n_steps x n_envs)",
    )
    p.add_argument(
        "--validate-every",
        type=int_at_least(0),
        metavar="STEPS",
        help="override agent.validation.every: validate on held-out users at the first rollout "
        "start after every STEPS steps (SB3 updates the model between rollouts) and at the end, "
        "and keep the best model as DIR/best_model.zip (0: no validation)",
    )
    p.add_argument(
        "--torch-threads",
        type=int_at_least(1, MAX_TORCH_THREADS),
        help="torch threads while training (default $LMRECSIM_TORCH_THREADS or 1: the policy "
        "networks are small and extra threads only help on large ones)",
    )
    p.add_argument(
        "--log-episodes",
        action="store_true",
        help="also write DIR/episodes.parquet: every step of the training episodes that "
        "complete, with the behaviour policy's propensities (a stopped run writes those it "
        "completed, and --resume goes on logging; see docs/logs.md)",
    )
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in DIR (--out) from its newest checkpoint, or a complete run from "
        "its model.zip up to a higher --timesteps, with its own scenario.yaml; only --timesteps, "
        "--checkpoint-freq, --torch-threads and --no-progress may be given with it",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


#: Options that would change what the run in DIR trains: refused with --resume.
_FIXED_BY_RUN = {
    "scenario": "--scenario",
    "algo": "--algo",
    "policy": "--policy",
    "seed": "--seed",
    "n_envs": "--n-envs",
    "hp": "--hp",
    "validate_every": "--validate-every",
    "log_episodes": "--log-episodes",
}


def _resume(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lmrecsim.agents.errors import AgentError
    from lmrecsim.agents.train import resume, resume_point, run_record
    from lmrecsim.errors import UsageError

    for attr, flag in _FIXED_BY_RUN.items():
        value = getattr(args, attr)
        # Identity, not ``in``: 0 == False, and --seed 0 or --validate-every 0 must be refused too.
        if value is not None and value is not False and value != []:
            raise UsageError(
                f"{flag}: cannot be given with --resume (the run in '{args.out}' continues with "
                "its own scenario.yaml; train into a new --out to change it)"
            )
    try:
        record = run_record(args.out) or {}
    except ValueError as exc:
        raise AgentError(str(exc)) from None
    # A run trained with --log-episodes goes on logging: the resumed steps join its log under
    # their own label.
    logging = record.get("log_episodes") is True
    loggers: list = []
    factory = None
    if logging:  # the label names the step the resume starts from, read before it starts
        factory = _log_factory(Path(args.out), loggers, resumed_from=resume_point(args.out))
    result = resume(
        args.out,
        timesteps=args.timesteps,
        checkpoint_freq=args.checkpoint_freq,
        progress=not args.no_progress,
        torch_threads=args.torch_threads,
        callback_factory=factory,
        full_info=logging,
    )
    _warn_empty_logs(loggers, result.timesteps)
    _print_result(result)
    return 0


def _log_factory(out, loggers: list, *, resumed_from: int | None = None):  # noqa: ANN001, ANN202
    """The SB3 callback factory of --log-episodes: one EpisodeLogCallback writing
    ``out/episodes.parquet``, appended to ``loggers``. The episodes of a run resumed from step
    ``resumed_from`` join the run's log under the label ``ALGO-training (resumed at N)``; a log
    they cannot join refuses the resume before it starts."""

    def factory(scenario, world):  # noqa: ANN001, ANN202 - SB3 callback factory
        from lmrecsim.agents.errors import AgentError
        from lmrecsim.evaluation.training_log import (
            EpisodeLogCallback,
            merge_problem,
            resumed_label,
        )

        log = out / "episodes.parquet"
        label = f"{scenario.agent.algo}-training"
        if resumed_from is not None:
            problem = merge_problem(log, scenario)
            if problem is not None:
                raise AgentError(problem)
            label = resumed_label(label, resumed_from)
        cb = EpisodeLogCallback(
            log,
            scenario=scenario,
            world=world,
            seed=scenario.agent.seed,
            label=label,
            merge=resumed_from is not None,
        )
        loggers.append(cb)
        return [cb]

    return factory


def _warn_empty_logs(loggers: list, timesteps: int) -> None:
    for cb in loggers:  # each wrote its log when training ended
        if cb.written_steps == 0:
            print(
                f"lmrecsim: warning: {cb.path}: holds no steps: no episode finished within "
                f"{timesteps} timesteps (the log keeps complete episodes only)",
                file=sys.stderr,
            )


def _print_result(result) -> None:  # noqa: ANN001 - a TrainResult, imported lazily
    print(
        json.dumps(
            {
                "out": str(result.out_dir),
                "timesteps": result.timesteps,
                **({"resumed_from": result.resumed_from} if result.resumed_from else {}),
                "seconds": round(result.seconds, 2),
                "steps_per_second": round(result.steps_per_second, 1),
                **({"validation": result.validation} if result.validation is not None else {}),
            }
        )
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lmrecsim.agents.train import train
    from lmrecsim.errors import UsageError

    if args.resume:
        return _resume(args)
    log = Path(args.out) / "episodes.parquet"
    if args.log_episodes and log.is_dir():  # written at the end: refused before training
        raise UsageError(
            f"--out: '{log}' is a folder (expected the --log-episodes step log file, or nothing)"
        )
    loggers: list = []
    result = train(
        "default" if args.scenario is None else args.scenario,  # --scenario '' is refused
        out=args.out,
        algo=args.algo,
        policy=args.policy,
        timesteps=args.timesteps,
        seed=args.seed,
        n_envs=args.n_envs,
        hyperparameters=parse_hyperparameters(args.hp),
        checkpoint_freq=args.checkpoint_freq,
        progress=not args.no_progress,
        callback_factory=_log_factory(Path(args.out), loggers) if args.log_episodes else None,
        full_info=args.log_episodes,
        torch_threads=args.torch_threads,
        validate_every=args.validate_every,
        record={"log_episodes": True} if args.log_episodes else None,
    )
    _warn_empty_logs(loggers, result.timesteps)
    _print_result(result)
    return 0
