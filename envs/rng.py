"""Counter-based random numbers for batched users.

Every random number a simulated user consumes is a pure function of (episode key, step, stream,
index). The episode key is drawn once per episode from the env's ``np_random`` (seeded through
Gymnasium's ``reset(seed=...)``), so:

* one env and a batch of N envs produce identical per-user trajectories (no shared stream whose
  consumption order depends on the batch size);
* two policies run on the same seed see the same users, candidates and click draws wherever their
  states agree (common random numbers, for paired comparisons and replay);
* a whole batch draws its numbers with a few vectorised integer operations, no Python loop; a
  :class:`StreamPlan` draws several streams in one pass (a step's draws cost three mixing passes).

The mixing function is SplitMix64's finaliser, which passes BigCrush as a counter-based generator.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def _mix64_inplace(z: np.ndarray) -> np.ndarray:
    # SplitMix64 finaliser, elementwise on a uint64 array, in place. Array (not scalar) uint64 arithmetic wraps silently, so no errstate context is needed; the
    # in-place form allocates one temporary per shift instead of one per operation.
    z ^= z >> _S30
    z *= _M1
    z ^= z >> _S27
    z *= _M2
    z ^= z >> _S31
    return z


def _bases(keys: np.ndarray, steps: np.ndarray | int, stream_salt: np.ndarray) -> np.ndarray:
    """Per-(key, stream) base counters, shape (N, S).

    Args:
        keys: (N,) uint64; steps: (N,) or a scalar.
        stream_salt: (S,) uint64, ``stream * _STREAM_MUL + _GOLDEN`` of each stream.
    """
    keys = np.asarray(keys, dtype=np.uint64)
    steps_u = np.asarray(steps, dtype=np.int64).astype(np.uint64).reshape(-1, 1)
    # (1, S) when all keys share one step: mixed once, then broadcast by the XOR.
    salt = _mix64_inplace(steps_u * _STEP_MUL + stream_salt)
    salt = keys[:, None] ^ salt
    return _mix64_inplace(salt)


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
    return StreamPlan(((stream, n),)).bits(keys, steps)


def uniform(keys: np.ndarray, steps: np.ndarray | int, stream: int, n: int) -> np.ndarray:
    """Uniform floats in [0, 1), shape (N, n), float64 with 53 random bits."""
    return bits_to_uniform(random_bits(keys, steps, stream, n))


def normal(keys: np.ndarray, steps: np.ndarray | int, stream: int, n: int) -> np.ndarray:
    """Standard normal floats, shape (N, n), by the Box-Muller transform of paired uniforms."""
    return uniform_to_normal(uniform(keys, steps, stream, 2 * ((n + 1) // 2)), n)


def integers(
    keys: np.ndarray, steps: np.ndarray | int, stream: int, n: int, high: np.ndarray | int
) -> np.ndarray:
    """Integers uniform in [0, high), shape (N, n); ``high`` may differ per key (shape (N,))."""
    return uniform_to_integers(uniform(keys, steps, stream, n), high)


def bits_to_uniform(bits: np.ndarray) -> np.ndarray:
    """Uniform float64 in [0, 1) from raw draws (the top 53 bits), same shape."""
    u = (bits >> _S11).astype(np.float64)
    u *= _INV53
    return u


def uniform_to_normal(u: np.ndarray, n: int) -> np.ndarray:
    """Box-Muller: (N, 2 * ceil(n / 2)) uniforms -> (N, n) standard normals (first half: radii)."""
    m = u.shape[1] // 2
    r = np.sqrt(-2.0 * np.log(1.0 - u[:, :m]))  # 1 - u is in (0, 1], safe for log
    angle = 2 * np.pi * u[:, m:]
    if n == 1:
        return r * np.cos(angle)
    z = np.concatenate([r * np.cos(angle), r * np.sin(angle)], axis=1)
    return z[:, :n]


def uniform_to_integers(u: np.ndarray, high: np.ndarray | int) -> np.ndarray:
    """Integers in [0, high) from uniforms (N, n); ``high`` a scalar or (N,) per row."""
    if isinstance(high, (int, np.integer)):
        out = np.floor(u * float(high)).astype(np.int64)
        return np.minimum(out, max(int(high) - 1, 0), out=out)
    high_arr = np.asarray(high, dtype=np.float64)
    if high_arr.ndim == 1:
        high_arr = high_arr[:, None]
    out = np.floor(u * high_arr).astype(np.int64)
    return np.minimum(out, np.maximum(np.asarray(high_arr, dtype=np.int64) - 1, 0))


class StreamPlan:
    """Several streams drawn together: one pass of integer mixing instead of one per stream.

    ``StreamPlan([(STREAM_CLICK, 1), (STREAM_CAND_RANDOM, 60)]).bits(keys, steps)`` returns an
    (N, 61) array whose columns are exactly ``random_bits(keys, steps, STREAM_CLICK, 1)`` followed by
    ``random_bits(keys, steps, STREAM_CAND_RANDOM, 60)``, so grouping draws changes no number.

    Args:
        spec: ``(stream, n)`` pairs, in column order.
    """

    def __init__(self, spec: Sequence[tuple[int, int]]) -> None:
        self.spec = tuple((int(s), int(n)) for s, n in spec)
        counts = [n for _, n in self.spec]
        self.streams = np.array([s for s, _ in self.spec], dtype=np.uint64)
        self._stream_salt = self.streams * _STREAM_MUL + _GOLDEN
        self._counts = np.array(counts, dtype=np.int64)
        self._col_offset = (
            np.concatenate(
                [np.arange(1, n + 1, dtype=np.uint64) for n in counts] or [np.zeros(0, np.uint64)]
            )
            * _GOLDEN
        )
        ends = np.cumsum(counts)
        self.slices = [slice(int(e - n), int(e)) for e, n in zip(ends, counts, strict=True)]
        self.width = int(ends[-1]) if counts else 0
        self._step_salts: np.ndarray | None = None

    def cache_steps(self, n_steps: int) -> None:
        """Precompute the step-and-stream half of the mixing for steps 0 .. n_steps - 1.

        Per-step draws of an episode then cost one table lookup instead of a mixing pass over
        (N, S); steps outside the table are still mixed on the fly.
        """
        steps_u = np.arange(n_steps, dtype=np.uint64)[:, None]
        self._step_salts = _mix64_inplace(steps_u * _STEP_MUL + self._stream_salt)

    def bits(self, keys: np.ndarray, steps: np.ndarray | int) -> np.ndarray:
        """Raw draws of every stream, (N, width) uint64, streams side by side in spec order."""
        table = self._step_salts
        if table is not None and np.ndim(steps) == 1 and len(steps) and steps.max() < len(table):
            base = np.asarray(keys, dtype=np.uint64)[:, None] ^ table[steps]
            _mix64_inplace(base)
        else:
            base = _bases(keys, steps, self._stream_salt)
        # np.repeat returns a C-ordered array (fancy indexing base[:, cols] may not): float kernels
        # such as log, cos and row norms take different (SIMD or strided) paths by memory layout,
        # and the results must not depend on how the draws were grouped.
        out = np.repeat(base, self._counts, axis=1)
        out += self._col_offset
        return _mix64_inplace(out)

    def uniform(self, keys: np.ndarray, steps: np.ndarray | int) -> np.ndarray:
        """Uniform float64 in [0, 1) of every stream, (N, width)."""
        return bits_to_uniform(self.bits(keys, steps))


def episode_key(generator: np.random.Generator) -> np.uint64:
    """Draw one episode key from a Generator (exactly one draw, so streams stay aligned)."""
    return np.uint64(generator.integers(0, np.iinfo(np.int64).max, dtype=np.int64))
