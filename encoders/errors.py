"""Error and warning classes of :mod:`lmrecsim.encoders`."""

from __future__ import annotations

from lmrecsim.exceptions import LmrecsimError

__all__ = ["EncoderError", "CacheCorruptionWarning"]


class EncoderError(LmrecsimError):
    """Bad encoder configuration or an unloadable model.

    The message is always one line that names the offending model path or key and what was
    expected, e.g. ``encoder.model: '/x/y' does not exist (expected ...)``.
    """

    def __init__(self, message: str) -> None:
        # Tracebacks from transformers are multi-line; callers print this message as-is.
        super().__init__(" ".join(str(message).split()))


class CacheCorruptionWarning(RuntimeWarning):
    """An on-disk cache file was unreadable or failed its checksum and was discarded."""
