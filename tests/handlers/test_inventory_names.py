"""Run overrides that became host-scoped keep working by inventory name: each handler resolves the
name to what the inventory entry says."""

from __future__ import annotations

import sqlite3

import pytest

from support.contexts import run_handler
from upkeep.errors import ConfigError


def test_system_resources_paths_by_disk_target_name(sqlite_store, tmp_path):
    targets = {"services": {"data": {"type": "disk", "path": str(tmp_path)}, "api": {"type": "tcp", "port": 9}}}
    result = run_handler(sqlite_store, "system.resources", {"paths": ["data", "/"]}, targets=targets)
    assert [d["path"] for d in result["disks"]] == [str(tmp_path), "/"]
    with pytest.raises(ConfigError, match="not a disk target"):
        run_handler(sqlite_store, "system.resources", {"paths": ["api"]}, targets=targets)


def test_config_audit_paths_by_env_files_name(sqlite_store, tmp_path):
    env = tmp_path / "app.env"
    env.write_text("DATABASE_URL=postgresql://app@db/app\n")
    env.chmod(0o600)
    targets = {"env_files": {"app": {"path": str(env), "required_keys": ["SECRET_KEY"]}}}
    result = run_handler(
        sqlite_store,
        "config.audit",
        {"paths": ["app"], "check_git": False, "validate_upkeep_config": False},
        targets=targets,
    )
    assert [(f["target"], f["path"]) for f in result["files"]] == [("app", str(env))]
    assert any(f["check"] == "missing_required" and f["key"] == "SECRET_KEY" for f in result["findings"])


def test_backup_restore_target_path_by_files_or_sqlite_target_name(sqlite_store, tmp_path):
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x)")
    made = run_handler(
        sqlite_store,
        "backup.create",
        {"source": {"type": "sqlite", "path": str(db), "name": "app"}, "destination": str(tmp_path / "b")},
        data_dir=tmp_path,
    )
    copy = tmp_path / "copy.db"
    targets = {"databases": {"copy": {"type": "sqlite", "path": str(copy)}}, "files": {"two": {"paths": ["/a", "/b"]}}}
    plan = run_handler(
        sqlite_store,
        "backup.restore",
        {"source": "app", "backup": made["backup_id"], "allow_unverified": True, "target_path": "copy"},
        targets=targets,
        dry_run=True,
    )
    assert plan["plan"]["target_path"] == str(copy)
    with pytest.raises(ConfigError, match="not one file or directory"):
        run_handler(
            sqlite_store,
            "backup.restore",
            {"source": "app", "backup": made["backup_id"], "allow_unverified": True, "target_path": "two"},
            targets=targets,
            dry_run=True,
        )
