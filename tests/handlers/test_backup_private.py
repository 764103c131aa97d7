"""Backups are private: upkeep's own key files never go into one, and a destination's group: shares
them with that group (0640/0750) and no one else."""

from __future__ import annotations

import grp
import json
import os
import sqlite3
import stat
import tarfile
from pathlib import Path

from support.contexts import events_of, run_handler
from upkeep.handlers.backup.stream import ArtifactReader
from upkeep.private import PRIVATE


def _members(path: Path, tmp_path: Path) -> list[str]:
    raw = tmp_path / "raw.tar"
    ArtifactReader(path, "zstd").extract_to(raw)
    with tarfile.open(raw) as tar:
        return tar.getnames()


def test_a_files_backup_of_the_data_directory_leaves_out_the_key_files_and_says_so(sqlite_store, tmp_path):
    """Reproduction: a files backup of .upkeep/ copied admin.key and session.key into a 0644 archive."""
    data_dir = PRIVATE.mkdir(tmp_path / ".upkeep")
    PRIVATE.write(data_dir / "admin.key", "upk_secret_admin_token\n")
    PRIVATE.write(data_dir / "session.key", "f00d" * 16 + "\n")
    (data_dir / "notes.txt").write_text("kept")

    result = run_handler(
        sqlite_store,
        "backup.create",
        {"source": {"type": "files", "paths": [str(data_dir)], "name": "state"}, "destination": str(tmp_path / "b")},
        data_dir=data_dir,
    )

    names = _members(Path(result["path"]), tmp_path)
    assert ".upkeep/notes.txt" in names
    assert not [n for n in names if n.endswith(("admin.key", "session.key"))], names
    manifest = json.loads(Path(result["path"] + ".manifest.json").read_text())
    assert sorted(Path(p).name for p in manifest["excluded_key_files"]) == ["admin.key", "session.key"]
    said = [e for e in events_of(sqlite_store, result["_run_id"]) if e["event"] == "key_files_excluded"]
    assert said and said[0]["level"] == "warning" and "never carries them" in said[0]["message"]
    assert stat.S_IMODE(os.stat(result["path"]).st_mode) == 0o600


def test_a_destination_group_shares_backups_with_that_group_only(sqlite_store, tmp_path):
    group = grp.getgrgid(os.getgid()).gr_name
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x)")
    old = os.umask(0o002)  # a umask that would make them group-writable
    try:
        result = run_handler(
            sqlite_store,
            "backup.create",
            {"source": {"type": "sqlite", "path": str(db), "name": "app"}, "destination": "shared"},
            targets={"backups": {"shared": {"path": str(tmp_path / "shared"), "group": group}}},
            data_dir=tmp_path,
        )
    finally:
        os.umask(old)
    artifact = Path(result["path"])
    for path, mode in (
        (tmp_path / "shared", 0o750),
        (artifact.parent, 0o750),
        (artifact, 0o640),
        (Path(str(artifact) + ".manifest.json"), 0o640),
    ):
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == mode, (path, oct(info.st_mode))
        assert info.st_gid == os.getgid()
