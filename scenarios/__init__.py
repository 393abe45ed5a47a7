"""Scenario files: the schema, the loader and the shipped ``*.yaml`` scenarios.

A scenario is one YAML file describing a whole experiment (catalog, encoder, users, candidates,
reward, episode, agent and evaluation blocks). ``load_scenario("default")`` finds a shipped scenario
by name; any path works too. ``extends:`` lets a file override another.
"""

from __future__ import annotations

from .loader import (
    ScenarioError,
    ScenarioRef,
    deep_merge,
    list_scenarios,
    load_scenario,
    scenario_from_dict,
    scenario_hash,
    scenario_to_dict,
    scenario_to_yaml,
    shipped_scenario_names,
)
from .schema import Scenario

__all__ = [
    "Scenario",
    "ScenarioError",
    "ScenarioRef",
    "deep_merge",
    "list_scenarios",
    "load_scenario",
    "scenario_from_dict",
    "scenario_hash",
    "scenario_to_dict",
    "scenario_to_yaml",
    "shipped_scenario_names",
]
