"""Who may say what a task touches: host-scoped config values.

A config value that names something on the host inline -- a path or glob, a directory, a pid
file, a signal, a file mode, a DSN or connection option, a binary or command, an ``${env:...}``
reference -- is *host-scoped*: only ``upkeep.yaml`` and the local CLI (whose user already controls
the host and the file) may say it; the API, the UI and an operator's run override may not. They
build tasks from references to the inventory by name (``target: main``, ``destination: nightly``)
and plain values (thresholds, windows, flags).

A config model marks such a field with ``host_scoped(...)`` (``upkeep.engine.registry``); the
marker lives in the field's JSON schema (``x-host-scoped: true``, and ``x-inventory-refs:
[kinds]`` when a name from those inventory kinds may stand in its place), so the docs, ``upkeep
handlers show`` and the UI read it from there. The judgement looks at the value's shape:

- a field left unset, empty or at its default says nothing;
- a name of an entry of one of the field's inventory kinds is a reference, and so are the field's
  ``x-also-names`` (``upkeep``: upkeep's own store) and, with ``x-any-name``, any plain name (a
  backup catalog's source name); anything else -- a path, a URL, an inline mapping, a name the
  inventory does not hold -- is host-scoped;
- nested models (``rules: [...]``, ``checks: [...]``) are judged field by field; a field marked
  ``x-config-of: type`` holds the config of the handler its sibling field names (procedure steps);
- ``x-host-scoped-unless: create``: the value is a plain one when the same caller also sets the
  sibling field ``create`` (a restore into a *new* database, never over an existing one);
- an ``${env:...}`` reference anywhere is host-scoped, marked or not.

``violations`` is the one judge; ``Upkeep.check_said`` (``upkeep.app.base``) the one place that
calls it, for task creation, edits and run overrides alike.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

HOST_SCOPED = "x-host-scoped"
INVENTORY_REFS = "x-inventory-refs"
ANY_NAME = "x-any-name"
ALSO_NAMES = "x-also-names"  # names that refer to something upkeep knows without an entry ("upkeep")
UNLESS = "x-host-scoped-unless"
CONFIG_OF = "x-config-of"

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
_ENV_REF_RE = re.compile(r"\$\{env:")


@dataclass(frozen=True)
class Violation:
    field: str  # dotted path, e.g. config.rules[0].pidfile
    refs: tuple[str, ...] = ()  # inventory kinds whose names would have been accepted
    known: tuple[str, ...] = ()  # the names that would have been accepted
    env_reference: bool = False


def _extra(info: Any) -> dict[str, Any]:
    """A field's markers: its ``json_schema_extra``, or a JSON schema property as it is."""
    extra = info if isinstance(info, dict) else getattr(info, "json_schema_extra", None)
    return extra if isinstance(extra, dict) else {}


def marker(info: Any) -> dict[str, Any] | None:
    """``{"refs": [...], "also": [...], "any_name": bool, "unless": field}`` for a host-scoped field
    (a pydantic field or its JSON schema property), else None."""
    extra = _extra(info)
    if not extra.get(HOST_SCOPED):
        return None
    return {
        "refs": list(extra.get(INVENTORY_REFS) or []),
        "also": list(extra.get(ALSO_NAMES) or []),
        "any_name": bool(extra.get(ANY_NAME)),
        "unless": extra.get(UNLESS),
    }


def nested_models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field's annotation can hold (through Optional, list, dict, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        for model in nested_models(arg):
            if model not in out:
                out.append(model)
    return out


def _pick(models: list[type[BaseModel]], item: Any) -> type[BaseModel] | None:
    """The model of one nested value: the only one, or the one whose ``type`` literal matches."""
    if len(models) == 1:
        return models[0]
    if isinstance(item, Mapping) and "type" in item:
        for model in models:
            field = model.model_fields.get("type")
            if field is not None and item["type"] in typing.get_args(field.annotation):
                return model
    return None


def _items(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield f"[{index}]", item
    elif isinstance(value, Mapping) and value and all(isinstance(v, Mapping) for v in value.values()):
        for key, item in value.items():
            yield f".{key}", item
    else:
        yield "", value


def _default(info: Any) -> Any:
    try:
        return info.get_default(call_default_factory=True)
    except Exception:  # required fields have no default
        return ...


def _said_nothing(value: Any, info: Any) -> bool:
    if value is None or value == "" or value == [] or value == {}:
        return True
    default = _default(info)
    if isinstance(default, BaseModel):
        default = default.model_dump(mode="json")
    return value == default


def is_reference(value: Any, mark: dict[str, Any], inventory: Mapping[str, Mapping]) -> bool:
    """Whether ``value`` names something instead of saying it: an entry of the marker's inventory
    kinds, one of its ``also`` names, or (``any_name``) any plain name."""
    if not isinstance(value, str) or not _NAME_RE.match(value):
        return False
    if mark.get("any_name") or value in mark.get("also", ()):
        return True
    return any(value in (inventory.get(kind) or {}) for kind in mark.get("refs", ()))


def known_names(mark: dict[str, Any], inventory: Mapping[str, Mapping]) -> list[str]:
    """The names a host-scoped field accepts from this inventory (for a hint)."""
    names = {n for kind in mark.get("refs", ()) for n in inventory.get(kind) or {}}
    return sorted(names | set(mark.get("also", ())))


def env_references(value: Any, where: str) -> list[Violation]:
    """Every ``${env:...}`` reference in ``value`` (any shape), by dotted path."""
    out: list[Violation] = []
    _env_references(value, where, out)
    return out


def _env_references(value: Any, where: str, out: list[Violation]) -> None:
    if isinstance(value, str):
        if _ENV_REF_RE.search(value):
            out.append(Violation(where, env_reference=True))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _env_references(item, f"{where}.{key}", out)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _env_references(item, f"{where}[{index}]", out)


def violations(
    model: type[BaseModel],
    said: Mapping[str, Any],
    *,
    inventory: Mapping[str, Mapping[str, Any]],
    prefix: str = "config",
    config_model_of: Callable[[str], type[BaseModel] | None] | None = None,
) -> list[Violation]:
    """Every host-scoped value in ``said`` (a config, or the part of one a caller changes)."""
    out: list[Violation] = []
    _walk(model, said, inventory, prefix, config_model_of, out)
    return out


def _walk(
    model: type[BaseModel],
    data: Any,
    inventory: Mapping[str, Mapping[str, Any]],
    where: str,
    config_model_of: Callable[[str], type[BaseModel] | None] | None,
    out: list[Violation],
) -> None:
    if not isinstance(data, Mapping):
        _env_references(data, where, out)
        return
    fields = model.model_fields
    for key, value in data.items():
        path = f"{where}.{key}"
        info = fields.get(key)
        if info is None:  # validation refuses unknown keys; a free-form mapping is still searched
            _env_references(value, path, out)
            continue
        mark = marker(info)
        if mark is not None and not _said_nothing(value, info) and not (mark["unless"] and data.get(mark["unless"])):
            items = value if isinstance(value, list | tuple) else [value]
            if not all(is_reference(item, mark, inventory) for item in items):
                out.append(Violation(path, refs=tuple(mark["refs"]), known=tuple(known_names(mark, inventory))))
                continue
        sibling = _extra(info).get(CONFIG_OF)
        sub_model = config_model_of(str(data.get(sibling, ""))) if sibling and config_model_of else None
        if sub_model is not None:
            _walk(sub_model, value, inventory, path, config_model_of, out)
            continue
        models = nested_models(info.annotation)
        if not models or value is None:
            _env_references(value, path, out)
            continue
        for suffix, item in _items(value):
            picked = _pick(models, item)
            if picked is None:
                _env_references(item, path + suffix, out)
            else:
                _walk(picked, item, inventory, path + suffix, config_model_of, out)


def host_scoped_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """``(dotted field, marker)`` for every host-scoped field, nested models included
    (``rules[].pidfile``; a union names its model: ``checks[ProcessTarget].pidfile``)."""
    out: list[tuple[str, dict[str, Any]]] = []
    _collect(model, prefix, out, set())
    return out


def _collect(model: type[BaseModel], prefix: str, out: list, seen: set) -> None:
    if model in seen:
        return
    seen = seen | {model}
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        mark = marker(info)
        if mark is not None:
            out.append((path, mark))
            continue
        if _extra(info).get(CONFIG_OF):
            out.append((f"{path}.*", {"refs": [], "also": [], "config_of": _extra(info)[CONFIG_OF]}))
            continue
        models = nested_models(info.annotation)
        many = _is_sequence(info.annotation)
        for sub in models:
            label = f"{path}[{sub.__name__}]" if len(models) > 1 else (f"{path}[]" if many else path)
            _collect(sub, label + ".", out, seen)


def _is_sequence(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (list, tuple):
        return True
    return any(_is_sequence(arg) for arg in typing.get_args(annotation))


def describe(mark: dict[str, Any]) -> str:
    """Where a host-scoped field may be set: ``upkeep.yaml or the local CLI; elsewhere a
    targets.backups name``."""
    text = "upkeep.yaml or the local CLI"
    also = "".join(f" or {name!r}" for name in mark.get("also", ()))
    if mark.get("config_of"):
        return f"as the host-scoped fields of the handler its `{mark['config_of']}` names"
    if mark.get("any_name"):
        return text + "; elsewhere a name (no path or inline mapping)"
    if mark.get("refs"):
        return text + "; elsewhere a " + " or ".join(f"targets.{kind}" for kind in mark["refs"]) + " name" + also
    if mark.get("unless"):
        return text + f"; elsewhere only together with {mark['unless']}: true"
    return text + " only"


__all__ = [
    "ANY_NAME",
    "ALSO_NAMES",
    "CONFIG_OF",
    "HOST_SCOPED",
    "INVENTORY_REFS",
    "UNLESS",
    "Violation",
    "describe",
    "env_references",
    "host_scoped_fields",
    "is_reference",
    "known_names",
    "marker",
    "nested_models",
    "violations",
]
