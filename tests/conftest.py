"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _sb3_default_logs_in_pytest_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Models that learn without a logger of their own make SB3 create an empty ``SB3-<date>``
    folder per ``learn`` call; ``SB3_LOGDIR`` puts them in pytest's temporary folder instead of
    the system's (the suite left some thirty there per run)."""
    previous = os.environ.get("SB3_LOGDIR")
    os.environ["SB3_LOGDIR"] = str(tmp_path_factory.mktemp("sb3_logs"))
    yield
    if previous is None:
        os.environ.pop("SB3_LOGDIR", None)
    else:
        os.environ["SB3_LOGDIR"] = previous


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """Ctrl-C (SIGINT) raises KeyboardInterrupt during the test, whatever the suite inherited.

    A suite started in the background by a non-interactive shell (``make test &``, some CI
    runners) inherits SIGINT ignored, and Python then keeps it ignored: a test of what Ctrl-C
    does would see nothing happen.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
