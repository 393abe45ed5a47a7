"""Reading YAML: ``yaml.safe_load`` with the exponent floats of YAML 1.2.

PyYAML follows YAML 1.1, where a float needs a dot: ``learning_rate: 1e-3`` loads as the string
``'1e-3'``, which stable-baselines3 then rejects ("must be a float or a callable"). Every YAML the
project reads (scenario files, ``--hp KEY=VALUE``, persona files, the scenario stored in a log)
goes through :func:`safe_load` here, which reads plain ``1e-3`` and ``2E5`` as floats. A quoted
``'1e-3'`` stays a string. A key given twice in one mapping is an error (``yaml.safe_load`` keeps
the last). Otherwise it is ``yaml.safe_load``: the loader is a ``yaml.SafeLoader``, so no tags
beyond the safe ones are honoured and nothing is executed.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["safe_load", "yaml_error_parts"]


class _SafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` plus plain scalars like ``1e-3`` resolved as floats, and a duplicate
    key in a mapping as an error (PyYAML keeps the last one silently, so a second ``candidates:``
    block would drop the first without a word)."""

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        # Checked as the document is read, before merge keys (`<<: *base`) are flattened into
        # their mappings (which would make merged keys look repeated).
        node = super().compose_mapping_node(anchor)
        first_line: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                key_node, yaml.ScalarNode
            ):
                continue
            key = (key_node.tag, key_node.value)
            if key in first_line:
                raise yaml.composer.ComposerError(
                    "while composing a mapping",
                    node.start_mark,
                    f"duplicate key {key_node.value!r} (first at line {first_line[key] + 1})",
                    key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line
        return node


# Digits with an exponent and no dot ("1e-3", "-2E+5", "1_000e3"); the dotted forms already
# resolve to floats, and plain integers still resolve to int (their resolver comes first).
_SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def safe_load(text: str | bytes) -> Any:
    """Parse one YAML document like ``yaml.safe_load``, reading ``1e-3`` as a float.

    Raises:
        yaml.YAMLError: malformed YAML (as ``yaml.safe_load``).
    """
    return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a SafeLoader subclass


def yaml_error_parts(exc: BaseException) -> tuple[str, str | None]:
    """Where a YAML error is and what it is: ``(" at line L, column C" or "", problem or None)``,
    for the one-line messages of every file the project reads."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return where, getattr(exc, "problem", None) or None
