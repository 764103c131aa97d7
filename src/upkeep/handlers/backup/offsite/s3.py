"""S3-compatible off-site repositories (boto3): resumable multipart uploads, Object Lock."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from upkeep.handlers.backup.offsite.base import (
    Deletion,
    MiB,
    Repository,
    S3Spec,
    private_file,
)
from upkeep.handlers.backup.stream import CHUNK


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
        with private_file(dest) as out:
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
