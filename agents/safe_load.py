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
import functools
import importlib
import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import IO, Any

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

# Modules whose classes of the kinds :func:`_allowed_classes` keeps may be named: SB3's,
# sb3-contrib's and lmrecsim's policies, feature extractors and buffers, torch's activation
# layers and optimizers, and gymnasium's spaces. Only these modules are imported, here and by
# name: a pickle that names any other module is refused before anything is imported (importing
# a module runs its code, and some run a command line when imported).
_CLASS_MODULES = (
    "gymnasium.spaces.box",
    "gymnasium.spaces.dict",
    "gymnasium.spaces.discrete",
    "gymnasium.spaces.multi_binary",
    "gymnasium.spaces.multi_discrete",
    "gymnasium.spaces.tuple",
    "torch.nn.modules.activation",
    "torch.optim.adam",
    "torch.optim.adamw",
    "torch.optim.sgd",
    "torch.optim.rmsprop",
    "stable_baselines3.common.policies",
    "stable_baselines3.common.torch_layers",
    "stable_baselines3.common.buffers",
    "stable_baselines3.dqn.policies",
    "sb3_contrib.common.maskable.policies",
    "sb3_contrib.common.maskable.buffers",
    "sb3_contrib.common.recurrent.policies",
    "sb3_contrib.common.recurrent.buffers",
    "sb3_contrib.qrdqn.policies",
    "lmrecsim.agents.scorer",
    "lmrecsim.agents.dueling",
    "lmrecsim.agents.replay",
    "lmrecsim.agents.slateq",
)


@functools.cache
def _allowed_classes() -> dict[tuple[str, str], type]:
    """``(module, name) -> class`` of every class a saved model may name: those defined in
    :data:`_CLASS_MODULES` that are policies, feature extractors, buffers, spaces, torch layers
    or optimizers (constructing one runs no code of a file's choosing)."""
    import torch
    from gymnasium import spaces
    from stable_baselines3.common.buffers import BaseBuffer
    from stable_baselines3.common.policies import BaseModel

    kinds = (BaseModel, BaseBuffer, spaces.Space, torch.nn.Module, torch.optim.Optimizer)
    out: dict[tuple[str, str], type] = {}
    for name in _CLASS_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # an optional package (sb3-contrib) or another torch layout
            continue
        for attr, obj in vars(module).items():
            if isinstance(obj, type) and obj.__module__ == name and issubclass(obj, kinds):
                out[(name, attr)] = obj
    return out


class _Refused(Exception):
    """A pickle named a global that is not allowed."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_NAMES:
            return super().find_class(module, name)
        found = _allowed_classes().get((module, name))
        if found is None:
            raise _Refused(f"{module}.{name}")
        return found


def safe_custom_objects(path: str | Path | IO[bytes], shown: str | None = None) -> dict[str, Any]:
    """The pickled entries of the ``data`` of the SB3 model file ``path`` (or its bytes, named
    ``shown`` in messages), each unpickled with only the classes and constructors saved models
    use, as ``custom_objects`` for ``load``.

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
    name = shown if shown is not None else str(path)
    out: dict[str, Any] = {}
    for key, item in data.items():
        if not (isinstance(item, dict) and isinstance(item.get(":serialized:"), str)):
            continue
        try:
            raw = base64.b64decode(item[":serialized:"].encode(), validate=True)
            out[key] = _RestrictedUnpickler(io.BytesIO(raw)).load()
        except _Refused as exc:
            raise AgentError(
                f"{name}: data entry {key!r} names {exc} (expected the classes models saved by "
                "lmrecsim or SB3 name; loading a model runs what its pickles name, so nothing "
                "else is loaded: a function, such as a learning_rate lambda, is refused; load a "
                "file you trust with SB3's own load)"
            ) from None
        except Exception as exc:  # noqa: BLE001 - a damaged pickle fails in many ways
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise AgentError(
                f"{name}: data entry {key!r} cannot be read ({reason}; expected a model.zip "
                "saved by lmrecsim train or SB3's save)"
            ) from None
    return out
