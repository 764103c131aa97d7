"""Off-site repositories: S3-compatible buckets (boto3) and SFTP locations (paramiko).

Declared per destination in upkeep.yaml, each under its own name::

    targets:
      backups:
        nightly:
          path: /srv/backups
          offsite:
            s3:
              type: s3
              endpoint: https://s3.eu-central-1.amazonaws.com   # MinIO, Ceph, Garage, ... alike
              region: eu-central-1
              bucket: upkeep-backups
              prefix: prod/
              access_key_id: ${env:S3_ACCESS_KEY_ID}
              secret_access_key: ${env:S3_SECRET_ACCESS_KEY}
              object_lock: {mode: governance, days: 14}   # used when the bucket has Object Lock on
              retention: {keep_daily: 30}
            box:
              type: sftp
              host: backup.example.com
              user: upkeep
              path: /srv/upkeep
              private_key: /root/.ssh/upkeep_backup       # or password: ${env:SFTP_PASSWORD}
              known_hosts: /root/.ssh/known_hosts          # the server's key must be in it
              retention: {keep_weekly: 8}

After each backup its artifact(s) and then its manifest go to ``<prefix>/<source>/<file>`` in every
repository of the destination. S3 uploads are multipart; the upload id is kept in records domain
``backup-offsite`` so an interrupted upload continues with the parts the server already has (each
checked against the local part's MD5), or starts over when the server forgot it. SFTP uploads go to
``<file>.partial`` and continue from its size. Either way the copy is then read back and its sha256
compared with the manifest's before it counts as uploaded; a mismatch is deleted and uploaded anew.

Object Lock: ``object_lock.days`` may not exceed the repository's retention horizon (``max_age_days``,
else the shortest of ``keep_daily`` N days, ``keep_weekly`` 7N, ``keep_monthly`` 28N), so a lock never
outlives the time retention wants the copy gone; a count-only retention (``keep_last``) cannot lock.
Pruning a copy that is still locked reports it (``locked``) instead of failing.

Credentials are ``${env:...}`` references resolved when a run needs them; the catalog keeps only
the repository's name and the object keys.

The kinds are ``s3`` and ``sftp`` (``base.Repository`` is their interface); this module resolves a
destination's repositories by name.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from upkeep.errors import ConfigError
from upkeep.handlers.backup.offsite.base import (
    SPECS,
    STATE_DOMAIN,
    Deletion,
    ObjectLockSpec,
    OffsiteError,
    RepoBase,
    Repository,
    S3Spec,
    SftpSpec,
)
from upkeep.handlers.backup.offsite.s3 import S3Repository
from upkeep.handlers.backup.offsite.sftp import SftpRepository

__all__ = [
    "STATE_DOMAIN",
    "Deletion",
    "ObjectLockSpec",
    "OffsiteError",
    "RepoBase",
    "Repository",
    "S3Repository",
    "S3Spec",
    "SftpRepository",
    "SftpSpec",
    "find",
    "parse",
    "repositories",
]


# --- resolving --------------------------------------------------------------------------------


def parse(raw: Any, where: str) -> RepoBase:
    from upkeep.engine.registry import format_validation_error

    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind not in SPECS:
        raise ConfigError(f"{where}.type must be one of {', '.join(SPECS)}", field=f"{where}.type")
    try:
        return SPECS[kind].model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid off-site repository: {format_validation_error(exc, prefix=where)}") from None


def repositories(ctx, destination: str | None) -> list[Repository]:
    """The off-site repositories of a ``targets.backups`` destination (none for a plain directory)."""
    if not destination or destination not in ctx.targets.names("backups"):
        return []
    offsite = ctx.targets.get("backups", destination).get("offsite") or {}
    if not isinstance(offsite, dict):
        raise ConfigError(
            f"targets.backups.{destination}.offsite must map repository names to repositories",
            field=f"targets.backups.{destination}.offsite",
        )
    return [
        _make(ctx, name, parse(raw, f"targets.backups.{destination}.offsite.{name}")) for name, raw in offsite.items()
    ]


def find(ctx, name: str, destination: str | None = None) -> Repository:
    """A repository by name: under the entry's destination first, then under any destination."""
    names = [destination] if destination in ctx.targets.names("backups") else []
    names += [d for d in ctx.targets.names("backups") if d != destination]
    for dest in names:
        for repo in repositories(ctx, dest):
            if repo.name == name:
                return repo
    raise ConfigError(
        f"no off-site repository named {name!r}",
        hint="declare it under targets.backups.<destination>.offsite in upkeep.yaml",
        field="config.from_repository",
    )


def _make(ctx, name: str, spec: RepoBase) -> Repository:
    if isinstance(spec, S3Spec):
        return S3Repository(name, spec, ctx.records(STATE_DOMAIN))
    assert isinstance(spec, SftpSpec)
    return SftpRepository(name, spec)
