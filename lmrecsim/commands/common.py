"""Helpers shared by subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from lmrecsim.agents.errors import AgentError
from lmrecsim.errors import UsageError
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


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise AgentError(
            f"--seeds: {text!r} is invalid (expected comma-separated integers)"
        ) from None
    if not seeds:
        raise AgentError("--seeds: empty (expected comma-separated integers)")
    negative = [seed for seed in seeds if seed < 0]
    if negative:
        raise AgentError(
            f"--seeds: {negative[0]} is invalid (expected comma-separated integers >= 0)"
        )
    return seeds


def output_path(path: str | None, flag: str, *, folder: bool = True) -> None:
    """Check an output argument before any work is done: a folder to write into (``folder``) or
    a file to write; ``None`` (not given) passes.

    Raises:
        UsageError: the path exists as the other kind (one line naming the flag).
    """
    if path is None:
        return
    p = Path(path)
    if folder and p.exists() and not p.is_dir():
        raise UsageError(f"{flag}: '{path}' is a file (expected a folder to write into)")
    if not folder and p.is_dir():
        raise UsageError(f"{flag}: '{path}' is a folder (expected a file name to write)")


def int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum`` (and <= ``maximum`` when given), refused
    with the flag's name otherwise."""
    expected = f"an integer >= {minimum}" + ("" if maximum is None else f" and <= {maximum}")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} (expected {expected})") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"{value} (expected {expected})")
        return value

    parse.__name__ = expected.removeprefix("an ")
    return parse
