"""Fixtures shared by every test folder."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest


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
