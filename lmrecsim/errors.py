"""The exceptions that mean "bad input from the user" (reported as one line, exit code 2)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from lmrecsim.exceptions import LmrecsimError

# The hub must never be contacted: every model is a local path or already in the user's cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class UsageError(LmrecsimError, ValueError):
    """A command-line argument that cannot be used as given (one line naming the flag)."""


class Terminated(BaseException):
    """Raised by the command line's SIGTERM handler, so a terminated command cleans up (temp
    files, staging folders) as on Ctrl-C and says so in one line."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


@contextmanager
def sigterm_as_exception() -> Iterator[None]:
    """Within the block, SIGTERM (``kill``, a job scheduler's stop) raises :class:`Terminated`,
    so a command stopped that way cleans up (temp files, staging folders, worker processes) as on
    Ctrl-C; :func:`report_user_errors` turns it into one line and exit code 143. Only the main
    thread can handle signals; elsewhere the block changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def user_errors() -> tuple[type[BaseException], ...]:
    """Every error class whose message is a complete one-line explanation for the user: those of
    :class:`~lmrecsim.exceptions.LmrecsimError` (every subsystem's bad-input error derives from
    it)."""
    return (LmrecsimError,)


def report_user_errors(prog: str, run: Callable[[], int | None]) -> int:
    """Call ``run``; a user error becomes one line ``PROG: error: ...`` on stderr and exit code 2.

    Used by the ``lmrecsim`` console script and the scripts under ``benchmarks/``. Warnings are
    one line too, not Python's form with a file path and a source line: lmrecsim's own (a
    corrupt cache file being rebuilt) as ``PROG: warning: ...``, a library's (stable-baselines3
    on a ``batch_size`` that does not divide the rollout) as ``PROG: warning: (LIBRARY) ...``.
    SIGTERM ends ``run`` as Ctrl-C does (:func:`sigterm_as_exception`): one line
    ``PROG: terminated`` and exit code 143.
    """
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
        text = " ".join(str(message).split())
        if category.__module__.startswith("lmrecsim"):
            print(f"{prog}: warning: {text}", file=sys.stderr)
        else:
            print(f"{prog}: warning: ({_warning_source(str(filename))}) {text}", file=sys.stderr)

    warnings.showwarning = show
    try:
        with sigterm_as_exception():
            return _run_reporting(prog, run)
    except (KeyboardInterrupt, Terminated) as exc:
        # A second signal while the first was being handled (Ctrl-C, then SIGTERM or Ctrl-C
        # again while a large run's memory is freed): the first one's line was said already, and
        # this one used to end in a traceback.
        return 130 if isinstance(exc, KeyboardInterrupt) else 143
    finally:
        warnings.showwarning = original


def _warning_source(filename: str) -> str:
    """The package a warning came from, from the path of the code that issued it
    (``.../site-packages/stable_baselines3/ppo/ppo.py`` -> ``stable_baselines3``)."""
    parts = filename.replace("\\", "/").split("/")
    for marker in ("site-packages", "dist-packages"):
        if marker in parts and parts.index(marker) + 1 < len(parts):
            return parts[parts.index(marker) + 1].removesuffix(".py")
    return os.path.basename(filename).removesuffix(".py") or "python"


#: The Python API's argument names that start its error lines, and the command line's flags
#: for them: a command's error names the flag the user typed.
FLAG_OF_ARGUMENT = (
    ("seeds: ", "--seeds: "),
    ("episodes: ", "--episodes: "),
    ("reference: ", "--reference: "),
    ("policies: ", "--policy: "),
    ("policy '", "--policy '"),
    ("estimators: ", "--estimator: "),
    ("n_folds: ", "--folds: "),
    ("export_dir: ", "--export: "),
)


def command_line_wording(message: str) -> str:
    """``message`` with its leading Python argument name (``seeds: ...``, from the library) as
    the command line's flag (``--seeds: ...``)."""
    for argument, flag in FLAG_OF_ARGUMENT:
        if message.startswith(argument):
            return flag + message[len(argument) :]
    return message


def _run_reporting(prog: str, run: Callable[[], int | None]) -> int:
    try:
        return int(run() or 0)
    except user_errors() as exc:
        print(f"{prog}: error: {command_line_wording(' '.join(str(exc).split()))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader of the output went away (`lmrecsim scenarios list | head -1`): stop quietly
        # with SIGPIPE's status, as a Unix tool does, and keep Python from failing again when it
        # flushes stdout at exit.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # a stdout without a descriptor
            pass
        return 141
    except OSError as exc:
        # The file system refused (a full disk, a read-only or vanished folder): still one line.
        where = f"'{exc.filename}': " if exc.filename else ""
        print(f"{prog}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"{prog}: terminated", file=sys.stderr)
        return 143
