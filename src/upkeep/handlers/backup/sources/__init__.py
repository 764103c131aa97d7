"""The backup kinds by type (``kind``: the one table ``backup.create``, ``backup.verify``,
``backup.restore`` and ``backup.drill`` dispatch through; the interface is ``base.Source``), and
resolving a task's ``source`` (a ``targets.databases`` / ``targets.files`` name, or an inline dict with
``type``: see ``backup/targets.py``) to one.
"""

from __future__ import annotations

from typing import Any

from upkeep import secrets as secret_refs
from upkeep.errors import ConfigError
from upkeep.handlers.backup.sources.base import Source, safe_name

TYPES = ("postgres", "mysql", "sqlite", "redis", "files")
SourceField = str | dict[str, Any]


def kind(type_name: str) -> type[Source]:
    """The ``Source`` class of a backup type."""
    from upkeep.handlers.backup.sources import files, mysql, postgres, redis, sqlite

    kinds: dict[str, type[Source]] = {
        "postgres": postgres.PostgresSource,
        "mysql": mysql.MysqlSource,
        "sqlite": sqlite.SqliteSource,
        "redis": redis.RedisSource,
        "files": files.FilesSource,
    }
    return kinds[type_name]


def infer_type(spec: dict[str, Any]) -> str:
    if spec.get("type"):
        return "mysql" if spec["type"] == "mariadb" else str(spec["type"])
    url = str(spec.get("url") or spec.get("dsn") or "")
    if url.startswith("sqlite"):
        return "sqlite"
    if url.startswith("redis"):
        return "redis"
    if url.startswith(("mysql", "mariadb")):
        return "mysql"
    if "paths" in spec:
        return "files"
    if "path" in spec and "url" not in spec:
        return "sqlite"
    return "postgres"


def resolve_source(ctx, source: str | dict[str, Any], field: str = "config.source") -> Source:
    target_name = None
    if isinstance(source, str):
        target_name = source
        if source in ctx.targets.names("databases"):
            spec = dict(ctx.targets.get("databases", source))
        elif source in ctx.targets.names("files"):
            spec = {"type": "files", **ctx.targets.get("files", source)}
        else:
            known = ", ".join(ctx.targets.names("databases") + ctx.targets.names("files")) or "none defined"
            raise ConfigError(
                f"unknown backup source {source!r}",
                hint=f"define it under targets.databases or targets.files in upkeep.yaml (known: {known})",
                field=field,
            )
    else:
        spec = secret_refs.resolve(dict(source), collected=ctx.secrets)
    type_name = infer_type(spec)
    if type_name not in TYPES:
        raise ConfigError(f"source type {type_name!r} is not one of {', '.join(TYPES)}", field=f"{field}.type")
    cls = kind(type_name)
    cls.check_spec(spec, field)
    name = spec.get("name") or target_name or cls.default_name(spec)
    return cls(name=safe_name(str(name)), spec=spec, target_name=target_name)


def resolve_path(ctx, value: str, field: str) -> str:
    """A file or directory given by path, or by the name of a ``targets.files`` entry (its one
    path) or of a SQLite ``targets.databases`` entry (its file)."""
    if value in ctx.targets.names("files") or value in ctx.targets.names("databases"):
        source = resolve_source(ctx, value, field=field)
        paths = source.spec.get("paths") or [source.spec.get("path")]
        if source.type not in ("files", "sqlite") or len(paths) != 1 or not paths[0]:
            raise ConfigError(
                f"{value} names a {source.type} target with {len(paths)} paths, not one file or directory",
                hint="name a targets.files entry with one path, or a SQLite targets.databases entry",
                field=field,
            )
        return str(paths[0])
    return value


def source_name(ctx, source: SourceField | None) -> str | None:
    if source is None:
        return None
    if isinstance(source, dict):
        return resolve_source(ctx, source).name
    known = ctx.targets.names("databases") + ctx.targets.names("files")
    return resolve_source(ctx, source).name if source in known else safe_name(source)
