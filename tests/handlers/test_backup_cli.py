"""The `upkeep backups` sub-app: list/show read the catalog; verify/restore go through run_task_now."""

from __future__ import annotations

import json
import sqlite3

from typer.testing import CliRunner

from support.contexts import run_handler
from upkeep.cli.backups import backups_app, wire


def test_list_show_and_run_requests(sqlite_store, tmp_path):
    db = tmp_path / "a.db"
    sqlite3.connect(db).execute("create table t(x)").connection.commit()
    made = run_handler(sqlite_store, "backup.create", {"source": {"type": "sqlite", "path": str(db)},
                                                      "destination": str(tmp_path / "b")}, data_dir=tmp_path)
    calls = []
    wire(lambda: sqlite_store, lambda *args: calls.append(args) or 0)
    runner = CliRunner()
    listed = runner.invoke(backups_app, ["list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert rows[0]["id"] == made["backup_id"] and rows[0]["status"] == "created" and rows[0]["sha256"] == made["sha256"]
    table = runner.invoke(backups_app, ["list"], terminal_width=200)
    assert made["backup_id"][:10] in table.output and "created" in table.output
    shown = runner.invoke(backups_app, ["show", made["backup_id"]])
    assert shown.exit_code == 0 and made["sha256"] in shown.output
    missing = runner.invoke(backups_app, ["show", "nope"])
    assert missing.exit_code == 2 and "no backup 'nope'" in missing.output
    assert runner.invoke(backups_app, ["verify", "all", "--source", "a"]).exit_code == 0
    assert runner.invoke(backups_app, ["restore", made["backup_id"], "--target-path", "/tmp/x", "--yes"]).exit_code == 0
    assert calls == [("backup.verify", {"which": "all", "source": "a"}, False, False),
                     ("backup.restore", {"backup": made["backup_id"], "target_path": "/tmp/x"}, False, True)]
