"""Helpers shared by subcommands."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from lmrecsim.agents.errors import AgentError
from lmrecsim.atomic import blocking_file, missing_folders, output_folder_problem
from lmrecsim.errors import UsageError
from lmrecsim.scenarios.schema import MAX_EVALUATION_SEED
from lmrecsim.scenarios.yaml_text import safe_load


def parse_hyperparameters(items: Sequence[str]) -> dict[str, Any]:
    """``["learning_rate=1e-3", "n_steps=128"]`` -> ``{"learning_rate": 0.001, "n_steps": 128}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AgentError(f"--hp: {item!r} is invalid (expected KEY=VALUE)")
        try:
            out[key.strip()] = safe_load(value)
        except yaml.YAMLError:
            raise AgentError(
                f"--hp: {item!r} has an unreadable value (expected a YAML scalar)"
            ) from None
    return out


#: Said of a number that Python's ``int`` reads but the options do not: one in other digits.
ASCII_DIGITS = "written with the digits 0-9"


def parse_int(text: str) -> int:
    """``int(text)`` for ASCII text only: Python's ``int`` also reads other scripts' digits
    (``"١٢"``, fullwidth ``"１２"``), which no option takes.

    Raises:
        ValueError: not an integer in ASCII digits (optional sign, surrounding spaces and ``_``
            between digits as ``int`` allows them).
    """
    if not text.isascii():
        raise ValueError(f"{text!r}: not ASCII")
    return int(text)


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; an empty entry (``"1,,2"``, a trailing comma) is refused."""
    parts = text.split(",")
    if len(parts) > 1 and any(not part.strip() for part in parts):
        raise AgentError(
            f"--seeds: {text!r} has an empty entry (expected comma-separated integers)"
        )
    try:
        seeds = [parse_int(part) for part in parts if part.strip()]
    except ValueError:
        digits = "" if text.isascii() else f" {ASCII_DIGITS}"
        raise AgentError(
            f"--seeds: {text!r} is invalid (expected comma-separated integers{digits})"
        ) from None
    if not seeds:
        raise AgentError("--seeds: empty (expected comma-separated integers)")
    negative = [seed for seed in seeds if seed < 0]
    if negative:
        raise AgentError(
            f"--seeds: {negative[0]} is invalid (expected comma-separated integers >= 0)"
        )
    too_large = [seed for seed in seeds if seed > MAX_EVALUATION_SEED]
    if too_large:
        raise AgentError(
            f"--seeds: {too_large[0]} is invalid (expected comma-separated integers "
            f"<= {MAX_EVALUATION_SEED}: step logs store seeds as 64-bit integers)"
        )
    return seeds


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose refusals are one line on stderr (``PROG: error: MESSAGE``,
    exit code 2), like every other error of the command line; ``--help`` shows the usage."""

    def error(self, message: str) -> Any:  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message}\n")


def prepare_output(path: str | None, flag: str, *, folder: bool = True) -> list[Path]:
    """Check an output argument before any work is done and create its folder.

    ``folder``: the path is a folder to write into; otherwise a file to write, whose folder is
    created. ``None`` (not given) passes. Creating the folder up front means a run of minutes
    cannot end on an output that cannot be written.

    Returns:
        The folders this call created, outermost first: the caller removes them again (when still
        empty) if the command fails, so a refused run leaves nothing behind.

    Raises:
        UsageError: an empty path, the path existing as the other kind, a file in the way, or a
            folder that cannot be created (one line naming the flag).
    """
    if path is None:
        return []
    kind = "folder" if folder else "file"
    if not path.strip():
        raise UsageError(f"{flag}: empty (expected a {kind} name)")
    p = Path(path)
    if not folder and p.is_dir():
        raise UsageError(f"{flag}: '{path}' is a folder (expected a file name to write)")
    if folder:
        problem = output_folder_problem(p)
        if problem is not None:
            raise UsageError(f"{flag}: {problem}")
    else:
        blocker = blocking_file(p.parent)
        if blocker is not None:
            raise UsageError(f"{flag}: '{path}' cannot be created ('{blocker}' is a file)")
    target = p if folder else p.parent
    _, missing = missing_folders(target)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{flag}: '{path}' cannot be created ({exc.strerror or exc})") from None
    if not os.access(target, os.W_OK) or not _can_create_files(target):
        where = (
            f"'{path}' is" if folder else f"'{path}' cannot be written: its folder '{target}' is"
        )
        raise UsageError(f"{flag}: {where} not writable (expected a folder you can write to)")
    return missing


def _can_create_files(folder: Path) -> bool:
    """Whether a file can really be created in ``folder``: ``os.access`` says yes to root for
    folders no one can write to (``/proc``, a read-only mount), which a run used to find out
    only when it wrote its results."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".lmrecsim-probe-"):
            return True
    except OSError:
        return False


def remove_empty_folders(folders: Sequence[Path]) -> None:
    """Remove ``folders`` (outermost first, as :func:`prepare_output` returns them) that are
    still empty, innermost first; anything with content is kept."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            pass


def int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer in ASCII digits >= ``minimum`` (and <= ``maximum`` when
    given), refused with the flag's name otherwise."""
    expected = f"an integer >= {minimum}" + ("" if maximum is None else f" and <= {maximum}")

    def parse(text: str) -> int:
        try:
            value = parse_int(text)
        except ValueError:
            digits = "" if text.isascii() else f" {ASCII_DIGITS}"
            raise argparse.ArgumentTypeError(f"{text!r} (expected {expected}{digits})") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"{value} (expected {expected})")
        return value

    parse.__name__ = expected.removeprefix("an ")
    return parse
