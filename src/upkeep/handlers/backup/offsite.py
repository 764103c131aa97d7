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
"""

from __future__ import annotations

import hashlib
import math
import posixpath
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from upkeep.errors import ConfigError, UserError
from upkeep.handlers.backup import retention
from upkeep.handlers.backup.retention import RetentionConfig
from upkeep.handlers.backup.stream import CHUNK
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


def _hash_local_part(path: Path, offset: int, length: int) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        fh.seek(offset)
        left = length
        while left and (chunk := fh.read(min(CHUNK, left))):
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


class S3Repository(Repository):
    spec: S3Spec

    def __init__(self, name: str, spec: S3Spec, state):
        super().__init__(name, spec)
        self.state = state  # records of domain backup-offsite: multipart upload ids
        self._client = None
        self._lock_enabled: bool | None = None

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.session.Session().client(
                "s3",
                endpoint_url=self.spec.endpoint,
                region_name=self.spec.region,
                aws_access_key_id=self.spec.access_key_id,
                aws_secret_access_key=self.spec.secret_access_key,
                aws_session_token=self.spec.session_token,
                config=Config(
                    s3={"addressing_style": self.spec.addressing_style},
                    retries={"max_attempts": 5, "mode": "standard"},
                    connect_timeout=10,
                    read_timeout=60,
                ),
            )
        return self._client

    def _call(self, what: str, fn, *args, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise self.error(f"{what} failed: {err.get('Code')} {err.get('Message') or ''}".strip()) from None
        except BotoCoreError as exc:
            raise self.error(f"{what} failed: {exc}", hint="check endpoint, region and credentials") from None

    def key(self, source: str, filename: str) -> str:
        prefix = self.spec.prefix.strip("/")
        return "/".join(p for p in (prefix, source, filename) if p)

    def lock_until(self, at: datetime) -> datetime | None:
        if self.spec.object_lock is None:
            return None
        if self._lock_enabled is None:
            from botocore.exceptions import ClientError

            try:
                conf = self.client.get_object_lock_configuration(Bucket=self.spec.bucket)
                self._lock_enabled = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except ClientError:
                self._lock_enabled = False
        if not self._lock_enabled:
            return None
        return at + timedelta(days=self.spec.object_lock.days)

    def _lock_args(self, lock_until: datetime | None) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if lock_until is not None and self.spec.object_lock is not None:
            args["ObjectLockMode"] = self.spec.object_lock.mode.upper()
            args["ObjectLockRetainUntilDate"] = lock_until
        if self.spec.storage_class:
            args["StorageClass"] = self.spec.storage_class
        return args

    def upload(self, ctx, local: Path, key: str, sha256: str, lock_until: datetime | None) -> dict[str, Any]:
        size = local.stat().st_size
        part_size = max(self.spec.part_size_mb * MiB, math.ceil(size / 9000))
        bucket = self.spec.bucket
        extra = self._lock_args(lock_until)
        if size <= part_size:
            with open(local, "rb") as fh:
                self._call("upload", self.client.put_object, Bucket=bucket, Key=key, Body=fh, **extra)
            return {"parts": 1, "resumed_parts": 0}
        state_key = f"{self.name}/{key}"
        state = self.state.get(state_key)
        done: dict[int, str] = {}
        if (
            state
            and state.get("size") == size
            and state.get("sha256") == sha256
            and state.get("part_size") == part_size
        ):
            done = self._uploaded_parts(state["upload_id"], key)
            if done is None:  # the server no longer knows the upload: start over
                ctx.info("upload_restarted", f"{self.name}: upload of {key} expired on the server, starting over")
                state, done = None, {}
        else:
            if state:
                self._abort(key, state["upload_id"])
            state = None
        if state is None:
            created = self._call(
                "starting a multipart upload",
                self.client.create_multipart_upload,
                Bucket=bucket,
                Key=key,
                **extra,
            )
            state = {"upload_id": created["UploadId"], "size": size, "sha256": sha256, "part_size": part_size}
            self.state.put(state_key, state)
        upload_id = state["upload_id"]
        count = math.ceil(size / part_size)
        etags: list[dict[str, Any]] = []
        resumed = 0
        with open(local, "rb") as fh:
            for number in range(1, count + 1):
                offset = (number - 1) * part_size
                length = min(part_size, size - offset)
                have = done.get(number)
                if have and have.strip('"') == _hash_local_part(local, offset, length):
                    etags.append({"PartNumber": number, "ETag": have})
                    resumed += 1
                    continue
                fh.seek(offset)
                body = fh.read(length)
                out = self._call(
                    f"uploading part {number}/{count}",
                    self.client.upload_part,
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body,
                )
                etags.append({"PartNumber": number, "ETag": out["ETag"]})
                ctx.progress(None, f"{self.name}: {key} part {number}/{count}")
                ctx.check_cancelled()
        self._call(
            "completing the multipart upload",
            self.client.complete_multipart_upload,
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": etags},
        )
        self.state.delete(state_key)
        return {"parts": count, "resumed_parts": resumed}

    def _uploaded_parts(self, upload_id: str, key: str) -> dict[int, str] | None:
        from botocore.exceptions import ClientError

        parts: dict[int, str] = {}
        marker = 0
        while True:
            try:
                page = self.client.list_parts(
                    Bucket=self.spec.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchUpload", "404"):
                    return None
                raise self.error(f"listing uploaded parts failed: {exc}") from None
            for p in page.get("Parts", []):
                parts[int(p["PartNumber"])] = p["ETag"]
            if not page.get("IsTruncated"):
                return parts
            marker = int(page["NextPartNumberMarker"])

    def _abort(self, key: str, upload_id: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.abort_multipart_upload(Bucket=self.spec.bucket, Key=key, UploadId=upload_id)
        except ClientError:
            pass

    def _stream(self, key: str):
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.spec.bucket, Key=key)["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self.error(f"reading {key} failed: {exc}") from None

    def object_sha256(self, ctx, key: str) -> str | None:
        body = self._stream(key)
        if body is None:
            return None
        h = hashlib.sha256()
        for chunk in body.iter_chunks(CHUNK):
            h.update(chunk)
            ctx.check_cancelled()
        return h.hexdigest()

    def download(self, ctx, key: str, dest: Path) -> None:
        body = self._stream(key)
        if body is None:
            raise self.error(f"{key} is missing")
        with _private_file(dest) as out:
            for chunk in body.iter_chunks(CHUNK):
                out.write(chunk)
                ctx.check_cancelled()

    def delete(self, key: str) -> Deletion:
        from botocore.exceptions import ClientError

        bucket = self.spec.bucket
        versions = self._call("listing versions", self.client.list_object_versions, Bucket=bucket, Prefix=key)
        found = [v for v in versions.get("Versions", []) + versions.get("DeleteMarkers", []) if v["Key"] == key]
        targets = [{"Key": key, "VersionId": v["VersionId"]} for v in found if v.get("VersionId") not in (None, "null")]
        if not targets:
            targets = [{"Key": key}]
        locked_until = None
        for t in targets:
            try:
                self.client.delete_object(Bucket=bucket, **t)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("AccessDenied", "InvalidRequest"):
                    raise self.error(f"deleting {key} failed: {exc}") from None
                locked_until = self._retain_until(t) or "unknown"
        if locked_until:
            return Deletion(False, locked_until)
        return Deletion(True)

    def _retain_until(self, target: dict[str, Any]) -> str | None:
        from botocore.exceptions import ClientError

        try:
            out = self.client.get_object_retention(Bucket=self.spec.bucket, **target)
        except ClientError:
            return None
        until = out.get("Retention", {}).get("RetainUntilDate")
        return until.isoformat() if hasattr(until, "isoformat") else str(until) if until else None


class SftpRepository(Repository):
    spec: SftpSpec

    def __init__(self, name: str, spec: SftpSpec):
        super().__init__(name, spec)
        self._ssh = None
        self._sftp = None

    @property
    def sftp(self):
        if self._sftp is None:
            import paramiko

            ssh = paramiko.SSHClient()
            try:
                if self.spec.known_hosts:
                    ssh.load_host_keys(self.spec.known_hosts)
                else:
                    ssh.load_system_host_keys()
            except OSError as exc:
                raise self.error(f"cannot read known_hosts: {exc}") from None
            ssh.set_missing_host_key_policy(paramiko.RejectPolicy())
            try:
                ssh.connect(
                    self.spec.host,
                    port=self.spec.port,
                    username=self.spec.user,
                    password=self.spec.password,
                    key_filename=self.spec.private_key,
                    passphrase=self.spec.private_key_passphrase,
                    timeout=self.spec.timeout,
                    allow_agent=False,
                    look_for_keys=False,
                )
                self._sftp = ssh.open_sftp()
            except (paramiko.SSHException, OSError) as exc:
                ssh.close()
                raise self.error(
                    f"cannot connect to sftp://{self.spec.user}@{self.spec.host}:{self.spec.port}: {exc}",
                    hint="check host, user, key and that the server's host key is in known_hosts",
                ) from None
            self._ssh = ssh
        return self._sftp

    def close(self) -> None:
        if self._ssh is not None:
            self._ssh.close()
        self._ssh = self._sftp = None

    def key(self, source: str, filename: str) -> str:
        return posixpath.join(self.spec.path, source, filename)

    def _makedirs(self, directory: str) -> None:
        parts = [p for p in directory.split("/") if p]
        current = "/" if directory.startswith("/") else ""
        for part in parts:
            current = posixpath.join(current, part) if current else part
            try:
                self.sftp.stat(current)
            except FileNotFoundError:
                self.sftp.mkdir(current, mode=0o700)

    def _size(self, path: str) -> int | None:
        try:
            return self.sftp.stat(path).st_size
        except FileNotFoundError:
            return None

    def upload(self, ctx, local: Path, key: str, sha256: str, lock_until: datetime | None) -> dict[str, Any]:
        self._makedirs(posixpath.dirname(key))
        partial = key + ".partial"
        size = local.stat().st_size
        for attempt in range(2):
            offset = self._size(partial) or 0
            if offset > size:
                offset = 0
            resumed = offset
            try:
                with open(local, "rb") as src, self.sftp.open(partial, "ab" if offset else "wb") as dst:
                    dst.set_pipelined(True)
                    src.seek(offset)
                    sent = 0
                    while chunk := src.read(CHUNK):
                        dst.write(chunk)
                        sent += len(chunk)
                        if sent % (8 * MiB) < CHUNK:
                            ctx.progress(None, f"{self.name}: {key} {(offset + sent) >> 20} MiB")
                            ctx.check_cancelled()
                self.sftp.chmod(partial, 0o600)
            except OSError as exc:
                raise self.error(f"uploading {key} failed: {exc}") from None
            if self._sha256_of(ctx, partial) == sha256:
                try:
                    self.sftp.posix_rename(partial, key)
                except OSError as exc:
                    raise self.error(f"renaming {partial} into place failed: {exc}") from None
                return {"resumed_bytes": resumed}
            self.sftp.remove(partial)
            if attempt == 0:
                ctx.warning("upload_restarted", f"{self.name}: {key} did not match its checksum, uploading again")
        raise self.error(f"{key} does not match the manifest's sha256 after uploading it twice")

    def _sha256_of(self, ctx, path: str) -> str | None:
        try:
            fh = self.sftp.open(path, "rb")
        except FileNotFoundError:
            return None
        h = hashlib.sha256()
        with fh:
            fh.prefetch()
            while chunk := fh.read(CHUNK):
                h.update(chunk)
                ctx.check_cancelled()
        return h.hexdigest()

    def object_sha256(self, ctx, key: str) -> str | None:
        return self._sha256_of(ctx, key)

    def download(self, ctx, key: str, dest: Path) -> None:
        try:
            fh = self.sftp.open(key, "rb")
        except FileNotFoundError:
            raise self.error(f"{key} is missing") from None
        with fh, _private_file(dest) as out:
            fh.prefetch()
            while chunk := fh.read(CHUNK):
                out.write(chunk)
                ctx.check_cancelled()

    def delete(self, key: str) -> Deletion:
        try:
            self.sftp.remove(key)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self.error(f"deleting {key} failed: {exc}") from None
        return Deletion(True)


def _private_file(path: Path):
    return PRIVATE.open(path, "w")


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
