"""The SQLite store's directory on a small tmpfs that fills up mid-run, then gets room again."""

from __future__ import annotations

import errno
import os
import time

import pytest

from faults.harness import Deployment
from support.disks import small_tmpfs

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("faults")]


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB tmpfs (mounting needs root, as CI runs); unmounted afterwards."""
    with small_tmpfs(tmp_path / "disk", "64m", mode="0700") as mount:
        yield mount


def fill(directory) -> int:
    """Write to ``directory`` until the disk is full; the bytes written."""
    written, chunk = 0, b"\0" * 65536
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                written += os.write(fd, chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    return written
                chunk = chunk[: len(chunk) // 2]  # the last few blocks
    finally:
        os.close(fd)


def wait_for_refusal(log, timeout: float = 60) -> None:
    """Keep the disk full until the store has refused a write: the writes of a short outage can
    all land in space SQLite already holds (a WAL that serve's checkpointer keeps resetting reuses
    its file from the start), and then the test would have injected no fault."""
    deadline = time.monotonic() + timeout
    while "full" not in log.read_text():
        assert time.monotonic() < deadline, f"the full disk refused no write in {timeout:g} s"
        time.sleep(0.1)


def test_a_full_disk_under_the_sqlite_store_loses_and_doubles_nothing(tmp_path, small_disk, outage):
    dep = Deployment(tmp_path, f"sqlite:///{small_disk / 'upkeep.db'}")
    dep.write_tasks()
    try:
        dep.start_all()
        dep.wait_for_line("end", timeout=90)
        dep.wait_for_line("start", after=dep.count("start"))  # mid-run
        assert fill(small_disk) > 0
        time.sleep(outage)
        wait_for_refusal(tmp_path / "serve.log")
        (small_disk / "filler").unlink()
        dep.wait_for_line("end", after=dep.count("end") + 1, timeout=60)
        dep.disable()
        dep.drain()
        dep.assert_invariants()
    finally:
        dep.stop_all()
