"""db.* on SQLite targets: upkeep's own store and any file; integrity problems are critical."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from support.contexts import events_of, run_handler


def _freelist(path: Path) -> int:
    with sqlite3.connect(path) as c:
        return c.execute("PRAGMA freelist_count").fetchone()[0]


@pytest.fixture
def holey_db(tmp_path) -> Path:
    """A SQLite file where most rows were deleted: free pages VACUUM gives back."""
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        c.execute("CREATE INDEX notes_body ON notes (body)")
        c.executemany("INSERT INTO notes (body) VALUES (?)", [(f"note {i} " + "x" * 300,) for i in range(3000)])
        c.execute("DELETE FROM notes WHERE id % 10 != 0")
    c.close()
    return path


def test_sqlite_vacuum_gives_free_pages_back_and_dry_run_changes_nothing(sqlite_store, holey_db):
    target = f"sqlite:///{holey_db}"
    free, content = _freelist(holey_db), holey_db.read_bytes()
    assert free > 100

    dry = run_handler(sqlite_store, "db.vacuum", {"target": target}, dry_run=True)
    assert holey_db.read_bytes() == content
    assert dry["actions"] == ["PRAGMA integrity_check", "VACUUM", "ANALYZE", "PRAGMA optimize"]
    assert [e["data"]["action"] for e in events_of(sqlite_store, dry["_run_id"]) if e["event"] == "plan"] == dry[
        "actions"
    ]

    result = run_handler(sqlite_store, "db.vacuum", {"target": target})
    assert result["outcome"] == "ok"
    assert result["before"]["freelist_pages"] == free and result["after"]["freelist_pages"] == 0
    assert result["after"]["bytes"] < result["before"]["bytes"]
    assert _freelist(holey_db) == 0
    with sqlite3.connect(holey_db) as c:
        assert c.execute("SELECT count(*) FROM notes").fetchone()[0] == 300
        assert c.execute("SELECT count(*) FROM sqlite_stat1").fetchone()[0] > 0  # ANALYZE ran


def test_inspect_warns_about_free_pages(sqlite_store, holey_db):
    result = run_handler(sqlite_store, "db.inspect", {"target": f"sqlite:///{holey_db}"})
    assert result["integrity"] == ["ok"] and result["tables"] == ["notes"]
    assert result["outcome"] == "warning"
    assert "db.vacuum" in result["findings"][0]["message"]


def test_upkeeps_own_store_is_maintained_through_target_upkeep(sqlite_store, tmp_path, monkeypatch):
    monkeypatch.delenv("UPKEEP_DATABASE_URL", raising=False)
    store_file = tmp_path / "upkeep.db"  # where the sqlite_store fixture keeps it: <data_dir>/upkeep.db
    for task in ("db.vacuum", "db.analyze", "db.reindex", "db.inspect"):
        result = run_handler(sqlite_store, task, {"target": "upkeep"}, data_dir=tmp_path)
        assert result["outcome"] == "ok", (task, result)
        assert result["target"] == str(store_file)
    assert result["integrity"] == ["ok"]
    assert "runs" in result["tables"]
    # in a running upkeep the engine names its store (ctx.services.database_url)
    services = SimpleNamespace(database_url=f"sqlite:///{store_file}")
    result = run_handler(
        sqlite_store, "db.inspect", {"target": "upkeep"}, services=services, data_dir=Path("/nonexistent")
    )
    assert result["target"] == str(store_file)
    # the store still works after being vacuumed under it
    assert run_handler(sqlite_store, "db.inspect", {"target": f"sqlite:///{store_file}"})["outcome"] == "ok"


def _corrupt_index(path: Path) -> None:
    """Overwrite index entries on disk so the index no longer matches its table."""
    with sqlite3.connect(path) as c:
        root = c.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'notes_body'").fetchone()[0]
        page_size = c.execute("PRAGMA page_size").fetchone()[0]
    c.close()
    data = bytearray(path.read_bytes())
    start, end = (root - 1) * page_size, root * page_size
    page = data[start:end]
    i = page.find(b"note ")
    assert i > 0
    page[i : i + 5] = b"zzzz "
    data[start:end] = page
    path.write_bytes(bytes(data))


def test_integrity_problems_are_critical_and_stop_vacuum(sqlite_store, tmp_path):
    path = tmp_path / "small.db"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        c.execute("CREATE INDEX notes_body ON notes (body)")
        c.executemany("INSERT INTO notes (body) VALUES (?)", [(f"note {i}",) for i in range(50)])
    c.close()
    _corrupt_index(path)
    before = path.read_bytes()

    inspected = run_handler(sqlite_store, "db.inspect", {"target": f"sqlite:///{path}"})
    assert inspected["outcome"] == "critical"
    assert inspected["integrity"] != ["ok"] and all(f["severity"] == "critical" for f in inspected["findings"])

    vacuumed = run_handler(sqlite_store, "db.vacuum", {"target": f"sqlite:///{path}"})
    assert vacuumed["outcome"] == "critical" and vacuumed["after"] is None
    assert path.read_bytes() == before  # a damaged file is not rewritten
