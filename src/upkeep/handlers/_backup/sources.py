"""Resolve a backup ``source`` (a target name or an inline dict) into a typed ``Source``.

Inventory (upkeep.yaml)::

    targets:
      databases:            # read by backup.* (and the db.* handlers)
        main: {type: postgres, url: "postgresql://app:${env:PG_PASSWORD}@db:5432/app"}
        # or host/port/user/password/dbname (sslmode, ...) instead of url
        cache: {type: redis, url: "redis://127.0.0.1:6379/0", rdb_path: /var/lib/redis/dump.rdb}
        local: {type: sqlite, path: /var/lib/app/app.db}
      files:                # file/directory sources
        etc: {paths: [/etc/app], excludes: ["*.tmp"]}
      backups:              # destinations
        nightly: {path: /srv/backups, copy_to: /mnt/offsite/backups}

An inline source is the same dict under the task's ``source`` key, with ``type`` and optionally
``name`` (the catalog name; default: the database name, file stem, or ``redis-<port>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from upkeep import secrets as secret_refs
from upkeep.errors import ConfigError

TYPES = ("postgres", "sqlite", "redis", "files")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(text: str) -> str:
    name = _SAFE.sub("_", text).strip("._") or "source"
    return name[:80]


@dataclass
class Source:
    name: str
    type: str
    spec: dict[str, Any]  # secrets resolved
    target_name: str | None = None

    def public(self) -> dict[str, Any]:
        """The spec without plain-text secrets, safe to store in the catalog and show."""
        return secret_refs.redact({k: v for k, v in self.spec.items() if k != "password"})


def _infer_type(spec: dict[str, Any]) -> str:
    if spec.get("type"):
        return str(spec["type"])
    url = str(spec.get("url") or spec.get("dsn") or "")
    if url.startswith("sqlite"):
        return "sqlite"
    if url.startswith("redis"):
        return "redis"
    if "paths" in spec:
        return "files"
    if "path" in spec and "url" not in spec:
        return "sqlite"
    return "postgres"


def _default_name(kind: str, spec: dict[str, Any]) -> str:
    if kind == "postgres":
        from upkeep.handlers._backup.pg import PgTarget

        return PgTarget.from_spec(spec).dbname
    if kind == "sqlite":
        return Path(str(spec["path"])).stem
    if kind == "redis":
        url = str(spec.get("url", ""))
        m = re.search(r":(\d+)", url.split("//", 1)[-1])
        return f"redis-{spec.get('port') or (m.group(1) if m else '6379')}"
    paths = spec.get("paths") or [spec.get("path", "files")]
    return Path(str(paths[0])).name or "files"


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
    kind = _infer_type(spec)
    if kind not in TYPES:
        raise ConfigError(f"source type {kind!r} is not one of {', '.join(TYPES)}", field=f"{field}.type")
    if kind == "sqlite" and not spec.get("path") and spec.get("url"):
        from upkeep.handlers import _pg

        spec["path"] = str(_pg.sqlite_path(str(spec["url"])))
    if kind == "sqlite" and not spec.get("path"):
        raise ConfigError("a sqlite source needs path", field=f"{field}.path")
    if kind == "files" and not (spec.get("paths") or spec.get("path")):
        raise ConfigError("a files source needs paths: [...]", field=f"{field}.paths")
    name = spec.get("name") or target_name or _default_name(kind, spec)
    return Source(name=safe_name(str(name)), type=kind, spec=spec, target_name=target_name)


def resolve_destination(ctx, destination: str | None) -> tuple[Path, Path | None]:
    """The destination directory (and optional second copy directory) of new backups.

    ``destination`` is a name under ``targets.backups`` or a directory path; default
    ``<data_dir>/backups``.
    """
    if not destination:
        return Path(ctx.data_dir) / "backups", None
    if destination in ctx.targets.names("backups"):
        spec = ctx.targets.get("backups", destination)
        if not spec.get("path"):
            raise ConfigError(f"targets.backups.{destination} needs path", field="config.destination")
        copy_to = spec.get("copy_to")
        return Path(spec["path"]), Path(copy_to) if copy_to else None
    return Path(destination), None
