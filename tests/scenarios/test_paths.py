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
