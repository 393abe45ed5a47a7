"""The project's YAML reader: ``yaml.safe_load`` with YAML 1.2's numbers."""

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
        # YAML 1.1 read these as octal and base 60: 050 was 40, 1:30 was 90.
        ("050", 50),
        ("-007", -7),
        ("0o17", 15),
        ("0b101", 5),
        ("1_000", 1000),
        ("1:30", "1:30"),
        ("190:20:30.15", "190:20:30.15"),
        ("-.inf", float("-inf")),
        ("3.", 3.0),
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


def test_a_scenario_value_with_a_leading_zero_is_decimal(tmp_path) -> None:
    path = tmp_path / "zero.yaml"
    path.write_text("name: zero\nextends: default\nepisode: {horizon: 050}\n")
    assert load_scenario(path).episode.horizon == 50


def test_a_base_60_value_is_text_that_the_schema_refuses(tmp_path) -> None:
    from lmrecsim.scenarios import ScenarioError

    path = tmp_path / "clock.yaml"
    path.write_text("name: clock\nextends: default\nepisode: {horizon: 1:30}\n")
    with pytest.raises(ScenarioError, match="episode.horizon"):
        load_scenario(path)


@pytest.mark.parametrize(
    "text", ["[" * 5000 + "]" * 5000, "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 3000))]
)
def test_collections_nested_too_deeply_are_a_yaml_error(text: str) -> None:
    from lmrecsim.scenarios.yaml_text import NestedTooDeeply

    with pytest.raises(NestedTooDeeply, match="collections nested too deeply"):
        safe_load(text)


def test_an_integer_too_long_to_convert_is_a_yaml_error() -> None:
    with pytest.raises(yaml.YAMLError, match="cannot be read"):
        safe_load("x: " + "1" * 5000)


def test_aliases_load_until_they_expand_past_the_limit() -> None:
    from lmrecsim.scenarios.yaml_text import MAX_EXPANDED_VALUES, AliasesExpandTooFar

    # A list of 999 items (1,000 nodes with the list) named by an alias n times adds 1,000 * n
    # values once expanded: 1,000 aliases add exactly the limit, one more is over it.
    items = ", ".join(["1"] * 999)

    def doc(n_aliases: int) -> str:
        return "a: &x [" + items + "]\n" + "".join(f"k{i}: *x\n" for i in range(n_aliases))

    under = MAX_EXPANDED_VALUES // 1000
    loaded = safe_load(doc(under))
    assert len(loaded) == under + 1 and loaded[f"k{under - 1}"] == [1] * 999
    with pytest.raises(AliasesExpandTooFar, match="aliases expand to more than 1,000,000 values"):
        safe_load(doc(under + 1))
    with pytest.raises(AliasesExpandTooFar, match="refers to a collection that contains it"):
        safe_load("a: &x [1, *x]\n")
    # A large document without aliases holds its own values: no limit but its size.
    big = safe_load("rows:\n" + "".join(f"  - [{i}, {i}, {i}]\n" for i in range(300_000)))
    assert len(big["rows"]) == 300_000
