"""`upkeep backups`: list/show read the catalog; verify/restore run the real handlers in the foreground."""

from __future__ import annotations

import hashlib
import json
import sqlite3

from typer.testing import CliRunner

from support.contexts import run_handler
from upkeep.cli.main import app
from upkeep.settings import Settings
from upkeep.store.db import Store


def test_list_show_verify_and_a_dry_run_restore_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("UPKEEP_CONFIG", str(tmp_path / "upkeep.yaml"))
    settings = Settings(config=tmp_path / "upkeep.yaml")
    store = Store(settings.resolved_database_url)
    store.upgrade()
    db = tmp_path / "a.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table t(x)")
        conn.executemany("insert into t values (?)", [(i,) for i in range(100)])
    made = run_handler(
        store,
        "backup.create",
        {"source": {"type": "sqlite", "path": str(db), "name": "a"}, "destination": str(tmp_path / "b")},
        data_dir=tmp_path,
    )
    runner = CliRunner()

    listed = runner.invoke(app, ["backups", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert rows[0]["id"] == made["backup_id"] and rows[0]["status"] == "created" and rows[0]["sha256"] == made["sha256"]
    shown = runner.invoke(app, ["backups", "show", made["backup_id"]])
    assert shown.exit_code == 0 and made["sha256"] in shown.output
    missing = runner.invoke(app, ["backups", "show", "nope"])
    assert missing.exit_code == 2 and "no backup 'nope'" in missing.output

    verified = runner.invoke(app, ["backups", "verify", "all", "--source", "a"])
    assert verified.exit_code == 0, verified.output
    assert json.loads(runner.invoke(app, ["backups", "list", "--json"]).output)[0]["status"] == "verified"

    before = hashlib.sha256(db.read_bytes()).hexdigest()
    planned = runner.invoke(
        app, ["backups", "restore", made["backup_id"], "--source", "a", "--target-path", str(db), "--dry-run"]
    )
    assert planned.exit_code == 0, planned.output
    assert "dry run" in planned.output.lower()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    refused = runner.invoke(app, ["backups", "restore", made["backup_id"], "--source", "a", "--target-path", str(db)])
    assert refused.exit_code != 0 and "confirmation" in refused.output
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    store.dispose()
