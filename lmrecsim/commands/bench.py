"""``lmrecsim bench``: the speed figures of issue 7, measured in one run and printed as ratios.

Absolute rates depend on the machine and on what else runs on it; ratios of figures measured in
the same run are what to compare. ``--out FILE.json`` writes every figure as
``{"name", "value", "unit"}``, plus ``"target"`` and ``"met"`` for the figures issue 7 sets a
target for (:data:`TARGETS`).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmrecsim.errors import UsageError


@dataclass(frozen=True)
class Figure:
    """One measured figure."""

    name: str
    value: float
    unit: str


# The targets of issue 7, each a lower bound on one figure.
TARGETS: dict[str, float] = {
    "ppo_default_over_zero_cost": 0.8,
    "batched_env_64_user_steps_per_s": 200_000.0,
    "batched_env_256_user_steps_per_s": 200_000.0,
    "catalog_encoding_over_raw_forward": 0.9,
    "cached_second_run_speedup": 100.0,
    "text_mode_batched_cached_over_naive": 5.0,
}


def figure_record(figure: Figure) -> dict[str, Any]:
    """``{"name", "value", "unit"}``, with ``"target"`` and ``"met"`` where a target is set."""
    record: dict[str, Any] = asdict(figure)
    target = TARGETS.get(figure.name)
    if target is not None:
        record["target"] = target
        record["met"] = bool(figure.value >= target)
    return record


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure simulator, encoder and training speed (figures and ratios)",
        description="Measures PPO steps/s against a zero-cost env and CartPole, batched env "
        "user-steps/s, catalog encoding against the raw model, text-mode caching against naive "
        "encoding, and candidate generation over 100k/1M items. Not a test: timings are noisy, "
        "ratios within one run are what counts.",
    )
    p.add_argument("--out", default=None, help="write every figure as JSON to this file")
    p.add_argument("--quick", action="store_true", help="smaller budgets (about 80 s)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--learning",
        action="store_true",
        help="run the learning-quality benchmark (benchmarks/learning.py, writes RESULTS.md) instead",
    )
    p.add_argument(
        "--learning-args",
        default="",
        metavar="ARGS",
        help='arguments for the learning benchmark, e.g. --learning-args="--quick --scenarios default"',
    )
    p.set_defaults(func=run)


def _rate(fn: Callable[[], int], min_seconds: float) -> float:
    """Units per second of ``fn`` (which returns the units it did), repeated for ``min_seconds``."""
    fn()  # warm-up
    done, start = 0, time.perf_counter()
    while True:
        done += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


# ---------------------------------------------------------------- 1. PPO
def _ppo_model(venv: Any, policy: str) -> Any:
    """A PPO model for figure 1 with a logger that writes nothing.

    Without a logger of its own, every ``learn`` call makes SB3 create an empty
    ``SB3-<date>`` folder in the system's temporary directory.
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import Logger

    from lmrecsim.agents.build import build_model

    if policy == "mlp_cartpole":
        from lmrecsim.agents.build import PPO_DEFAULTS

        model = PPO("MlpPolicy", venv, seed=0, device="cpu", verbose=0, **PPO_DEFAULTS)
    else:
        model = build_model("ppo", venv, policy=policy, seed=0)
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def _ppo_rates(
    runs: dict[str, tuple[Any, str]], timesteps: int, rounds: int = 4
) -> dict[str, float]:
    """PPO training steps/s of each ``name -> (venv, policy)``, measured in alternation.

    Every model first runs one rollout and update (warm-up). Then the budget is split into
    ``rounds`` chunks of whole rollouts and the models take turns, so a change in the machine's
    load during the measurement reaches all of them alike instead of whichever ran last.
    """
    models = {name: _ppo_model(venv, policy) for name, (venv, policy) in runs.items()}
    rollout = {name: m.n_steps * m.env.num_envs for name, m in models.items()}
    for name, model in models.items():
        model.learn(rollout[name])
    seconds = dict.fromkeys(models, 0.0)
    steps = dict.fromkeys(models, 0)
    # Whole rollouts per model; no more rounds than the smallest budget has rollouts.
    n_rollouts = {name: max(timesteps // rollout[name], 1) for name in models}
    rounds = max(1, min(rounds, *n_rollouts.values()))
    for _ in range(rounds):
        for name, model in models.items():
            chunk = max(n_rollouts[name] // rounds, 1) * rollout[name]
            start = time.perf_counter()
            model.learn(chunk, reset_num_timesteps=False)
            seconds[name] += time.perf_counter() - start
            steps[name] += chunk
    return {name: steps[name] / seconds[name] for name in models}


def zero_cost_vec_env(
    observation_space: Any, action_space: Any, n_envs: int, horizon: int = 50
) -> Any:
    """A VecEnv with the given spaces whose step costs nothing but returning preallocated arrays."""
    from stable_baselines3.common.vec_env import VecEnv

    class ZeroCostVecEnv(VecEnv):
        def __init__(self) -> None:
            super().__init__(n_envs, observation_space, action_space)
            sample = observation_space.sample()
            self._obs = {k: np.repeat(np.asarray(v)[None], n_envs, 0) for k, v in sample.items()}
            if "action_mask" in self._obs:
                self._obs["action_mask"][:] = 1
            self._t = 0

        def reset(self) -> Any:
            self._t = 0
            return {k: v.copy() for k, v in self._obs.items()}

        def step_async(self, actions: np.ndarray) -> None:
            return None

        def step_wait(self) -> Any:
            self._t += 1
            done = self._t % horizon == 0
            dones = np.full(n_envs, done)
            infos = [
                {"terminal_observation": {k: v[0] for k, v in self._obs.items()}} if done else {}
                for _ in range(n_envs)
            ]
            return (
                {k: v.copy() for k, v in self._obs.items()},
                np.zeros(n_envs, np.float32),
                dones,
                infos,
            )

        def close(self) -> None:
            return None

        def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
            return [None] * n_envs

        def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
            return None

        def env_method(
            self, method_name: str, *args: Any, indices: Any = None, **kw: Any
        ) -> list[Any]:
            return [None] * n_envs

        def env_is_wrapped(self, wrapper_class: Any, indices: Any = None) -> list[bool]:
            return [False] * n_envs

    return ZeroCostVecEnv()


def bench_ppo(world: Any, timesteps: int) -> list[Figure]:
    from stable_baselines3.common.env_util import make_vec_env

    from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv

    n_envs = world.scenario.agent.n_envs
    venv = BatchedRecommendationVecEnv(world=world, n_envs=n_envs)
    venv.seed(0)
    rates = _ppo_rates(
        {
            "sim": (venv, "candidate_scorer"),
            "zero": (
                zero_cost_vec_env(venv.observation_space, venv.action_space, n_envs),
                "candidate_scorer",
            ),
            "cart": (make_vec_env("CartPole-v1", n_envs=n_envs, seed=0), "mlp_cartpole"),
        },
        timesteps,
    )
    sim, zero, cart = rates["sim"], rates["zero"], rates["cart"]
    return [
        Figure("ppo_default_steps_per_s", sim, "steps/s"),
        Figure("ppo_zero_cost_env_steps_per_s", zero, "steps/s"),
        Figure("ppo_cartpole_steps_per_s", cart, "steps/s"),
        Figure("ppo_default_over_zero_cost", sim / zero, "ratio"),
        Figure("ppo_default_over_cartpole", sim / cart, "ratio"),
    ]


# ----------------------------------------------------------- 2. env speed
def bench_env(world: Any, seconds: float) -> list[Figure]:
    import gymnasium as gym

    from lmrecsim.envs.env import RecommendationEnv
    from lmrecsim.envs.vec_env import BatchedRecommendationVecEnv

    out: list[Figure] = []
    k = world.scenario.candidates.k

    def batched_rate(w: Any, n: int, slate: int) -> float:
        venv = BatchedRecommendationVecEnv(world=w, n_envs=n)
        venv.seed(0)
        venv.reset()
        shape = (64, n) if slate == 1 else (64, n, slate)
        acts = np.random.default_rng(0).integers(0, k, size=shape)
        state = {"t": 0}

        def step_batch() -> int:
            venv.step_async(acts[state["t"] % 64])
            venv.step_wait()
            state["t"] += 1
            return n

        return _rate(step_batch, seconds)

    for n in (64, 256):
        out.append(
            Figure(f"batched_env_{n}_user_steps_per_s", batched_rate(world, n, 1), "user-steps/s")
        )
    # Slates of three (no target): the same users recommended three items per step.
    slate = batched_rate(slate_world(world, 3), 64, 3)
    out += [
        Figure("batched_env_64_slate3_user_steps_per_s", slate, "user-steps/s"),
        Figure("batched_env_64_slate3_over_single", slate / out[0].value, "ratio"),
    ]

    def loop(env: Any, actions: np.ndarray) -> Callable[[], int]:
        env.reset(seed=0)

        def run() -> int:
            for a in actions:
                _, _, term, trunc, _ = env.step(int(a))
                if term or trunc:
                    env.reset()
            return actions.size

        return run

    single = _rate(loop(RecommendationEnv(world=world), np.arange(200) % k), seconds)
    cart = _rate(loop(gym.make("CartPole-v1"), np.arange(2000) % 2), seconds)
    out += [
        Figure("single_env_steps_per_s", single, "steps/s"),
        Figure("cartpole_env_steps_per_s", cart, "steps/s"),
        Figure("single_env_over_cartpole", single / cart, "ratio"),
    ]
    return out


# -------------------------------------------------------- 3. catalog encoding
def _raw_forward_seconds(model: Any, texts: list[str], batch_size: int, max_length: int) -> float:
    """Seconds for the bare tokenizer + model forward over ``texts`` in input-order batches."""
    import torch

    tok, net = model.tokenizer, model.model
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            batch = tok(
                texts[i : i + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            net(**batch)
    return time.perf_counter() - start


def bench_encoding(world: Any, n_texts: int | None, rounds: int = 2) -> list[Figure]:
    """Catalog encoding (``load_encoder`` with an empty on-disk cache) against the raw forward.

    Both run on the same texts with the scenario's batch size; they are timed alternately,
    ``rounds`` times each, so that load from other processes hits both alike. Each round's
    second ``encode`` of the same texts is answered from the on-disk cache.
    """
    from lmrecsim.encoders import load_encoder

    sc = world.scenario.encoder
    texts = world.catalog.texts()
    texts = list(texts if n_texts is None else texts[:n_texts])
    first = second = raw = 0.0
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            enc = load_encoder(
                None if sc.model == "default" else sc.model,
                pooling=sc.pooling,
                max_length=sc.max_length,
                batch_size=sc.batch_size,
                device=sc.device,
                cache_dir=tmp,
            )
            start = time.perf_counter()
            enc.encode(texts)
            first += time.perf_counter() - start
            start = time.perf_counter()
            enc.encode(texts)
            second += time.perf_counter() - start
        model = raw_model(enc)
        raw += _raw_forward_seconds(model, texts, sc.batch_size, model.effective_max_length)
    n = len(texts) * rounds
    return [
        Figure("catalog_encoding_items_per_s", n / first, "items/s"),
        Figure("raw_forward_items_per_s", n / raw, "items/s"),
        Figure("catalog_encoding_over_raw_forward", raw / first, "ratio"),
        Figure("cached_second_run_speedup", first / max(second, 1e-9), "ratio"),
    ]


# ------------------------------------------------------------ 4. text mode
def mode_world(world: Any, mode: str, text_events: str | None = None) -> Any:
    """The same world with ``state.mode`` set to ``mode`` and, if given, ``state.text_events``
    (``world`` itself when it already has them)."""
    from lmrecsim.envs.world import build_world
    from lmrecsim.scenarios.loader import deep_merge, scenario_from_dict, scenario_to_dict

    state = world.scenario.state
    if state.mode == mode and text_events in (None, state.text_events):
        return world
    change = {"mode": mode} if text_events is None else {"mode": mode, "text_events": text_events}
    data = deep_merge(scenario_to_dict(world.scenario), {"state": change})
    return build_world(scenario_from_dict(data), encoder=world.encoder)


def slate_world(world: Any, size: int) -> Any:
    """The same world with ``candidates.slate_size`` set to ``size``."""
    from lmrecsim.envs.world import build_world
    from lmrecsim.scenarios.loader import deep_merge, scenario_from_dict, scenario_to_dict

    data = deep_merge(scenario_to_dict(world.scenario), {"candidates": {"slate_size": size}})
    return build_world(scenario_from_dict(data), encoder=world.encoder)


def _mean_row_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine between matching rows of ``a`` and ``b`` (both (m, d))."""
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    return float(np.mean(np.einsum("nd,nd->n", a, b) / np.maximum(na * nb, 1e-12)))


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Rank of each entry within its row (0 = lowest), (m, k) float64."""
    return np.argsort(np.argsort(scores, axis=1, kind="stable"), axis=1).astype(np.float64)


def agreement_figures(
    text: np.ndarray,
    pooled: np.ndarray,
    window_mean: np.ndarray,
    cand_emb: np.ndarray,
    valid: np.ndarray,
    *,
    name: str = "pooled",
) -> list[Figure]:
    """How closely two state sets agree, as vectors and as rankers of the shown candidates.

    Args:
        text: (m, d) text states; pooled: (m, d) pooled states of the same users and steps.
        window_mean: (m, d) equally weighted mean of the item embeddings of the events the text
            renders (a diagnostic: what the text sees, without the language model's reading).
        cand_emb: (m, K, d) embeddings of the candidates shown at that step.
        valid: (m, K) bool, the action mask; rankings use valid candidates only (rows with
            fewer than two are left out).

    Returns:
        ``pooled_vs_text_state_mean_cosine`` (raw cosine, full d);
        ``..._centered_mean_cosine`` (each set minus its own mean over all samples first, so the
        direction every state shares -- template words, popular items -- does not count);
        ``..._top1_candidate_agreement`` (both states, scoring candidates by cosine, pick the same
        one) with its ``..._chance`` level (1 / valid candidates);
        ``..._candidate_rank_correlation`` (mean Spearman correlation of the two rankings); and
        the raw cosines of the window mean with the text and with the pooled state. ``name``
        replaces ``pooled`` in the names when another mode's states are compared with the text.
    """
    out = [
        Figure(f"{name}_vs_text_state_mean_cosine", _mean_row_cosine(text, pooled), "cosine"),
        Figure(
            f"{name}_vs_text_state_centered_mean_cosine",
            _mean_row_cosine(text - text.mean(0), pooled - pooled.mean(0)),
            "cosine",
        ),
    ]
    rows = valid.sum(axis=1) >= 2
    neg = np.float64(-np.inf)
    s_text = np.where(valid, np.einsum("nd,nkd->nk", text, cand_emb), neg)[rows]
    s_pool = np.where(valid, np.einsum("nd,nkd->nk", pooled, cand_emb), neg)[rows]
    v = valid[rows]
    top1 = float(np.mean(s_text.argmax(1) == s_pool.argmax(1))) if rows.any() else float("nan")
    chance = float(np.mean(1.0 / v.sum(1))) if rows.any() else float("nan")
    rho = []
    for a, b, m in zip(s_text, s_pool, v, strict=True):
        ra, rb = _ranks(a[m][None])[0], _ranks(b[m][None])[0]
        ra -= ra.mean()
        rb -= rb.mean()
        rho.append(float(ra @ rb / np.sqrt((ra @ ra) * (rb @ rb))))
    out += [
        Figure(f"{name}_vs_text_top1_candidate_agreement", top1, "fraction"),
        Figure(f"{name}_vs_text_top1_candidate_agreement_chance", chance, "fraction"),
        Figure(
            f"{name}_vs_text_candidate_rank_correlation",
            float(np.mean(rho)) if rho else float("nan"),
            "spearman",
        ),
        Figure(
            "text_state_vs_window_item_mean_cosine",
            _mean_row_cosine(text, window_mean),
            "cosine",
        ),
        Figure(
            f"{name}_state_vs_window_item_mean_cosine",
            _mean_row_cosine(pooled, window_mean),
            "cosine",
        ),
    ]
    return out


def state_agreement_figures(world: Any, n_users: int, n_steps: int, seed: int = 0) -> list[Figure]:
    """Pooled, events and text states on the same trajectories, compared by
    :func:`agreement_figures` (the pooled and the events state each against the text state).

    Users are stepped in text mode with random actions; at every step the states (full d) are
    taken for every user that has all of them, with the candidates shown at that step. The events
    state needs its event tables: the first call on a catalog encodes them (cached on disk).
    """
    from lmrecsim.envs.simulator import UserBatch

    tworld = mode_world(world, "text")
    eworld = mode_world(world, "events")
    users = UserBatch(tworld, n_users)
    rng = np.random.default_rng(seed)
    users.reset_users(np.arange(n_users), rng.integers(0, 2**62, n_users).astype(np.uint64))
    rows = np.arange(n_users)
    names = ("text", "pooled", "events", "win", "cand", "ok")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for _ in range(n_steps):
        text, has = users.text_states(rows)
        pooled = users.pooled_states(rows)
        events = users.events_states(rows, tables=eworld)
        ok = has & (np.linalg.norm(pooled, axis=1) > 0)
        win = np.zeros((int(ok.sum()), tworld.dim), dtype=np.float32)
        for j, r in enumerate(np.flatnonzero(ok).tolist()):
            items = users.history_events(r)[0]
            win[j] = tworld.item_emb[items[items >= 0]].sum(axis=0)
        parts["text"].append(text[ok])
        parts["pooled"].append(pooled[ok])
        parts["events"].append(events[ok])
        parts["win"].append(win)
        parts["cand"].append(users.cand[ok])
        parts["ok"].append(users.mask[ok])
        _, term, trunc, _ = users.step(rng.integers(0, users.k, n_users), info=False)
        done = np.flatnonzero(term | trunc)
        users.reset_users(done, rng.integers(0, 2**62, done.size).astype(np.uint64))
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    cand = tworld.item_emb[cat["cand"]]
    out = agreement_figures(cat["text"], cat["pooled"], cat["win"], cand, cat["ok"])
    seen = {f.name for f in out}
    events = agreement_figures(
        cat["text"], cat["events"], cat["win"], cand, cat["ok"], name="events"
    )
    return out + [f for f in events if f.name not in seen]


def raw_model(encoder: Any) -> Any:
    """The language model under any cache wrappers (``LRUEncoder``, ``CachedEncoder``)."""
    while hasattr(encoder, "encoder"):
        encoder = encoder.encoder
    return encoder


def bench_text_mode(
    world: Any,
    n_users: int,
    n_steps: int,
    naive_steps: int,
    rounds: int = 3,
    *,
    text_events: str | None = None,
    name_suffix: str = "",
) -> list[Figure]:
    """``text`` state mode against naive per-env, per-step encoding, on the same kind of users.

    Batched side: the real text-mode step of a :class:`UserBatch` (one batched, LRU-cached call
    for all users that step together, plus one for the users reset after it). Naive side: a
    pooled-mode batch (no language-model work in its step) where every env encodes its own
    rendered history with the bare model at every step, one text per call, and once more after a
    reset, as a per-env ``step``/``reset`` would; nothing is cached. The two sides are timed in
    alternating chunks (``rounds`` of each) so that load from other processes hits both alike;
    the LRU starts empty and its hit rate counts the timed batched steps only.

    ``text_events`` overrides ``state.text_events`` for both sides (the figures' names then end
    in ``_<text_events>_events``); by default the scenario's own setting is measured.
    ``name_suffix`` is appended to every figure's name (runs at other batch sizes).
    """
    from lmrecsim.envs.simulator import UserBatch

    tworld = mode_world(world, "text", text_events)
    model = raw_model(tworld.encoder)
    fast = UserBatch(tworld, n_users)
    lru = fast.text_encoder()  # new, so empty
    naive = UserBatch(mode_world(world, "pooled", text_events), n_users)
    rngs = {"fast": np.random.default_rng(1), "naive": np.random.default_rng(1)}
    for name, users in (("fast", fast), ("naive", naive)):
        rng = rngs[name]
        users.reset_users(np.arange(n_users), rng.integers(0, 2**62, n_users).astype(np.uint64))
    model.encode([naive.history_text(0) or "warm-up"])

    naive_texts = [0]

    def encode_each(users: Any, rows: np.ndarray) -> None:
        for r in rows.tolist():
            text = users.history_text(r)
            if text:
                model.encode([text])
                naive_texts[0] += 1

    def chunk(name: str, users: Any, steps: int) -> float:
        rng = rngs[name]
        every = np.arange(n_users)
        start = time.perf_counter()
        for _ in range(steps):
            _, term, trunc, _ = users.step(rng.integers(0, users.k, n_users), info=False)
            if name == "naive":
                encode_each(users, every)
            done = np.flatnonzero(term | trunc)
            users.reset_users(done, rng.integers(0, 2**62, done.size).astype(np.uint64))
            if name == "naive":
                encode_each(users, done)
        return time.perf_counter() - start

    hits0, misses0 = lru.hits, lru.misses
    naive_texts[0] = 0
    fast_s = naive_s = 0.0
    fast_n = naive_n = 0
    for i in range(rounds):
        f_steps = n_steps // rounds + (i < n_steps % rounds)
        n_steps_i = max(naive_steps // rounds + (i < naive_steps % rounds), 1)
        fast_s += chunk("fast", fast, f_steps)
        naive_s += chunk("naive", naive, n_steps_i)
        fast_n += f_steps
        naive_n += n_steps_i
    fast_rate = fast_n * n_users / fast_s
    naive_rate = naive_n * n_users / naive_s
    hits, misses = lru.hits - hits0, lru.misses - misses0
    tail = ("" if text_events is None else f"_{text_events}_events") + name_suffix
    return [
        Figure(f"text_mode_batched_cached_user_steps_per_s{tail}", fast_rate, "user-steps/s"),
        Figure(f"text_mode_naive_user_steps_per_s{tail}", naive_rate, "user-steps/s"),
        Figure(f"text_mode_batched_cached_over_naive{tail}", fast_rate / naive_rate, "ratio"),
        Figure(f"text_mode_lru_hit_rate{tail}", hits / max(hits + misses, 1), "fraction"),
        Figure(
            f"text_mode_model_texts_per_user_step{tail}",
            misses / max(fast_n * n_users, 1),
            "texts/user-step",
        ),
        # If the model's time were all there is and batching saved nothing, the ratio above would
        # be the naive path's texts per user-step over the cached path's: what caching alone buys.
        # The measured ratio over this one is what batching adds per text.
        Figure(
            f"text_mode_caching_only_bound{tail}",
            (naive_texts[0] / max(naive_n * n_users, 1))
            / max(misses / max(fast_n * n_users, 1), 1e-12),
            "ratio",
        ),
    ]


# ------------------------------------------------------ 5. large catalogs
def catalog_like(item_proj: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` item vectors shaped like a real catalog's: each a shipped item plus noise.

    Real projected embeddings are clustered by topic; Gaussian noise has no structure, which is
    the worst case for a clustering index and not what a large catalog looks like. The noise is
    half the per-dimension spread of the shipped items, so close duplicates are rare.
    """
    base = item_proj[rng.integers(item_proj.shape[0], size=n)].astype(np.float32)
    noise = rng.standard_normal(base.shape).astype(np.float32)
    return base + noise * (0.5 * item_proj.std(axis=0)).astype(np.float32)


def bench_candidates(
    sizes: tuple[int, ...], n_users: int, reps: int, item_proj: np.ndarray
) -> list[Figure]:
    """Nearest-item search per step over large catalogs: exact (float32 / float16) and ivf."""
    from lmrecsim.envs.ann import IVFIndex
    from lmrecsim.envs.candidates import nearest_items

    out: list[Figure] = []
    m = 7
    rng = np.random.default_rng(0)
    # User states: recency-weighted means of a few items, as the pooled state is.
    picks = item_proj[rng.integers(item_proj.shape[0], size=(n_users, 10))]
    query = (picks * (0.95 ** np.arange(10))[None, :, None]).sum(axis=1).astype(np.float32)

    def timed(search: Callable[[], np.ndarray]) -> tuple[float, float]:
        search()
        tracemalloc.start()
        start = time.perf_counter()
        for _ in range(reps):
            search()
        per_step = (time.perf_counter() - start) / reps
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return per_step, peak

    for n in sizes:
        base = catalog_like(item_proj, n, rng)
        size = f"{n // 1000}k"
        for dtype in (np.float32, np.float16):
            items = base.astype(dtype)
            label = f"{size}_{np.dtype(dtype).name}"
            per_step, peak = timed(lambda items=items: nearest_items(query, items, m, exact=False))
            out += [
                Figure(f"candidates_{label}_ms_per_step_{n_users}_users", per_step * 1e3, "ms"),
                Figure(f"candidates_{label}_peak_extra_mb", peak / 2**20, "MiB"),
                Figure(f"candidates_{label}_bytes_per_item", items.nbytes / n, "bytes"),
            ]
        exact = nearest_items(query, base, m)
        start = time.perf_counter()
        index = IVFIndex(base, seed=0)  # the scenario default: 16 clusters probed
        build = time.perf_counter() - start
        per_step, _ = timed(lambda index=index: index.search(query, m))
        found = index.search(query, m)
        hits = sum(len(set(f) & set(e)) for f, e in zip(found, exact, strict=True))
        label = f"{size}_ivf"
        out += [
            Figure(f"candidates_{label}_ms_per_step_{n_users}_users", per_step * 1e3, "ms"),
            Figure(f"candidates_{label}_recall_at_{m}", hits / exact.size, "fraction"),
            Figure(f"candidates_{label}_build_seconds", build, "s"),
            Figure(f"candidates_{label}_lists", float(index.lists), "clusters"),
            Figure(f"candidates_{label}_bytes_per_item", index.bytes_per_item, "bytes"),
        ]
    return out


# --------------------------------------------------------------------- run
def run_all(quick: bool = False, progress: bool = False) -> list[Figure]:
    """Measure every figure (``quick``: small budgets, about 80 s on two cores).

    ``progress``: a bar on stderr over the benchmark's parts (each takes seconds to a minute).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tqdm.auto import tqdm

    from lmrecsim.envs.world import build_world
    from lmrecsim.scenarios import load_scenario

    start = time.perf_counter()
    world = build_world(load_scenario("default"), show_progress=False)
    figures = [Figure("world_build_seconds_cached", time.perf_counter() - start, "s")]
    # The other rendering of the history text, for comparison (with "all" it changes every step).
    other = "all" if world.scenario.state.text_events == "clicks" else "clicks"

    def ppo() -> list[Figure]:
        # Training runs on the thread count `lmrecsim train` uses (one by default: small networks).
        from lmrecsim.agents.train import set_torch_threads

        threads = Figure("torch_threads_for_training", float(set_torch_threads(None)), "threads")
        return [threads, *bench_ppo(world, 2048 if quick else 8192)]

    parts: list[tuple[str, Callable[[], list[Figure]]]] = [
        ("2: batched env", lambda: bench_env(world, 1.0 if quick else 3.0)),
        (
            "5: candidates over 100k and 1M items",
            lambda: bench_candidates((100_000, 1_000_000), 64, 2 if quick else 5, world.item_proj),
        ),
        ("3: catalog encoding", lambda: bench_encoding(world, 256 if quick else None)),
        (
            "4: text mode",
            lambda: bench_text_mode(world, 8, 30 if quick else 100, 3 if quick else 10),
        ),
        (
            f"4: text mode, text_events {other}",
            lambda: bench_text_mode(
                world, 8, 10 if quick else 30, 3 if quick else 10, text_events=other
            ),
        ),
        # More users stepping together: bigger batches and more repeated texts (no target).
        (
            "4: text mode, 64 users",
            lambda: bench_text_mode(
                world, 64, 10 if quick else 30, 2 if quick else 6, name_suffix="_64_users"
            ),
        ),
        ("state agreement", lambda: state_agreement_figures(world, 16, 20 if quick else 50)),
        ("1: PPO training", ppo),
    ]
    bar = tqdm(parts, desc="bench", unit="part", disable=not progress)
    for name, measure in bar:
        bar.set_postfix_str(name)
        figures += measure()
    bar.close()
    return figures


def format_figures(figures: list[Figure]) -> str:
    """One line per figure: name, value, unit, and ``target >= X: met`` (or ``NOT met``)."""
    width = max(len(f.name) for f in figures)
    unit_width = max(len(f.unit) for f in figures)
    lines = []
    for f in figures:
        line = f"{f.name:<{width}}  {f.value:>14,.3f}  {f.unit:<{unit_width}}"
        record = figure_record(f)
        if "target" in record:
            line += f"  target >= {record['target']:,g}: {'met' if record['met'] else 'NOT met'}"
        lines.append(line.rstrip())
    return "\n".join(lines)


def run_learning(extra: str) -> int:
    """Forward to ``benchmarks.learning.main`` (it lives in the source tree, next to the package)."""
    import shlex
    import sys

    from lmrecsim.agents.errors import AgentError

    try:
        argv = shlex.split(extra)
    except ValueError as exc:  # an unclosed quote used to end in shlex's traceback
        raise UsageError(
            f"--learning-args: {extra!r} cannot be split into arguments ({exc}; expected them "
            "quoted as a shell quotes them)"
        ) from None
    root = Path(__file__).resolve().parents[2]
    if not (root / "benchmarks" / "learning.py").is_file():
        raise AgentError(
            f"{root / 'benchmarks' / 'learning.py'}: learning benchmark not found (it ships with "
            "the source tree, not the installed package: run from a clone)"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.learning import main as learning_main

    return int(learning_main(argv))


def run(args: argparse.Namespace) -> int:
    if args.learning:
        # The speed benchmark's options: with --learning they would go unused (a --quick run
        # of the full learning benchmark, hours instead of minutes; no JSON at --out).
        for flag, given in (("--quick", args.quick), ("--out", args.out is not None)):
            if given:
                raise UsageError(
                    f"{flag}: given with --learning, which does not take it (expected it inside "
                    f'--learning-args, e.g. --learning-args="--quick --out runs/learning")'
                )
        if args.no_progress:
            raise UsageError(
                "--no-progress: given with --learning, which does not take it (the learning "
                "benchmark shows no progress bar, only a line per run)"
            )
        return run_learning(args.learning_args)
    if args.learning_args:
        raise UsageError("--learning-args: given without --learning (expected both, or neither)")
    figures = run_all(quick=args.quick, progress=not args.no_progress)
    print(format_figures(figures))
    if args.out:
        from lmrecsim.agents.train import write_text_atomic

        records = [figure_record(f) for f in figures]
        write_text_atomic(Path(args.out), json.dumps(records, indent=2) + "\n")
    return 0
