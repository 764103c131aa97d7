"""logs.cleanup: rotated logs past retention go, active and open files never do; emergency mode; dry-run."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from support.contexts import events_of, run_handler
from upkeep.clock import FakeClock
from upkeep.errors import ConfigError
from upkeep.handlers.logs.rotation import looks_rotated

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
DAY = 86400

ROTATED_OLD = [
    "api-out__2026-11-01_10-00-00.log",  # the seed's pm2-logrotate names
    "app.log-20261101",
    "app.log-20261102.1",
    "app.log-20261103.gz",
    "worker.log.2.zst",
    "syslog.3",
]
ACTIVE = ["api-out.log", "app.log", "worker.log", "notes.txt"]


def snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        out[str(path.relative_to(root))] = (digest, st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns)
    return out


def make(directory: Path, name: str, age_days: float, size: int = 10) -> Path:
    path = directory / name
    path.write_bytes(b"x" * size)
    when = NOW.timestamp() - age_days * DAY
    os.utime(path, (when, when))
    return path


@pytest.fixture
def logdir(tmp_path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    for name in ROTATED_OLD:
        make(d, name, age_days=20)
    for name in ACTIVE:
        make(d, name, age_days=30)  # an idle active file is old too: still never deleted
    make(d, "app.log-20261122.gz", age_days=1.5)  # recent rotated
    make(d, "api-out__2026-11-23_05-00-00.log", age_days=0.05)
    return d


def cleanup(store, config, **kw):
    return run_handler(store, "logs.cleanup", config, clock=FakeClock(NOW), **kw)


def test_rotated_names_are_recognised_and_active_names_are_not():
    for name in [*ROTATED_OLD, "app-2026-11-22.log", "app.log.2026-11-22", "app.log-2026112204", "x.log.xz"]:
        assert looks_rotated(name), name
    for name in [*ACTIVE, "api-error.log", "app.log.tmp", "access_log", "app.json"]:
        assert not looks_rotated(name), name


def test_deletes_rotated_logs_older_than_max_age_and_reports_sizes(sqlite_store, logdir):
    result = cleanup(sqlite_store, {"directories": [str(logdir)]})
    assert sorted(Path(d["path"]).name for d in result["deleted"]) == sorted(ROTATED_OLD)
    assert sorted(p.name for p in logdir.iterdir()) == sorted(
        [*ACTIVE, "app.log-20261122.gz", "api-out__2026-11-23_05-00-00.log"]
    )
    (report,) = result["directories"]
    assert report["files"] == len(ROTATED_OLD) + len(ACTIVE) + 2
    assert report["rotated_files"] == len(ROTATED_OLD) + 2 and report["active_bytes"] == 10 * len(ACTIVE)
    assert report["deleted"] == len(ROTATED_OLD) and result["freed_bytes"] == 10 * len(ROTATED_OLD)
    assert report["emergency"] is False and result["outcome"] == "ok"


def test_large_files_are_reported_with_a_warning(sqlite_store, logdir):
    make(logdir, "api-out.log", age_days=0, size=2048)
    result = cleanup(sqlite_store, {"directories": [str(logdir)], "large_file_bytes": "1K"})
    assert [Path(f["path"]).name for f in result["large_files"]] == ["api-out.log"]
    assert result["outcome"] == "warning" and "MiB" in result["findings"][0]["message"]


def test_emergency_mode_deletes_every_rotated_file_but_never_active_or_open_ones(sqlite_store, logdir):
    held = logdir / "app.log-20261122.gz"
    with open(held, "rb"):  # a process (this one) still holds a rotated file open
        result = cleanup(
            sqlite_store,
            {"directories": [str(logdir)], "emergency_disk_percent": 0.01, "emergency_max_age_days": 0},
        )
    assert result["directories"][0]["emergency"] is True
    assert [Path(s["path"]).name for s in result["skipped_open"]] == ["app.log-20261122.gz"]
    assert sorted(p.name for p in logdir.iterdir()) == sorted([*ACTIVE, "app.log-20261122.gz"])
    # the disk is still "full" for a 0.01% threshold: critical, with the figures
    assert result["outcome"] == "critical" and "emergency retention 0 days" in result["findings"][0]["message"]


def test_emergency_retention_applies_only_over_the_threshold(sqlite_store, logdir):
    calm = cleanup(sqlite_store, {"directories": [str(logdir)], "max_age_days": 30, "emergency_disk_percent": 100})
    assert calm["deleted"] == []
    tight = cleanup(sqlite_store, {"directories": [str(logdir)], "max_age_days": 30, "emergency_disk_percent": 0.01})
    assert len(tight["deleted"]) == len(ROTATED_OLD) + 1  # emergency default: older than 1 day


def test_dry_run_lists_deletions_and_leaves_the_tree_byte_for_byte_unchanged(sqlite_store, logdir):
    before = snapshot(logdir)
    with open(logdir / "syslog.3", "rb"):  # the plan already skips files held open
        result = cleanup(sqlite_store, {"directories": [str(logdir)], "emergency_disk_percent": 0.01}, dry_run=True)
    assert snapshot(logdir) == before
    assert [Path(s["path"]).name for s in result["skipped_open"]] == ["syslog.3"]
    assert len(result["deleted"]) == len(ROTATED_OLD) and result["summary"].startswith("dry run: would delete")
    plans = [e for e in events_of(sqlite_store, result["_run_id"]) if e["event"] == "plan"]
    assert len(plans) == len(result["deleted"]) and all(e["message"].startswith("would delete") for e in plans)


def test_directories_default_to_the_log_targets_and_errors_are_clear(sqlite_store, logdir):
    targets = {"logs": {"api": {"paths": [str(logdir / "*.log")]}}}
    result = cleanup(sqlite_store, {}, targets=targets)
    assert [d["path"] for d in result["directories"]] == [str(logdir)] and len(result["deleted"]) == 6
    with pytest.raises(ConfigError, match="no directories"):
        cleanup(sqlite_store, {})
    missing = cleanup(sqlite_store, {"directories": [str(logdir / "nope")]})
    assert missing["outcome"] == "warning" and missing["findings"][0]["message"] == "directory does not exist"
