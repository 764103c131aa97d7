"""The streaming compression helper shared by rotation (and later backups)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from upkeep.handlers.logs.compress import compress_file, read_all, resolve_level, suffix_for


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "logs" / "app.log-20261122"  # a directory of its own: the test lists it
    path.parent.mkdir()
    # 3 MiB over several read blocks, compressible and not: realistic enough for a round trip
    lines = b"".join(b'{"level":30,"n":%d,"msg":"request completed"}\n' % i for i in range(40_000))
    path.write_bytes(lines + os.urandom(1 << 20))
    path.chmod(0o640)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    return path


@pytest.mark.parametrize("method", ["gzip", "zstd"])
def test_compress_file_round_trips_and_keeps_mode_and_mtime(sample, method):
    original = sample.read_bytes()
    dst = sample.with_name(sample.name + suffix_for(method))
    result = compress_file(sample, dst, method)
    assert result.bytes_in == len(original) and result.bytes_out == dst.stat().st_size
    assert result.level == resolve_level(method, None) and result.ratio > 1
    assert read_all(dst) == original
    assert dst.stat().st_mode & 0o777 == 0o640 and dst.stat().st_mtime == 1_700_000_000
    assert sample.read_bytes() == original  # the source is left to the caller
    assert sorted(p.name for p in sample.parent.iterdir()) == sorted([sample.name, dst.name])  # no temp left


@pytest.mark.parametrize(("method", "tool"), [("gzip", "gzip"), ("zstd", "zstd")])
def test_output_is_readable_by_the_standard_tools(sample, method, tool):
    binary = shutil.which(tool)
    if binary is None:
        pytest.skip(f"{tool} is not installed")
    dst = sample.with_name(sample.name + suffix_for(method))
    compress_file(sample, dst, method, level=1)
    out = subprocess.run([binary, "-dc", str(dst)], capture_output=True, check=True).stdout
    assert out == sample.read_bytes()


def test_bad_level_or_method_is_refused_and_a_failed_write_leaves_no_temp(tmp_path, sample):
    with pytest.raises(ValueError, match="between 1 and 9"):
        compress_file(sample, tmp_path / "x.gz", "gzip", level=12)
    with pytest.raises(ValueError, match="unknown compression method"):
        compress_file(sample, tmp_path / "x.xz", "xz")
    with pytest.raises(FileNotFoundError):
        compress_file(tmp_path / "missing", tmp_path / "missing.gz", "gzip")
    assert not list(tmp_path.glob(".*tmp-*"))
