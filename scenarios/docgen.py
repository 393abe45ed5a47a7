"""Generate ``docs/scenarios.md``, the reference of every scenario key, from the schema.

Run ``python -m lmrecsim.scenarios.docgen`` to rewrite the page, ``--check`` to fail (exit 1) when
it is stale. Everything above the marker line in the existing page is a hand-written introduction
and is kept as it is; everything below is generated from the ``Field(description=...)`` of each key.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .schema import Scenario

MARKER = "<!-- Generated below from scenarios/schema.py by `python -m lmrecsim.scenarios.docgen`; edit only above this line. -->"
DEFAULT_DOC = Path(__file__).resolve().parent.parent / "docs" / "scenarios.md"
_DEFAULT_INTRO = "# Scenario files\n"

_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def type_name(tp: Any) -> str:
    """A reader's name for an annotation: ``int | None`` -> ``integer or null``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        # Annotated[int, Field(ge=0)]: the type, then its bounds ("integer >= 0").
        bounds = [
            f"{op} {getattr(meta, attr)}"
            for info in args[1:]
            for meta in getattr(info, "metadata", ())
            for attr, op in _BOUNDS.items()
            if getattr(meta, attr, None) is not None
        ]
        name = type_name(args[0])
        return f"{name} ({', '.join(bounds)})" if bounds else name
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin is list:
        inner = type_name(args[0]) if args else "values"
        if typing.get_origin(args[0]) is Literal:
            return f"list, each {inner}"
        word, _, rest = inner.partition(" ")
        if word in {"string", "integer", "number"}:
            return f"list of {word}s" + (f" {rest}" if rest else "")
        return f"list of {inner}"
    if origin is dict:
        return "mapping"
    if tp is type(None):
        return "null"
    if _is_model(tp):
        return "mapping"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(tp, str(tp))


def _constraints(field: FieldInfo) -> str:
    parts = []
    for meta in field.metadata:
        for attr, op in _BOUNDS.items():
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{op} {value}")
        min_len = getattr(meta, "min_length", None)
        if min_len:
            parts.append(f"at least {min_len} {'character' if field.annotation is str else 'item'}")
        pattern = getattr(meta, "pattern", None)
        if pattern:
            parts.append(f"matches `{pattern}`")
    return ", ".join(parts)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    else:
        value = field.default
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        return "(block)"
    return f"`{json.dumps(value)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _rules(model: type[BaseModel]) -> list[str]:
    """Cross-key rules, from the docstrings of the model's validators."""
    decorators = model.__pydantic_decorators__
    out = []
    for group in (decorators.field_validators, decorators.model_validators):
        for dec in group.values():
            doc = getattr(dec.func, "__doc__", None)
            if doc:
                out.append(" ".join(doc.split()))
    return out


def _section(model: type[BaseModel], path: str, level: int, out: list[str]) -> None:
    heading = f"`{path}`" if path else "Top level"
    out.append(f"{'#' * level} {heading}")
    out.append("")
    doc = " ".join((model.__doc__ or "").split())
    if doc:
        out.append(doc)
        out.append("")
    out.append("| Key | Type | Default | Meaning |")
    out.append("| --- | --- | --- | --- |")
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        key = f"{path}.{name}" if path else name
        tp = field.annotation
        if _is_model(tp):
            nested.append((key, tp))
            out.append(f"| `{name}` | mapping | | see [`{key}`](#{key.replace('.', '')}) |")
            continue
        kind = type_name(tp)
        limits = _constraints(field)
        if limits:
            kind += f" ({limits})"
        out.append(
            f"| `{name}` | {_cell(kind)} | {_cell(_default(field))} | {_cell(field.description or '')} |"
        )
    rules = _rules(model)
    if rules:
        out.append("")
        out.extend(f"- Rule: {rule}" for rule in rules)
    out.append("")
    for key, sub in nested:
        _section(sub, key, min(level + 1, 4), out)


def generated_reference() -> str:
    """The generated part of the page (below the marker)."""
    out: list[str] = [
        "## Reference",
        "",
        "Every key of a scenario file, block by block. Keys left out take their default; unknown "
        "keys are errors. Numbers may be written as integers where a number is expected, but not "
        "as strings or booleans.",
        "",
    ]
    _section(Scenario, "", 3, out)
    return "\n".join(out).rstrip() + "\n"


def render(existing: str | None) -> str:
    """The whole page: the hand-written part of ``existing`` (if any), the marker, the reference."""
    intro = _DEFAULT_INTRO
    if existing and MARKER in existing:
        intro = existing.split(MARKER, 1)[0]
    return intro.rstrip() + "\n\n" + MARKER + "\n\n" + generated_reference()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lmrecsim.scenarios.docgen", description="Generate docs/scenarios.md."
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    parser.add_argument("--path", type=Path, default=DEFAULT_DOC, help="the page to write or check")
    args = parser.parse_args(argv)
    existing = args.path.read_text(encoding="utf-8") if args.path.exists() else None
    page = render(existing)
    if args.check:
        if existing != page:
            print(f"{args.path}: stale (run: python -m lmrecsim.scenarios.docgen)", file=sys.stderr)
            return 1
        return 0
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(page, encoding="utf-8")
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
