"""Finding, reading, merging (``extends``) and validating scenario files."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from lmrecsim.exceptions import LmrecsimError

from .schema import Scenario, has_algorithm_sections
from .yaml_text import safe_load, yaml_error_parts

SHIPPED_DIR = Path(__file__).resolve().parent
_MAX_EXTENDS_DEPTH = 16


#: What names a scenario: a shipped name, a YAML path, a ``Scenario`` or a mapping of its keys
#: (everything :func:`load_scenario` takes).
ScenarioRef = str | os.PathLike[str] | Scenario | Mapping[str, Any]


class ScenarioError(LmrecsimError):
    """A scenario that cannot be found, read or validated. The message is one line."""


def shipped_scenario_names() -> list[str]:
    """Names of the scenarios shipped with the package, sorted."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml"))


def _locate(ref: str, base_dir: Path | None) -> Path:
    """Turn a scenario reference (a shipped name or a path) into a file path."""
    if not ref.strip():  # an empty name (an unset shell variable): no file to look for
        raise _unknown_scenario(ref)
    looks_like_path = ref.endswith((".yaml", ".yml")) or "/" in ref or os.sep in ref
    if looks_like_path:
        p = Path(os.path.expanduser(ref))
        if not p.is_absolute() and base_dir is not None:
            # Next to the file that names it, only: a file of that name in the folder a command
            # runs from would make the scenario depend on where it is run.
            p = base_dir / p
        if not p.exists():
            where = "" if base_dir is None or Path(ref).is_absolute() else f" (looked for {p})"
            raise ScenarioError(f"{ref}: scenario file not found{where}")
        if not p.is_file():
            raise ScenarioError(f"{ref}: not a file (expected a scenario YAML file)")
        return p.resolve()
    if base_dir is not None:
        sibling = base_dir / f"{ref}.yaml"
        if sibling.is_file():
            return sibling.resolve()
    shipped = SHIPPED_DIR / f"{ref}.yaml"
    if shipped.is_file():
        return shipped
    raise _unknown_scenario(ref)


def _unknown_scenario(ref: str) -> ScenarioError:
    """The one-line error for a name that is neither a file nor a shipped scenario; a blank name
    is shown in quotes, or the line would name nothing."""
    names = ", ".join(shipped_scenario_names())
    shown = repr(ref) if not ref.strip() else ref
    return ScenarioError(f"{shown}: unknown scenario (expected a file path or one of: {names})")


def _yaml_problem(exc: yaml.YAMLError, text: str) -> tuple[str, str | None]:
    """:func:`yaml_error_parts`, plus where and what for a character YAML does not allow (a
    NUL, a control character), whose error has neither."""
    if isinstance(exc, yaml.reader.ReaderError) and isinstance(exc.character, int):
        before = text[: exc.position]
        line = before.count("\n") + 1
        column = exc.position - before.rfind("\n")
        where = f" at line {line}, column {column}"
        return where, f"character #x{exc.character:04x} ({exc.reason})"
    return yaml_error_parts(exc)


def _read_mapping(path: Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping, with one-line errors."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"{_display(path)}: cannot read file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(f"{_display(path)}: not UTF-8 text (expected a YAML mapping)") from None
    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        where, problem = _yaml_problem(exc, text)
        raise ScenarioError(
            f"{_display(path)}: invalid YAML{where}: {problem or 'malformed YAML'}"
        ) from None
    if data is None:
        raise ScenarioError(
            f"{_display(path)}: file is empty (expected a YAML mapping of scenario keys)"
        )
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{_display(path)}: top level is a {type(data).__name__} (expected a mapping of scenario keys)"
        )
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ScenarioError(
            f"{_display(path)}: key {bad[0]!r} is not a string (expected named keys)"
        )
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into ``base``: mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _hyperparameters(data: dict[str, Any]) -> Any:
    agent = data.get("agent")
    return agent.get("hyperparameters") if isinstance(agent, dict) else None


def merge_extends(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """A child scenario's mapping over its parent's (``extends``): :func:`deep_merge`, except that
    ``agent.hyperparameters`` written in the other form than the parent's (plain keys against
    per-algorithm sections) replaces the parent's instead of mixing two forms into an invalid one."""
    out = deep_merge(parent, child)
    mine, theirs = _hyperparameters(child), _hyperparameters(parent)
    if (
        isinstance(mine, dict)
        and isinstance(theirs, dict)
        and mine
        and theirs
        and has_algorithm_sections(mine) != has_algorithm_sections(theirs)
    ):
        out["agent"]["hyperparameters"] = mine
    return out


def _key_path(loc: tuple[Any, ...]) -> str:
    """``("evaluation", "metrics", 1)`` -> ``evaluation.metrics[1]``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<top>"


def _display(path: Path | str) -> str:
    """A path as the user would write it: relative to the working folder when inside it."""
    if not isinstance(path, Path):
        return path
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# What was expected, by pydantic error type, for values of the wrong type.
_EXPECTED_TYPE = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "finite_number": "a finite number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping of keys",
    "model_type": "a mapping of keys",
    "model_attributes_type": "a mapping of keys",
}


def _format_error(path: Path | str, err: dict[str, Any], n_errors: int) -> str:
    loc = _key_path(err["loc"])
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        message = f"{loc}: unknown key"
        parent_fields = _fields_at(err["loc"][:-1])
        if parent_fields:
            message += f" (expected one of: {', '.join(parent_fields)})"
    elif kind == "literal_error":
        expected = ctx.get("expected", "").replace("'", "").replace(" or ", ", ")
        message = f"{loc}: {_short(value)} is not one of {expected}"
    elif kind == "missing":
        message = f"{loc}: required key is missing"
    elif kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        op = {
            "greater_than": "> ",
            "greater_than_equal": ">= ",
            "less_than": "< ",
            "less_than_equal": "<= ",
        }[kind]
        bound = next(iter(ctx.values())) if ctx else "?"
        message = f"{loc}: {_short(value)} is out of range (expected a number {op}{bound})"
    elif kind in _EXPECTED_TYPE:
        message = f"{loc}: {_short(value)} is invalid (expected {_EXPECTED_TYPE[kind]})"
    elif kind == "string_pattern_mismatch":
        message = (
            f"{loc}: {_short(value)} is invalid (expected a string matching {ctx.get('pattern')})"
        )
    elif kind in {"too_short", "string_too_short"}:
        n = ctx.get("min_length", 1)
        what = "character" if kind == "string_too_short" else "item"
        message = (
            f"{loc}: {_short(value)} is too short (expected at least {n} {what}{'s' * (n != 1)})"
        )
    else:
        msg = err.get("msg", "invalid value")
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        msg = msg[:1].lower() + msg[1:]
        if isinstance(value, dict):
            # A rule across keys of a block: the block's whole mapping would only be noise. A rule
            # across blocks (no location) names its keys itself.
            message = f"{loc}: {msg}" if err["loc"] else msg
        else:
            message = f"{loc}: {_short(value)} is invalid ({msg})"
    if n_errors > 1:
        message += f" [+{n_errors - 1} more error{'s' if n_errors > 2 else ''}]"
    return f"{_display(path)}: {message}"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Field names allowed at a location of the schema (for 'unknown key' hints)."""
    model: Any = Scenario
    for part in loc:
        if isinstance(part, int):
            return []
        field = model.model_fields.get(part)
        if field is None:
            return []
        ann = field.annotation
        if isinstance(ann, type) and hasattr(ann, "model_fields"):
            model = ann
        else:
            return []
    return [name for name in model.model_fields]


def _resolve_raw(path: Path, stack: tuple[Path, ...]) -> dict[str, Any]:
    """Read ``path`` and everything it extends into one merged mapping."""
    if path in stack:
        chain = " -> ".join(p.name for p in (*stack, path))
        raise ScenarioError(f"{_display(stack[-1])}: extends: cycle ({chain})")
    if len(stack) >= _MAX_EXTENDS_DEPTH:
        raise ScenarioError(
            f"{_display(path)}: extends: chain deeper than {_MAX_EXTENDS_DEPTH} files"
        )
    data = _read_mapping(path)
    _rebase_paths(data, path.parent)
    parent_ref = data.pop("extends", None)
    data.setdefault("name", path.stem)
    if parent_ref is None:
        return data
    if not isinstance(parent_ref, str) or not parent_ref.strip():
        raise ScenarioError(
            f"{_display(path)}: extends: {_short(parent_ref)} is invalid "
            "(expected a scenario name or path)"
        )
    try:
        parent_path = _locate(parent_ref, path.parent)
    except ScenarioError as exc:
        raise ScenarioError(f"{_display(path)}: extends: {exc}") from None
    try:
        parent = _resolve_raw(parent_path, (*stack, path))
        # A parent must itself be a valid scenario, so its errors name the parent's file.
        _validate(parent, parent_path)
    except ScenarioError as exc:
        message = str(exc)
        if not stack and not message.startswith(f"{_display(path)}:"):
            # Say which file was asked for when the fault lies in one of its ancestors.
            message += f" (in the extends chain of {_display(path)})"
        raise ScenarioError(message) from None
    return merge_extends(parent, data)


def _rebase_paths(data: dict[str, Any], folder: Path) -> None:
    """Make the relative paths a file writes absolute, against that file's folder, in place.

    A file's paths belong to that file: a parent's ``catalog.source: items.csv`` is the one next
    to the parent, whichever file extends it, and a resolved scenario written elsewhere (a run
    folder's ``scenario.yaml``) still finds it. ``encoder.model`` may also name a model in the
    Hugging Face cache: a plain relative name is a path only when that folder exists next to the
    file (``./`` or ``../`` always make it a path).
    """

    def block(name: str) -> dict[str, Any] | None:
        value = data.get(name)
        return value if isinstance(value, dict) else None

    def absolute(value: str) -> str:
        return str((folder / os.path.expanduser(value)).resolve())

    def relative(value: Any) -> bool:
        return (
            isinstance(value, str)
            and bool(value.strip())
            and value != "default"
            and not (os.path.isabs(os.path.expanduser(value)))
        )

    catalog, users, encoder = block("catalog"), block("users"), block("encoder")
    if catalog is not None and relative(catalog.get("source")):
        catalog["source"] = absolute(catalog["source"])
    personas = users.get("personas") if users is not None else None
    if relative(personas) and (
        personas.lower().endswith((".csv", ".yaml", ".yml"))
        or "/" in personas
        or (folder / personas).exists()
    ):
        # (A bare word that names no file is left as written: its error says so by name.)
        users["personas"] = absolute(personas)
    if encoder is not None:
        if relative(encoder.get("cache_dir")):
            encoder["cache_dir"] = absolute(encoder["cache_dir"])
        model = encoder.get("model")
        if relative(model) and (model.startswith(("./", "../", "~")) or (folder / model).is_dir()):
            encoder["model"] = absolute(model)


def _plain(value: Any) -> Any:
    """``value`` as YAML would give it: numpy scalars and arrays made Python's, tuples lists,
    through dicts and lists.

    A mapping built in Python often holds them (``seed=np.int64(3)``, ``seeds=np.arange(3)``,
    ``seeds=(1000, 1001)``); the strict schema refused a numpy integer as "invalid (expected an
    integer)" and a tuple as "invalid (expected a list)".
    """
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()  # np.int64(3) -> 3, np.arange(3) -> [0, 1, 2]
    return value


def _revalidated(scenario: Scenario) -> Scenario:
    """A validated copy of a ``Scenario`` object, with its file and folder.

    Pydantic validates neither ``model_copy(update=...)`` nor assignment (``sc.seed = -1``), so
    a scenario changed that way is checked here, with the loader's one-line errors. The copy also
    keeps a world built from it (worlds are shared within a process) from changing when the
    caller's object is changed in place afterwards.
    """
    with warnings.catch_warnings():
        # A block replaced by a plain mapping (update={"episode": {"horizon": 3}}) is dumped as
        # that mapping, with a serializer warning; validation then reads it as the block.
        warnings.simplefilter("ignore", UserWarning)
        data = scenario.model_dump()
    _put_back_unknown_keys(scenario, data)
    # Errors name the object, not the file it came from: the file is valid, the change is not.
    where = scenario.source if scenario.source == "<dict>" else f"<Scenario from {scenario.source}>"
    out = _validate(_plain(data), where)
    out._base_dir = scenario._base_dir
    out._source = scenario._source
    if scenario._source is not None and _file_hash(scenario._source) not in (
        None,
        _world_hash(out),
    ):
        # The world's blocks changed since it was read: a later error (a catalog's, a world's)
        # names the file and says so, instead of sending the user to a file that is fine. The
        # agent and evaluation blocks are left out: training and the benchmarks override them
        # (and name the overrides in their own errors).
        out._source = f"{scenario._source} (changed in Python)"
    return out


def _world_hash(scenario: Scenario) -> str:
    """A content hash of the scenario without its ``agent`` and ``evaluation`` blocks, its name
    and its description: of what builds its world."""
    data = scenario_to_dict(scenario)
    for key in ("agent", "evaluation", "name", "description"):
        data.pop(key, None)
    return _content_hash(data)


def _file_hash(source: str) -> str | None:
    """:func:`_world_hash` of the scenario file ``source`` as it is on disk now, or None when
    ``source`` is no readable, valid scenario file (a changed copy's own label, say)."""
    path = Path(source)
    try:
        stat = path.stat()
    except OSError:
        return None
    return _file_hash_at(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _file_hash_at(path: str, mtime_ns: int, size: int) -> str | None:
    try:
        return _world_hash(load_scenario(path))
    except (ScenarioError, OSError):
        return None


def _put_back_unknown_keys(model: Any, data: dict[str, Any]) -> None:
    """Put into ``data`` (``model``'s dump) the keys ``model_copy(update=...)`` set on ``model``
    or its blocks that are not fields (``update={"epsiode": ...}``): the dump leaves them out, so
    a misspelt key would be dropped without a word instead of refused as an unknown key."""
    fields = type(model).model_fields
    for key, value in vars(model).items():
        if key not in fields:
            data[key] = value
        elif isinstance(value, BaseModel) and isinstance(data.get(key), dict):
            _put_back_unknown_keys(value, data[key])
        elif isinstance(value, (list, tuple)) and isinstance(data.get(key), list):
            for item, dumped in zip(value, data[key], strict=False):
                if isinstance(item, BaseModel) and isinstance(dumped, dict):
                    _put_back_unknown_keys(item, dumped)


def _validate(data: dict[str, Any], path: Path | str) -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        raise ScenarioError(_format_error(path, errors[0], len(errors))) from None


def load_scenario(ref: ScenarioRef) -> Scenario:
    """Load a scenario by shipped name (``"cold_start"``) or by path, resolving ``extends``.

    Args:
        ref: a shipped scenario name, a path to a YAML file, an already-built ``Scenario``, or a
            mapping of scenario keys (as :func:`scenario_from_dict`: ``{"extends": "default",
            "candidates": {"slate_size": 3}}``).

    Returns:
        The validated scenario; relative paths inside it resolve against the file's folder. A
        ``Scenario`` is validated again and copied (pydantic checks neither
        ``model_copy(update=...)`` nor ``scenario.seed = ...``).

    Raises:
        ScenarioError: one line naming the file, the key path, the value and what was expected.
    """
    if isinstance(ref, Scenario):
        return _revalidated(ref)
    if isinstance(ref, Mapping):
        return scenario_from_dict(dict(ref))
    if not isinstance(ref, (str, os.PathLike)):
        raise ScenarioError(
            f"scenario: {type(ref).__name__} {_short(ref)} (expected a shipped scenario name, a "
            "path to a YAML file, a mapping of scenario keys or a Scenario)"
        )
    path = _locate(os.fspath(ref), None)
    data = _resolve_raw(path, ())
    scenario = _validate(data, path)
    scenario._base_dir = str(path.parent)
    scenario._source = str(path)
    return scenario


def scenario_from_dict(
    data: dict[str, Any], *, base_dir: str | None = None, source: str = "<dict>"
) -> Scenario:
    """Build a scenario from a mapping (``extends`` resolved against ``base_dir`` or shipped names).

    ``source`` names the mapping in error messages (a dict has no file name).
    """
    if not isinstance(data, Mapping):  # dict(["x"]) says "dictionary update sequence element"
        raise ScenarioError(
            f"{source}: a {type(data).__name__} (expected a mapping of scenario keys)"
        )
    data = _plain(dict(data))
    # Named "custom" unless named: a dict that extends "default" is not the default scenario.
    data.setdefault("name", "custom")
    parent_ref = data.pop("extends", None)
    if isinstance(parent_ref, os.PathLike):  # a pathlib.Path is a path
        parent_ref = os.fspath(parent_ref)
    if parent_ref is not None:
        if not isinstance(parent_ref, str) or not parent_ref.strip():
            raise ScenarioError(
                f"{source}: extends: {_short(parent_ref)} is invalid (expected a scenario name "
                "or path)"
            )
        try:
            parent_path = _locate(parent_ref, Path(base_dir) if base_dir else None)
        except ScenarioError as exc:
            raise ScenarioError(f"{source}: extends: {exc}") from None
        data = merge_extends(_resolve_raw(parent_path, ()), data)
    scenario = _validate(data, source)
    scenario._base_dir = base_dir
    return scenario


def scenario_to_dict(scenario: Scenario) -> dict[str, Any]:
    """The resolved scenario as plain data (no ``extends``)."""
    data = scenario.model_dump(mode="json")
    data.pop("extends", None)
    return data


def scenario_to_yaml(scenario: Scenario) -> str:
    """The resolved scenario as YAML text, loadable again with :func:`load_scenario`."""
    return yaml.safe_dump(scenario_to_dict(scenario), sort_keys=False, allow_unicode=True)


# Keys added after scenarios were first hashed (into step logs and world caches), with the value
# that reproduces the behaviour from before the key existed. At that value a key is left out of
# the hash, so a log written before the key existed still matches its stored scenario (which
# loads with the key at its default) and can be replayed.
LATER_KEYS: dict[tuple[str, ...], Any] = {
    ("candidates", "slate_size"): 1,
    ("response", "position_bias"): 0.0,
    ("agent", "validation"): {"every": 0, "seed": 3000, "users": 400},
}


def scenario_hash(scenario: Scenario) -> str:
    """A content hash of the resolved scenario (sha256 hex of its canonical JSON).

    Keys of :data:`LATER_KEYS` at their earlier behaviour's value are left out, so the hash of
    a scenario that does not use a newer key is the one it had before that key existed.
    """
    data = scenario_to_dict(scenario)
    for path, value in LATER_KEYS.items():
        parent = data
        for key in path[:-1]:
            parent = parent.get(key, {})
        if parent.get(path[-1], value) == value:
            parent.pop(path[-1], None)
    return _content_hash(data)


def _content_hash(data: dict[str, Any]) -> str:
    """sha256 hex of ``data``'s canonical JSON (sorted keys, no spaces)."""
    payload = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def list_scenarios() -> list[tuple[str, str]]:
    """(name, one-line description) of every shipped scenario."""
    out = []
    for name in shipped_scenario_names():
        try:
            sc = load_scenario(name)
            desc = " ".join(sc.description.split())
        except ScenarioError as exc:
            desc = f"INVALID: {exc}"
        out.append((name, desc))
    return out
