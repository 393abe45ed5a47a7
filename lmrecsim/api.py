"""The Python API behind the command line (training, the demo)."""

from __future__ import annotations

import os
from pathlib import Path

from lmrecsim.agents.base import RandomPolicy
from lmrecsim.agents.train import train, write_text_atomic
from lmrecsim.envs.world import build_world
from lmrecsim.evaluation.bootstrap import bootstrap_ci, paired_difference_ci
from lmrecsim.evaluation.rollout import episode_returns, run_policy
from lmrecsim.scenarios import Scenario, ScenarioError, load_scenario


def demo(
    scenario: str | os.PathLike[str] | Scenario = "default",
    *,
    out: str | os.PathLike[str] = "runs/demo",
    timesteps: int = 100_000,
    episodes: int = 20,
    progress: bool = True,
) -> str:
    """Train PPO on a scenario, compare it with random on the held-out evaluation seeds.

    Writes the run folder of :func:`lmrecsim.agents.train.train` plus ``summary.txt``; returns the
    summary text.
    """
    sc = load_scenario(scenario)
    seeds = list(sc.evaluation.seeds)
    # Sub-env i trains on seed agent.seed + i; evaluating on one of those would meet training users.
    training_seeds = range(sc.agent.seed, sc.agent.seed + sc.agent.n_envs)
    overlap = sorted(set(seeds) & set(training_seeds))
    if overlap:
        raise ScenarioError(
            f"{sc.source}: evaluation.seeds: {overlap} overlap the training seeds "
            f"{training_seeds.start}..{training_seeds.stop - 1} (agent.seed + sub-env index); "
            "expected held-out seeds"
        )
    result = train(sc, out=out, algo="ppo", timesteps=timesteps, progress=progress)
    world = build_world(result.scenario)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc="evaluating", unit="step")
    tick = bar.update if bar is not None else None
    trained, _ = run_policy(
        world, result.model, label="ppo", seeds=seeds, episodes=episodes, on_step=tick
    )
    rand, _ = run_policy(
        world, RandomPolicy(seed=0), label="random", seeds=seeds, episodes=episodes, on_step=tick
    )
    if bar is not None:
        bar.close()
    ep = episode_returns(trained)
    ep_r = episode_returns(rand)
    lines = [
        f"lmrecsim demo: PPO (candidate scorer) on scenario '{result.scenario.name}'",
        f"trained for {result.timesteps} steps in {result.seconds:.1f} s "
        f"({result.steps_per_second:.0f} steps/s) with training seeds "
        f"{result.scenario.agent.seed}..{result.scenario.agent.seed + result.scenario.agent.n_envs - 1}",
        f"evaluated on held-out seeds {seeds} x {episodes} episodes (same users for both policies)",
        "",
        f"{'policy':<8} {'return (95% CI)':<24} {'click-through':>13} {'session length':>15}",
    ]
    for name, frame, steps in (("ppo", ep, trained), ("random", ep_r, rand)):
        m, lo, hi = bootstrap_ci(frame["ret"].to_numpy(), rng=0)
        ctr = float(steps["clicked"].mean())
        lines.append(
            f"{name:<8} {m:6.2f} [{lo:5.2f}, {hi:5.2f}]{'':<6} {ctr:13.3f} {frame['length'].mean():15.1f}"
        )
    d, lo, hi = paired_difference_ci(ep["ret"].to_numpy(), ep_r["ret"].to_numpy(), rng=0)
    lines += [
        "",
        f"paired difference in return (ppo - random): {d:+.2f} [{lo:+.2f}, {hi:+.2f}]",
        f"ppo/random return ratio: {ep['ret'].mean() / max(ep_r['ret'].mean(), 1e-9):.2f}",
    ]
    text = "\n".join(lines) + "\n"
    write_text_atomic(Path(out) / "summary.txt", text)
    return text
