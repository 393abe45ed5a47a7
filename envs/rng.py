"""Counter-based random numbers for batched users.

Every random number a simulated user consumes is a pure function of (episode key, step, stream,
index). The episode key is drawn once per episode from the env's ``np_random`` (seeded through
Gymnasium's ``reset(seed=...)``), so:

* one env and a batch of N envs produce identical per-user trajectories (no shared stream whose
  consumption order depends on the batch size);
* two policies run on the same seed see the same users, candidates and click draws wherever their
  states agree (common random numbers, for paired comparisons and replay);
* a whole batch draws its numbers with a few vectorised integer operations, no Python loop.

The mixing function is SplitMix64's finaliser, which passes BigCrush as a counter-based generator.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_STEP_MUL = np.uint64(0xD1B54A32D192ED03)
_STREAM_MUL = np.uint64(0xAEF17502108EF2D9)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_INV53 = 1.0 / float(1 << 53)

# Named streams: each kind of draw has its own, so adding a draw of one kind never shifts another.
STREAM_PERSONA = 1
STREAM_NOISE = 2
STREAM_PATIENCE = 3
STREAM_NEW_USER = 4
STREAM_HISTORY = 5
STREAM_DRIFT = 6
STREAM_CAND_NEW = 10
STREAM_CAND_POPULAR = 11
STREAM_CAND_RANDOM = 12
STREAM_CAND_SHUFFLE = 13
STREAM_CLICK = 20
STREAM_SATISFACTION = 21
STREAM_POLICY = 30
STREAM_CHOICE = 31


def mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, elementwise on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return z ^ (z >> _S31)


def _base(keys: np.ndarray, steps: np.ndarray | int, stream: int) -> np.ndarray:
    keys = np.asarray(keys, dtype=np.uint64)
    steps_u = np.asarray(steps, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        return mix64(keys ^ mix64(steps_u * _STEP_MUL + np.uint64(stream) * _STREAM_MUL + _GOLDEN))


def random_bits(keys: np.ndarray, steps: np.ndarray | int, stream: int, n: int) -> np.ndarray:
    """Raw 64-bit draws.

    Args:
        keys: episode keys, shape (N,), uint64.
        steps: the step each key is at, shape (N,) or a scalar.
        stream: one of the ``STREAM_*`` constants.
        n: draws per key.

    Returns:
        uint64 array of shape (N, n).
    """
    base = _base(keys, steps, stream)
    idx = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return mix64(base[:, None] + idx[None, :] * _GOLDEN)


def uniform(keys: np.ndarray, steps: np.ndarray | int, stream: int, n: int) -> np.ndarray:
    """Uniform floats in [0, 1), shape (N, n), float64 with 53 random bits."""
    return (random_bits(keys, steps, stream, n) >> _S11).astype(np.float64) * _INV53


def normal(keys: np.ndarray, steps: np.ndarray | int, stream: int, n: int) -> np.ndarray:
    """Standard normal floats, shape (N, n), by the Box-Muller transform of paired uniforms."""
    m = (n + 1) // 2
    u = uniform(keys, steps, stream, 2 * m)
    u1 = 1.0 - u[:, :m]  # in (0, 1], safe for log
    u2 = u[:, m:]
    r = np.sqrt(-2.0 * np.log(u1))
    z = np.concatenate([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)], axis=1)
    return z[:, :n]


def integers(keys: np.ndarray, steps: np.ndarray | int, stream: int, n: int, high: np.ndarray | int) -> np.ndarray:
    """Integers uniform in [0, high), shape (N, n); ``high`` may differ per key (shape (N,))."""
    u = uniform(keys, steps, stream, n)
    high_arr = np.asarray(high, dtype=np.float64)
    if high_arr.ndim == 1:
        high_arr = high_arr[:, None]
    out = np.floor(u * high_arr).astype(np.int64)
    return np.minimum(out, np.maximum(np.asarray(high_arr, dtype=np.int64) - 1, 0))


def episode_key(generator: np.random.Generator) -> np.uint64:
    """Draw one episode key from a Generator (exactly one draw, so streams stay aligned)."""
    return np.uint64(generator.integers(0, np.iinfo(np.int64).max, dtype=np.int64))
