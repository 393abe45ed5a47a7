"""The scenario hash: stable across keys added later, so old step logs stay replayable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lmrecsim.scenarios import load_scenario, scenario_from_dict, scenario_hash, scenario_to_dict
from lmrecsim.scenarios.loader import LATER_KEYS


def _hash_without(data: dict, paths: list[tuple[str, ...]]) -> str:
    """What scenario_hash computed before the keys at ``paths`` existed."""
    for path in paths:
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        parent.pop(path[-1])
    payload = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def test_later_keys_at_their_old_behaviour_leave_the_hash_as_it_was() -> None:
    for name in ("default", "cold_start"):
        # The shipped files validate while training (agent.validation, a later key in use); off,
        # every later key is at its old behaviour.
        sc = scenario_from_dict(
            {"extends": name, "name": name, "agent": {"validation": {"every": 0}}}
        )
        assert scenario_hash(sc) == _hash_without(scenario_to_dict(sc), list(LATER_KEYS)), name


def test_a_later_key_in_use_changes_the_hash() -> None:
    base = load_scenario("default")
    bias = scenario_from_dict(
        {"extends": "default", "name": "default", "response": {"position_bias": 0.5}}
    )
    assert scenario_hash(bias) != scenario_hash(base)
    slates = scenario_from_dict(
        {"extends": "default", "name": "default", "candidates": {"slate_size": 2}}
    )
    assert scenario_hash(slates) != scenario_hash(base)
    off = scenario_from_dict(
        {"extends": "default", "name": "default", "agent": {"validation": {"every": 0}}}
    )
    assert base.agent.validation.every > 0 and scenario_hash(off) != scenario_hash(base)


def test_a_scenario_stored_before_the_later_keys_keeps_its_pinned_hash() -> None:
    """The resolved default scenario as a log of commit bc9391e stored it, with the hash that
    commit computed. A key added since without a LATER_KEYS entry changes this hash (and breaks
    the replay of every older log), so this test fails."""
    frozen = Path(__file__).resolve().parent / "frozen" / "default_bc9391e.yaml"
    assert scenario_hash(load_scenario(frozen)) == (
        "26222f435b43ea8b84f8271a04827321d073fff917dc59c6b3c567cccbce326d"
    )
