"""Helpers shared by subcommands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from lmrecsim.agents.errors import AgentError
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
    return seeds
