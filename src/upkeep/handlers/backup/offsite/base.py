"""What every off-site repository is: its spec (``S3Spec``, ``SftpSpec``), the ``Repository``
interface its kind implements (``s3``, ``sftp``), and ``OffsiteError``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from upkeep.errors import UserError
from upkeep.handlers.backup import retention
from upkeep.handlers.backup.retention import RetentionConfig
from upkeep.private import PRIVATE

STATE_DOMAIN = "backup-offsite"
MiB = 1 << 20


class OffsiteError(UserError):
    """A repository refused or lost something; the message names the repository."""


class ObjectLockSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["governance", "compliance"] = "governance"
    days: float = Field(gt=0, description="Retain-until = upload time + days (never past the retention horizon).")


class RepoBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    retention: RetentionConfig | None = Field(None, description="This repository's own retention policy.")


class S3Spec(RepoBase):
    type: Literal["s3"]
    bucket: str
    endpoint: str | None = Field(None, description="Endpoint URL; default AWS.")
    region: str | None = None
    prefix: str = ""
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    addressing_style: Literal["path", "virtual", "auto"] = "path"
    part_size_mb: int = Field(64, ge=5, le=5120, description="Multipart part size (S3's minimum is 5).")
    storage_class: str | None = None
    object_lock: ObjectLockSpec | None = None

    @field_validator("object_lock")
    @classmethod
    def _lock_within_retention(cls, lock: ObjectLockSpec | None, info: ValidationInfo) -> ObjectLockSpec | None:
        if lock is not None:
            policy = info.data.get("retention")
            horizon = policy.horizon_days() if policy else None
            if horizon is None:
                raise ValueError(
                    "object_lock needs a retention with max_age_days or keep_daily/weekly/monthly, so the lock "
                    "never outlives the time retention keeps a copy"
                )
            if lock.days > horizon:
                raise ValueError(
                    f"object_lock.days {lock.days:g} is longer than the retention keeps a copy ({horizon:g} days)"
                )
        return lock


class SftpSpec(RepoBase):
    type: Literal["sftp"]
    host: str
    port: int = Field(22, ge=1, le=65535)
    user: str
    path: str = Field(description="Base directory on the server.")
    password: str | None = None
    private_key: str | None = Field(None, description="Private key file.")
    private_key_passphrase: str | None = None
    known_hosts: str | None = Field(None, description="known_hosts file holding the server's key (default ~/.ssh).")
    timeout: float = Field(30, gt=0)


SPECS: dict[str, type[RepoBase]] = {"s3": S3Spec, "sftp": SftpSpec}


@dataclass
class Deletion:
    deleted: bool
    locked_until: str | None = None  # why not: an object lock (S3), until then


class Repository:
    """One off-site repository; the methods raise ``OffsiteError`` naming it."""

    def __init__(self, name: str, spec: RepoBase):
        self.name, self.spec = name, spec

    @property
    def policy(self) -> retention.Policy | None:
        return self.spec.retention.policy() if self.spec.retention else None

    def error(self, message: str, hint: str | None = None) -> OffsiteError:
        return OffsiteError(f"repository {self.name}: {message}", hint=hint)

    def key(self, source: str, filename: str) -> str:
        raise NotImplementedError

    def upload(self, ctx, local: Path, key: str, sha256: str, lock_until: datetime | None) -> dict[str, Any]:
        raise NotImplementedError

    def download(self, ctx, key: str, dest: Path) -> None:
        raise NotImplementedError

    def delete(self, key: str) -> Deletion:
        raise NotImplementedError

    def object_sha256(self, ctx, key: str) -> str | None:
        """The sha256 of the stored object, read back (None when it is missing)."""
        raise NotImplementedError

    def lock_until(self, at: datetime) -> datetime | None:
        return None

    def close(self) -> None:
        pass


def private_file(path: Path):
    """A new file only upkeep's user reads (downloads of backups)."""
    return PRIVATE.open(path, "w")
