"""Personas: named taste descriptions that simulated users are built from.

A persona's ``text`` is encoded by the language model to give a user's hidden taste, and only the
text does: ``liked`` and ``avoided`` name catalog topics as a description of the persona (checked
against the catalog, for analysis and tests) and do not enter the simulation; ``onboarding``
is what a new user would type at sign-up, and for some shipped personas it deliberately names
only one of the liked topics.

File format: a CSV with the columns ``name, text, liked, avoided, onboarding`` (topics
``|``-separated), or a YAML list of mappings with the same keys (topics as a list or a
``|``-separated string). ``name`` and ``text`` are required; the others default to empty.
Unknown columns or keys are errors.
"""

from __future__ import annotations

import csv
import difflib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from lmrecsim.exceptions import LmrecsimError

from ..scenarios.yaml_text import safe_load, yaml_error_parts

PERSONA_KEYS = ("name", "text", "liked", "avoided", "onboarding")
_REQUIRED = ("name", "text")
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class PersonaError(LmrecsimError):
    """A persona file or lookup is invalid. The message is one line naming file, key and row."""


@dataclass(frozen=True)
class Persona:
    """One persona.

    Attributes
    ----------
    name:
        Unique slug, e.g. ``"space_nerd"``.
    text:
        Natural-language taste description, e.g. ``"Enjoys hard science fiction and space
        documentaries; avoids romance."``.
    liked, avoided:
        Topic names (disjoint).
    onboarding:
        Short stated-interest text a new user types at sign-up; may be empty.
    """

    name: str
    text: str
    liked: tuple[str, ...] = ()
    avoided: tuple[str, ...] = ()
    onboarding: str = ""

    def __post_init__(self) -> None:
        # Accept lists from callers but store tuples so personas stay hashable.
        object.__setattr__(self, "liked", tuple(self.liked))
        object.__setattr__(self, "avoided", tuple(self.avoided))
        if not _NAME_PATTERN.match(self.name):
            raise ValueError(
                f"persona name {self.name!r} is not a slug (letters, digits, '_', '-', '.')"
            )
        if not self.text.strip():
            raise ValueError(f"persona {self.name!r} has an empty text")
        both = sorted(set(self.liked) & set(self.avoided))
        if both:
            raise ValueError(f"persona {self.name!r} both likes and avoids {both[0]!r}")


def _topics(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        parts: Iterable[Any] = value.split("|")
    elif isinstance(value, (list, tuple)):
        parts = value
    else:
        raise PersonaError(f"{where}: expected topic names as a list or a '|'-separated string")
    names: dict[str, None] = {}
    for part in parts:
        if not isinstance(part, str):
            raise PersonaError(f"{where}: topic {part!r} is not a string")
        if part.strip():
            names[part.strip()] = None
    return tuple(names)


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PersonaError(f"{where}: expected a string, got {type(value).__name__}")
    return value.strip()


def personas_from_records(records: Sequence[Mapping[str, Any]], source: str) -> list[Persona]:
    """Validate mappings with the keys of ``PERSONA_KEYS`` and build personas.

    Raises
    ------
    PersonaError
        One line naming ``source``, the row (1-based) and the key.
    """
    if not records:
        raise PersonaError(f"{source}: no personas found (expected keys {', '.join(PERSONA_KEYS)})")
    personas: list[Persona] = []
    first_row: dict[str, int] = {}
    for row, record in enumerate(records, start=1):
        if not isinstance(record, Mapping):
            raise PersonaError(
                f"{source}: row {row}: expected a mapping with keys {', '.join(PERSONA_KEYS)}"
            )
        unknown = sorted(str(k) for k in record if k not in PERSONA_KEYS)
        if unknown:
            raise PersonaError(
                f"{source}: row {row}: unknown key '{unknown[0]}' "
                f"(expected keys {', '.join(PERSONA_KEYS)})"
            )
        for key in _REQUIRED:
            if not _text(record.get(key), f"{source}: row {row}: key '{key}'"):
                raise PersonaError(f"{source}: row {row}: key '{key}' is missing or empty")
        name = _text(record["name"], f"{source}: row {row}: key 'name'")
        if name in first_row:
            raise PersonaError(
                f"{source}: row {row}: key 'name': duplicate persona {name!r} "
                f"(first seen in row {first_row[name]})"
            )
        first_row[name] = row
        try:
            personas.append(
                Persona(
                    name=name,
                    text=_text(record["text"], f"{source}: row {row}: key 'text'"),
                    liked=_topics(record.get("liked"), f"{source}: row {row}: key 'liked'"),
                    avoided=_topics(record.get("avoided"), f"{source}: row {row}: key 'avoided'"),
                    onboarding=_text(
                        record.get("onboarding"), f"{source}: row {row}: key 'onboarding'"
                    ),
                )
            )
        except ValueError as error:
            raise PersonaError(f"{source}: row {row}: {error}") from error
    return personas


def _read_csv(path: Path, source: str) -> list[dict[str, Any]]:
    try:
        # utf-8-sig: spreadsheets' "CSV UTF-8" starts with a byte-order mark, which would
        # otherwise glue itself to the first column's name.
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            repeated = [c for c in dict.fromkeys(columns) if columns.count(c) > 1]
            if repeated:  # DictReader kept the last copy without a word
                raise PersonaError(
                    f"{source}: column {repeated[0]!r} appears {columns.count(repeated[0])} "
                    "times (expected each column once)"
                )
            missing = [k for k in _REQUIRED if k not in columns]
            if missing:
                raise PersonaError(
                    f"{source}: missing column '{missing[0]}' "
                    f"(expected columns {', '.join(PERSONA_KEYS)})"
                )
            records = []
            for record in reader:
                if None in record:  # csv puts surplus fields under the key None
                    raise PersonaError(
                        f"{source}: row {len(records) + 1}: more fields than columns "
                        f"(expected columns {', '.join(PERSONA_KEYS)})"
                    )
                records.append(record)
            return records
    except (UnicodeDecodeError, csv.Error) as error:
        raise PersonaError(
            f"{source}: cannot read CSV ({type(error).__name__}: {error})"
        ) from error


def _read_yaml(path: Path, source: str) -> list[Any]:
    try:
        data = safe_load(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        where, problem = yaml_error_parts(error)
        if not problem:
            text = str(error).strip()
            problem = f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"
        raise PersonaError(f"{source}: cannot read YAML{where} ({problem})") from None
    if isinstance(data, Mapping) and isinstance(data.get("personas"), list):
        data = data["personas"]  # also accept a top-level "personas:" key
    if not isinstance(data, list):
        raise PersonaError(
            f"{source}: expected a YAML list of mappings with keys {', '.join(PERSONA_KEYS)}"
        )
    return data


def load_personas(path: str | os.PathLike[str]) -> list[Persona]:
    """Load personas from a ``.csv`` or ``.yaml``/``.yml`` file.

    Raises
    ------
    PersonaError
        One line naming the file, the row and the key.
    """
    file = Path(path)
    source = str(file)
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".yaml", ".yml"):
        raise PersonaError(f"{source}: unsupported file type {suffix!r} (expected .csv or .yaml)")
    if not file.is_file():
        raise PersonaError(f"{source}: file not found (expected a .csv or .yaml persona file)")
    records = _read_csv(file, source) if suffix == ".csv" else _read_yaml(file, source)
    return personas_from_records(records, source)


def load_default_personas() -> list[Persona]:
    """The shipped personas (generated by :mod:`lmrecsim.envs.catalog_build`)."""
    resource = resources.files("lmrecsim.envs").joinpath("data").joinpath("personas.csv")
    with resources.as_file(resource) as file:
        records = _read_csv(Path(file), "default personas")
    return personas_from_records(records, "default personas")


def persona_by_name(personas: Sequence[Persona], name: str) -> Persona:
    """The persona called ``name``.

    Raises
    ------
    PersonaError
        If no persona has that name; the message suggests close or a few valid names.
    """
    for persona in personas:
        if persona.name == name:
            return persona
    names = [p.name for p in personas]
    close = difflib.get_close_matches(name, names, n=3)
    if not names:
        hint = "no personas are loaded"
    elif close:
        hint = f"did you mean {', '.join(repr(c) for c in close)}?"
    else:
        shown = ", ".join(repr(n) for n in names[:5])
        hint = f"valid names include {shown} ({len(names)} in total)"
    raise PersonaError(f"persona: unknown name {name!r}; {hint}")
