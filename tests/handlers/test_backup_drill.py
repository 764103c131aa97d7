"""backup.drill: RTO and RPO recorded, fallback past a corrupted newest backup, the trend and estimates."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from support.contexts import events_of, run_handler
from upkeep.handlers.backup import catalog, drills
from upkeep.handlers.backup.sources.postgres_tools import wait_for_drops
from upkeep.reports.build import backups_section
from upkeep.reports.render import render_markdown
from upkeep.store.records import Records


class _Services:
    def __init__(self, store):
        self.store = store

    def records(self, domain: str) -> Records:
        return Records(self.store, domain)


@pytest.mark.postgres
def test_a_drill_records_rto_and_rpo_and_falls_back_past_a_corrupted_newest_backup(pg_server, sqlite_store, tmp_path):
    name = pg_server.create_database()
    pg_server.psql(
        "create table items(id int primary key, v text); "
        "insert into items select g, 'v' from generate_series(1, 200) g",
        name,
    )
    targets = {"databases": {"shop": {"url": pg_server.dsn(name), "assertions": ["select count(*) >= 200 from items"]}}}
    cfg = {"source": "shop", "destination": str(tmp_path / "b")}
    older = run_handler(sqlite_store, "backup.create", cfg, targets=targets, data_dir=tmp_path)
    pg_server.psql("insert into items values (201, 'later')", name)
    newest = run_handler(sqlite_store, "backup.create", cfg, targets=targets, data_dir=tmp_path)
    verified = run_handler(
        sqlite_store, "backup.verify", {"source": "shop", "which": "all"}, targets=targets, data_dir=tmp_path
    )
    assert verified["outcome"] == "ok", verified["summary"]
    artifact = Path(newest["path"])
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0x40
    artifact.write_bytes(bytes(data))

    drill_cfg = {
        "sources": ["shop"],
        "rto_objective": "30m",
        "rpo_objective": "26h",
        "checks": [{"type": "postgres", "url": "{scratch_url}", "name": "scratch-db"}],
    }
    out = run_handler(sqlite_store, "backup.drill", drill_cfg, targets=targets, data_dir=tmp_path)
    assert out["outcome"] == "warning", out["summary"]  # objectives met, but only by falling back
    result = out["drills"][0]
    assert result["ok"] and result["met"] and result["backup_id"] == older["backup_id"]
    assert [f["id"] for f in result["fell_back_from"]] == [newest["backup_id"]]
    assert "checksum mismatch" in result["fell_back_from"][0]["reason"]
    assert f"fell back past {newest['backup_id']}" in out["summary"]
    assert result["rto_s"] > 0 and result["rto_s"] >= result["restore_s"] and result["rpo_s"] >= 0
    checks = {c["check"]: c for c in result["checks"]}
    assert checks["assertion"]["ok"] and checks["health"]["ok"] and "scratch-db: ok" in checks["health"]["message"]
    assert any(e["event"] == "drill_fallback" for e in events_of(sqlite_store, out["_run_id"]))
    records = Records(sqlite_store, "backup")
    assert catalog.find(records, newest["backup_id"])["status"] == "broken"
    wait_for_drops(60)  # the scratch database is dropped after the drill's checks, not waited for
    assert pg_server.psql("select count(*) from pg_database where datname like 'upkeep_verify_%'") == "0"

    strict = run_handler(
        sqlite_store, "backup.drill", {**drill_cfg, "rpo_objective": "0.001s"}, targets=targets, data_dir=tmp_path
    )
    assert strict["outcome"] == "critical" and not strict["drills"][0]["met"]
    assert "objective" in strict["summary"]

    history = drills.history(Records(sqlite_store, drills.DOMAIN), "shop")
    assert [h["backup_id"] for h in history] == [older["backup_id"], older["backup_id"]]
    estimate = drills.estimate(records, Records(sqlite_store, drills.DOMAIN), "shop")
    assert estimate["basis"] == "drills" and estimate["drills"] == 2 and estimate["seconds"] > 0
    assert estimate["low_seconds"] <= estimate["seconds"] <= estimate["high_seconds"]
    section = backups_section(_Services(sqlite_store), drills_since(history), drills_now(history))
    assert section["drills"][0]["source"] == "shop" and len(section["drills"][0]["points"]) == 2
    pg_server.drop_database(name)


def drills_since(history):
    from datetime import datetime, timedelta

    return datetime.fromisoformat(history[0]["at"]) - timedelta(days=1)


def drills_now(history):
    from datetime import datetime

    return datetime.fromisoformat(history[-1]["at"])


def test_a_drill_with_nothing_verified_is_critical_and_says_so(sqlite_store, tmp_path):
    db = tmp_path / "a.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table t(x)")
    source = {"type": "sqlite", "path": str(db), "name": "a"}
    run_handler(
        sqlite_store, "backup.create", {"source": source, "destination": str(tmp_path / "b")}, data_dir=tmp_path
    )
    out = run_handler(sqlite_store, "backup.drill", {"sources": ["a"]}, data_dir=tmp_path)
    assert out["outcome"] == "critical" and out["summary"] == "a: nothing restorable"


def test_drill_and_estimate_through_the_cli_and_the_report(tmp_path, monkeypatch):
    from upkeep.cli.main import app
    from upkeep.settings import Settings
    from upkeep.store.db import Store

    monkeypatch.setenv("UPKEEP_CONFIG", str(tmp_path / "upkeep.yaml"))
    store = Store(Settings(config=tmp_path / "upkeep.yaml").resolved_database_url)
    store.upgrade()
    db = tmp_path / "a.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table t(x)")
        conn.executemany("insert into t values (?)", [(i,) for i in range(5000)])
    source = {"type": "sqlite", "path": str(db), "name": "a"}
    run_handler(store, "backup.create", {"source": source, "destination": str(tmp_path / "b")}, data_dir=tmp_path)
    runner = CliRunner()
    none_yet = runner.invoke(app, ["backups", "estimate", "a", "--json"])
    assert none_yet.exit_code == 0 and json.loads(none_yet.output)["basis"] is None
    assert runner.invoke(app, ["backups", "verify", "latest", "--source", "a"]).exit_code == 0
    from_verify = json.loads(runner.invoke(app, ["backups", "estimate", "a", "--json"]).output)
    assert from_verify["basis"] == "verifications" and from_verify["seconds"] >= 0
    drilled = runner.invoke(app, ["backups", "drill", "a", "--rto", "30m", "--rpo", "26h"])
    assert drilled.exit_code == 0, drilled.output
    assert "RTO" in drilled.output
    estimated = runner.invoke(app, ["backups", "estimate", "a"])
    assert estimated.exit_code == 0 and "from 1 drills" in estimated.output
    assert runner.invoke(app, ["backups", "estimate", "nope"]).exit_code == 2
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    section = backups_section(_Services(store), now - timedelta(days=7), now)
    markdown = render_markdown(
        {
            "period": "week",
            "since": (now - timedelta(days=7)).isoformat(),
            "until": now.isoformat(),
            "status": "ok",
            "runs": {"total": 0, "by_status": {}, "by_outcome": {}, "tasks": [], "failed": []},
            "health": {"queue_depth": {}, "failing_tasks": [], "overdue_tasks": [], "targets": []},
            "backups": section,
            "capacity": {"warnings": [], "at": None, "too_few": [], "metrics": 0},
        }
    )
    assert "| a |" in markdown and "| met |" in markdown
    store.dispose()
