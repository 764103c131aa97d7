"""Where new backups go: a ``targets.backups`` name or a directory, and how private they are."""

from __future__ import annotations

from pathlib import Path

from upkeep.errors import ConfigError
from upkeep.private import PRIVATE, Private


def destination_private(ctx, destination: str | None) -> Private:
    """How private new backups are: 0600/0700, or 0640/0750 for the ``group`` of a
    ``targets.backups`` destination."""
    if destination and destination in ctx.targets.names("backups"):
        group = ctx.targets.get("backups", destination).get("group")
        return Private(group=str(group)) if group else PRIVATE
    return PRIVATE


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
