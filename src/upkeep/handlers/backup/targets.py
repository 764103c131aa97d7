"""What ``targets.databases``, ``targets.files`` and ``targets.backups`` entries may hold, declared
as kinds of target of the inventory (``upkeep apply`` checks the file against them).

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
      backups:              # destinations (see backup/offsite.py for offsite); group: makes backups 0640/0750
        nightly: {path: /srv/backups, copy_to: /mnt/second-disk/backups, group: backup}

An inline source is the same dict under the task's ``source`` key, with ``type`` and optionally
``name`` (the catalog name; default: the database name, file stem, or ``redis-<port>``). A
database source may carry ``assertions``: SQL queries whose first column must be true, run in
every test restore and drill of its backups.

The ``db.*`` handlers read the same ``databases``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from upkeep.engine.registry import inventory_kind
from upkeep.handlers.db.postgres import LIBPQ_KEYS


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
    from upkeep.handlers.backup.offsite import S3Spec, SftpSpec

    return Annotated[S3Spec | SftpSpec, Field(discriminator="type")]


class BackupTarget(_Entry):
    """A ``targets.backups`` entry: where backups go."""

    path: str = Field(description="The destination directory.")
    copy_to: str | None = Field(None, description="A second directory that receives a verified copy.")
    group: str | None = Field(None, description="Share backups with this group: files 0640, directories 0750.")
    offsite: dict[str, _repository_models()] | None = Field(  # type: ignore[valid-type]
        None, description="Off-site repositories by name (see backup/offsite.py)."
    )


inventory_kind("databases", DatabaseTarget)
inventory_kind("files", FileTarget)
inventory_kind("backups", BackupTarget)
