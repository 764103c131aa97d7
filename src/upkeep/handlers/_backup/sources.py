"""The ``Source`` interface every backup kind implements, and resolving a task's ``source``.

Inventory (upkeep.yaml)::

    targets:
      databases:            # read by backup.* (and the db.* handlers)
        main: {type: postgres, url: "postgresql://app:${env:PG_PASSWORD}@db:5432/app"}
        # or host/port/user/password/dbname (sslmode, ...) instead of url
        shop: {url: "mariadb://backup:${env:MY_PASSWORD}@127.0.0.1:3306/shop"}   # or mysql://
        cache: {type: redis, url: "redis://127.0.0.1:6379/0", rdb_path: /var/lib/redis/dump.rdb}
        local: {type: sqlite, path: /var/lib/app/app.db}
      files:                # file/directory sources
        etc: {paths: [/etc/app], excludes: ["*.tmp"]}
      backups:              # destinations (see _backup/offsite.py for offsite); group: makes backups 0640/0750
        nightly: {path: /srv/backups, copy_to: /mnt/second-disk/backups, group: backup}

An inline source is the same dict under the task's ``source`` key, with ``type`` and optionally
``name`` (the catalog name; default: the database name, file stem, or ``redis-<port>``). A
database source may carry ``assertions``: SQL queries whose first column must be true, run in
every test restore and drill of its backups.

``backup.create``, ``backup.verify``, ``backup.restore`` and ``backup.drill`` dispatch through one
table, ``kind(type)``: creation calls methods of a resolved ``Source``; verification and restore act
on a catalog entry and call the class methods of its type.

``DatabaseTarget``, ``FileTarget`` and ``BackupTarget`` are what those inventory entries may hold;
``upkeep apply`` checks the file against them (the ``db.*`` handlers read the same ``databases``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from upkeep import secrets as secret_refs
from upkeep.errors import ConfigError
from upkeep.handlers._pg import LIBPQ_KEYS
from upkeep.private import PRIVATE, Private

if TYPE_CHECKING:
    from upkeep.handlers._backup.stream import DecodedStream

TYPES = ("postgres", "mysql", "sqlite", "redis", "files")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _DatabaseFields(_Entry):
    type: Literal["postgres", "mysql", "mariadb", "sqlite", "redis"] | None = Field(
        None, description="Default: from the url (sqlite:///, redis://, mariadb://, mysql://), else postgres."
    )
    url: str | None = Field(
        None, description="postgresql://, mariadb://, mysql://, sqlite:/// or redis:// URL (password as ${env:NAME})."
    )
    dsn: str | None = Field(None, description="A libpq connection string instead of url.")
    database: str | None = Field(None, description="The database name (as dbname).")
    unix_socket: str | None = Field(None, description="MariaDB/MySQL: the server's socket.")
    path: str | None = Field(None, description="SQLite: the database file.")
    rdb_path: str | None = Field(None, description="Redis: the RDB file (default from CONFIG GET).")
    save_timeout_s: float | None = Field(None, gt=0, description="Redis: seconds to wait for BGSAVE.")
    name: str | None = Field(None, description="The backup catalog's name for it (default: the entry's name).")
    assertions: list[str] = Field(
        default_factory=list, description="SQL whose first column must be true in every test restore and drill."
    )

    @model_validator(mode="after")
    def _reachable(self) -> _DatabaseFields:
        if not (self.url or self.dsn or self.path or getattr(self, "host", None) or getattr(self, "service", None)):
            raise ValueError("a database target needs url, host (with port, user, dbname ...) or, for SQLite, path")
        return self


DatabaseTarget = create_model(
    "DatabaseTarget",
    __base__=_DatabaseFields,
    __doc__="A ``targets.databases`` entry: a URL or libpq fields; MariaDB/MySQL, SQLite and Redis ones too.",
    **{key: (str | int | None, Field(None, description=f"libpq {key}")) for key in sorted(LIBPQ_KEYS)},
)


class FileTarget(_Entry):
    """A ``targets.files`` entry: files and directories a ``files`` backup archives."""

    paths: list[str] | None = Field(None, description="Files and directories.")
    path: str | None = Field(None, description="One file or directory (instead of paths).")
    excludes: list[str] = Field(default_factory=list, description="Glob patterns left out.")
    name: str | None = Field(None, description="The backup catalog's name for it.")

    @model_validator(mode="after")
    def _something(self) -> FileTarget:
        if not (self.paths or self.path):
            raise ValueError("a files target needs paths: [...] (or path)")
        return self


def _repository_models() -> Any:
    from upkeep.handlers._backup.offsite import S3Spec, SftpSpec

    return Annotated[S3Spec | SftpSpec, Field(discriminator="type")]


class BackupTarget(_Entry):
    """A ``targets.backups`` entry: where backups go."""

    path: str = Field(description="The destination directory.")
    copy_to: str | None = Field(None, description="A second directory that receives a verified copy.")
    group: str | None = Field(None, description="Share backups with this group: files 0640, directories 0750.")
    offsite: dict[str, _repository_models()] | None = Field(  # type: ignore[valid-type]
        None, description="Off-site repositories by name (see _backup/offsite.py)."
    )


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


def kind(type_name: str) -> type[Source]:
    """The ``Source`` class of a backup type."""
    from upkeep.handlers._backup import files, mysql, postgres, redis, sqlite

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
