"""Relative paths in a scenario file resolve against the folder of the file that wrote them."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmrecsim.scenarios import load_scenario, scenario_to_yaml


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_parents_paths_stay_the_parents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A parent's `catalog.source: items.csv` used to resolve against the child's folder.
    parent = _write(
        tmp_path / "proj" / "parent.yaml",
        "name: parent\ncatalog: {source: items.csv}\nusers: {personas: people.yaml}\n"
        "encoder: {cache_dir: cache}\n",
    )
    (tmp_path / "proj" / "models" / "tiny").mkdir(parents=True)
    child = _write(
        tmp_path / "elsewhere" / "child.yaml",
        f"extends: {parent}\nname: child\nencoder: {{model: ./models/tiny}}\n",
    )
    monkeypatch.chdir(tmp_path)  # the working folder plays no part
    sc = load_scenario(child)
    proj, elsewhere = (tmp_path / "proj").resolve(), (tmp_path / "elsewhere").resolve()
    assert sc.catalog.source == str(proj / "items.csv")
    assert sc.users.personas == str(proj / "people.yaml")
    assert sc.encoder.cache_dir == str(proj / "cache")
    assert sc.encoder.model == str(elsewhere / "models" / "tiny")  # the child wrote this one


def test_model_names_and_folders(tmp_path: Path) -> None:
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    sc = load_scenario(_write(tmp_path / "a.yaml", "name: a\nencoder: {model: models/tiny}\n"))
    assert sc.encoder.model == str((tmp_path / "models" / "tiny").resolve())
    # Not a folder next to the file: a name for the Hugging Face cache, left as written.
    sc = load_scenario(_write(tmp_path / "b.yaml", "name: b\nencoder: {model: myorg/tiny}\n"))
    assert sc.encoder.model == "myorg/tiny"
    sc = load_scenario(_write(tmp_path / "c.yaml", "name: c\nencoder: {model: default}\n"))
    assert sc.encoder.model == "default"


def test_a_resolved_scenario_written_elsewhere_finds_its_files(tmp_path: Path) -> None:
    # train writes the resolved scenario into the run folder; it must still name the same files.
    sc = load_scenario(
        _write(tmp_path / "proj" / "s.yaml", "name: s\ncatalog: {source: items.csv}\n")
    )
    copy = _write(tmp_path / "runs" / "r" / "scenario.yaml", scenario_to_yaml(sc))
    assert load_scenario(copy).catalog.source == str((tmp_path / "proj" / "items.csv").resolve())


def test_a_dict_scenario_that_extends_another_is_not_named_after_it() -> None:
    from lmrecsim.scenarios import scenario_from_dict

    assert scenario_from_dict({"extends": "default", "reward": {"name": "rating"}}).name == "custom"
    assert scenario_from_dict({"extends": "default", "name": "mine"}).name == "mine"


def test_load_scenario_takes_a_mapping_and_refuses_other_types_in_one_line() -> None:
    from lmrecsim.scenarios import ScenarioError, load_scenario

    sc = load_scenario({"extends": "default", "candidates": {"slate_size": 3}})
    assert sc.candidates.slate_size == 3 and sc.name == "custom"
    with pytest.raises(ScenarioError, match=r"scenario: int 3 \(expected a shipped scenario name"):
        load_scenario(3)  # type: ignore[arg-type]


def test_a_mapping_may_hold_numpy_numbers_and_tuples() -> None:
    import numpy as np

    from lmrecsim.scenarios import scenario_from_dict

    # Refused as "np.int64(3) is invalid (expected an integer)" and "(1000, 1001) is invalid
    # (expected a list)".
    sc = scenario_from_dict(
        {
            "extends": "default",
            "seed": np.int64(3),
            "candidates": {"k": np.int32(10)},
            "evaluation": {"seeds": (1000, 1001), "episodes": np.uint8(2)},
            "agent": {"seed": np.arange(1)[0]},
        }
    )
    assert (sc.seed, sc.candidates.k, sc.evaluation.seeds) == (3, 10, [1000, 1001])
    assert type(sc.seed) is int and type(sc.agent.seed) is int
    assert load_scenario(
        {"extends": "default", "evaluation": {"seeds": np.arange(2)}}
    ).evaluation.seeds == [0, 1]


def test_a_scenario_changed_without_validation_is_checked_when_loaded() -> None:
    from lmrecsim.scenarios import ScenarioError

    sc = load_scenario("default")
    # Pydantic validates neither model_copy(update=...) nor assignment: these reached numpy
    # ("expected non-negative integer") or the simulator ("'dict' object has no attribute").
    with pytest.raises(ScenarioError) as err:
        load_scenario(sc.model_copy(update={"seed": -4}))
    assert str(err.value).endswith(
        "default.yaml>: seed: -4 is out of range (expected a number >= 0)"
    )
    changed = load_scenario("default")
    changed.candidates.k = 1
    with pytest.raises(ScenarioError, match="candidates.k: 1 is out of range"):
        load_scenario(changed)
    # A block replaced by a mapping is read as that block, as in a file.
    assert load_scenario(sc.model_copy(update={"episode": {"horizon": 3}})).episode.horizon == 3
    # A copy with the original's file and folder, so its relative paths still resolve.
    again = load_scenario(sc)
    assert again is not sc and again.model_dump() == sc.model_dump()
    assert (again.source, again._base_dir) == (sc.source, sc._base_dir)
    # A misspelt key of model_copy(update=...) is refused, not dropped: the dump leaves it out.
    for update, key in (
        ({"epsiode": {"horizon": 3}}, "epsiode"),
        ({"episode": sc.episode.model_copy(update={"horizn": 3})}, "episode.horizn"),
    ):
        with pytest.raises(ScenarioError, match=rf">: {key}: unknown key \(expected one of: "):
            load_scenario(sc.model_copy(update=update))


def test_a_relative_extends_is_looked_for_next_to_the_file_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It fell back to the working folder: run from one folder the scenario inherited a file
    # there, run from another it was "not found".
    from lmrecsim.scenarios import ScenarioError

    _write(tmp_path / "sub" / "parent.yaml", "extends: default\nname: parent\n")
    child = _write(tmp_path / "x" / "child.yaml", "extends: sub/parent.yaml\nname: child\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScenarioError) as err:
        load_scenario(child)
    assert str(err.value).endswith(
        f"extends: sub/parent.yaml: scenario file not found (looked for "
        f"{tmp_path / 'x' / 'sub' / 'parent.yaml'})"
    )
    _write(tmp_path / "x" / "sub" / "parent.yaml", "extends: default\nname: near\n")
    assert load_scenario(child).name == "child"


def test_a_bad_extends_in_a_mapping_names_the_key() -> None:
    # {"extends": 5} said "5: unknown scenario", naming neither the mapping nor the key.
    from lmrecsim.scenarios import ScenarioError

    for value, expected in (
        (5, "<dict>: extends: 5 is invalid (expected a scenario name or path)"),
        (["default"], "<dict>: extends: ['default'] is invalid (expected a scenario name or path)"),
        ("nope", "<dict>: extends: nope: unknown scenario (expected a file path or one of: "),
    ):
        with pytest.raises(ScenarioError) as err:
            load_scenario({"extends": value})
        assert str(err.value).startswith(expected), str(err.value)


def test_a_scenario_changed_in_python_is_not_blamed_on_its_file() -> None:
    # A world error on a copy changed with model_copy named the shipped default.yaml, which is
    # fine, as if the user had to edit it.
    from lmrecsim.envs import make_env
    from lmrecsim.envs.world import WorldError

    sc = load_scenario("default")
    assert load_scenario(sc).source == sc.source  # unchanged: its file
    changed = sc.model_copy(
        update={"catalog": sc.catalog.model_copy(update={"topics": ["no_such_topic"]})}
    )
    assert load_scenario(changed).source == f"{sc.source} (changed in Python)"
    with pytest.raises(WorldError) as err:
        make_env(changed)
    assert str(err.value).startswith(f"{sc.source} (changed in Python): catalog.topics: ")


def test_extends_may_be_a_path_object(tmp_path: Path) -> None:
    # {"extends": Path(...)} was refused as "PosixPath(...) is invalid (expected ... path)".
    parent = tmp_path / "parent.yaml"
    parent.write_text("extends: default\nepisode: {horizon: 7}\n")
    assert load_scenario({"extends": parent}).episode.horizon == 7
