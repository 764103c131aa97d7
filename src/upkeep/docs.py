"""Reference documentation generated from the code: the handler reference from the handlers'
own config models (``python -m upkeep.docs > docs/handlers.md``; a test keeps it current).
The API reference is the OpenAPI schema the server publishes at ``/docs`` and ``/openapi.json``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from upkeep.engine.hostscope import describe, marker
from upkeep.engine.registry import REGISTRY, HandlerSpec


def _type_of(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if "enum" in prop:
        return " \\| ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    if "anyOf" in prop:
        return " \\| ".join(_type_of(p, defs) for p in prop["anyOf"])
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list[{_type_of(prop.get('items', {}), defs)}]"
    if kind == "object" and "additionalProperties" in prop and isinstance(prop["additionalProperties"], dict):
        return f"map[{_type_of(prop['additionalProperties'], defs)}]"
    return str(kind) + _range(prop)


def _range(prop: dict[str, Any]) -> str:
    """A number's documented bounds in interval notation: `` in [0, 3600]``, `` in (0, 86400]``."""
    low = ("[", prop["minimum"]) if "minimum" in prop else ("(", prop.get("exclusiveMinimum"))
    high = (prop["maximum"], "]") if "maximum" in prop else (prop.get("exclusiveMaximum"), ")")
    if low[1] is None and high[0] is None:
        return ""
    return f" in {low[0]}{_number(low[1])}, {_number(high[0])}{high[1]}"


def _number(value: Any) -> str:
    if value is None:
        return "any"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _fields_table(schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    props = schema.get("properties", {})
    if not props:
        return ["No configuration."]
    required = set(schema.get("required", []))
    lines = [
        "| field | type | default | run may override | host-scoped | description |",
        "|---|---|---|---|---|---|",
    ]
    for name, prop in props.items():
        default = "required" if name in required else json.dumps(prop.get("default"), default=str)
        mark = marker(prop)
        scoped = _scoped_text(mark) if mark else ""
        lines.append(
            f"| `{name}` | {_cell(_type_of(prop, defs))} | `{_cell(default)}` | "
            f"{'yes' if prop.get('x-overridable') else ''} | {scoped} | {_cell(prop.get('description', ''))} |"
        )
    return lines


def _scoped_text(mark: dict[str, Any]) -> str:
    text = describe(mark)
    return "yes" + (f" ({text.split('; ', 1)[1]})" if "; " in text else "")


def host_scoped_lines(spec: HandlerSpec) -> list[str]:
    """The handler's host-scoped fields, one per line: the reviewed list the API tests drive."""
    fields = spec.host_scoped_fields()
    if not fields:
        return ["Host-scoped fields: none."]
    return [
        "Host-scoped fields (a path, DSN, command, signal or mode on this host: set only in upkeep.yaml or "
        "from the local CLI; an `${env:...}` reference anywhere is host-scoped too):",
        "",
        *(f"- `{name}`: {describe(mark)}" for name, mark in fields),
    ]


def handler_markdown(spec: HandlerSpec) -> str:
    info = spec.describe()
    schema = info["config_schema"]
    defs = schema.get("$defs", {})
    flags = ["destructive (has dry_run)"] if spec.destructive else []
    if spec.needs_confirm:
        flags.append("each real run needs confirmation (`--yes`, `confirm: true`)")
    lines = [f"## `{spec.name}`", "", info["description"] or "(no description)", ""]
    if spec.aliases:
        lines += [f"Aliases: {', '.join(f'`{a}`' for a in spec.aliases)}", ""]
    if flags:
        lines += [f"Marked: {', '.join(flags)}.", ""]
    if spec.requires:
        lines += [f"Needs: {', '.join(f'`{r}`' for r in spec.requires)}.", ""]
    lines += [*host_scoped_lines(spec), ""]
    lines += _fields_table(schema, defs)
    for name, sub in sorted(defs.items()):
        if sub.get("properties"):
            lines += ["", f"`{name}`:", "", *_fields_table(sub, defs)]
    return "\n".join(lines) + "\n"


def handlers_reference() -> str:
    specs = REGISTRY.all()
    head = [
        "# Handler reference",
        "",
        "Generated from the handlers' config models by `python -m upkeep.docs`; do not edit by hand.",
        "`upkeep handlers show TYPE` prints the same for one handler.",
        "",
        *(f"- [`{s.name}`](#{s.name.replace('.', '')}): {s.summary}" for s in specs),
        "",
    ]
    return "\n".join(head) + "\n" + "\n".join(handler_markdown(s) for s in specs)


if __name__ == "__main__":
    sys.stdout.write(handlers_reference())
