"""``upkeep handlers list|show TYPE``: the registered handler types and their config."""

from __future__ import annotations

from typing import Any

import typer

from upkeep.cli.common import echo, print_json, table

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON")) -> None:
    """List handler types (name, aliases, destructive, summary)."""
    from upkeep.app.terms import REGISTRY

    specs = REGISTRY.all()
    if as_json:
        print_json([{k: v for k, v in s.describe().items() if k != "config_schema"} for s in specs])
        return
    table(
        ["type", "aliases", "flags", "summary"],
        [
            [
                s.name,
                ", ".join(s.aliases),
                "destructive" if s.destructive else "",
                s.summary,
            ]
            for s in specs
        ],
    )


def _type_text(prop: dict[str, Any]) -> str:
    if "type" in prop:
        kind = prop["type"]
        if kind == "array" and isinstance(prop.get("items"), dict):
            return f"list[{_type_text(prop['items'])}]"
        return str(kind)
    if "anyOf" in prop:
        return " | ".join(_type_text(p) for p in prop["anyOf"])
    if "enum" in prop:
        return " | ".join(map(str, prop["enum"]))
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    return "any"


@app.command("show")
def show(
    name: str = typer.Argument(..., metavar="TYPE", help="Handler type or alias"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (with the config JSON schema)"),
) -> None:
    """Describe a handler type and its config fields (defaults, which a run may override)."""
    import json

    from upkeep.app.terms import REGISTRY
    from upkeep.docs import host_scoped_lines

    spec, alias = REGISTRY.resolve(name)
    info = spec.describe()
    if as_json:
        print_json(info)
        return
    if alias:
        echo(f"{alias} is an alias of {spec.name}")
    echo(f"{spec.name}{'  (aliases: ' + ', '.join(spec.aliases) + ')' if spec.aliases else ''}")
    if spec.destructive:
        echo("destructive: honours dry_run")
    if spec.needs_confirm:
        echo("needs confirmation: a run that is not a dry run is refused without --yes")
    if spec.requires:
        echo(f"needs: {', '.join(spec.requires)}")
    echo("")
    echo(info["description"] or "(no description)")
    echo("")
    for line in host_scoped_lines(spec):
        echo(line.replace("`", ""))
    schema = info["config_schema"]
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    defaults = spec.defaults()
    overridable = set(info["overridable"])
    echo("")
    if not props:
        echo("config: none")
        return
    scoped = dict(spec.host_scoped_fields())
    table(
        ["field", "type", "default", "run may override", "host-scoped", "description"],
        [
            [
                key,
                _type_text(prop),
                "(required)" if key in required else json.dumps(defaults.get(key), default=str),
                "yes" if key in overridable else "",
                "yes" if key in scoped else "",
                prop.get("description", ""),
            ]
            for key, prop in props.items()
        ],
        title="config",
    )
