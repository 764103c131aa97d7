"""A small tmpfs for the full-disk tests (mounting needs root, as CI runs), unmounted afterwards."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.servers import in_ci


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str, *, mode: str | None = None) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (``16m``) at ``where`` (created), unmount it after."""
    if os.geteuid() != 0:
        if in_ci():
            pytest.fail("CI=true: a full-disk test needs root to mount a tmpfs")
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir()
    options = f"size={size}" + (f",mode={mode}" if mode else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "--lazy", str(where)], check=False)
