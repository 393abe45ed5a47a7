"""Reading YAML: ``yaml.safe_load`` with the numbers of YAML 1.2.

PyYAML follows YAML 1.1, where a float needs a dot: ``learning_rate: 1e-3`` loads as the string
``'1e-3'``, which stable-baselines3 then rejects ("must be a float or a callable"); and where
``050`` is octal (40) and ``1:30`` is base 60 (90), so a value someone meant in decimal, or as
text, becomes another number without a word. Every YAML the project reads (scenario files,
``--hp KEY=VALUE``, persona files, the scenario stored in a log) goes through :func:`safe_load`
here, which reads numbers as YAML 1.2 does: ``1e-3`` and ``2E5`` are floats, ``050`` is 50,
``0o17``, ``0x1F`` and ``0b101`` are octal, hex and binary, ``1:30`` stays the string
``'1:30'``; underscores between digits are allowed (``1_000``). A quoted ``'1e-3'`` stays a
string. A key given twice in one mapping is an error (``yaml.safe_load`` keeps the last), and
so are collections nested too deeply for the parser (Python's recursion limit; a
:class:`NestedTooDeeply` error, not a ``RecursionError``) and aliases that add more than
:data:`MAX_EXPANDED_VALUES` values once expanded, or expand into a collection that contains them
(:class:`AliasesExpandTooFar`: a few lines of nested aliases can stand for billions of
values). Otherwise it is ``yaml.safe_load``: the loader is a ``yaml.SafeLoader``, so no tags
beyond the safe ones are honoured and nothing is executed.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = [
    "MAX_EXPANDED_VALUES",
    "AliasesExpandTooFar",
    "NestedTooDeeply",
    "safe_load",
    "yaml_error_parts",
]


#: The most values a document's aliases may add once expanded, beyond the document's own nodes.
#: Aliases share what they name, so nine nested aliases of nine items each read as a few lines
#: and a few objects, but every consumer that walks the values (validation, hashing, copying)
#: walks 9**9 of them.
MAX_EXPANDED_VALUES = 1_000_000


class AliasesExpandTooFar(yaml.YAMLError):
    """A document whose aliases add more than :data:`MAX_EXPANDED_VALUES` values once expanded,
    or refer to a collection that contains them."""

    problem_mark = None

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _node_children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expanded_size(root: yaml.Node | None) -> None:
    """Refuse a composed document whose aliases expand to too many values, or that contains
    itself.

    Counted over the node graph, each shared node once (linear in the document's size).
    """
    if root is None:
        return
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            total = 1 + sum(sizes[id(c)] for c in _node_children(node))
            # What aliases add: the expanded values beyond the distinct nodes read so far (all
            # of this subtree's are among them), so a large file without aliases is no problem.
            if total - len(sizes) - 1 > MAX_EXPANDED_VALUES:
                raise AliasesExpandTooFar(
                    f"aliases expand to more than {MAX_EXPANDED_VALUES:,} values beyond the "
                    "document's own (expected a document that holds its values, not a "
                    "multiplication of aliases)"
                )
            sizes[key] = total
            continue
        if key in sizes:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in _node_children(node):
            if id(child) in open_nodes:
                raise AliasesExpandTooFar(
                    "an alias refers to a collection that contains it (expected no recursion)"
                )
            if id(child) not in sizes:
                stack.append((child, False))


class _SafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` plus plain scalars like ``1e-3`` resolved as floats, a duplicate
    key in a mapping as an error (PyYAML keeps the last one silently, so a second ``candidates:``
    block would drop the first without a word), and aliases that expand without limit or into
    themselves as errors."""

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        _check_expanded_size(node)
        return node

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


_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
# YAML 1.2's numbers (core schema), with underscores between digits as YAML 1.1 and Python allow:
# no base-60 forms, no octal from a leading zero, and an exponent needs no dot.
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_INT_RE = re.compile(
    r"""^(?:[-+]?[0-9][0-9_]*
    |[-+]?0x[0-9a-fA-F][0-9a-fA-F_]*
    |[-+]?0o[0-7][0-7_]*
    |[-+]?0b[01][01_]*)$""",
    re.X,
)
_SafeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SafeLoader.add_implicit_resolver(_FLOAT, _FLOAT_RE, list("-+0123456789."))
_SafeLoader.add_implicit_resolver(_INT, _INT_RE, list("-+0123456789"))


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")
    sign = -1 if text[0] == "-" else 1
    digits = text.lstrip("+-")
    base = {"0x": 16, "0o": 8, "0b": 2}.get(digits[:2], 10)
    try:
        return sign * int(digits[2:] if base != 10 else digits, base)
    except ValueError as exc:  # e.g. more digits than Python converts (sys.int_info)
        raise yaml.constructor.ConstructorError(
            None, None, f"integer {text[:20]}... cannot be read ({exc})", node.start_mark
        ) from None


_SafeLoader.add_constructor(_INT, _construct_int)


class NestedTooDeeply(yaml.YAMLError):
    """Collections nested deeper than the parser can follow (it composes them recursively)."""

    problem = "collections nested too deeply"
    problem_mark = None


def safe_load(text: str | bytes) -> Any:
    """Parse one YAML document like ``yaml.safe_load``, with YAML 1.2's numbers.

    Raises:
        yaml.YAMLError: malformed YAML (as ``yaml.safe_load``), a duplicate key,
            :class:`NestedTooDeeply` or :class:`AliasesExpandTooFar`.
    """
    try:
        return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise NestedTooDeeply(NestedTooDeeply.problem) from None


def yaml_error_parts(exc: BaseException) -> tuple[str, str | None]:
    """Where a YAML error is and what it is: ``(" at line L, column C" or "", problem or None)``,
    for the one-line messages of every file the project reads."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return where, getattr(exc, "problem", None) or None
