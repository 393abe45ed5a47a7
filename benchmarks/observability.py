"""How much of a user's hidden taste does the observation reveal? A ceiling for history-based agents.

The oracle ranks candidates by the hidden affinity ``cos(theta_u, e_c)``; an agent sees only the
observation (pooled history state, candidate vectors, candidate features). This benchmark fits a
regression from the observation of a candidate to its hidden affinity, on rollouts of a
half-random, half-oracle behaviour policy (so both good and bad candidates are seen), and then
ranks greedily by the prediction on held-out users. Its return is what a policy that perfectly
learned "what this user likes" from the observation would get myopically; the gap to the oracle
is the part no amount of training can close without more informative histories. Scenario
designers use it to check that a scenario is learnable before running the learning benchmark.

Run from the repository root::

    python -m benchmarks.observability                       # default scenario
    python -m benchmarks.observability --scenarios default interest_drift --users 256
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

Scorer = Callable[..., np.ndarray]


def candidate_inputs(obs: dict[str, np.ndarray]) -> np.ndarray:
    """The candidate scorer's per-candidate input ``[user, c, user * c, features]``, (N, K, 3p+F)."""
    cands = obs["candidates"]
    user = np.broadcast_to(obs["user"][:, None, :], cands.shape)
    return np.concatenate([user, cands, user * cands, obs["candidate_features"]], axis=-1)


def rollout(
    world: object,
    score: Scorer,
    *,
    n_users: int,
    seed: int,
    epsilon: float = 0.0,
    collect: bool = False,
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """One episode for each of ``n_users`` users, recommending the argmax of ``score`` (on a
    slate scenario, the top ``candidates.slate_size`` by score).

    Args:
        score: ``score(obs, affinity) -> (N, K)`` scores; ``affinity`` is the hidden one.
        epsilon: share of steps on which a uniformly random valid candidate is shown instead.
        collect: keep the per-candidate inputs and hidden affinities of the users still active.

    Returns:
        ``(returns (N,), inputs, affinities)``; the lists are empty unless ``collect``.
    """
    from lmrecsim.envs.simulator import UserBatch

    users = UserBatch(world, n_users)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    users.reset_users(np.arange(n_users), rng.integers(0, 2**62, n_users).astype(np.uint64))
    active = np.ones(n_users, dtype=bool)
    returns = np.zeros(n_users)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for _ in range(users.sc.episode.horizon):
        obs = users.observe()
        affinity = users.candidate_affinity()
        if collect:
            xs.append(candidate_inputs(obs)[active])
            ys.append(affinity[active])
        s = np.asarray(score(obs, affinity), dtype=np.float64)
        if epsilon > 0:
            explore = rng.random(n_users) < epsilon
            s = np.where(explore[:, None], rng.random(s.shape), s)
        s = np.where(obs["action_mask"] > 0, s, -np.inf)
        if users.slate > 1:
            # Slates: the top L by score (masked slots last, where they show nothing).
            action = np.argsort(-s, axis=1, kind="stable")[:, : users.slate]
        else:
            action = s.argmax(axis=1)
        reward, terminated, truncated, _ = users.step(action)
        returns += reward * active
        active &= ~(terminated | truncated)
        if not active.any():
            break
    return returns, xs, ys


def fit_affinity_model(x: np.ndarray, y: np.ndarray, *, seed: int, epochs: int) -> object:
    """An MLP (the candidate scorer's trunk size) regressing hidden affinity on the inputs."""
    import torch as th

    th.manual_seed(seed)
    xt = th.as_tensor(x, dtype=th.float32)
    yt = th.as_tensor(y, dtype=th.float32)
    net = th.nn.Sequential(
        th.nn.Linear(x.shape[1], 128),
        th.nn.ReLU(),
        th.nn.Linear(128, 128),
        th.nn.ReLU(),
        th.nn.Linear(128, 1),
    )
    opt = th.optim.Adam(net.parameters(), lr=1e-3)
    gen = th.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = th.randperm(len(yt), generator=gen)
        for i in range(0, len(yt), 1024):
            batch = perm[i : i + 1024]
            loss = ((net(xt[batch]).squeeze(-1) - yt[batch]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net


#: Rollout seed of the first fitting rollout (the others follow); evaluation uses ``seed + 5``.
FIT_SEED = 100


def measure(
    scenario: str, *, n_users: int, train_seeds: int, epochs: int, seed: int = 0
) -> dict[str, float]:
    """Returns of random, the learned-affinity ranker and the oracle, plus the regression's R^2."""
    import torch as th

    from lmrecsim.envs.world import build_world
    from lmrecsim.scenarios import load_scenario

    world = build_world(load_scenario(scenario), show_progress=False)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    if FIT_SEED <= seed + 5 < FIT_SEED + train_seeds:
        raise ValueError(f"seed {seed}: evaluation rollout seed {seed + 5} is a fitting seed")
    for s in range(train_seeds):
        # Seeds FIT_SEED+ for fitting and `seed + 5` for evaluation: different users.
        _, x, y = rollout(
            world, lambda o, a: a, n_users=n_users, seed=FIT_SEED + s, epsilon=0.5, collect=True
        )
        xs += x
        ys += y
    x = np.concatenate([a.reshape(-1, a.shape[-1]) for a in xs])
    y = np.concatenate([a.reshape(-1) for a in ys])
    net = fit_affinity_model(x, y, seed=seed, epochs=epochs)

    def learned(obs: dict[str, np.ndarray], _aff: np.ndarray) -> np.ndarray:
        with th.no_grad():
            return net(th.as_tensor(candidate_inputs(obs))).squeeze(-1).numpy()  # type: ignore[operator]

    with th.no_grad():
        pred = net(th.as_tensor(x[:200_000])).squeeze(-1).numpy()  # type: ignore[operator]
    r2 = 1.0 - float(np.mean((pred - y[:200_000]) ** 2) / np.var(y[:200_000]))
    rng = np.random.default_rng(seed)
    out = {"samples": float(len(y)), "r2": r2}
    for name, fn in (
        ("random", lambda o, a: rng.random(a.shape)),
        ("learned_affinity", learned),
        ("oracle", lambda o, a: a),
    ):
        ret, _, _ = rollout(world, fn, n_users=n_users, seed=seed + 5)
        out[name] = float(ret.mean())
        out[f"{name}_se"] = float(ret.std(ddof=1) / np.sqrt(ret.size))
    out["gap_closed"] = (out["learned_affinity"] - out["random"]) / (out["oracle"] - out["random"])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Print the learnability ceiling of each scenario; ``argv`` as on the command line."""
    from lmrecsim.commands.common import OneLineArgumentParser, int_at_least

    ap = OneLineArgumentParser(
        prog="benchmarks/observability.py",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    ap.add_argument("--scenarios", nargs="+", default=["default"], help="names or YAML paths")
    ap.add_argument(
        "--users", type=int_at_least(2), default=512, help="users per rollout (default 512)"
    )
    ap.add_argument(
        "--fit-rollouts", type=int_at_least(1), default=4, help="rollouts to fit on (default 4)"
    )
    ap.add_argument(
        "--epochs", type=int_at_least(1), default=3, help="regression epochs (default 3)"
    )
    ap.add_argument(
        "--seed",
        type=int_at_least(0, 2**31 - 1),
        default=0,
        help="of the regression and of the evaluation users (rollout seed SEED + 5; default 0)",
    )
    args = ap.parse_args(argv)
    fitting = range(FIT_SEED, FIT_SEED + args.fit_rollouts)
    if args.seed + 5 in fitting:
        ap.error(
            f"--seed: {args.seed} would evaluate on fitting users (rollout seed {args.seed + 5}; "
            f"the fitting rollouts use {fitting.start}..{fitting.stop - 1}; expected another seed)"
        )

    from lmrecsim.agents.train import set_torch_threads

    set_torch_threads(1)
    from lmrecsim.scenarios import load_scenario

    for name in args.scenarios:  # every file checked before any work starts
        load_scenario(name)
    print("scenario | samples | R^2 | random | learned-affinity ranker | oracle | gap closed")
    for name in args.scenarios:
        r = measure(
            name,
            n_users=args.users,
            train_seeds=args.fit_rollouts,
            epochs=args.epochs,
            seed=args.seed,
        )
        print(
            f"{name} | {r['samples']:.0f} | {r['r2']:.2f} | {r['random']:.2f} +- {r['random_se']:.2f}"
            f" | {r['learned_affinity']:.2f} +- {r['learned_affinity_se']:.2f}"
            f" | {r['oracle']:.2f} +- {r['oracle_se']:.2f} | {r['gap_closed']:.0%}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.insert(0, str(REPO))
    from lmrecsim.errors import report_user_errors

    raise SystemExit(report_user_errors("benchmarks/observability.py", main))
