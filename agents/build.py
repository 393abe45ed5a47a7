"""Turning an agent config into a stable-baselines3 model (the one place this happens)."""

from __future__ import annotations

import difflib
import inspect
import io
import numbers
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, unwrap_vec_normalize

from ..scenarios.schema import ALGORITHM_NAMES, Scenario, has_algorithm_sections
from .dueling import MlpDQNPolicy
from .errors import AgentError
from .safe_load import safe_custom_objects
from .scorer import (
    CandidateScorerDQNPolicy,
    CandidateScorerExtractor,
    CandidateScorerPolicy,
    MaskableCandidateScorerPolicy,
    MaskedDQN,
)
from .slateq import SlateQ, SlateQPolicy

ALGORITHMS = ALGORITHM_NAMES
POLICIES = ("candidate_scorer", "mlp")
# The candidate scorer's SB3 policy class for each algorithm.
SCORER_POLICIES: dict[str, type] = {
    "dqn": CandidateScorerDQNPolicy,
    "ppo": CandidateScorerPolicy,
    "maskable_ppo": MaskableCandidateScorerPolicy,
}

# DQN's default replay buffer of 1M observations would need tens of GiB with Dict observations;
# 100k observations of K=20, p=32 take about 0.6 GiB (observations and next observations).
DQN_DEFAULTS: dict[str, Any] = {
    "buffer_size": 100_000,
    "learning_starts": 1_000,
    "train_freq": 4,
    "target_update_interval": 2_000,
    "exploration_fraction": 0.3,
    "exploration_final_eps": 0.05,
    "batch_size": 64,
    "learning_rate": 5e-4,
    # Measured on the default scenario (160k steps): 0.95 beat SB3's 0.99 at every checkpoint;
    # with noisy click rewards a long bootstrap horizon mostly adds target variance.
    "gamma": 0.95,
}
PPO_DEFAULTS: dict[str, Any] = {
    "n_steps": 256,
    "batch_size": 256,
    # Measured at 200k steps (two training seeds): 10 epochs per rollout closed 71-74% of the
    # random-to-oracle gap on default and clickbait where 5 closed 65-70%; 15 did no better (one
    # seed, 73% against 72%, at half the speed).
    "n_epochs": 10,
    "learning_rate": 3e-4,
    "gamma": 0.95,
    "ent_coef": 0.01,
}


# lmrecsim's own key among the hyperparameters (not an SB3 constructor argument), after RL Zoo's
# ``normalize``: train on rewards divided by a running estimate of the discounted return's
# standard deviation (SB3's ``VecNormalize`` with ``norm_obs=False``; observations are never
# normalised: the action mask and the unit-scale embeddings must reach the policy as they are).
NORMALIZE_REWARD = "normalize_reward"


# Constructor arguments that SB3 also takes as a function of training progress; in a scenario,
# ``{linear: [start, end]}`` anneals one linearly from start (first update) to end (last).
SCHEDULABLE = ("learning_rate", "clip_range", "clip_range_vf")

# The ranges of the numeric constructor arguments: (low, high, whether low itself is allowed).
# SB3 checks few of them itself, so a value outside used to end in a traceback mid-run (n_epochs
# 0, train_freq 0) or to train on nonsense without a word (gamma 2, batch_size 0). gradient_steps
# -1 is SB3's "as many as env steps"; a schedule's end may reach 0 (learning_rate 3e-4 -> 0).
_RANGES: dict[str, tuple[int, int | None, bool]] = {
    **dict.fromkeys(("n_steps", "batch_size", "n_epochs", "buffer_size"), (1, None, True)),
    **dict.fromkeys(("target_update_interval", "train_freq"), (1, None, True)),
    "learning_starts": (0, None, True),
    "gradient_steps": (-1, None, True),
    **dict.fromkeys(
        ("gamma", "gae_lambda", "tau", "exploration_fraction", "exploration_initial_eps"),
        (0, 1, True),
    ),
    "exploration_final_eps": (0, 1, True),
    **dict.fromkeys(("ent_coef", "vf_coef"), (0, None, True)),
    **dict.fromkeys(
        ("max_grad_norm", "target_kl", "learning_rate", "clip_range", "clip_range_vf"),
        (0, None, False),
    ),
}


def _range_problem(key: str, value: Any) -> str | None:
    """What a number ``value`` for ``key`` should have been, or None when it is in range (or
    ``key`` has no known range, or ``value`` is not a number: the type checks report that)."""
    rng = _RANGES.get(key)
    if rng is None or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    low, high, closed = rng
    if (value >= low if closed else value > low) and (high is None or value <= high):
        return None
    if high is not None:
        return f"a number in [{low}, {high}]"
    return f"{'at least' if closed else 'more than'} {low}"


# Schedulable arguments whose SB3 default is a number, not None (clip_range_vf's is None: off).
_NEVER_NONE = ("learning_rate", "clip_range")


def resolve_schedules(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments with each ``{linear: [start, end]}`` turned into an SB3 schedule.

    Raises:
        AgentError: a schedule that is not ``{linear: [start, end]}`` with two numbers.
    """
    out = dict(hyperparameters)
    for key in SCHEDULABLE:
        value = out.get(key)
        if value is None and key in out and key in _NEVER_NONE:
            # `--hp learning_rate=` (null) used to reach SB3's own words, without the key.
            raise AgentError(
                f"agent.hyperparameters.{key}: None is invalid (expected a number or "
                "{linear: [start, end]})"
            )
        if value is None or callable(value):
            continue
        if not isinstance(value, dict):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
                raise AgentError(
                    f"agent.hyperparameters.{key}: {value!r} is invalid (expected a number or "
                    "{linear: [start, end]})"
                )
            problem = _range_problem(key, value)
            if problem is not None:
                raise AgentError(
                    f"agent.hyperparameters.{key}: {value!r} is invalid (expected {problem})"
                )
            out[key] = float(value)  # SB3 takes a Python float (not numpy's) or a callable
            continue
        ends = value.get("linear")
        pair = (
            [_number(v) for v in ends]
            if set(value) == {"linear"} and isinstance(ends, (list, tuple)) and len(ends) == 2
            else [None]
        )
        if None in pair:
            raise AgentError(
                f"agent.hyperparameters.{key}: expected a number or {{linear: [start, end]}} "
                f"with two numbers, got {value!r}"
            )
        # Every schedulable argument is a positive number that may be annealed to 0.
        if _range_problem(key, pair[0]) is not None or pair[1] < 0:
            raise AgentError(
                f"agent.hyperparameters.{key}: {value!r} is invalid (expected a start more than 0 "
                "and an end at least 0)"
            )
        out[key] = LinearSchedule(pair[0], pair[1], 1.0)
    return _resolve_activation(out)


#: ``policy_kwargs.activation_fn`` by name (``agent.policy: mlp``), as a scenario file holds it.
ACTIVATIONS = {
    "relu": "ReLU",
    "tanh": "Tanh",
    "elu": "ELU",
    "leaky_relu": "LeakyReLU",
    "gelu": "GELU",
    "silu": "SiLU",
    "sigmoid": "Sigmoid",
}


def _resolve_activation(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with a ``policy_kwargs.activation_fn`` name (``tanh``) turned into its
    ``torch.nn`` class, which SB3 takes.

    Raises:
        AgentError: a name that is not one of :data:`ACTIVATIONS`.
    """
    policy_kwargs = kwargs.get("policy_kwargs")
    if not isinstance(policy_kwargs, dict) or not isinstance(
        policy_kwargs.get("activation_fn"), str
    ):
        return kwargs
    import torch

    name = policy_kwargs["activation_fn"]
    if name.lower() not in ACTIVATIONS:
        raise AgentError(
            f"agent.hyperparameters.policy_kwargs.activation_fn: {name!r} is not one of "
            f"{', '.join(ACTIVATIONS)}"
        )
    out = dict(kwargs)
    out["policy_kwargs"] = {
        **policy_kwargs,
        "activation_fn": getattr(torch.nn, ACTIVATIONS[name.lower()]),
    }
    return out


# Constructor arguments lmrecsim sets itself (build_model), with what to use instead: given as
# hyperparameters they used to reach SB3 as "got multiple values for keyword argument 'seed'".
_SET_BY_LMRECSIM: dict[str, str] = {
    "policy": "agent.policy or --policy",
    "env": "none: the scenario makes the env",
    "seed": "agent.seed or --seed",
    "device": "none: the networks train on the CPU",
    "verbose": "none: progress.csv and tb/ record training",
    "tensorboard_log": "none: lmrecsim train writes TensorBoard logs to OUT/tb",
}


def _check_not_set_by_lmrecsim(kwargs: dict[str, Any]) -> None:
    """Refuse a hyperparameter that is a constructor argument lmrecsim passes itself."""
    for key in kwargs:
        if key in _SET_BY_LMRECSIM:
            raise AgentError(
                f"agent.hyperparameters.{key}: set by lmrecsim, not a hyperparameter (expected "
                f"{_SET_BY_LMRECSIM[key]})"
            )


def _hint(key: Any, known: list[str]) -> str:
    """What an unknown ``key`` may have meant among ``known``: the closest name, or all of them."""
    close = difflib.get_close_matches(str(key), known, n=1)
    return f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(known)}"


def _init_parameters(cls: type) -> tuple[dict[str, inspect.Parameter], bool]:
    """The named constructor arguments of ``cls``, and whether it also takes any other.

    A subclass that adds its own arguments and passes ``**kwargs`` on (``MaskedDQN``) takes its
    parent's too, so the parents' constructors are followed until one without ``**kwargs``.
    """
    params: dict[str, inspect.Parameter] = {}
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        own = inspect.signature(klass.__init__).parameters  # type: ignore[misc]
        for name, param in own.items():
            if param.kind not in variadic:
                params.setdefault(name, param)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in own.values()):
            return params, False
    return params, True


def _check_value_types(cls: type, kwargs: dict[str, Any]) -> None:
    """Check, in place, the value of each constructor argument whose SB3 default is a number or
    a flag, refusing one of the wrong kind (``n_steps: abc`` used to surface as "'>' not
    supported between 'str' and 'int'").

    YAML's natural spellings are taken as meant: a whole float where an integer is expected
    (``buffer_size: 1e5``) becomes that integer, and a list where SB3 takes a pair
    (``train_freq: [1, episode]``) becomes a tuple.

    Raises:
        AgentError: one line naming the key, the value and what was expected.
    """
    params, takes_any = _init_parameters(cls)
    # SB3's private constructor arguments (``_init_setup_model``) are not settings.
    params = {name: p for name, p in params.items() if not name.startswith("_")}
    for key, value in list(kwargs.items()):
        if isinstance(value, np.generic):  # numpy scalars from the Python API: plain values
            value = kwargs[key] = value.item()
        param = params.get(key)
        if param is None and not takes_any:
            known = [n for n in params if n not in ("self", "policy", "env")]
            raise AgentError(
                f"agent.hyperparameters.{key}: not an argument of {cls.__name__} "
                f"({_hint(key, known)})"
            )
        if param is None or key in SCHEDULABLE:
            continue
        default = param.default
        # The annotation says more than the default's type: max_grad_norm is `float = 10`, and
        # MaskablePPO's batch_size is `int | None`.
        annotation = str(param.annotation)
        takes_float = "float" in annotation
        takes_none = value is None and ("None" in annotation or "Optional" in annotation)
        is_bool = isinstance(value, (bool, np.bool_))
        if takes_none:
            continue
        if isinstance(default, bool):
            ok, expected = is_bool, "true or false"
        elif isinstance(default, int) and not takes_float:
            if isinstance(value, numbers.Real) and not is_bool and float(value).is_integer():
                value = kwargs[key] = int(value)
            elif isinstance(value, list):
                # train_freq and friends also take SB3's (n, "step"|"episode") pairs.
                value = kwargs[key] = tuple(value)
            ok = (isinstance(value, int) and not is_bool) or isinstance(value, tuple)
            expected = "an integer"
        elif isinstance(default, (int, float)):
            ok = isinstance(value, numbers.Real) and not is_bool
            expected = "a number"
        else:
            continue
        if not ok:
            raise AgentError(
                f"agent.hyperparameters.{key}: {value!r} is invalid (expected {expected})"
            )
        # train_freq's (n, unit) pair: n has the range of a plain train_freq.
        number = value[0] if isinstance(value, tuple) and value else value
        problem = _range_problem(key, number)
        if problem is not None:
            raise AgentError(
                f"agent.hyperparameters.{key}: {value!r} is invalid (expected {problem})"
            )


def _number(value: Any) -> float | None:
    """``value`` as a float, or None. YAML reads ``3e-4`` (no dot) as text; it counts too."""
    if isinstance(value, bool):
        return None
    try:
        return float(value) if isinstance(value, (int, float, str)) else None
    except ValueError:
        return None


def _maskable_ppo() -> type[BaseAlgorithm]:
    try:
        from sb3_contrib import MaskablePPO
    except ImportError as exc:  # pragma: no cover - sb3-contrib is a dependency
        raise AgentError("agent.algo: 'maskable_ppo' needs the sb3-contrib package") from exc
    return MaskablePPO


def algorithm_class(algo: str, slates: bool = False) -> type[BaseAlgorithm]:
    """The SB3 class for an algorithm name (``slates``: for a slate scenario, where DQN is
    :class:`~lmrecsim.agents.slateq.SlateQ`).

    Raises:
        AgentError: an unknown algorithm, or one that cannot train slates.
    """
    if algo == "ppo":
        return PPO
    if algo == "dqn":
        return SlateQ if slates else MaskedDQN
    if algo == "maskable_ppo":
        if slates:
            raise AgentError(
                "agent.algo: 'maskable_ppo' with candidates.slate_size above 1 (expected ppo or "
                "dqn: maskable_ppo chooses one slot per step)"
            )
        return _maskable_ppo()
    raise AgentError(f"agent.algo: {algo!r} is not one of {', '.join(ALGORITHMS)}")


def reward_normalized(env: VecEnv, normalize: Any, *, gamma: float | None) -> VecEnv:
    """``env`` wrapped to scale its rewards for training when ``normalize`` is true.

    The scale is SB3's ``VecNormalize`` running standard deviation of the discounted return (with
    the algorithm's ``gamma``); rewards are not shifted, and observations pass unchanged. An env
    that already normalises rewards is returned as it is. The wrapper changes what the learner is
    trained on, not what the policy sees, so a saved model acts the same without it.

    Raises:
        AgentError: ``normalize`` is not a boolean.
    """
    _check_normalize(normalize)
    existing = unwrap_vec_normalize(env)
    if not normalize or (existing is not None and existing.norm_reward):
        return env
    # SB3's default when none is given; an unreadable gamma is left for SB3 to reject itself.
    g = None if gamma is None else _number(gamma)
    return VecNormalize(env, norm_obs=False, norm_reward=True, gamma=0.99 if g is None else g)


def check_hyperparameters(
    algo: str,
    hyperparameters: dict[str, Any],
    policy: str = "candidate_scorer",
    slates: bool = False,
) -> None:
    """Check ``hyperparameters`` for ``algo`` as :func:`build_model` does, without building.

    Catches what a scenario's section for an algorithm it does not train would otherwise keep
    until that algorithm runs: unknown arguments (with a did-you-mean), values of the wrong kind,
    malformed schedules, a non-boolean ``normalize_reward`` and, for the candidate scorer
    (``policy``), ``policy_kwargs`` its policy class does not take. Combinations that only SB3's
    constructor refuses are not caught here. ``slates``: for a slate scenario (DQN is SlateQ
    there, which also takes ``choice_coef``).

    Raises:
        AgentError: one line naming the key, as :func:`build_model` words it.
    """
    kwargs = resolve_schedules(hyperparameters)
    _check_normalize(kwargs.pop(NORMALIZE_REWARD, False))
    _check_not_set_by_lmrecsim(kwargs)
    cls = algorithm_class(algo, slates)
    _policy_class(algo, policy, kwargs.get("policy_kwargs"), slates)
    _check_value_types(cls, kwargs)


def _check_normalize(normalize: Any) -> None:
    if not isinstance(normalize, bool):
        raise AgentError(
            f"agent.hyperparameters.{NORMALIZE_REWARD}: expected true or false, got {normalize!r}"
        )


# Constructor arguments of SB3 policies that are not policy_kwargs.
_NOT_POLICY_KWARGS = ("self", "observation_space", "action_space", "lr_schedule")
# policy_kwargs SB3's policies take that the candidate scorer fixes itself.
_SCORER_FIXED = ("net_arch", "features_extractor_class", "activation_fn")


def _policy_class(algo: str, policy: str, policy_kwargs: Any, slates: bool = False) -> Any:
    """The SB3 policy (a class, or SB3's name for one) of ``algo`` with ``policy``, after
    checking ``policy_kwargs`` against it (``slates``: for a slate scenario)."""
    if slates and algo == "dqn":
        if policy != "candidate_scorer":
            raise AgentError(
                f"agent.policy: {policy} cannot train dqn on slates (SlateQ values each "
                "candidate with the candidate scorer; expected candidate_scorer)"
            )
        _check_scorer_policy_kwargs(policy_kwargs, SlateQPolicy)
        return SlateQPolicy
    if policy == "candidate_scorer":
        policy_cls = SCORER_POLICIES[algo]
        _check_scorer_policy_kwargs(policy_kwargs, policy_cls)
        return policy_cls
    return _mlp_policy(algo, policy_kwargs)


def _check_scorer_policy_kwargs(policy_kwargs: Any, policy_cls: type) -> None:
    """Refuse ``policy_kwargs`` the candidate scorer would otherwise drop without a word, or that
    its policy class ``policy_cls`` does not take, with a did-you-mean."""
    if not _policy_kwargs_mapping(policy_kwargs):
        return
    where = "agent.hyperparameters.policy_kwargs"
    sizes = "features_extractor_kwargs: hidden, n_layers, summary_dim"
    if "net_arch" in policy_kwargs:
        raise AgentError(
            f"{where}.net_arch: the candidate scorer is sized by features_extractor_kwargs "
            "(hidden, n_layers, summary_dim), not net_arch (expected those keys, or "
            "agent.policy: mlp for SB3's MLP with net_arch)"
        )
    if "features_extractor_class" in policy_kwargs:
        raise AgentError(
            f"{where}.features_extractor_class: the candidate scorer is the features extractor "
            f"(expected {sizes}; or agent.policy: mlp)"
        )
    if "activation_fn" in policy_kwargs:
        raise AgentError(
            f"{where}.activation_fn: the candidate scorer's layers are ReLU layers (expected "
            f"{sizes}; or agent.policy: mlp)"
        )
    _check_dueling(policy_kwargs, dqn=issubclass(policy_cls, CandidateScorerDQNPolicy))
    _check_policy_keys(policy_kwargs, policy_cls, policy_cls.__name__, skip=_SCORER_FIXED)
    sizes_given = policy_kwargs.get("features_extractor_kwargs")
    if isinstance(sizes_given, dict):
        _check_scorer_sizes(sizes_given)


def _policy_kwargs_mapping(policy_kwargs: Any) -> bool:
    """Whether ``policy_kwargs`` is a mapping to check (False: none given); refuses anything else
    (``policy_kwargs: 5`` used to reach SB3 as "argument after ** must be a mapping, not int")."""
    if policy_kwargs is None:
        return False
    if not isinstance(policy_kwargs, dict):
        raise AgentError(
            f"agent.hyperparameters.policy_kwargs: {policy_kwargs!r} is invalid (expected a "
            "mapping of policy arguments)"
        )
    return True


def _check_scorer_sizes(kwargs: dict[str, Any]) -> None:
    """Refuse a size of the candidate scorer it does not have (with a did-you-mean), or one that
    is not a whole number of at least 1 (``hidden: 0`` used to build a network of nothing)."""
    where = "agent.hyperparameters.policy_kwargs.features_extractor_kwargs"
    params, _ = _init_parameters(CandidateScorerExtractor)
    known = [n for n in params if n not in ("self", "observation_space")]
    for key, value in kwargs.items():
        if key not in known:
            raise AgentError(
                f"{where}.{key}: not a size of the candidate scorer ({_hint(key, known)})"
            )
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise AgentError(
                f"{where}.{key}: {value!r} is invalid (expected an integer at least 1)"
            )


def _check_policy_keys(
    policy_kwargs: dict[str, Any], policy_cls: type, name: str, skip: tuple[str, ...] = ()
) -> None:
    """Refuse a ``policy_kwargs`` key that ``policy_cls`` (called ``name``) does not take."""
    params, takes_any = _init_parameters(policy_cls)
    if takes_any:
        return
    known = [n for n in params if n not in _NOT_POLICY_KWARGS and n not in skip]
    for key in policy_kwargs:
        if key not in params:
            raise AgentError(
                f"agent.hyperparameters.policy_kwargs.{key}: not an argument of {name} "
                f"({_hint(key, known)})"
            )


def _check_dueling(policy_kwargs: dict[str, Any], *, dqn: bool) -> bool:
    """Whether ``policy_kwargs`` has a ``dueling`` key (true or false); refuses one that is not a
    flag, or one for an algorithm other than DQN (``dqn``: the algorithm is DQN)."""
    if "dueling" not in policy_kwargs:
        return False
    where = "agent.hyperparameters.policy_kwargs.dueling"
    if not dqn:
        raise AgentError(
            f"{where}: the dueling Q-network is a DQN option (expected agent.algo dqn; in a "
            "scenario, the key in the dqn section)"
        )
    value = policy_kwargs["dueling"]
    if not isinstance(value, (bool, np.bool_)):
        raise AgentError(f"{where}: {value!r} is invalid (expected true or false)")
    return True


def _mlp_policy(algo: str, policy_kwargs: Any) -> Any:
    """The policy for ``agent.policy: mlp``, after checking ``policy_kwargs``: SB3's
    ``MultiInputPolicy``, or for DQN given a ``dueling`` key,
    :class:`~lmrecsim.agents.dueling.MlpDQNPolicy` (SB3's network, or its dueling form)."""
    if not _policy_kwargs_mapping(policy_kwargs):
        return "MultiInputPolicy"
    has_dueling = _check_dueling(policy_kwargs, dqn=algo == "dqn")
    # MlpDQNPolicy takes what SB3's DQN MultiInputPolicy takes, and `dueling`.
    policy_cls = (
        MlpDQNPolicy if algo == "dqn" else algorithm_class(algo).policy_aliases["MultiInputPolicy"]
    )
    _check_policy_keys(policy_kwargs, policy_cls, "SB3's MultiInputPolicy")
    return MlpDQNPolicy if has_dueling else "MultiInputPolicy"


def build_model(
    algo: str,
    env: VecEnv,
    *,
    policy: str = "candidate_scorer",
    seed: int = 0,
    hyperparameters: dict[str, Any] | None = None,
    tensorboard_log: str | os.PathLike[str] | None = None,
    verbose: int = 0,
) -> BaseAlgorithm:
    """Build an untrained SB3 model.

    Args:
        algo: ``ppo``, ``dqn`` or ``maskable_ppo`` (``ppo`` or ``dqn`` with slates).
        env: the (vectorised) training env.
        policy: ``candidate_scorer`` (shared per-candidate network) or ``mlp`` (SB3's
            ``MultiInputPolicy`` over the flattened observation, for comparison). For DQN,
            ``policy_kwargs: {dueling: true}`` makes either one's Q-network a dueling one.

            With slates (``candidates.slate_size`` L > 1: a ``MultiDiscrete([K] * L)`` action
            space), PPO's candidate scorer draws each slate from one Plackett-Luce
            distribution over its K scores (:mod:`lmrecsim.agents.slate`): L distinct candidates,
            masked ones only when fewer than L are valid. DQN is SlateQ
            (:mod:`lmrecsim.agents.slateq`, candidate scorer only): item values and a learned
            choice model, greedy best slates. PPO's ``mlp`` policy is SB3's: L
            independent categoricals, one per position, over K slots each, so it can put the
            same slot at several positions and a masked slot anywhere; the env shows nothing
            there (a shorter slate), a handicap the ``mlp`` has to learn its way out of.
        seed: seed of networks and exploration.
        hyperparameters: keyword arguments for the SB3 constructor, over the project defaults;
            also ``normalize_reward`` (bool): train on rewards scaled by :func:`reward_normalized`
            (the model's env is then that wrapper).
        tensorboard_log: TensorBoard folder, or None.

    Raises:
        AgentError: an unknown algorithm or policy, slates with ``maskable_ppo`` or with DQN's
            ``mlp``, or hyperparameters SB3 would reject (one line, naming the key).
    """
    if policy not in POLICIES:
        raise AgentError(f"agent.policy: {policy!r} is not one of {', '.join(POLICIES)}")
    slates = isinstance(env.action_space, spaces.MultiDiscrete)
    cls = algorithm_class(algo, slates)
    kwargs: dict[str, Any] = dict(DQN_DEFAULTS if algo == "dqn" else PPO_DEFAULTS)
    kwargs.update(resolve_schedules(hyperparameters or {}))
    _check_not_set_by_lmrecsim(kwargs)
    env = reward_normalized(env, kwargs.pop(NORMALIZE_REWARD, False), gamma=kwargs.get("gamma"))
    policy_cls = _policy_class(algo, policy, kwargs.get("policy_kwargs"), slates)
    _check_value_types(cls, kwargs)
    freq = kwargs.get("train_freq")
    if isinstance(freq, tuple) and len(freq) == 2 and str(freq[1]).startswith("episode"):
        if env.num_envs > 1:  # SB3 asserts this only once training has started
            raise AgentError(
                f"agent.hyperparameters.train_freq: {list(freq)} trains per episode, which SB3 "
                f"allows with one env only (expected n_envs: 1, got {env.num_envs})"
            )
    try:
        return cls(
            policy_cls,
            env,
            seed=seed,
            tensorboard_log=None if tensorboard_log is None else str(tensorboard_log),
            verbose=verbose,
            device="cpu",
            **kwargs,
        )
    except (TypeError, AssertionError) as exc:
        # SB3 checks argument combinations with assertions (e.g. a Dict replay buffer with
        # optimize_memory_usage); either way the settings are at fault, not the program.
        raise AgentError(f"agent.hyperparameters: {exc}") from None
    except (MemoryError, ValueError) as exc:
        # The rollout or replay buffer is allocated here, whole: n_steps 1e10 used to end in a
        # traceback (numpy's MemoryError, or a ValueError for a size past numpy's limits).
        if isinstance(exc, ValueError) and not any(m in str(exc) for m in _TOO_BIG):
            raise
        key = "buffer_size" if algo == "dqn" else "n_steps"
        rows = "rows" if algo == "dqn" else f"steps of each of the {env.num_envs} envs"
        raise AgentError(
            f"agent.hyperparameters.{key}: {kwargs.get(key)!r} {rows} do not fit in memory "
            f"({' '.join(str(exc).split())}; expected a smaller {key})"
        ) from None


# numpy's words for an array too large to allocate at all (ValueError, not MemoryError).
_TOO_BIG = ("Maximum allowed dimension exceeded", "array is too big")


def build_agent(
    scenario: Scenario,
    env: VecEnv,
    *,
    name_file: bool = True,
    verbose: int = 0,
) -> BaseAlgorithm:
    """The untrained model of a scenario's ``agent`` block (what ``lmrecsim train`` trains).

    Args:
        scenario: the resolved scenario (its ``agent`` algorithm, policy, seed and the
            hyperparameters of that algorithm).
        env: the training VecEnv over the scenario's world.
        name_file: prefix an :class:`AgentError` with the scenario's file (the settings came from
            it); False when they came from elsewhere (command-line overrides), and always for a
            scenario built from a dict.
        verbose: SB3's verbosity.

    With per-algorithm sections, an error names the key in the section of ``agent.algo``
    (``agent.hyperparameters.ppo.gamma``).
    """
    agent = scenario.agent
    with _named_in_file(scenario, name_file):
        return build_model(
            agent.algo,
            env,
            policy=agent.policy,
            seed=agent.seed,
            hyperparameters=agent.hyperparameters_for(agent.algo),
            verbose=verbose,
        )


def check_agent(scenario: Scenario, *, name_file: bool = True) -> None:
    """:func:`check_hyperparameters` on the settings :func:`build_agent` will use, with its
    wording (``name_file`` as there), so that a value out of range fails before the world, and
    the language model's loading bar, come first.

    Raises:
        AgentError: one line naming the key (and the file, with ``name_file``).
    """
    agent = scenario.agent
    with _named_in_file(scenario, name_file):
        check_hyperparameters(
            agent.algo,
            agent.hyperparameters_for(agent.algo),
            agent.policy,
            scenario.candidates.slate_size > 1,
        )


@contextmanager
def _named_in_file(scenario: Scenario, name_file: bool) -> Iterator[None]:
    """An :class:`AgentError` inside re-raised with the scenario's file and, with per-algorithm
    sections, the key moved into ``agent.algo``'s section (unless ``name_file`` is False: the
    settings came from elsewhere)."""
    try:
        yield
    except AgentError as exc:
        if not name_file:
            raise
        agent = scenario.agent
        section = agent.algo if has_algorithm_sections(agent.hyperparameters) else None
        raise _in_file(scenario, _in_section(str(exc), section)) from None


def _in_section(text: str, algo: str | None) -> str:
    """An error line whose key is ``agent.hyperparameters.KEY``, with the key moved into the
    ``algo`` section of the file (``agent.hyperparameters.ALGO.KEY``); other lines as they are."""
    prefix = "agent.hyperparameters"
    if algo is None or not text.startswith(prefix):
        return text
    return f"{prefix}.{algo}{text[len(prefix) :]}"


def _in_file(scenario: Scenario, text: str) -> AgentError:
    """An :class:`AgentError` of ``text`` prefixed with the scenario's file, if it has one."""
    return AgentError(f"{scenario.error_prefix}{text}")


def check_other_sections(scenario: Scenario) -> None:
    """:func:`check_hyperparameters` on each section for an algorithm the scenario does not
    train (``lmrecsim train --algo`` can pick it), so a typo there fails before that run.

    Raises:
        AgentError: one line naming the file (as :func:`build_agent` does) and the section's key
            (``agent.hyperparameters.dqn.KEY``).
    """
    hp = scenario.agent.hyperparameters
    if not has_algorithm_sections(hp):
        return
    for algo, section in hp.items():
        if algo == scenario.agent.algo:
            continue
        try:
            check_hyperparameters(
                algo, dict(section), scenario.agent.policy, scenario.candidates.slate_size > 1
            )
        except AgentError as exc:
            raise _in_file(scenario, _in_section(str(exc), algo)) from None


def model_file(path: str | os.PathLike[str]) -> Path:
    """The model file a path names: a run folder's ``model.zip``, else the path itself."""
    p = Path(path)
    return p / "model.zip" if p.is_dir() else p


def run_folder(path: str | os.PathLike[str]) -> Path:
    """The training run folder of a saved model: the folder itself, the folder of its
    ``model.zip``, or the run of a checkpoint (``RUN/checkpoints/model_N_steps.zip``), whose
    ``train.json`` and ``progress.csv`` are the run's."""
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    if folder.name == "checkpoints" and (folder.parent / "train.json").is_file():
        return folder.parent
    return folder


def existing_model_file(path: str | os.PathLike[str]) -> Path:
    """:func:`model_file` of ``path``, which must exist.

    Raises:
        AgentError: one line naming the missing file.
    """
    p = model_file(path)
    if not p.exists():
        raise AgentError(
            f"{p}: model file not found (expected a model.zip saved by lmrecsim train)"
        )
    return p


def load_model(algo: str, path: str | os.PathLike[str], env: VecEnv | None = None) -> BaseAlgorithm:
    """Load a saved model (``model.zip``) of the given algorithm, with one-line errors.

    The pickled entries of the file's ``data`` are read with :func:`~.safe_load.safe_custom_objects`
    (only the classes saved models refer to), never by SB3's cloudpickle: a crafted file would
    run code when loaded.
    """
    p = existing_model_file(path)
    try:
        cls = algorithm_class(algo)
    except AgentError as exc:  # named as the argument here, not the scenario key
        raise AgentError(str(exc).replace("agent.algo: ", "algo: ", 1)) from None
    try:
        # Read once: the checked data and the loaded model come from the same bytes.
        raw = io.BytesIO(p.read_bytes())
    except OSError as exc:
        raise AgentError(
            f"{p}: cannot be read ({exc.strerror or exc}; expected a model.zip saved by lmrecsim "
            "train or SB3's save)"
        ) from None
    custom_objects = safe_custom_objects(raw, shown=str(p))
    try:
        raw.seek(0)
        return cls.load(raw, env=env, device="cpu", custom_objects=custom_objects)
    except Exception as exc:  # noqa: BLE001 - any load failure is one user-facing line
        if env is not None and "spaces do not match" in str(exc):
            # SB3's words are both spaces' whole reprs, arrays of bounds included.
            raw.seek(0)
            raise AgentError(f"{p}: {_space_mismatch(raw, env, custom_objects)}") from None
        trained = trained_algo(p)
        if trained is not None and trained != algo:
            raise AgentError(
                f"{p}: cannot load a {algo} model: its run trained {trained} (train.json; "
                f"expected {trained}:{path})"
            ) from None
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        # Loaded from memory, SB3 names the buffer ("the file <_io.BytesIO object at 0x...>").
        first = re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "", first).replace("  ", " ")
        if first.startswith("Weights only load failed"):
            # torch's advice (load with weights_only=False) would run code from the file.
            first = "its policy.pth is not a readable PyTorch state (corrupt or not saved by SB3)"
        if isinstance(exc, KeyError):  # a part of the archive (or of its data) is not there
            key = str(exc.args[0]) if exc.args else ""
            # SB3 raises KeyError with a sentence too (a data file without the spaces).
            first = f"incomplete saved data: {key}" if " " in key else f"{first} is missing"
        raise AgentError(
            f"{p}: cannot load a {algo} model ({first}; expected a model.zip saved by lmrecsim "
            "train or SB3's save)"
        ) from None


def _space_text(space: Any) -> str:
    """``MultiBinary (20,)``: a space's kind and shape, or ``none``."""
    return "none" if space is None else f"{type(space).__name__} {space.shape}"


def _space_mismatch(raw: io.BytesIO, env: VecEnv, custom_objects: dict[str, Any]) -> str:
    """Where a saved model's spaces and ``env``'s differ, key by key, in a few words."""
    from stable_baselines3.common.save_util import load_from_zip_file

    data, _, _ = load_from_zip_file(raw, custom_objects=custom_objects, load_data=True)
    for what, saved, given in (
        ("observation", data.get("observation_space"), env.observation_space),
        ("action space", data.get("action_space"), env.action_space),
    ):
        if saved is None or saved == given:
            continue
        if isinstance(saved, spaces.Dict) and isinstance(given, spaces.Dict):
            for key in sorted(set(saved.spaces) | set(given.spaces)):
                a, b = saved.spaces.get(key), given.spaces.get(key)
                if a is None or b is None or a.shape != b.shape or type(a) is not type(b):
                    return (
                        f"the model's {what} {key!r} is {_space_text(a)}, the env's is "
                        f"{_space_text(b)} "
                        "(expected an env of the scenario the model was trained on)"
                    )
            return (
                f"the model's {what} has other bounds than the env's (expected an env of the "
                "scenario the model was trained on)"
            )
        return (
            f"the model's {what} is {type(saved).__name__} {getattr(saved, 'shape', '')}, the "
            f"env's is {type(given).__name__} {getattr(given, 'shape', '')} (expected an env of "
            "the scenario the model was trained on)"
        )
    return "its spaces do not match the env's (expected an env of its scenario)"


def trained_algo(model_path: str | os.PathLike[str]) -> str | None:
    """The algorithm the run folder of a model file (or the run folder itself) says it trained
    (its ``train.json``), or None when there is none to read."""
    return _run_text(model_path, "algo")


def trained_scenario(model_path: str | os.PathLike[str]) -> str | None:
    """The name of the scenario the run folder of a model file (or the run folder itself) says
    it trained on (its ``train.json``), or None when there is none to read."""
    return _run_text(model_path, "scenario")


def _run_text(model_path: str | os.PathLike[str], key: str) -> str | None:
    """The text ``key`` of the ``train.json`` of a model's run folder, or None: no run folder,
    no such text, or an unreadable ``train.json`` (whose own error is reported elsewhere)."""
    from .train import run_record  # train imports this module

    try:
        data = run_record(run_folder(model_path))
    except ValueError:
        return None
    value = None if data is None else data.get(key)
    return value if isinstance(value, str) else None
