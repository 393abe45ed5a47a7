"""`lmrecsim scenarios list|show|validate` and the generated reference page."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lmrecsim.cli import main
from lmrecsim.scenarios import (
    Scenario,
    docgen,
    load_scenario,
    scenario_from_dict,
    scenario_hash,
    shipped_scenario_names,
)


def test_list_prints_every_shipped_scenario_with_its_description(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["scenarios", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines]
    assert names == shipped_scenario_names()
    assert {"default", "cold_start", "interest_drift", "long_tail", "clickbait"} <= set(names)
    for line in lines:
        name, description = line.split(maxsplit=1)
        assert description == " ".join(load_scenario(name).description.split())


def test_show_prints_resolved_yaml_that_loads_back_identically(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["scenarios", "show", "cold_start"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert "extends" not in data
    # Values from the child and defaults from the parent are both present.
    assert data["users"]["new_user_fraction"] == 0.5
    assert data["episode"]["horizon"] == load_scenario("default").episode.horizon
    assert scenario_hash(scenario_from_dict(data)) == scenario_hash(load_scenario("cold_start"))


def test_show_unknown_name_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios", "show", "no_such_thing"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown scenario" in err


def test_validate_valid_files_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    child = tmp_path / "child.yaml"
    child.write_text("extends: long_tail\nepisode:\n  horizon: 7\n", encoding="utf-8")
    grandchild = tmp_path / "grandchild.yaml"
    grandchild.write_text("extends: child.yaml\nname: gc\n", encoding="utf-8")
    assert main(["scenarios", "validate", str(child), str(grandchild), "default"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and len(out.splitlines()) == 3
    gc = load_scenario(grandchild)
    assert gc.name == "gc" and gc.episode.horizon == 7
    assert (
        gc.catalog.popularity.zipf_exponent
        == load_scenario("long_tail").catalog.popularity.zipf_exponent
    )


def test_reference_page_is_up_to_date() -> None:
    assert docgen.main(["--check"]) == 0, "run: python -m lmrecsim.scenarios.docgen"


def test_reference_page_names_types_in_words() -> None:
    # An Annotated item type used to be printed as Python's repr (typing.Annotated[...]).
    from pathlib import Path

    page = (Path(docgen.__file__).resolve().parents[1] / "docs" / "scenarios.md").read_text()
    for leak in ("typing.", "FieldInfo", "<class", "Annotated"):
        assert leak not in page, leak
    assert "| `seeds` | list of integers (>= 0, <= 9223372036854775807) (at least 1 item) |" in page


def test_check_fails_on_a_stale_page_and_generation_keeps_the_intro(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "scenarios.md"
    page.write_text(
        f"# Mine\n\nHand-written words.\n\n{docgen.MARKER}\n\nold table\n", encoding="utf-8"
    )
    assert docgen.main(["--check", "--path", str(page)]) == 1
    assert "stale" in capsys.readouterr().err
    assert docgen.main(["--path", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Mine\n\nHand-written words.\n")
    assert "old table" not in text
    assert docgen.main(["--check", "--path", str(page)]) == 0


def _models(model: type, path: str = "") -> list[tuple[str, type]]:
    out = [(path, model)]
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and hasattr(field.annotation, "model_fields"):
            out += _models(field.annotation, f"{path}.{name}" if path else name)
    return out


def test_every_key_is_documented_with_type_default_and_meaning() -> None:
    text = docgen.render(None)
    for path, model in _models(Scenario):
        if path:
            assert f"`{path}`" in text
        for name, field in model.model_fields.items():
            nested = isinstance(field.annotation, type) and hasattr(
                field.annotation, "model_fields"
            )
            # A block is documented by its class docstring (its section intro), a key by its Field.
            meaning = field.annotation.__doc__ if nested else field.description
            assert meaning, f"{path}.{name} has no description"
            rows = [line for line in text.splitlines() if line.startswith(f"| `{name}` |")]
            assert rows, f"{path}.{name} missing from the page"
    assert "| `horizon` | integer (>= 1, <= 100000) | `50` |" in text
    assert '| `kind` | one of `none`, `gradual`, `abrupt`, `periodic` | `"none"` |' in text


def test_validate_build_catches_what_only_the_world_knows(tmp_path, capsys):
    from lmrecsim.cli import main

    good = tmp_path / "good.yaml"
    good.write_text("name: good\nextends: default\n")
    bad = tmp_path / "bad_topic.yaml"
    bad.write_text("name: bad\nextends: default\ncatalog:\n  topics: [underwater_basket_weaving]\n")
    # Schema-valid, so plain validation passes; building the world finds the unknown topic.
    assert main(["scenarios", "validate", str(good), str(bad)]) == 0
    capsys.readouterr()
    assert main(["scenarios", "validate", "--build", str(good), str(bad)]) == 2
    captured = capsys.readouterr()
    err_lines = captured.err.strip().splitlines()
    assert len(err_lines) == 1
    assert "catalog.topics" in err_lines[0] and "underwater_basket_weaving" in err_lines[0]
    assert "good.yaml: ok" in captured.out
    # Shipped files pass, the sections for the algorithm they do not train included.
    assert main(["scenarios", "validate", "--build", "interest_drift"]) == 0


def test_a_reader_that_goes_away_ends_the_command_quietly(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lmrecsim scenarios list | head -1`: the pipe closes; SIGPIPE's status, no error line."""

    class ClosedPipe:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("sys.stdout", ClosedPipe())
    assert main(["scenarios", "list"]) == 141
    assert capsys.readouterr().err == ""
