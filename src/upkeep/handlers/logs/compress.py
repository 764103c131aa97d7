"""Streaming file compression (gzip via zlib, zstd via ``zstandard``) with bounded memory.

A small API shared by log rotation and, later, backups::

    result = compress_file(src, dst, method="zstd", level=3)
    result.bytes_in, result.bytes_out, result.seconds

``compress_file`` reads ``src`` in 1 MiB blocks and writes ``dst`` through a temporary name in the
same directory (``.<name>.tmp-<random>``), fsyncs it, renames it over ``dst`` and fsyncs the
directory, so a crash never leaves a half-written file under the final name. The copy keeps the
source's mode, mtime/atime and (when permitted) owner. ``src`` itself is never modified or removed:
the caller decides (rotation deletes it once the compressed copy is durable).

Defaults: gzip level 6 (the same as ``gzip -6``), zstd level 3 (the same as ``zstd -3``); zstd
compresses with all cores (``threads=-1``) unless told otherwise. Memory is bounded by the block
size (and zstd's per-thread window), whatever the file's size.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

Method = Literal["gzip", "zstd"]
METHODS: tuple[str, ...] = ("gzip", "zstd")
SUFFIXES: dict[str, str] = {"gzip": ".gz", "zstd": ".zst"}
DEFAULT_LEVELS: dict[str, int] = {"gzip": 6, "zstd": 3}
LEVEL_RANGES: dict[str, tuple[int, int]] = {"gzip": (1, 9), "zstd": (1, 22)}
BLOCK = 1 << 20  # 1 MiB reads: big enough for throughput, small enough for bounded memory


@dataclass(frozen=True)
class CompressResult:
    """What one compression did: ``bytes_in`` read, ``bytes_out`` written, wall ``seconds``."""

    src: Path
    dst: Path
    method: str
    level: int
    bytes_in: int
    bytes_out: int
    seconds: float

    @property
    def ratio(self) -> float:
        return self.bytes_in / self.bytes_out if self.bytes_out else 0.0


def suffix_for(method: str) -> str:
    """The file-name suffix of a method (``.gz`` / ``.zst``)."""
    _check_method(method)
    return SUFFIXES[method]


def resolve_level(method: str, level: int | None) -> int:
    """``level`` checked against the method's range, or the method's default."""
    _check_method(method)
    if level is None:
        return DEFAULT_LEVELS[method]
    low, high = LEVEL_RANGES[method]
    if not low <= level <= high:
        raise ValueError(f"{method} compression level must be between {low} and {high}, got {level}")
    return level


def compress_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    method: str = "zstd",
    level: int | None = None,
    *,
    threads: int = -1,
    fsync: bool = True,
) -> CompressResult:
    """Compress ``src`` into ``dst`` (streaming, atomic rename, fsync, mtime kept). See the module doc."""
    src, dst = Path(src), Path(dst)
    level = resolve_level(method, level)
    started = time.perf_counter()
    st = os.stat(src)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.tmp-", dir=dst.parent)
    tmp = Path(tmp_name)
    try:
        with open(src, "rb") as reader, os.fdopen(fd, "wb") as raw:
            if method == "gzip":
                bytes_in = _gzip_stream(reader, raw, level)
            else:
                bytes_in = _zstd_stream(reader, raw, level, threads, st.st_size)
            raw.flush()
            if fsync:
                os.fsync(raw.fileno())
            bytes_out = raw.tell()
        _copy_metadata(st, tmp)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if fsync:
        fsync_dir(dst.parent)
    return CompressResult(src, dst, method, level, bytes_in, bytes_out, time.perf_counter() - started)


def _gzip_stream(reader: BinaryIO, out: BinaryIO, level: int) -> int:
    # wbits=31: a gzip container (header + CRC32 + size trailer) written by zlib itself.
    comp = zlib.compressobj(level, zlib.DEFLATED, 31, 9)
    total = 0
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    while True:
        n = reader.readinto(buf)
        if not n:
            break
        total += n
        out.write(comp.compress(view[:n]))
    out.write(comp.flush())
    return total


def _zstd_stream(reader: BinaryIO, out: BinaryIO, level: int, threads: int, size: int) -> int:
    import zstandard  # here, not at module level: loading the handlers must not load it

    cctx = zstandard.ZstdCompressor(level=level, threads=threads, write_checksum=True)
    total = 0
    with cctx.stream_writer(out, size=size, closefd=False) as writer:
        buf = bytearray(BLOCK)
        view = memoryview(buf)
        while True:
            n = reader.readinto(buf)
            if not n:
                break
            total += n
            writer.write(view[:n])
    return total


def _copy_metadata(st: os.stat_result, path: Path) -> None:
    os.chmod(path, st.st_mode & 0o7777)
    with contextlib.suppress(PermissionError):
        if os.geteuid() == 0 or st.st_uid == os.geteuid():
            os.chown(path, st.st_uid, st.st_gid)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def method_of(path: str | os.PathLike) -> str | None:
    """``gzip`` / ``zstd`` from a file name's suffix, or None for an uncompressed name."""
    name = os.fspath(path)
    for method, suffix in SUFFIXES.items():
        if name.endswith(suffix):
            return method
    return None


@contextlib.contextmanager
def open_decompressed(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary reader of ``path``'s content, decompressing ``.gz`` / ``.zst`` by suffix (streaming)."""
    method = method_of(path)
    if method == "gzip":
        import gzip

        with gzip.open(path, "rb") as handle:
            yield handle  # type: ignore[misc]
    elif method == "zstd":
        import zstandard

        with open(path, "rb") as raw:
            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            with io.BufferedReader(reader, BLOCK) as handle:  # type: ignore[arg-type]
                yield handle
    else:
        with open(path, "rb") as handle:
            yield handle


def read_all(path: str | os.PathLike) -> bytes:
    """The whole decompressed content (for small files and tests)."""
    with open_decompressed(path) as handle:
        return handle.read()


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown compression method {method!r} (use one of {', '.join(METHODS)})")
