"""SFTP off-site repositories (paramiko): uploads that continue from ``<file>.partial``."""

from __future__ import annotations

import hashlib
import posixpath
from datetime import datetime
from pathlib import Path
from typing import Any

from upkeep.handlers.backup.offsite.base import (
    Deletion,
    MiB,
    Repository,
    SftpSpec,
    private_file,
)
from upkeep.handlers.backup.stream import CHUNK


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
        with fh, private_file(dest) as out:
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
