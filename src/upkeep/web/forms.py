"""Form fields generated from a handler's config JSON schema.

Each property becomes one input: ``string`` a text input (password for secret-looking names),
``integer``/``number`` a number input, ``boolean`` a checkbox, ``enum`` a select, a list of
strings a textarea of one item per line, a list of enum values checkboxes, and anything else
(lists of objects, unions) a JSON textarea.

Durations are typed: a number of seconds, minutes, hours, days or milliseconds (a name ending in
``seconds``, ``_minutes``, ``_hours``, ``_days``, ``_ms``) is a number with a unit select (the
value sent stays in the field's own unit); a duration written as text (its description gives an
example such as ``e.g. 30m``) is a text input whose hint reads it back as you type ("= 1 h 30 min")
or says which forms it takes.

Given the inventory (the UI's task forms), references become pickers: a list of names of one
inventory kind (``x-inventory-names``) a set of checkboxes of that kind's names, a host-scoped
field that an inventory name may stand in for a select of those names. A host-scoped value only
upkeep.yaml may set (a path, a DSN...) is shown read-only, "set in upkeep.yaml", and never sent.
The server stays the judge: the form is submitted with ``novalidate`` and the API's problem+json
errors are shown next to each field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from upkeep.app.terms import ALSO_NAMES, ANY_NAME, HOST_SCOPED, INVENTORY_NAMES, INVENTORY_REFS, OVERRIDABLE
from upkeep.secrets import is_secret_key

KINDS = (
    "string",
    "secret",
    "integer",
    "number",
    "duration",
    "duration_text",
    "boolean",
    "enum",
    "lines",
    "multi",
    "picker",
    "readonly",
    "json",
)
# a numeric duration's own unit, by how its name ends; and the units its select offers (seconds each)
UNIT_SUFFIXES = (("_ms", 0.001), ("seconds", 1.0), ("_minutes", 60.0), ("_hours", 3600.0), ("_days", 86400.0))
UNITS = (("ms", 0.001), ("s", 1.0), ("min", 60.0), ("h", 3600.0), ("d", 86400.0))
# a duration written as text: its description shows one ("e.g. 30m", "'24h'")
TEXT_DURATION = re.compile(r"(e\.g\.,?\s+|')\d+[smhdw]\b")


def spell_seconds(seconds: float) -> str:
    """``1 h 30 min``: a duration in its largest whole units (``250 ms`` below a second)."""
    if 0 < seconds < 1:
        return f"{seconds * 1000:g} ms"
    parts, rest = [], round(seconds)
    for size, label in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if rest >= size:
            parts.append(f"{rest // size} {label}")
            rest %= size
    return " ".join(parts) or "0 s"


def duration_shown(value: Any, base: float = 1.0, units: list[tuple[str, float]] | None = None) -> tuple[str, float]:
    """How a duration input shows ``value`` (in ``base`` units): its number, in the largest of
    ``units`` (default: s, min, h, d) that keeps it whole, and that unit."""
    units = units if units is not None else list(UNITS[1:])
    unit = _unit_choice(value, base, units)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return ("" if value is None else str(value)), unit
    shown = value * base / unit
    return (str(int(shown)) if float(shown).is_integer() else f"{shown:g}"), unit


def duration_base(name: str) -> float | None:
    """The unit (in seconds) of a numeric field whose name says it is a duration, else None."""
    return next((size for suffix, size in UNIT_SUFFIXES if name == suffix.lstrip("_") or name.endswith(suffix)), None)


def _unit_choice(value: Any, base: float, units: list[tuple[str, float]]) -> float:
    """The largest offered unit in which ``value`` (in ``base`` units) is a whole number."""
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        return base
    seconds = value * base
    whole = [size for _, size in units if size >= base and abs(seconds / size - round(seconds / size)) < 1e-9]
    return max(whole, default=base)


@dataclass
class FormField:
    name: str  # the config key
    path: str  # the body path the API names in errors, e.g. config.seconds
    label: str
    kind: str
    value: Any = None
    text: str = ""  # the value as the input shows it
    default: Any = None
    has_default: bool = False
    required: bool = False
    nullable: bool = False
    description: str = ""
    overridable: bool = False
    host_scoped: bool = False  # only upkeep.yaml or the local CLI may set it (see upkeep.engine.hostscope)
    inventory_refs: list[str] = field(default_factory=list)  # ...except by a name of these inventory kinds
    options: list[Any] = field(default_factory=list)
    chosen: list[Any] = field(default_factory=list)  # a multi-select's selected options
    attrs: dict[str, Any] = field(default_factory=dict)
    type_label: str = ""
    unit_base: float | None = None  # a numeric duration: its value's unit, in seconds
    unit: float | None = None  # ...the unit the form shows it in
    units: list[tuple[str, float]] = field(default_factory=list)  # ...and the units offered

    @property
    def dom_id(self) -> str:
        return "f-" + self.path.replace(".", "-")

    @property
    def default_shown(self) -> str:
        """The default as the form says it: a numeric duration spelled in its units (``1 h 30 min``)."""
        if self.kind == "duration" and isinstance(self.default, int | float) and self.unit_base:
            return spell_seconds(self.default * self.unit_base)
        return self.default_text

    @property
    def default_text(self) -> str:
        if not self.has_default:
            return "required" if self.required else ""
        return json.dumps(self.default) if not isinstance(self.default, str) else repr(self.default)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 20:
        ref = schema["$ref"]
        node: Any = root
        for part in ref.lstrip("#/").split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
        seen += 1
    return schema


def _unwrap_nullable(schema: dict[str, Any], root: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    options = schema.get("anyOf") or schema.get("oneOf")
    if not options:
        return schema, False
    non_null = [_resolve(o, root) for o in options if o.get("type") != "null"]
    nullable = len(non_null) < len(options)
    if len(non_null) == 1:
        merged = {**{k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}, **non_null[0]}
        return merged, nullable
    return schema, nullable


def type_label(schema: dict[str, Any], root: dict[str, Any]) -> str:
    schema = _resolve(schema, root)
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return " or ".join(type_label(o, root) for o in options)
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {type_label(schema.get('items', {}), root)}"
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            return f"map of {type_label(extra, root)}"
        return schema.get("title", "object") if "properties" in schema else "object"
    return str(kind)


def _kind(schema: dict[str, Any], name: str) -> str:
    if "enum" in schema:
        return "enum"
    kind = schema.get("type")
    if kind == "string":
        return "secret" if is_secret_key(name) else "string"
    if kind in ("integer", "number", "boolean"):
        return kind
    return "json"


def _choices(inventory: dict[str, Any], kinds: list[str], also: list[str] = ()) -> list[str]:
    names = [
        n
        for kind in kinds
        for n in sorted((inventory.get(kind) or {}) if isinstance(inventory.get(kind), dict) else [])
    ]
    return list(dict.fromkeys([*names, *also]))


def _widget(prop: dict[str, Any], inner: dict[str, Any], kind: str, value: Any, inventory: dict | None):
    """The UI widget of a field given the inventory: ``(kind, options)``."""
    if inventory is None:
        return kind, list(inner.get("enum", []))
    items = inner.get("items") if inner.get("type") == "array" else None
    names_of = prop.get(INVENTORY_NAMES)
    if names_of:
        return "multi", _choices(inventory, [names_of])
    if prop.get(HOST_SCOPED):
        refs = list(prop.get(INVENTORY_REFS) or [])
        options = _choices(inventory, refs, prop.get(ALSO_NAMES) or [])
        inline = value not in (None, "", [], {}) and not (isinstance(value, str) and value in options)
        if inline and not (prop.get(ANY_NAME) and isinstance(value, str)):
            return "readonly", []
        if refs or prop.get(ALSO_NAMES):
            return "picker", options
        if prop.get(ANY_NAME):
            return "string", []
        return "readonly", []
    if isinstance(items, dict) and "enum" in items:
        return "multi", list(items["enum"])
    if isinstance(items, dict) and items.get("type") == "string":
        return "lines", []
    return kind, list(inner.get("enum", []))


def fields_from_schema(
    schema: dict[str, Any],
    values: dict[str, Any] | None = None,
    *,
    prefix: str = "config",
    only_overridable=False,
    inventory: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
) -> list[FormField]:
    """One ``FormField`` per property of the config schema, filled with ``values``.

    Pass the handler's defaults merged under the stored config as ``values``
    (``{**spec.defaults(), **config}``): defaults made by factories are not in the schema. With
    ``inventory`` (``targets`` of upkeep.yaml), references become pickers and host-scoped values
    read-only (see the module's docstring). ``defaults`` (``spec.defaults()``) are what a new
    task's form leaves out unless changed."""
    values = values or {}
    required = set(schema.get("required", []))
    out = []
    for name, raw in (schema.get("properties") or {}).items():
        prop = _resolve(raw, schema)
        overridable_flag = bool(prop.get(OVERRIDABLE) or raw.get(OVERRIDABLE))
        if only_overridable and not overridable_flag:
            continue
        inner, nullable = _unwrap_nullable(prop, schema)
        has_default = "default" in prop or name in (defaults or {})
        default = (defaults or {}).get(name, prop.get("default"))  # a factory's default is not in the schema
        value = values.get(name, default)
        kind, options = _widget({**raw, **prop}, _resolve(inner, schema), _kind(inner, name), value, inventory)
        base = duration_base(name) if kind in ("integer", "number") else None
        attrs_step = "any"
        units: list[tuple[str, float]] = []
        unit = None
        if base is not None:
            # an integer keeps whole numbers of its own unit: only that unit and larger ones
            if base < 1:
                units = list(UNITS[:3])
            else:
                units = [(label, size) for label, size in UNITS if size >= 1 and (kind == "number" or size >= base)]
            unit = _unit_choice(value, base, units)
            attrs_step = "1" if kind == "integer" else "any"
            kind = "duration"
        elif kind == "string" and TEXT_DURATION.search(prop.get("description", "")):
            kind = "duration_text"
            options = re.findall(r"'([a-z]+)'", prop.get("description", ""))  # words it also takes ('all')
        if kind in ("json", "readonly"):
            text = "" if value is None else (value if isinstance(value, str) else json.dumps(value, indent=2))
        elif kind == "lines":
            text = "\n".join(str(v) for v in value or [])
        elif kind in ("boolean", "multi"):
            text = ""
        elif kind == "duration":
            text = duration_shown(value, base or 1.0, units)[0]
        else:
            text = "" if value is None else str(value)
        attrs: dict[str, Any] = {}
        if kind == "duration":  # bounds are in the field's own unit: the server checks them
            attrs["step"] = attrs_step
            attrs["min"] = 0
        if kind in ("integer", "number"):
            attrs["step"] = "1" if kind == "integer" else "any"
            for key, attr in (("minimum", "min"), ("maximum", "max")):
                if key in inner:
                    attrs[attr] = inner[key]
        if kind in ("string", "secret") and "maxLength" in inner:
            attrs["maxlength"] = inner["maxLength"]
        out.append(
            FormField(
                name=name,
                path=f"{prefix}.{name}",
                label=prop.get("title") or name.replace("_", " ").capitalize(),
                kind=kind,
                value=value,
                text=text,
                default=default,
                has_default=has_default,
                required=name in required,
                nullable=nullable,
                description=prop.get("description", ""),
                overridable=overridable_flag,
                host_scoped=bool(prop.get(HOST_SCOPED)),
                inventory_refs=list(prop.get(INVENTORY_REFS) or []),
                options=options,
                chosen=list(value) if kind == "multi" and isinstance(value, list) else [],
                attrs=attrs,
                type_label=type_label(raw, schema),
                unit_base=base,
                unit=unit,
                units=units,
            )
        )
    return out
