"""Writing files atomically: a temp file beside the target, then a rename.

The files lmrecsim writes itself (a run's scenario.yaml and train.json, reports, plots, CSVs,
step logs, the embedding cache) go through :func:`atomic_file`, so an interrupted or failed write
never leaves a half-written file, and the file gets the permissions any new file would get under
the user's umask (``tempfile.mkstemp`` alone creates 0600 files, which other users and web
servers cannot read). A command that writes a set of files that belong together (an evaluation
report, a replay) writes them through :func:`staged_folder`, all or nothing. SB3 writes
``model.zip`` and checkpoints (saved to a temp name, then renamed), ``progress.csv`` and
TensorBoard events with its own code. A training run holds :func:`folder_lock` on its folder, so
a second run into the same folder is refused instead of mixing its files with the first's.

The lowest layer of the package: it imports nothing from lmrecsim.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "LOCK_NAME",
    "FolderInUse",
    "StagedFolder",
    "atomic_file",
    "atomic_write",
    "folder_in_use",
    "folder_lock",
    "output_folder_problem",
    "signals_deferred",
    "staged_folder",
]


def output_folder_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be a folder to write into (a file there or above it), or None.

    The API functions that write a folder of outputs call this before any work, so a run of
    minutes does not end on an output path that was never usable.
    """
    p = Path(path)
    blocker = blocking_file(p)
    if blocker is None:
        return None
    if blocker == p:
        return f"'{path}' is a file (expected a folder to write into)"
    return f"'{path}' cannot be created ('{blocker}' is a file)"


def missing_folders(path: str | os.PathLike[str]) -> tuple[Path, list[Path]]:
    """``(nearest existing path at or above path, the folders below it that do not exist yet,
    outermost first)``: what creating folder ``path`` would create."""
    probe, missing = Path(path), []
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    return probe, missing[::-1]


def blocking_file(path: str | os.PathLike[str]) -> Path | None:
    """The file that stands where folder ``path`` or one of its parents should be, or None."""
    probe, _ = missing_folders(path)
    return probe if probe.exists() and not probe.is_dir() else None


def _new_file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file: 0o666 less the process umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_file(path: str | os.PathLike[str], *, fsync: bool = False) -> Iterator[BinaryIO]:
    """A binary file handle whose content replaces ``path`` when the block ends without error.

    Args:
        path: the file to write (its folder is created).
        fsync: flush the data to disk before the rename (logs and caches that must survive a
            crash right after the write).

    On an error inside the block the temp file is removed and ``path`` is left as it was.
    """
    dest = Path(path)
    if dest.is_dir():  # the rename would fail after the write, naming the temp file
        raise IsADirectoryError(
            errno.EISDIR, "a folder is in the way (expected a file or nothing)", str(dest)
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _new_file_mode())
        with os.fdopen(fd, "wb") as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a full disk says only "No space left on device": name the file
            raise OSError(exc.errno, exc.strerror or str(exc), str(dest)) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


#: The file in a run folder that :func:`folder_lock` locks (it stays: removing it would race).
LOCK_NAME = ".lmrecsim-lock"


class FolderInUse(Exception):
    """Another process holds :func:`folder_lock` on the folder; ``str()`` names the folder and,
    when the holder wrote it, its process id."""


@contextmanager
def folder_lock(folder: str | os.PathLike[str], *, create: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (an existing folder) for the block.

    The lock is an ``flock`` on ``folder/.lmrecsim-lock``, which holds the holder's process id;
    the operating system releases it when the process ends, however it ends, so a run killed
    with SIGKILL leaves no stale lock. Where ``fcntl`` does not exist (Windows) the block runs
    without a lock. With ``create=False`` a folder without the lock file is not locked and gets
    none (a check, in a folder that must stay as it is, that no run holds it).

    Raises:
        FolderInUse: another process holds the lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    path = Path(folder) / LOCK_NAME
    if not create and not path.is_file():
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o666)
        writable = True
    except PermissionError:  # another user's lock file: flock works on a read-only descriptor
        fd, writable = os.open(path, os.O_RDONLY), False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            pid = f" (process {holder})" if holder.isdigit() else ""
            raise FolderInUse(f"'{folder}' is in use by another lmrecsim run{pid}") from None
        if writable:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def folder_in_use(folder: str | os.PathLike[str]) -> str | None:
    """Why ``folder`` cannot be locked now (another process holds :func:`folder_lock` on it:
    the :class:`FolderInUse` message), or None. Creates nothing, in a folder that need not
    exist."""
    try:
        with folder_lock(folder, create=False):
            return None
    except FolderInUse as exc:
        return str(exc)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Within the block, Ctrl-C (SIGINT) and SIGTERM wait: the first one that arrived is handled
    as usual when the block ends (after a ``finally`` of the caller's has run, not within it).

    For the short writes that record how a run ended: a second Ctrl-C, or a SIGTERM, right after
    the first used to cut the write of ``train.json``'s ``"stopped"`` short and leave it saying
    ``"running"``. Outside the main thread, or when a handler was installed from outside Python,
    the block changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.getsignal(signum) for signum in names}
    if any(handler is None for handler in previous.values()):
        yield
        return
    pending: list[tuple[int, Any]] = []

    def hold(signum: int, frame: Any) -> None:
        pending.append((signum, frame))

    for signum in names:
        signal.signal(signum, hold)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if pending:
            signum, frame = pending[0]
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)  # Python's raises KeyboardInterrupt; lmrecsim's Terminated
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` atomically (see :func:`atomic_file`)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_file(path) as fh:
        fh.write(payload)


class StagedFolder:
    """Files being written for a folder, in a hidden staging folder inside it (see
    :func:`staged_folder`)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.stage = Path(tempfile.mkdtemp(dir=out, prefix=".lmrecsim-staging-"))
        self.names: list[str] = []

    def path(self, name: str) -> Path:
        """Where to write file ``name`` now; it moves to ``out/name`` when the block ends."""
        self.names.append(name)
        return self.stage / name

    def write(self, name: str, data: bytes | str) -> None:
        """Write ``data`` (text is UTF-8 encoded) as file ``name``; an ``OSError`` (a full disk)
        names the file's final path, not the staging folder."""
        try:
            atomic_write(self.path(name), data)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror or str(exc), str(self.out / name)) from exc

    def files(self) -> list[Path]:
        """The final paths of the files written, in the order they were written."""
        return [self.out / name for name in self.names]


@contextmanager
def staged_folder(out: str | os.PathLike[str]) -> Iterator[StagedFolder]:
    """Write a set of files into ``out`` all or nothing.

    Inside the block, files are written into a hidden staging folder inside ``out``; when the
    block ends without error they are renamed into ``out`` in the order they were written (so
    write a report that names the others last), and the staging folder is removed either way.
    A command stopped midway (Ctrl-C, SIGTERM, a full disk) leaves the files an earlier run put
    in ``out`` whole, never new tables beside an old report.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    staged = StagedFolder(folder)
    try:
        yield staged
        # A folder where a file goes would stop the renames midway (new tables beside the old
        # report): checked for all of them first, naming the final path.
        for name in staged.names:
            target = folder / name
            if target.is_dir() and not target.is_symlink():
                raise IsADirectoryError(
                    errno.EISDIR, "a folder is in the way (expected a file or nothing)", str(target)
                )
        # A signal between two renames would leave new tables beside the old report: the
        # renames (a few milliseconds) run with Ctrl-C and SIGTERM held until they are done.
        with signals_deferred():
            for name in staged.names:
                os.replace(staged.stage / name, folder / name)
    finally:
        shutil.rmtree(staged.stage, ignore_errors=True)
