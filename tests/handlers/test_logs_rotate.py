"""logs.rotate: triggers from rotation state, collision-free names, compression, retention, dry-run."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from support.contexts import events_of, run_handler
from upkeep.clock import FakeClock
from upkeep.errors import ConfigError
from upkeep.handlers.logs.compress import read_all
from upkeep.store.records import Records

DAY = 86400
START = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with its content hash and full stat (mode, owner, size, mtime)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            out[str(path.relative_to(root))] = (digest, st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns)
    return out


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def rotate(store, clock, rules, **kw):
    return run_handler(store, "logs.rotate", {"rules": rules, "timezone": "UTC", **kw}, clock=clock)


@pytest.fixture
def logdir(tmp_path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    return d


def test_daily_trigger_uses_rotation_state_not_mtime(sqlite_store, logdir):
    log = logdir / "app.log"
    log.write_text("day one\n")
    os.utime(log, (0, 0))  # an ancient mtime must not trigger anything
    log.chmod(0o640)
    clock = FakeClock(START)
    rule = [{"paths": [str(logdir / "*.log")], "frequency": "daily", "open_wait_seconds": 0}]

    first = rotate(sqlite_store, clock, rule)
    assert first["rotated"] == 0 and "first seen" in first["files"][0]["reason"]
    assert Records(sqlite_store, "logs.rotate").get(str(log))["last_rotated"] == START.isoformat()

    clock.advance(3600 * 20)  # 23:00 the same day: not due
    assert rotate(sqlite_store, clock, rule)["rotated"] == 0

    clock.advance(3600 * 2)  # 01:00 the next day
    result = rotate(sqlite_store, clock, rule)
    assert result["rotated"] == 1 and result["compressed"] == 1
    assert names(logdir) == ["app.log", "app.log-20261123.gz"]
    assert read_all(logdir / "app.log-20261123.gz") == b"day one\n"
    assert log.read_bytes() == b"" and log.stat().st_mode & 0o777 == 0o640
    assert os.stat(logdir / "app.log-20261123.gz").st_mtime == 0  # compression keeps the mtime
    assert Records(sqlite_store, "logs.rotate").get(str(log))["last_rotated"] == clock.now().isoformat()


def test_size_trigger_accepts_units_and_minsize_gates_time_trigger(sqlite_store, logdir):
    big, small = logdir / "big.log", logdir / "small.log"
    big.write_bytes(b"x" * 2048)
    small.write_bytes(b"y" * 100)
    clock = FakeClock(START)
    by_size = [{"paths": [str(big), str(small)], "size": "2k", "compress": False}]
    result = rotate(sqlite_store, clock, by_size)
    assert [f["rotated"] for f in result["files"]] == [True, False]
    assert (logdir / "big.log-20261122").read_bytes() == b"x" * 2048

    gated = [{"paths": [str(small)], "frequency": "daily", "minsize": "1K", "compress": False}]
    rotate(sqlite_store, clock, gated)  # first sighting
    clock.advance(DAY)
    assert "minsize" in rotate(sqlite_store, clock, gated)["files"][0]["reason"]
    small.write_bytes(b"y" * 1024)
    assert rotate(sqlite_store, clock, gated)["rotated"] == 1


def test_notifempty_skips_empty_and_missing_files_warn_unless_missingok(sqlite_store, logdir):
    (logdir / "empty.log").write_bytes(b"")
    clock = FakeClock(START)
    result = rotate(sqlite_store, clock, [{"paths": [str(logdir / "empty.log")]}], force=True)
    assert result["rotated"] == 0 and result["outcome"] == "ok"
    assert names(logdir) == ["empty.log"]

    missing = rotate(sqlite_store, clock, [{"paths": [str(logdir / "gone*.log")]}], force=True)
    assert missing["outcome"] == "warning" and "missingok" in missing["findings"][0]["message"]
    ok = rotate(sqlite_store, clock, [{"paths": [str(logdir / "gone*.log")], "missingok": True}], force=True)
    assert ok["outcome"] == "ok" and ok["findings"] == []

    ifempty = rotate(sqlite_store, clock, [{"paths": [str(logdir / "empty.log")], "notifempty": False}], force=True)
    assert ifempty["rotated"] == 1


def test_same_day_rotations_get_distinct_names_and_never_overwrite(sqlite_store, logdir):
    log = logdir / "app.log"
    clock = FakeClock(START)
    rule = [{"paths": [str(log)], "compress_method": "zstd", "delaycompress": True, "open_wait_seconds": 0}]
    for n in range(4):
        log.write_text(f"batch {n}\n")
        rotate(sqlite_store, clock, rule, force=True)
        clock.advance(60)
    assert names(logdir) == [
        "app.log",
        "app.log-20261122.1.zst",
        "app.log-20261122.2.zst",
        "app.log-20261122.3",  # delaycompress: the newest stays plain
        "app.log-20261122.zst",
    ]
    contents = {read_all(p) for p in logdir.glob("app.log-*")}
    assert contents == {f"batch {n}\n".encode() for n in range(4)}


def test_rotate_count_and_maxage_prune_the_oldest_versions(sqlite_store, logdir):
    log = logdir / "app.log"
    clock = FakeClock(START)
    rule = {"paths": [str(log)], "rotate": 3, "open_wait_seconds": 0}
    for day in range(5):
        log.write_text(f"day {day}\n")
        os.utime(log, (clock.now().timestamp(),) * 2)
        rotate(sqlite_store, clock, [rule], force=True)
        clock.advance(DAY)
    assert names(logdir) == ["app.log", "app.log-20261124.gz", "app.log-20261125.gz", "app.log-20261126.gz"]

    # maxage: versions whose mtime is older than 1.5 days go, even within the count
    result = rotate(sqlite_store, clock, [{**rule, "maxage": 1.5, "frequency": "monthly"}])
    assert result["deleted"] == 2
    assert names(logdir) == ["app.log", "app.log-20261126.gz"]


def test_numeric_scheme_shifts_versions_like_logrotate(sqlite_store, logdir):
    log = logdir / "app.log"
    clock = FakeClock(START)
    rule = [{"paths": [str(log)], "dateext": False, "rotate": 2, "delaycompress": True, "open_wait_seconds": 0}]
    for n in range(3):
        log.write_text(f"v{n}\n")
        rotate(sqlite_store, clock, rule, force=True)
    assert names(logdir) == ["app.log", "app.log.1", "app.log.2.gz"]
    assert (logdir / "app.log.1").read_text() == "v2\n"
    assert read_all(logdir / "app.log.2.gz") == b"v1\n"


def test_rotated_file_still_open_is_left_uncompressed_until_released(sqlite_store, logdir):
    log = logdir / "app.log"
    log.write_text("first\n")
    clock = FakeClock(START)
    rule = [{"paths": [str(log)], "open_wait_seconds": 0.1}]
    writer = open(log, "a")  # noqa: SIM115 - a writer that never reopens its file
    try:
        result = rotate(sqlite_store, clock, rule, force=True)
        assert result["compressed"] == 0
        assert result["left_uncompressed"][0]["path"].endswith("app.log-20261122")
        assert "still open by pid" in result["left_uncompressed"][0]["reason"]
        writer.write("late line\n")
        writer.flush()
    finally:
        writer.close()
    clock.advance(3600)
    again = rotate(sqlite_store, clock, rule)  # not due, but the pending compression happens
    assert again["rotated"] == 0 and again["compressed"] == 1
    assert read_all(logdir / "app.log-20261122.gz") == b"first\nlate line\n"


def test_copytruncate_copies_then_empties_in_place(sqlite_store, logdir):
    log = logdir / "app.log"
    log.write_text("a\nb\n")
    inode = log.stat().st_ino
    result = rotate(sqlite_store, FakeClock(START), [{"paths": [str(log)], "mode": "copytruncate"}], force=True)
    assert result["files"][0]["copied"] == 4 and result["bytes_possibly_lost"] == 0
    assert log.stat().st_ino == inode and log.read_bytes() == b""
    assert read_all(logdir / "app.log-20261122.gz") == b"a\nb\n"


def test_postrotate_command_runs_once_per_rule(sqlite_store, logdir, tmp_path):
    for name in ("a.log", "b.log"):
        (logdir / name).write_text("x\n")
    marker = tmp_path / "marker"
    rule = {"paths": [str(logdir / "*.log")], "postrotate": ["sh", "-c", f"echo ran >> {marker}"]}
    result = rotate(sqlite_store, FakeClock(START), [rule], force=True)
    assert result["rotated"] == 2 and marker.read_text() == "ran\n"
    failing = {"paths": [str(logdir / "a.log")], "postrotate": ["false"], "notifempty": False}
    assert rotate(sqlite_store, FakeClock(START), [failing], force=True)["outcome"] == "critical"


def test_dry_run_lists_every_action_and_leaves_tree_byte_for_byte_unchanged(sqlite_store, tmp_path, logdir):
    log = logdir / "app.log"
    clock = FakeClock(START)
    rule = {"paths": [str(log)], "rotate": 2, "delaycompress": True, "open_wait_seconds": 0}
    for day in range(3):
        log.write_text(f"day {day}\n")
        rotate(sqlite_store, clock, [rule], force=True)
        clock.advance(DAY)
    log.write_text("today\n")
    (logdir / "run").mkdir()
    pidfile = logdir / "run" / "app.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    state_before = Records(sqlite_store, "logs.rotate").items()
    before = snapshot(logdir)

    result = run_handler(
        sqlite_store,
        "logs.rotate",
        {"rules": [{**rule, "pidfile": str(pidfile), "signal": "USR2"}], "timezone": "UTC", "force": True},
        clock=clock,
        dry_run=True,
    )
    assert snapshot(logdir) == before
    assert Records(sqlite_store, "logs.rotate").items() == state_before
    planned = [(a["action"], Path(a["path"]).name) for a in result["actions"]]
    assert planned == [
        ("rename", "app.log"),
        ("create", "app.log"),
        ("signal", "app.pid"),
        ("compress", "app.log-20261124"),
        ("delete", "app.log-20261123.gz"),
    ]
    assert all(not a["done"] for a in result["actions"])
    assert result["summary"].startswith("dry run: would rotate 1 of 1")
    plans = [e for e in events_of(sqlite_store, result["_run_id"]) if e["event"] == "plan"]
    assert len(plans) == 5 and plans[0]["message"].startswith("would rename")


def test_rules_come_from_inventory_targets_and_bad_config_is_one_clear_error(sqlite_store, logdir):
    (logdir / "api.log").write_text("x\n")
    for old in ("api.log-20261120.gz", "api.log.1", "api__2026-11-01_10-00-00.log"):
        (logdir / old).write_text("old\n")
    rotation = {"rotate": 5, "compress_method": "zstd"}
    targets = {"logs": {"api": {"paths": [str(logdir / "api*")], "format": "pino", "rotation": rotation}}}
    result = run_handler(sqlite_store, "logs.rotate", {"force": True}, targets=targets, clock=FakeClock(START))
    assert result["rules"] == ["api"] and [f["path"] for f in result["files"]] == [str(logdir / "api.log")]
    assert (logdir / "api.log-20261122.zst").exists()

    bad = {"logs": {"api": {"paths": [str(logdir / "api.log")], "rotation": {"size": "lots"}}}}
    with pytest.raises(ConfigError, match=r"targets\.logs\.api\.rotation\.size"):
        run_handler(sqlite_store, "logs.rotate", {}, targets=bad)
    typo = {"logs": {"api": {"paths": [str(logdir / "api.log")], "rotation": {"rotat": 3}}}}
    with pytest.raises(ConfigError, match="rotat"):
        run_handler(sqlite_store, "logs.rotate", {}, targets=typo)
    with pytest.raises(ConfigError, match="no rules"):
        run_handler(sqlite_store, "logs.rotate", {})
    with pytest.raises(ConfigError, match="compression level"):
        run_handler(sqlite_store, "logs.rotate", {"rules": [{"paths": ["/x"], "compress_level": 12}]})
    with pytest.raises(ConfigError, match="relative"):
        run_handler(sqlite_store, "logs.rotate", {"rules": [{"paths": ["x.log"]}]})


def test_weekly_and_monthly_follow_logrotate_calendar_rules():
    from upkeep.handlers.logs.rotation import due_by_frequency

    sat = datetime(2026, 11, 21, tzinfo=UTC)
    assert due_by_frequency("weekly", sat, sat + timedelta(days=1))  # Sunday starts a new week
    assert not due_by_frequency("weekly", sat - timedelta(days=5), sat)  # Monday -> Saturday
    assert due_by_frequency("weekly", sat - timedelta(days=7), sat)
    assert due_by_frequency("monthly", datetime(2026, 10, 31, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    assert not due_by_frequency("monthly", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC))
