"""Reading the pickled entries of a saved model's ``data`` without running code from the file.

An SB3 ``model.zip`` keeps the objects that JSON cannot hold (the spaces, the policy class, the
schedules, the buffer classes) as base64 pickles in its ``data`` entry, and ``BaseAlgorithm.load``
unpickles them with cloudpickle. A pickle can name any importable callable and call it, so a
crafted file runs any code when it is loaded. :func:`safe_custom_objects` unpickles those entries
itself, with an unpickler that only resolves the classes and constructors that models saved by
lmrecsim and SB3 refer to, and hands them to ``load`` as ``custom_objects``, so SB3 never
unpickles the file's own data. (SB3 reads the weights with ``torch.load(weights_only=True)``.)
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

from .errors import AgentError

__all__ = ["safe_custom_objects"]

# Exact globals: numpy's array, scalar and generator reconstructors, and small containers.
_ALLOWED_NAMES = frozenset(
    {
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy.random._pickle", "__generator_ctor"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random.bit_generator", "SeedSequence"),
        ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
        ("numpy.random._pcg64", "PCG64"),
        ("numpy.random._pcg64", "PCG64DXSM"),
        ("numpy.random._mt19937", "MT19937"),
        ("numpy.random._philox", "Philox"),
        ("numpy.random._sfc64", "SFC64"),
        ("collections", "deque"),
        ("collections", "OrderedDict"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "slice"),
        ("builtins", "complex"),
        ("builtins", "range"),
        ("stable_baselines3.common.utils", "ConstantSchedule"),
        ("stable_baselines3.common.utils", "FloatSchedule"),
        ("stable_baselines3.common.utils", "LinearSchedule"),
        ("stable_baselines3.common.type_aliases", "TrainFreq"),
        ("stable_baselines3.common.type_aliases", "TrainFrequencyUnit"),
    }
)

# Modules whose classes of the kinds below may be named: policies, buffers, spaces, layers and
# optimizers (constructing one runs no code of the file's choosing).
_CLASS_MODULES = ("lmrecsim.", "stable_baselines3.", "sb3_contrib.", "gymnasium.spaces.", "torch.")


def _allowed_class(obj: Any) -> bool:
    import torch
    from gymnasium import spaces
    from stable_baselines3.common.buffers import BaseBuffer
    from stable_baselines3.common.policies import BasePolicy

    if not isinstance(obj, type):
        return False
    if obj.__module__.startswith("torch."):
        return issubclass(obj, (torch.nn.Module, torch.optim.Optimizer))
    return issubclass(obj, (BasePolicy, BaseBuffer, spaces.Space))


class _Refused(Exception):
    """A pickle named a global that is not allowed."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_NAMES:
            return super().find_class(module, name)
        if module.startswith(_CLASS_MODULES):
            try:
                obj = super().find_class(module, name)
            except (ImportError, AttributeError):
                obj = None
            if _allowed_class(obj):
                return obj
        raise _Refused(f"{module}.{name}")


def safe_custom_objects(path: str | Path) -> dict[str, Any]:
    """The pickled entries of the ``data`` of the SB3 model file ``path``, each unpickled with
    only the classes and constructors saved models use, as ``custom_objects`` for ``load``.

    Returns an empty dict when the file has no readable ``data`` (the load then reports that).

    Raises:
        AgentError: one line naming the file, the entry and the global it names, for an entry
            that names anything else (a function such as ``os.system``, a class of another
            package or of a script's ``__main__``).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, RuntimeError):
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict[str, Any] = {}
    for key, item in data.items():
        if not (isinstance(item, dict) and isinstance(item.get(":serialized:"), str)):
            continue
        try:
            raw = base64.b64decode(item[":serialized:"].encode(), validate=True)
            out[key] = _RestrictedUnpickler(io.BytesIO(raw)).load()
        except _Refused as exc:
            raise AgentError(
                f"{path}: data entry {key!r} names {exc} (expected the classes models saved by "
                "lmrecsim or SB3 refer to: loading a model file runs what its pickles name, so "
                "nothing else is loaded)"
            ) from None
        except Exception as exc:  # noqa: BLE001 - a damaged pickle fails in many ways
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise AgentError(
                f"{path}: data entry {key!r} cannot be read ({reason}; expected a model.zip "
                "saved by lmrecsim train or SB3's save)"
            ) from None
    return out
