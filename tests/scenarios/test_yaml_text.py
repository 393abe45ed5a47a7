"""The project's YAML reader: ``yaml.safe_load`` plus YAML 1.2's exponent floats."""

from __future__ import annotations

import pytest
import yaml

from lmrecsim.scenarios import load_scenario
from lmrecsim.scenarios.yaml_text import safe_load


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e-3", 0.001),
        ("-2E+5", -200000.0),
        ("1_000e3", 1_000_000.0),
        ("3.0e-4", 3.0e-4),
        (".5", 0.5),
        ("128", 128),
        ("0x10", 16),
        ("true", True),
        ("'1e-3'", "1e-3"),  # quoted: the user asked for a string
        ("e5", "e5"),
        ("1e", "1e"),
        ("abc1e3", "abc1e3"),
        ("[1e-3, 2, x]", [0.001, 2, "x"]),
        ("{lr: 5e-4, n: 8}", {"lr": 5e-4, "n": 8}),
    ],
)
def test_values_read_as_yaml_1_2_would(text: str, expected: object) -> None:
    value = safe_load(text)
    assert value == expected and type(value) is type(expected)


def test_plain_safe_load_is_left_as_it_was() -> None:
    # The exponent rule lives in a loader subclass, not in PyYAML's global resolvers.
    assert yaml.safe_load("1e-3") == "1e-3"


def test_unsafe_tags_are_refused() -> None:
    with pytest.raises(yaml.constructor.ConstructorError):
        safe_load("!!python/object/apply:os.system ['echo unsafe']")


def test_a_scenario_file_with_an_exponent_learning_rate(tmp_path) -> None:
    path = tmp_path / "lr.yaml"
    path.write_text(
        "name: lr\nextends: default\nagent:\n  hyperparameters:\n"
        "    dqn: {learning_rate: 1e-3, exploration_fraction: 2e-1}\n"
    )
    hp = load_scenario(path).agent.hyperparameters_for("dqn")
    assert hp["learning_rate"] == 0.001 and isinstance(hp["learning_rate"], float)
    assert hp["exploration_fraction"] == 0.2


def test_duplicate_keys_are_errors_but_merge_keys_are_not() -> None:
    import yaml

    from lmrecsim.scenarios.yaml_text import safe_load

    with pytest.raises(yaml.YAMLError) as err:
        safe_load("a: 1\nb: 2\na: 3\n")
    assert "duplicate key 'a' (first at line 1)" in str(err.value)
    # Merge keys override, nested anchors included (a check after flattening saw duplicates).
    text = "defs:\n  child: &c\n    <<: {x: 1}\n    x: 3\nother:\n  <<: *c\n  y: 2\n"
    assert safe_load(text) == yaml.safe_load(text)
