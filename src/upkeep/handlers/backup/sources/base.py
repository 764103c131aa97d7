"""The ``Source`` interface every backup kind implements (``postgres``, ``mysql``, ``sqlite``,
``redis``, ``files``; the table of them is ``upkeep.handlers.backup.sources.kind``).

``backup.create``, ``backup.verify``, ``backup.restore`` and ``backup.drill`` dispatch through that one
table: creation calls methods of a resolved ``Source``; verification and restore act on a catalog entry
and call the class methods of its type. This module imports none of the kinds, so each kind imports it
without a cycle.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from upkeep import secrets as secret_refs
from upkeep.errors import UserError

if TYPE_CHECKING:
    from upkeep.handlers.backup.stream import DecodedStream

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


Check = dict[str, Any]
# Called while a test restore's scratch database exists: gets the scratch database's spec (a
# source spec of the same type, secrets resolved) and returns more checks (a drill's health checks).
OnRestored = Callable[[dict[str, Any]], list[Check]]


def safe_name(text: str) -> str:
    name = _SAFE.sub("_", text).strip("._") or "source"
    return name[:80]


class Source:
    """One kind of backup source. An instance is a resolved source (``name``, ``spec`` with secrets
    resolved); the class methods act on catalog entries of the kind."""

    type: ClassVar[str]
    # verify and restore need a database server (``scratch_target`` / ``target``)
    uses_server: ClassVar[bool] = False

    def __init__(self, name: str, spec: dict[str, Any], target_name: str | None = None):
        self.name, self.spec, self.target_name = name, spec, target_name

    def public(self) -> dict[str, Any]:
        """The spec without plain-text secrets, safe to store in the catalog and show."""
        return secret_refs.redact({k: v for k, v in self.spec.items() if k != "password"})

    # --- resolving ---------------------------------------------------------------------------

    @classmethod
    def check_spec(cls, spec: dict[str, Any], field: str) -> None:
        """Raise ``ConfigError`` for a spec this kind cannot back up (may fill derived keys)."""

    @classmethod
    def default_name(cls, spec: dict[str, Any]) -> str:
        raise NotImplementedError

    def connection(self) -> dict[str, Any]:
        """What the catalog keeps to find the server again (no password)."""
        return self.public()

    # --- creating ----------------------------------------------------------------------------

    def layout(self, config) -> tuple[str, str]:
        """(file extension before compression, compression upkeep applies around the tool's output)."""
        return "", config.compression

    def create(self, ctx, config, new_writer, work_dir: Path, never_include: list[Path]) -> dict[str, Any]:
        """Write the artifact(s) through ``new_writer``; returns the kind's manifest fields."""
        raise NotImplementedError

    # --- verifying and restoring a catalog entry --------------------------------------------

    @classmethod
    def reads_artifact_directly(cls, manifest: dict[str, Any]) -> bool:
        """The artifact needs no decoding and verification only reads it (no scratch copy)."""
        return False

    @classmethod
    def verifies_from_stream(cls, manifest: dict[str, Any]) -> bool:
        """Verification takes the raw content as a ``DecodedStream`` (decoded while its tool reads
        it, after the stored bytes' checksum matched) instead of a scratch copy on disk."""
        return False

    @classmethod
    def verify(
        cls,
        ctx,
        entry: dict[str, Any],
        raw: Path | DecodedStream,
        config,
        work_dir: Path,
        server: dict[str, Any] | None,
        on_restored: OnRestored | None = None,
    ) -> list[Check]:
        raise NotImplementedError

    @classmethod
    def restore_plan(cls, ctx, entry: dict[str, Any], config, server: dict[str, Any] | None) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def restore(
        cls, ctx, entry: dict[str, Any], raw: Path, plan: dict[str, Any], config, server, work_dir: Path
    ) -> list[Check]:
        raise NotImplementedError

    @classmethod
    def safety_spec(cls, entry: dict[str, Any], plan: dict[str, Any], server) -> dict[str, Any] | None:
        """The source spec to back up before a restore overwrites it (None: the kind needs none)."""
        return None


class DatabaseSteps(NamedTuple):
    """A database kind's own steps, each taking a target of its model of a server."""

    create: Callable[..., dict[str, Any]]  # (ctx, source, config, new_writer, work_dir)
    verify: Callable[..., list[Check]]  # (ctx, entry, raw, config, scratch target, work_dir, on_restored)
    restore_plan: Callable[..., dict[str, Any]]  # (entry, target, config)
    restore: Callable[..., list[Check]]  # (ctx, entry, raw, target, plan, config, work_dir)


class DatabaseSource(Source):
    """A kind whose source is a database on a server (PostgreSQL, MariaDB/MySQL): verification
    restores into a scratch database on ``server`` and restore replaces a database there. A kind
    names its model of a server (``target``: ``from_spec(spec)`` and ``.spec(database)``) and its
    ``steps``; the dispatch to them is the same for all."""

    uses_server = True
    target: ClassVar[Any]
    steps: ClassVar[DatabaseSteps]

    def create(self, ctx, config, new_writer, work_dir: Path, never_include: list[Path]) -> dict[str, Any]:
        return self.steps.create(ctx, self, config, new_writer, work_dir)

    @classmethod
    def verify(cls, ctx, entry, raw, config, work_dir, server, on_restored=None):
        scratch = cls.target.from_spec(server) if server is not None else None
        return cls.steps.verify(ctx, entry, raw, config, scratch, work_dir, on_restored)

    @classmethod
    def restore_plan(cls, ctx, entry, config, server):
        return cls.steps.restore_plan(entry, cls.target.from_spec(server), config)

    @classmethod
    def restore(cls, ctx, entry, raw, plan, config, server, work_dir):
        return cls.steps.restore(ctx, entry, raw, cls.target.from_spec(server), plan, config, work_dir)

    @classmethod
    def safety_spec(cls, entry, plan, server):
        return cls.target.from_spec(server).spec(plan["database"])


def database_restore_plan(
    entry: dict[str, Any],
    config,
    *,
    server: str,
    dbname: str,
    exists: bool,
    size: int,
    sessions: int,
    end_sessions: str,
    load: str,
    load_suffix: str = "",
) -> dict[str, Any]:
    """The plan of restoring ``entry`` into database ``dbname`` of a server (PostgreSQL, MariaDB):
    refused when ``create`` asks for a new database that exists; otherwise its steps, in order."""
    if config.create and exists:
        raise UserError(
            f"target database {dbname} already exists and create: true asks for a new one",
            hint="choose another target_database, or drop create: true to replace it",
            field="config.target_database",
        )
    steps = []
    if exists and config.safety_backup:
        steps.append(f"take a safety backup of {dbname} ({size} bytes)")
    if config.stop_command:
        steps.append(f"run stop_command {config.stop_command}")
    if exists:
        steps.append(f"{end_sessions} {sessions} session(s) connected to {dbname}")
        steps.append(f"DROP database {dbname} ({size} bytes)")
    steps.append(f"CREATE database {dbname}")
    steps.append(f"{load} backup {entry['id']} ({entry['manifest']['size']} bytes) into {dbname}{load_suffix}")
    steps.append(f"compare row counts of {len(entry['manifest'].get('row_counts') or {})} tables with the manifest")
    if config.start_command:
        steps.append(f"run start_command {config.start_command} (always)")
    return {
        "server": server,
        "database": dbname,
        "exists": exists,
        "size": size,
        "drops": dbname if exists else None,
        "creates": dbname,
        "sessions": sessions,
        "steps": steps,
    }
