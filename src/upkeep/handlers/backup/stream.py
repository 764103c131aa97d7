"""Write and read backup artifacts in one streaming pass.

Writing: raw bytes -> compressor (zstd | gzip | none) -> optional encryptor -> sha256 + file, into a
temporary name in the destination directory; ``finish()`` fsyncs the file, renames it into place and
fsyncs the directory. Any exception before that removes the temporary file, so a failed backup
leaves nothing half-written behind.

Reading: file -> sha256 -> optional decryptor -> decompressor -> raw chunks. The hash covers the
bytes as stored, so a verification compares it with the manifest's ``sha256``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from upkeep.handlers.backup.crypto import DecryptionError, Decryptor, Encryptor
from upkeep.private import PRIVATE, Private

CHUNK = 1 << 20
STREAM_READ = 16 << 10
COMPRESSIONS = ("zstd", "gzip", "none")
EXTENSIONS = {"zstd": ".zst", "gzip": ".gz", "none": ""}
DEFAULT_LEVELS = {"zstd": 3, "gzip": 6, "none": 0}
PARTIAL_SUFFIX = ".partial"


class CorruptArtifact(Exception):
    """Decompression or decryption of an artifact failed."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}")


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def make_compressor(compression: str, level: int | None = None, threads: int = 0):
    level = DEFAULT_LEVELS[compression] if level is None else level
    if compression == "zstd":
        import zstandard  # here, not at module level: loading the handlers must not load it

        return zstandard.ZstdCompressor(level=level, threads=threads).compressobj(size=-1)
    if compression == "gzip":
        return zlib.compressobj(level, zlib.DEFLATED, 31)
    if compression == "none":
        return _Identity()
    raise ValueError(f"unknown compression {compression!r}")


class _ZstdDecompressor:
    """Decompresses a stream of one or more zstd frames."""

    def __init__(self) -> None:
        import zstandard

        self._ctx = zstandard.ZstdDecompressor()
        self._obj = self._ctx.decompressobj()
        self._in_frame = False

    def decompress(self, data: bytes) -> bytes:
        out = []
        while data:
            out.append(self._obj.decompress(data))
            self._in_frame = not self._obj.eof
            if self._obj.eof:
                data = self._obj.unused_data
                self._obj = self._ctx.decompressobj()
            else:
                data = b""
        return b"".join(out)

    def flush(self) -> bytes:
        if self._in_frame:
            raise CorruptArtifact("zstd stream is truncated (incomplete frame)")
        return b""


class _GzipDecompressor:
    def __init__(self) -> None:
        self._obj = zlib.decompressobj(31)

    def decompress(self, data: bytes) -> bytes:
        return self._obj.decompress(data)

    def flush(self) -> bytes:
        out = self._obj.flush()
        if not self._obj.eof:
            raise CorruptArtifact("gzip stream is truncated")
        return out


class _IdentityDecompressor:
    def decompress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def make_decompressor(compression: str):
    if compression == "zstd":
        return _ZstdDecompressor()
    if compression == "gzip":
        return _GzipDecompressor()
    if compression == "none":
        return _IdentityDecompressor()
    raise ValueError(f"unknown compression {compression!r}")


@dataclass
class ArtifactInfo:
    path: Path
    raw_size: int
    size: int
    sha256: str


class ArtifactWriter:
    """A file-like sink (``write``) producing one compressed, optionally encrypted, hashed artifact."""

    def __init__(
        self,
        final_path: Path,
        compression: str = "zstd",
        level: int | None = None,
        encryption_key: bytes | None = None,
        threads: int = 0,
        private: Private = PRIVATE,
    ):
        self.final_path = Path(final_path)
        self.tmp_path = temp_name(self.final_path)
        self._fh: BinaryIO | None = private.open(self.tmp_path)
        self._compressor = make_compressor(compression, level, threads)
        self._encryptor = Encryptor(encryption_key) if encryption_key else None
        self._hash = hashlib.sha256()
        self.raw_size = 0
        self.size = 0
        self.info: ArtifactInfo | None = None

    def _emit(self, data: bytes) -> None:
        if self._encryptor is not None:
            data = self._encryptor.update(data)
        if data:
            self._hash.update(data)
            self.size += len(data)
            assert self._fh is not None
            self._fh.write(data)

    def write(self, data: bytes) -> int:
        self.raw_size += len(data)
        self._emit(self._compressor.compress(data))
        return len(data)

    def copy_from(self, source: BinaryIO, on_chunk: Callable[[], None] | None = None) -> None:
        while chunk := source.read(CHUNK):
            self.write(chunk)
            if on_chunk is not None:
                on_chunk()

    def flush(self) -> None:  # tarfile calls it; nothing to do before finish()
        pass

    def finish(self) -> ArtifactInfo:
        self._emit(self._compressor.flush())
        if self._encryptor is not None:
            tail = self._encryptor.finalize()
            self._hash.update(tail)
            self.size += len(tail)
            assert self._fh is not None
            self._fh.write(tail)
        assert self._fh is not None
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        os.replace(self.tmp_path, self.final_path)
        fsync_dir(self.final_path.parent)
        self.info = ArtifactInfo(self.final_path, self.raw_size, self.size, self._hash.hexdigest())
        return self.info

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> ArtifactWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.info is None:
            self.abort()


def write_atomic(path: Path, data: bytes, private: Private = PRIVATE) -> None:
    """Write a small file (a manifest) under a temporary name, fsync, rename, fsync the directory."""
    tmp = temp_name(path)
    try:
        with private.open(tmp) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class ArtifactReader:
    """Iterate the raw content of an artifact while hashing the stored bytes.

    Iterate ``chunks()``; afterwards ``sha256`` and ``size`` describe the stored file. A decoding
    failure raises ``CorruptArtifact``; with ``keep_going=True`` it is remembered in ``error`` and the
    rest of the file is still hashed (so a verification can report the checksum first).
    """

    def __init__(self, path: Path, compression: str, encryption_key: bytes | None = None, read_size: int = CHUNK):
        self.path = Path(path)
        self.compression = compression
        self._key = encryption_key
        self._read_size = read_size
        self._hash = hashlib.sha256()
        self.size = 0
        self.error: str | None = None

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def chunks(self, keep_going: bool = False) -> Iterator[bytes]:
        import zstandard

        decompressor = make_decompressor(self.compression)
        decryptor = Decryptor(self._key) if self._key else None
        failed = False
        with open(self.path, "rb") as fh:
            while chunk := fh.read(self._read_size):
                self._hash.update(chunk)
                self.size += len(chunk)
                if failed:
                    continue
                try:
                    data = decryptor.update(chunk) if decryptor else chunk
                    out = decompressor.decompress(data) if data else b""
                except (DecryptionError, zstandard.ZstdError, zlib.error, CorruptArtifact) as exc:
                    failed = self._fail(exc, keep_going)
                    continue
                if out:
                    yield out
        if failed:
            return
        try:
            if decryptor:
                decryptor.finalize()
            tail = decompressor.flush()
        except (DecryptionError, zstandard.ZstdError, zlib.error, CorruptArtifact) as exc:
            self._fail(exc, keep_going)
            return
        if tail:
            yield tail

    def _fail(self, exc: Exception, keep_going: bool) -> bool:
        kind = "decryption" if isinstance(exc, DecryptionError) else "decompression"
        self.error = f"{kind} failed: {exc}"
        if not keep_going:
            raise CorruptArtifact(self.error) from None
        return True

    def extract_to(self, target: Path, keep_going: bool = True) -> None:
        """Write the raw content to ``target`` (a scratch file), hashing the stored bytes on the way."""
        with PRIVATE.open(target, "w") as out:
            for chunk in self.chunks(keep_going=keep_going):
                out.write(chunk)


@dataclass(frozen=True)
class DecodedStream:
    """An artifact's raw content decoded on demand instead of into a scratch copy: a verification
    whose tool reads a pipe (``pg_restore`` of a custom-format dump) decodes while the tool reads,
    rather than writing the whole content to disk and reading it back. Each ``chunks()`` decodes
    from the start again; a decoding failure raises ``CorruptArtifact``."""

    path: Path
    compression: str
    key: bytes | None = None

    def chunks(self) -> Iterator[bytes]:
        # small reads: a dump compresses up to ~100x, and a reader that wants only the head (the
        # table of contents) should not wait for 100 MiB decoded from one 1 MiB read; and each
        # decoded chunk is fresh memory the kernel zeroes page by page: 64 KiB reads of pgbench's
        # dump gave 7 MiB chunks and twice the feeding CPU of 16 KiB ones (benchmarks/README.md)
        return ArtifactReader(self.path, self.compression, self.key, read_size=STREAM_READ).chunks()
