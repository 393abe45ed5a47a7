"""One BLAS thread for the matrix products the simulation's numbers come from.

A multi-threaded BLAS splits a product's sums differently for different thread counts, so the
same product gave results that differ in the last bits under ``OMP_NUM_THREADS=1`` (common in CI
and batch schedulers) and on a multi-core machine: the projected item vectors differed by up to
1.4e-6, and so did every observation and every trained model. The products the simulation
depends on run inside :func:`one_blas_thread`, which makes their results independent of the
thread settings (the products are small: a few hundred rows at a time, or once per world).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

try:  # a declared dependency; the fallback only covers installs that skipped it
    from threadpoolctl import ThreadpoolController as _ThreadpoolController
except ImportError:  # pragma: no cover - depends on the installed packages
    _ThreadpoolController = None

_BLAS: list[Any] | None = None


def _blas_controllers() -> list[Any]:
    global _BLAS
    if _BLAS is None:
        _BLAS = (
            []
            if _ThreadpoolController is None
            else [c for c in _ThreadpoolController().lib_controllers if c.user_api == "blas"]
        )
    return _BLAS


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with every loaded BLAS library on one thread, then restore the counts.

    Next to a learner that keeps a core busy, a multi-threaded BLAS also spin-waits for a
    descheduled thread: a 256 x 1,200 x 32 product measured 12 ms instead of 0.4 ms.
    """
    saved = [(c, c.get_num_threads()) for c in _blas_controllers()]
    for c, n in saved:
        if n != 1:
            c.set_num_threads(1)
    try:
        yield
    finally:
        for c, n in saved:
            if n != 1:
                c.set_num_threads(n)
